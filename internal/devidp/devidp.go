// Package devidp is a small OpenID provider for development and tests: it
// serves discovery and a JWKS and mints Auth0-like access tokens carrying a
// `permissions` array, so that Claimbridge can be tried without an account
// anywhere. It is not an identity provider for production: anyone who can
// reach it gets a token.
package devidp

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// RolesClaim is the namespaced roles claim the dev IdP adds, as Auth0
// actions do.
const RolesClaim = "https://claimbridge.dev/roles"

// IdP is a development OpenID provider with one RSA signing key.
type IdP struct {
	issuer   string
	audience string
	key      *rsa.PrivateKey
	kid      string
	signer   jose.Signer
	now      func() time.Time
}

// New returns an IdP whose tokens carry iss=issuer and, by default,
// aud=audience.
func New(issuer, audience string) (*IdP, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	jwk := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.RS256), Use: "sig"}
	tp, err := jwk.Thumbprint(cryptoSHA256)
	if err != nil {
		return nil, err
	}
	p := &IdP{issuer: strings.TrimSuffix(issuer, "/"), audience: audience, key: key, now: time.Now}
	p.kid = b64(tp)
	p.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", p.kid))
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Issuer is the IdP's issuer URL.
func (p *IdP) Issuer() string { return p.issuer }

// Key is the private signing key, for tests that forge tokens.
func (p *IdP) Key() *rsa.PrivateKey { return p.key }

// KeyID is the kid of the signing key.
func (p *IdP) KeyID() string { return p.kid }

// Mint signs claims as an access token. iss, iat and exp (one hour) are
// filled in when absent.
func (p *IdP) Mint(claims map[string]any) (string, error) {
	c := maps.Clone(claims)
	now := p.now().Unix()
	setDefault(c, "iss", p.issuer)
	setDefault(c, "iat", now)
	setDefault(c, "exp", now+3600)
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	obj, err := p.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

func setDefault(c map[string]any, k string, v any) {
	if _, ok := c[k]; !ok {
		c[k] = v
	}
}

// Handler serves /.well-known/openid-configuration, /jwks.json and /token.
func (p *IdP) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer":                                p.issuer,
			"jwks_uri":                              p.issuer + "/jwks.json",
			"token_endpoint":                        p.issuer + "/token",
			"authorization_endpoint":                p.issuer + "/authorize",
			"response_types_supported":              []string{"token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: p.kid, Algorithm: string(jose.RS256), Use: "sig"}}})
	})
	mux.HandleFunc("/token", p.serveToken)
	return mux
}

// serveToken mints a token for the form's sub, scope, permissions (space
// or comma separated), roles, aud and ttl (seconds), all optional.
func (p *IdP) serveToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	get := func(k, def string) string {
		if v := r.Form.Get(k); v != "" {
			return v
		}
		return def
	}
	ttl, err := strconv.Atoi(get("ttl", "3600"))
	if err != nil || ttl <= 0 || ttl > 86400 {
		http.Error(w, "ttl must be 1..86400 seconds", http.StatusBadRequest)
		return
	}
	now := p.now().Unix()
	token, err := p.Mint(map[string]any{
		"sub":         get("sub", "auth0|dev-user"),
		"aud":         []string{get("aud", p.audience), p.issuer + "/userinfo"},
		"azp":         "dev-spa",
		"scope":       get("scope", "openid profile email orders:read orders:write"),
		"permissions": split(get("permissions", "orders:read orders:write invoices:read")),
		RolesClaim:    split(get("roles", "admin")),
		"email":       get("email", "dev@example.com"),
		"iat":         now,
		"exp":         now + int64(ttl),
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, map[string]any{"access_token": token, "token_type": "Bearer", "expires_in": ttl})
}

func split(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		fmt.Fprintln(w, err)
	}
}
