package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/claimbridge/claimbridge/keys"
	"github.com/claimbridge/claimbridge/sts"
)

// newMetrics returns the /metrics handler over a registry of its own: the
// Go runtime and process collectors, the signing key lifecycle and the
// exchange cache (when there is one). The registry is built once; nothing
// on the exchange path touches it: the cache keeps its own counters, read
// when scraped.
func newMetrics(ring *keys.Ring, cache *sts.Cache) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		keyCollector{ring: ring},
	)
	if cache != nil {
		reg.MustRegister(cacheCollector{cache: cache})
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

var (
	activeAgeDesc = prometheus.NewDesc("claimbridge_signing_key_active_age_seconds",
		"How long the active signing key of each algorithm has been signing.", []string{"alg"}, nil)
	nextRotationDesc = prometheus.NewDesc("claimbridge_signing_key_next_rotation_seconds",
		"Time until a successor takes over from the active signing key of each algorithm; negative when overdue.", []string{"alg"}, nil)
)

// keyCollector reports the lifecycle position of the ring's active keys
// when scraped.
type keyCollector struct {
	ring *keys.Ring
}

func (keyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- activeAgeDesc
	ch <- nextRotationDesc
}

func (c keyCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.ring.Status() {
		ch <- prometheus.MustNewConstMetric(activeAgeDesc, prometheus.GaugeValue, s.ActiveAge.Seconds(), s.Algorithm)
		ch <- prometheus.MustNewConstMetric(nextRotationDesc, prometheus.GaugeValue, s.NextRotation.Seconds(), s.Algorithm)
	}
}

var (
	cacheHitsDesc = prometheus.NewDesc("claimbridge_exchange_cache_hits_total",
		"Exchanges served from the exchange cache, or by waiting for a concurrent mint of the same exchange.", nil, nil)
	cacheMissesDesc = prometheus.NewDesc("claimbridge_exchange_cache_misses_total",
		"Exchanges through the cache that minted a token.", nil, nil)
	cacheEvictionsDesc = prometheus.NewDesc("claimbridge_exchange_cache_evictions_total",
		"Cached tokens evicted to make room for others.", nil, nil)
	cacheEntriesDesc = prometheus.NewDesc("claimbridge_exchange_cache_entries",
		"Tokens in the exchange cache.", nil, nil)
)

// cacheCollector reports the exchange cache's counters when scraped.
type cacheCollector struct {
	cache *sts.Cache
}

func (cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheHitsDesc
	ch <- cacheMissesDesc
	ch <- cacheEvictionsDesc
	ch <- cacheEntriesDesc
}

func (c cacheCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.cache.Stats()
	ch <- prometheus.MustNewConstMetric(cacheHitsDesc, prometheus.CounterValue, float64(st.Hits))
	ch <- prometheus.MustNewConstMetric(cacheMissesDesc, prometheus.CounterValue, float64(st.Misses))
	ch <- prometheus.MustNewConstMetric(cacheEvictionsDesc, prometheus.CounterValue, float64(st.Evictions))
	ch <- prometheus.MustNewConstMetric(cacheEntriesDesc, prometheus.GaugeValue, float64(st.Entries))
}
