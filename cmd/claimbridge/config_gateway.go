package main

import (
	"flag"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/claimbridge/claimbridge/api"
	"github.com/claimbridge/claimbridge/sts"
)

// gatewayConfig configures what gateways use: the exchange cache and
// /forward-auth.
type gatewayConfig struct {
	CacheEntries        int           `yaml:"exchange_cache_entries"`
	CacheRefreshMargin  time.Duration `yaml:"exchange_cache_refresh_margin"`
	ForwardAuthToken    string        `yaml:"forward_auth_token_header"`
	ForwardAuthResponse string        `yaml:"forward_auth_response_header"`
}

func defaultGatewayConfig() gatewayConfig {
	return gatewayConfig{
		CacheEntries:        sts.DefaultCacheEntries,
		CacheRefreshMargin:  sts.DefaultRefreshMargin,
		ForwardAuthToken:    "Authorization",
		ForwardAuthResponse: "Authorization",
	}
}

func (g *gatewayConfig) bindFlags(fs *flag.FlagSet) {
	fs.IntVar(&g.CacheEntries, "exchange-cache-entries", g.CacheEntries, "most tokens the exchange cache holds (typically 1-2 KiB each, at most ~20 KiB for a subject with large claims; rounded up to a multiple of 64 shards; 0 disables the cache)")
	fs.DurationVar(&g.CacheRefreshMargin, "exchange-cache-refresh-margin", g.CacheRefreshMargin, "a cached token is served until its expiry minus this margin (at least a tenth of its lifetime)")
	fs.StringVar(&g.ForwardAuthToken, "forward-auth-token-header", g.ForwardAuthToken, "request header holding the subject token at /forward-auth: Authorization (Bearer) or e.g. X-Forwarded-Access-Token (the token itself)")
	fs.StringVar(&g.ForwardAuthResponse, "forward-auth-response-header", g.ForwardAuthResponse, "response header receiving the minted token at /forward-auth: Authorization (Bearer) or another header (the token itself)")
}

func (g *gatewayConfig) validate() []error {
	var errs []error
	if g.CacheEntries < 0 || g.CacheEntries > 10_000_000 {
		errs = append(errs, fmt.Errorf("exchange-cache-entries: %d must be between 0 and 10000000", g.CacheEntries))
	}
	if g.CacheRefreshMargin < time.Second || g.CacheRefreshMargin > time.Hour {
		errs = append(errs, fmt.Errorf("exchange-cache-refresh-margin: %s must be between 1s and 1h", g.CacheRefreshMargin))
	}
	for name, h := range map[string]string{"forward-auth-token-header": g.ForwardAuthToken, "forward-auth-response-header": g.ForwardAuthResponse} {
		if !validHeaderName(h) {
			errs = append(errs, fmt.Errorf("%s: %q is not a header name", name, h))
		}
	}
	return errs
}

// cache returns the exchange cache, or nil when it is disabled.
func (g *gatewayConfig) cache() *sts.Cache {
	if g.CacheEntries == 0 {
		return nil
	}
	return sts.NewCache(sts.CacheOptions{MaxEntries: g.CacheEntries, RefreshMargin: g.CacheRefreshMargin})
}

func (g *gatewayConfig) forwardAuth() api.ForwardAuthConfig {
	return api.ForwardAuthConfig{
		TokenHeader:    http.CanonicalHeaderKey(g.ForwardAuthToken),
		ResponseHeader: http.CanonicalHeaderKey(g.ForwardAuthResponse),
	}
}

// validHeaderName reports whether s is an HTTP field name (RFC 9110 §5.1:
// a token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)
		if !ok {
			return false
		}
	}
	return true
}
