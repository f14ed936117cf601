package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/claimbridge/claimbridge/sidecar"
	"github.com/claimbridge/claimbridge/sts"
)

// proxyConfig is the configuration of `claimbridge proxy`, from flags (and
// the client secret from a file or CLAIMBRIDGE_CLIENT_SECRET).
type proxyConfig struct {
	listen, upstream, tokenURL, clientID, secretFile string
	audiences, stripHeaders                          stringList
	scope, subjectTokenType                          string
	tokenHeader, upstreamHeader                      string
	cacheEntries                                     int
	refreshMargin, shutdownTimeout                   time.Duration
	logLevel, logFormat                              string
}

func (c *proxyConfig) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8000", "listen address")
	fs.StringVar(&c.upstream, "upstream", "", "the upstream's URL, e.g. http://127.0.0.1:3000 (required)")
	fs.StringVar(&c.tokenURL, "token-url", "", "Claimbridge's token endpoint, e.g. https://sts.example.com/oauth2/token (required; https unless loopback)")
	fs.StringVar(&c.clientID, "client-id", "", "the sidecar's client ID (required)")
	fs.StringVar(&c.secretFile, "client-secret-file", "", "file holding the client secret; or set CLAIMBRIDGE_CLIENT_SECRET")
	fs.Var(&c.audiences, "audience", "comma-separated audience(s) to exchange for (required)")
	fs.StringVar(&c.scope, "scope", "", "space-separated scope to request (optional)")
	fs.StringVar(&c.subjectTokenType, "subject-token-type", sts.TokenTypeAccessToken, "the IdP token's type")
	fs.StringVar(&c.tokenHeader, "token-header", "Authorization", "request header holding the IdP token: Authorization (Bearer) or e.g. X-Forwarded-Access-Token (the token itself)")
	fs.Var(&c.stripHeaders, "strip-headers", "comma-separated further request headers to remove before proxying (e.g. X-Pomerium-Jwt-Assertion)")
	fs.StringVar(&c.upstreamHeader, "upstream-header", "Authorization", "header receiving the minted token: Authorization (Bearer) or another header (the token itself)")
	fs.IntVar(&c.cacheEntries, "cache-entries", 10_000, "most tokens the exchange cache holds")
	fs.DurationVar(&c.refreshMargin, "cache-refresh-margin", sts.DefaultRefreshMargin, "a cached token is used until its expiry minus this margin (at least a tenth of its lifetime)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 15*time.Second, "time to finish in-flight requests on shutdown")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
}

// sidecarConfig checks c, reads the secret and returns the sidecar's
// configuration; every problem is reported at once.
func (c *proxyConfig) sidecarConfig(getenv func(string) string) (sidecar.Config, error) {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	up, err := url.Parse(c.upstream)
	if err != nil || up.Host == "" || (up.Scheme != "http" && up.Scheme != "https") {
		add("upstream: %q must be an absolute http(s) URL", c.upstream)
	}
	if u, err := url.Parse(c.tokenURL); err != nil || u.Host == "" || !(u.Scheme == "https" || (u.Scheme == "http" && isLoopback(u.Hostname()))) {
		add("token-url: %q must be an https URL (http only on loopback): the client secret travels with every exchange", c.tokenURL)
	}
	if c.clientID == "" {
		add("client-id: required")
	}
	if len(c.audiences) == 0 {
		add("audience: at least one is required")
	}
	for name, h := range map[string]string{"token-header": c.tokenHeader, "upstream-header": c.upstreamHeader} {
		if !validHeaderName(h) {
			add("%s: %q is not a header name", name, h)
		}
	}
	if c.cacheEntries < 1 || c.refreshMargin < time.Second {
		add("cache-entries must be at least 1 and cache-refresh-margin at least 1s")
	}
	secret, err := c.secret(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return sidecar.Config{}, errors.Join(errs...)
	}
	return sidecar.Config{
		Upstream: up, TokenURL: c.tokenURL, ClientID: c.clientID, ClientSecret: secret,
		Audiences: c.audiences, Scopes: strings.Fields(c.scope), SubjectTokenType: c.subjectTokenType,
		TokenHeader: c.tokenHeader, StripHeaders: c.stripHeaders, UpstreamHeader: c.upstreamHeader,
		Cache: sts.NewCache(sts.CacheOptions{MaxEntries: c.cacheEntries, RefreshMargin: c.refreshMargin}),
	}, nil
}

// secret reads the client secret from its file, else the environment.
func (c *proxyConfig) secret(getenv func(string) string) (string, error) {
	if c.secretFile != "" {
		b, err := os.ReadFile(c.secretFile)
		if err != nil {
			return "", fmt.Errorf("client-secret-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if s := getenv("CLAIMBRIDGE_CLIENT_SECRET"); s != "" {
		return s, nil
	}
	return "", errors.New("client secret: set --client-secret-file or CLAIMBRIDGE_CLIENT_SECRET")
}

// proxyCommand runs the sidecar until ctx ends.
func proxyCommand(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var c proxyConfig
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.bindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lvl slog.Level
	if lvl.UnmarshalText([]byte(c.logLevel)) != nil || (c.logFormat != "text" && c.logFormat != "json") {
		return errors.New("invalid configuration: log-level must be debug, info, warn or error and log-format text or json")
	}
	sc, err := c.sidecarConfig(getenv)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	log := newLogger(stderr, c.logLevel, c.logFormat)
	sc.Logger = log
	p, err := sidecar.New(sc)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.listen, err)
	}
	// No read or write timeout: bodies stream and websockets stay open.
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("claimbridge proxy is serving", "listen", ln.Addr().String(), "upstream", c.upstream, "audience", c.audiences.String())
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("serving %s: %w", c.listen, err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.shutdownTimeout)
	defer cancel()
	return srv.Shutdown(sctx)
}
