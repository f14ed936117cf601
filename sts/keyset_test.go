package sts

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"
)

func randomKid(t testing.TB) string {
	b := make([]byte, 12)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

// exchangeAll runs one exchange per token concurrently and returns the errors.
func exchangeAll(f *fixture, tokens []string) []error {
	errs := make([]error, len(tokens))
	var wg sync.WaitGroup
	for i, tok := range tokens {
		wg.Go(func() {
			_, errs[i] = f.ex.Exchange(context.Background(), f.request(tok))
		})
	}
	wg.Wait()
	return errs
}

func TestUnknownKidRefreshIsRateLimited(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.ex.Exchange(ctx, f.request(f.validToken(t)))
	require.NoError(t, err)
	require.Equal(t, int64(1), f.idp.jwksHits.Load(), "the first exchange fetched the JWKS once (with the warm-up)")
	require.Equal(t, int64(1), f.idp.discovery.Load(), "the JWKS URL was discovered once")

	unknownKids := func(n int) []string {
		idp := f.idp.idp.Load()
		tokens := make([]string, n)
		for i := range tokens {
			tokens[i] = forge(t, jose.RS256, idp.Key(), randomKid(t), f.idp.claims(f.clock.Now()))
		}
		return tokens
	}
	requireUnknownKey := func(errs []error, tokens []string) {
		t.Helper()
		for i, err := range errs {
			e := requireCode(t, err, InvalidRequest, tokens[i])
			require.Contains(t, e.Description, "key the issuer does not publish")
		}
	}

	// Right after a fetch, unknown kids never reach the IdP.
	tokens := unknownKids(30)
	requireUnknownKey(exchangeAll(f, tokens), tokens)
	require.Equal(t, int64(1), f.idp.jwksHits.Load(), "no refetch within minRefresh of the last fetch")

	// Once minRefresh has passed, a flood of unknown kids refetches once.
	f.clock.Advance(testMinRefresh + time.Second)
	tokens = unknownKids(50)
	requireUnknownKey(exchangeAll(f, tokens), tokens)
	require.Equal(t, int64(2), f.idp.jwksHits.Load(), "50 unknown kids after minRefresh cause exactly one refetch")

	// The IdP rotates its key. Within minRefresh of the last fetch the new
	// kid is unknown; after it, the new key is fetched and used.
	old := f.validToken(t)
	f.idp.rotate(t)
	rotated := f.validToken(t)
	_, err = f.ex.Exchange(ctx, f.request(rotated))
	requireCode(t, err, InvalidRequest, rotated)
	require.Equal(t, int64(2), f.idp.jwksHits.Load())

	f.clock.Advance(testMinRefresh + time.Second)
	resp, err := f.ex.Exchange(ctx, f.request(rotated))
	require.NoError(t, err, "the rotated key is picked up after minRefresh")
	require.Equal(t, testSubject, resp.Subject)
	require.Equal(t, int64(3), f.idp.jwksHits.Load())

	_, err = f.ex.Exchange(ctx, f.request(old))
	requireCode(t, err, InvalidRequest, old)
	require.Equal(t, int64(3), f.idp.jwksHits.Load(), "the retired key's kid is rate-limited like any unknown kid")
}

// TestStaleKeysRefreshInBackground proves that keys older than JWKSMaxAge
// are refetched without failing the exchange that noticed.
func TestStaleKeysRefreshInBackground(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.ex.Exchange(ctx, f.request(f.validToken(t)))
	require.NoError(t, err)
	require.Equal(t, int64(1), f.idp.jwksHits.Load())

	f.clock.Advance(time.Hour + time.Second)
	_, err = f.ex.Exchange(ctx, f.request(f.validToken(t)))
	require.NoError(t, err, "the stale keys still verify")
	require.Eventually(t, func() bool { return f.idp.jwksHits.Load() == 2 }, 5*time.Second, 5*time.Millisecond)

	v := f.ex.snap.Load().issuers[f.idp.URL()]
	require.Eventually(t, func() bool { return !v.keys.refreshing.Load() }, 5*time.Second, 5*time.Millisecond)
	_, err = f.ex.Exchange(ctx, f.request(f.validToken(t)))
	require.NoError(t, err)
	require.Equal(t, int64(2), f.idp.jwksHits.Load(), "fresh keys are not refetched")
}

// jwksServer serves doc at /jwks.
func jwksServer(t *testing.T, doc []byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestKeySetIgnoresUnusableKeys(t *testing.T) {
	rsaKey := newRSAKey(t)
	privateKey := newRSAKey(t)
	encKey := newRSAKey(t)
	secret := make([]byte, 32)
	_, err := rand.Read(secret)
	require.NoError(t, err)

	doc, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: secret, KeyID: "hmac", Algorithm: string(jose.HS256), Use: "sig"},
		{Key: privateKey, KeyID: "private", Algorithm: string(jose.RS256), Use: "sig"},
		{Key: &encKey.PublicKey, KeyID: "enc", Algorithm: string(jose.RS256), Use: "enc"},
		{Key: &rsaKey.PublicKey, KeyID: "rsa", Algorithm: string(jose.RS256), Use: "sig"},
	}})
	require.NoError(t, err)
	require.Contains(t, string(doc), `"kty":"oct"`)
	srv := jwksServer(t, doc)

	clk := newClock(testNow)
	ks := &keySet{
		issuerURL:  srv.URL,
		jwksURI:    srv.URL + "/jwks",
		client:     srv.Client(),
		minRefresh: time.Minute,
		maxAge:     time.Hour,
		now:        clk.Now,
	}
	ctx := context.Background()
	require.NoError(t, ks.refresh(ctx, nil))
	var kids []string
	for _, k := range ks.keys.Load().keys {
		kids = append(kids, k.KeyID)
	}
	require.Equal(t, []string{"rsa"}, kids, "only public signing keys are kept")

	claims := map[string]any{"iss": srv.URL, "sub": "x"}
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"the RSA signing key verifies", forge(t, jose.RS256, rsaKey, "rsa", claims), true},
		{"the RSA signing key verifies a token without kid", forge(t, jose.RS256, rsaKey, "", claims), true},
		{"an HS256 token keyed with the published oct secret", forge(t, jose.HS256, secret, "hmac", claims), false},
		{"an HS256 token without kid", forge(t, jose.HS256, secret, "", claims), false},
		{"a token signed by the key published with its private part", forge(t, jose.RS256, privateKey, "private", claims), false},
		{"a token signed by the encryption key", forge(t, jose.RS256, encKey, "enc", claims), false},
		{"an HS256 token keyed with the RSA key's kid", forge(t, jose.HS256, secret, "rsa", claims), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// HS256 is parsed here on purpose, to prove that the key filter
			// alone keeps a shared secret from verifying anything.
			jws, err := jose.ParseSignedCompact(tt.token, []jose.SignatureAlgorithm{jose.RS256, jose.HS256})
			require.NoError(t, err)
			err = ks.verify(ctx, jws)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, errUnknownKey)
		})
	}
}

