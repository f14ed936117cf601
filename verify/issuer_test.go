package verify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/verify"
)

const testAudience = "https://orders.internal"

// testIssuer is a fake Claimbridge: a discovery document and a JWKS whose
// keys, Cache-Control and status a test changes, counting JWKS fetches.
type testIssuer struct {
	srv       *httptest.Server
	jwksHits  atomic.Int64
	discHits  atomic.Int64
	mu        sync.Mutex
	keys      []jose.JSONWebKey
	cache     string
	status    int
	discIssue string // the issuer the discovery document names; "" for the real one
}

func newTestIssuer(t testing.TB, keys ...*testKey) *testIssuer {
	t.Helper()
	ti := &testIssuer{cache: "public, max-age=300", status: http.StatusOK}
	ti.publish(keys...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		ti.discHits.Add(1)
		ti.mu.Lock()
		iss := ti.discIssue
		ti.mu.Unlock()
		if iss == "" {
			iss = ti.srv.URL
		}
		json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": ti.srv.URL + "/.well-known/jwks.json"})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		ti.jwksHits.Add(1)
		ti.mu.Lock()
		defer ti.mu.Unlock()
		if ti.cache != "" {
			w.Header().Set("Cache-Control", ti.cache)
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(ti.status)
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: ti.keys})
	})
	ti.srv = httptest.NewServer(mux)
	t.Cleanup(ti.srv.Close)
	return ti
}

func (ti *testIssuer) URL() string { return ti.srv.URL }

// publish replaces the published keys.
func (ti *testIssuer) publish(keys ...*testKey) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.keys = nil
	for _, k := range keys {
		ti.keys = append(ti.keys, k.public())
	}
}

func (ti *testIssuer) set(f func(*testIssuer)) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	f(ti)
}

// testKey is a signing key of one algorithm.
type testKey struct {
	kid  string
	alg  string
	priv any
}

func newKey(t testing.TB, alg, kid string) *testKey {
	t.Helper()
	var priv any
	var err error
	switch alg {
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "RS256", "PS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("no test key for %s", alg)
	}
	require.NoError(t, err)
	return &testKey{kid: kid, alg: alg, priv: priv}
}

func (k *testKey) public() jose.JSONWebKey {
	key := jose.JSONWebKey{Key: k.priv, KeyID: k.kid, Algorithm: k.alg, Use: "sig"}
	return key.Public()
}

// sign signs claims with header typ (none when typ is "").
func (k *testKey) sign(t testing.TB, typ string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	return k.signBytes(t, typ, payload)
}

// signBytes signs any payload.
func (k *testKey) signBytes(t testing.TB, typ string, payload []byte) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), k.kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.alg), Key: k.priv}, opts)
	require.NoError(t, err)
	jws, err := signer.Sign(payload)
	require.NoError(t, err)
	raw, err := jws.CompactSerialize()
	require.NoError(t, err)
	return raw
}

// clock is an injected clock a test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// claimsAt are the claims Claimbridge mints, valid at now for five minutes.
func claimsAt(iss string, now time.Time) map[string]any {
	return map[string]any{
		"iss":         iss,
		"sub":         "auth0|alice",
		"aud":         testAudience,
		"exp":         now.Add(5 * time.Minute).Unix(),
		"iat":         now.Unix(),
		"jti":         "jti-1",
		"client_id":   "gateway",
		"scope":       "orders:read orders:write",
		"permissions": []string{"orders:read", "orders:write"},
		"big":         json.Number("12345678901234567890"),
	}
}

// with returns a copy of claims with changes applied (nil deletes).
func with(claims map[string]any, changes map[string]any) map[string]any {
	out := make(map[string]any, len(claims))
	for k, v := range claims {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// newVerifier builds a verifier for ti on clk with cfg's other fields.
func newVerifier(t *testing.T, ti *testIssuer, clk *clock, cfg verify.Config) *verify.Verifier {
	t.Helper()
	cfg.Issuer, cfg.Now = ti.URL(), clk.Now
	if cfg.Audience == "" {
		cfg.Audience = testAudience
	}
	v, err := verify.New(context.Background(), cfg)
	require.NoError(t, err)
	return v
}
