package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/claimbridge/claimbridge/keys"
)

// newMetrics returns the /metrics handler over a registry of its own: the
// Go runtime and process collectors and the signing key lifecycle. The
// registry is built once; nothing on the exchange path touches it.
func newMetrics(ring *keys.Ring) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		keyCollector{ring: ring},
	)
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