// TestIssuerAlgorithmAllowList: HMAC and none are never parsed at all,
// and the issuer's own list is enforced before any key is looked at.
func TestIssuerAlgorithmAllowList(t *testing.T) {
	require.Equal(t, []jose.SignatureAlgorithm{jose.ES256}, signatureAlgorithms([]string{"ES256", "HS256", "none"}))
	for _, alg := range subjectAlgorithms {
		require.NotContains(t, []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512, "none"}, alg)
	}
	rsaKey := newRSAKey(t)
	doc, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &rsaKey.PublicKey, KeyID: "rsa", Use: "sig"}}})
	require.NoError(t, err)
	srv := jwksServer(t, doc)
	iss := Issuer{Name: "es-only", URL: srv.URL, JWKSURI: srv.URL + "/jwks", Audiences: []string{"a"}, Algorithms: []string{"ES256"}}
	v := newIssuerVerifier(iss, verifierConfig{client: srv.Client(), minRefresh: time.Minute, maxAge: time.Hour, now: newClock(testNow).Now})
	tok, err := parseSubject(forge(t, jose.RS256, rsaKey, "rsa", map[string]any{"iss": srv.URL, "sub": "x"}))
	require.NoError(t, err)
	_, err = v.verify(context.Background(), tok)
	e := requireCode(t, err, InvalidRequest, "")
	require.Contains(t, e.Description, "does not allow")
	require.Nil(t, v.keys.keys.Load(), "refused before any key was fetched")
}

func TestKeySetFetchFailures(t *testing.T) {
	big := make([]byte, maxJWKSBytes+10)
	for i := range big {
		big[i] = ' '
	}
	copy(big, `{"keys":[]}`)
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"a non-200 status", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }, "503"},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>")) }, "JWKS"},
		{"a document over the size limit", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(big) }, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			clk := newClock(testNow)
			ks := &keySet{
				issuerURL: srv.URL, jwksURI: srv.URL + "/jwks",
				client: srv.Client(), minRefresh: time.Minute, maxAge: time.Hour, now: clk.Now,
			}
			err := ks.refresh(context.Background(), nil)
			require.ErrorContains(t, err, tt.want)
			require.Nil(t, ks.keys.Load(), "nothing is cached")

			err = ks.refresh(context.Background(), nil)
			require.ErrorContains(t, err, "retrying later", "a failed fetch is not retried within minRefresh")
		})
	}
}

// TestBadSignatureOnKnownKeyDoesNotRefetch: a token whose kid the IdP does
// publish but whose signature is wrong is refused without asking the IdP
// again, and says so.
func TestBadSignatureOnKnownKeyDoesNotRefetch(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.ex.Exchange(ctx, f.request(f.validToken(t)))
	require.NoError(t, err)
	hits := f.idp.jwksHits.Load()
	f.clock.Advance(testMinRefresh + time.Second) // a refetch would be allowed

	idp := f.idp.idp.Load()
	forged := forge(t, jose.RS256, newRSAKey(t), idp.KeyID(), f.idp.claims(f.clock.Now()))
	_, err = f.ex.Exchange(ctx, f.request(forged))
	e := requireCode(t, err, InvalidRequest, forged)
	require.Contains(t, e.Description, "signature could not be verified")
	require.Equal(t, hits, f.idp.jwksHits.Load(), "a known kid with a bad signature never refetches")
}

// TestIssuerKeysUnavailable: when the IdP's keys cannot be fetched the
// exchange fails as a server error, not as the client's fault.
func TestIssuerKeysUnavailable(t *testing.T) {
	f := newFixture(t)
	tok := f.validToken(t)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	iss := testIssuer(f.idp.URL())
	iss.JWKSURI = down.URL + "/jwks.json"
	iss.Normalize()
	v := newIssuerVerifier(iss, verifierConfig{client: down.Client(), skew: testSkew, minRefresh: time.Minute, maxAge: time.Hour, now: f.clock.Now})
	parsed, err := parseSubject(tok)
	require.NoError(t, err)
	for range 2 { // the first fetch fails, the second is not even tried
		_, err := v.verify(context.Background(), parsed)
		e := requireCode(t, err, ServerError, tok)
		require.Contains(t, e.Description, "try again later")
	}
}
