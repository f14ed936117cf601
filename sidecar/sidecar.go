package sidecar

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/claimbridge/claimbridge/sts"
	"github.com/claimbridge/claimbridge/verify"
)

// Config configures a Proxy. Zero fields take their defaults.
type Config struct {
	// Upstream is where requests go, e.g. http://127.0.0.1:3000.
	Upstream *url.URL
	// TokenURL is the token endpoint, e.g. https://sts.example.com/oauth2/token.
	TokenURL string
	// ClientID and ClientSecret authenticate the sidecar
	// (client_secret_basic).
	ClientID     string
	ClientSecret string
	// Audiences (and Scopes, optional) are what the sidecar asks for.
	Audiences []string
	Scopes    []string
	// SubjectTokenType is the type of the IdP token; access_token by
	// default.
	SubjectTokenType string
	// TokenHeader is the request header holding the IdP token:
	// Authorization (the default), as a Bearer credential, or another
	// header (e.g. X-Forwarded-Access-Token, or the header Pomerium sets
	// with ${pomerium.access_token}) holding the token itself; a "Bearer "
	// prefix is removed.
	TokenHeader string
	// StripHeaders are further request headers removed before proxying,
	// e.g. a gateway's own assertion that carries the IdP's claims.
	StripHeaders []string
	// UpstreamHeader receives the minted token: Authorization (the
	// default), as "Bearer <token>", or another header, holding the token
	// itself.
	UpstreamHeader string
	// Cache holds minted tokens; a private one by default.
	Cache *sts.Cache
	// HTTPClient calls the token endpoint; a 10s timeout by default.
	HTTPClient *http.Client
	// Transport carries proxied requests; http.DefaultTransport's clone by
	// default.
	Transport http.RoundTripper
	Logger    *slog.Logger
}

// Proxy is the sidecar reverse proxy.
type Proxy struct {
	cfg    Config
	tokens *tokenClient
	rp     *httputil.ReverseProxy
	strip  []string // canonical names, the token header first
	prefix string   // "Bearer " for Authorization
	log    *slog.Logger
}

var _ http.Handler = (*Proxy)(nil)

// New checks cfg and returns the proxy.
func New(cfg Config) (*Proxy, error) {
	switch {
	case cfg.Upstream == nil || cfg.Upstream.Host == "" || (cfg.Upstream.Scheme != "http" && cfg.Upstream.Scheme != "https"):
		return nil, errors.New("sidecar: the upstream must be an absolute http(s) URL")
	case cfg.TokenURL == "" || cfg.ClientID == "" || cfg.ClientSecret == "":
		return nil, errors.New("sidecar: the token URL and the client credentials are required")
	case len(cfg.Audiences) == 0:
		return nil, errors.New("sidecar: at least one audience is required")
	}
	cfg.TokenHeader = http.CanonicalHeaderKey(cmp.Or(cfg.TokenHeader, "Authorization"))
	cfg.UpstreamHeader = http.CanonicalHeaderKey(cmp.Or(cfg.UpstreamHeader, "Authorization"))
	cfg.SubjectTokenType = cmp.Or(cfg.SubjectTokenType, sts.TokenTypeAccessToken)
	if cfg.Cache == nil {
		cfg.Cache = sts.NewCache(sts.CacheOptions{})
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger,
		tokens: &tokenClient{url: cfg.TokenURL, clientID: cfg.ClientID, clientSecret: cfg.ClientSecret, http: cfg.HTTPClient}}
	p.strip = append(p.strip, cfg.TokenHeader)
	for _, h := range cfg.StripHeaders {
		p.strip = append(p.strip, http.CanonicalHeaderKey(h))
	}
	if cfg.UpstreamHeader == "Authorization" {
		p.prefix = "Bearer "
	} else {
		// The user's own Authorization may carry an IdP token too: it never
		// reaches the upstream.
		p.strip = append(p.strip, "Authorization")
	}
	p.rp = &httputil.ReverseProxy{Rewrite: p.rewrite, Transport: cfg.Transport, ErrorHandler: p.upstreamError}
	return p, nil
}

// ServeHTTP exchanges the request's IdP token and proxies the request with
// the minted token in its place.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	token := p.subjectToken(r.Header)
	if token == "" {
		p.refuse(w, r, &refusal{status: http.StatusUnauthorized, reason: "invalid_token", desc: "No subject token in the " + p.cfg.TokenHeader + " header."})
		return
	}
	req := sts.Request{ClientID: p.cfg.ClientID, SubjectToken: token, SubjectTokenType: p.cfg.SubjectTokenType,
		Audiences: p.cfg.Audiences, Scopes: p.cfg.Scopes}
	resp, err := p.cfg.Cache.Do(r.Context(), sts.KeyFor(&req, ""), nil, func() (*sts.Response, sts.Stamp, error) {
		// The mint serves every concurrent request with this token: it
		// must not fail because the first of them went away.
		resp, err := p.tokens.exchange(context.WithoutCancel(r.Context()), req)
		return resp, sts.Stamp{}, err
	})
	if err != nil {
		var ref *refusal
		if !errors.As(err, &ref) {
			ref = unreachable(err)
		}
		p.refuse(w, r, ref)
		return
	}
	p.log.DebugContext(r.Context(), "exchanged", "path", r.URL.Path, "cached", resp.Cached, "took", time.Since(start))
	// Let the request body keep streaming to the upstream while its
	// response streams back (HTTP/1.1; HTTP/2 always does).
	_ = http.NewResponseController(w).EnableFullDuplex()
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, resp.AccessToken)))
}

// rewrite points the outgoing request at the upstream, removes the IdP
// token header(s) and sets the minted token.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.cfg.Upstream)
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
	for _, h := range p.strip {
		pr.Out.Header.Del(h)
	}
	token, _ := pr.In.Context().Value(tokenKey{}).(string)
	pr.Out.Header.Set(p.cfg.UpstreamHeader, p.prefix+token)
}

// tokenKey carries the minted token from ServeHTTP to rewrite.
type tokenKey struct{}

// subjectToken reads the IdP token from the configured header.
func (p *Proxy) subjectToken(h http.Header) string {
	return verify.BearerToken(h.Get(p.cfg.TokenHeader), p.cfg.TokenHeader)
}

// refuse answers a refused or failed exchange itself; the request never
// reaches the upstream.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, ref *refusal) {
	h := w.Header()
	if ref.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="claimbridge", error="invalid_token"`)
	}
	h.Set("X-Claimbridge-Reason", ref.reason)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(ref.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": ref.reason, "error_description": ref.desc})
	level := slog.LevelWarn
	if ref.status >= 500 {
		level = slog.LevelError
	}
	p.log.Log(r.Context(), level, "exchange refused", "path", r.URL.Path, "status", ref.status, "reason", ref.reason, "err", ref.Error())
}

// upstreamError answers 502 when the upstream cannot be reached.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	p.log.ErrorContext(r.Context(), "upstream unreachable", "path", r.URL.Path, "err", err)
	w.WriteHeader(http.StatusBadGateway)
}
