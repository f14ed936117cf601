package verify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/verify"
)

// TestCacheControl: the JWKS is fetched again once its max-age has passed,
// with the max-age held between MinCacheAge and MaxCacheAge.
func TestCacheControl(t *testing.T) {
	tests := []struct {
		name   string
		header string
		age    time.Duration
	}{
		{"max-age honoured", "public, max-age=300", 300 * time.Second},
		{"an hour", "max-age=3600, public", time.Hour},
		{"quoted value", `max-age="120"`, 120 * time.Second},
		{"too short: a minute at least", "max-age=5", verify.MinCacheAge},
		{"zero", "max-age=0", verify.MinCacheAge},
		{"too long: a day at most", "max-age=604800", verify.MaxCacheAge},
		{"overflowing", "max-age=99999999999999999999999", verify.MaxCacheAge},
		{"no-store", "no-store", verify.MinCacheAge},
		{"no-cache wins over max-age", "max-age=600, no-cache", verify.MinCacheAge},
		{"no header", "", verify.MinCacheAge},
		{"garbage", "max-age=soon", verify.MinCacheAge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := newKey(t, "ES256", "es")
			ti := newTestIssuer(t, es)
			ti.set(func(ti *testIssuer) { ti.cache = tt.header })
			clk := newClock()
			v := newVerifier(t, ti, clk, verify.Config{JWKSURL: ti.URL() + "/.well-known/jwks.json"})
			check := func(wantHits int64) {
				t.Helper()
				_, err := v.Verify(context.Background(), es.sign(t, "at+jwt", claimsAt(ti.URL(), clk.Now())))
				require.NoError(t, err)
				require.Equal(t, wantHits, ti.jwksHits.Load(), "at %s", clk.Now())
			}
			check(1)
			clk.Add(tt.age - time.Second)
			check(1)
			clk.Add(time.Second)
			check(2)
			check(2)
		})
	}
}

// TestUnknownKeyRefreshIsRateLimited: a flood of tokens with made-up key
// IDs costs the issuer at most one fetch per RefreshInterval.
func TestUnknownKeyRefreshIsRateLimited(t *testing.T) {
	es := newKey(t, "ES256", "es")
	ti := newTestIssuer(t, es)
	clk := newClock()
	v := newVerifier(t, ti, clk, verify.Config{RefreshInterval: 30 * time.Second})
	flood := func() {
		t.Helper()
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				forged := newKey(t, "ES256", fmt.Sprintf("forged-%d", i))
				_, err := v.Verify(context.Background(), forged.sign(t, "at+jwt", claimsAt(ti.URL(), clk.Now())))
				assert.ErrorIs(t, err, verify.ErrUnknownKey)
			})
		}
		wg.Wait()
	}
	require.EqualValues(t, 1, ti.jwksHits.Load())
	flood()
	require.EqualValues(t, 1, ti.jwksHits.Load(), "fetched at start, moments ago")
	clk.Add(30 * time.Second)
	flood()
	require.EqualValues(t, 2, ti.jwksHits.Load(), "one fetch for 50 unknown kids")
	clk.Add(29 * time.Second)
	flood()
	require.EqualValues(t, 2, ti.jwksHits.Load())
	clk.Add(time.Second)
	flood()
	require.EqualValues(t, 3, ti.jwksHits.Load())

	_, err := v.Verify(context.Background(), es.sign(t, "at+jwt", claimsAt(ti.URL(), clk.Now())))
	require.NoError(t, err, "the real key still verifies")
}

// TestKeyRotation: a token signed by a key published after the last fetch
// makes the verifier fetch the JWKS again and pass.
func TestKeyRotation(t *testing.T) {
	oldKey, newKey := newKey(t, "ES256", "key-1"), newKey(t, "ES256", "key-2")
	ti := newTestIssuer(t, oldKey)
	clk := newClock()
	v := newVerifier(t, ti, clk, verify.Config{})
	ctx := context.Background()

	ti.publish(oldKey, newKey)
	clk.Add(verify.DefaultRefreshInterval)
	_, err := v.Verify(ctx, newKey.sign(t, "at+jwt", claimsAt(ti.URL(), clk.Now())))
	require.NoError(t, err, "the new kid is fetched")
	require.EqualValues(t, 2, ti.jwksHits.Load())
	_, err = v.Verify(ctx, oldKey.sign(t, "at+jwt", claimsAt(ti.URL(), clk.Now())))
	require.NoError(t, err, "the old key is still published")

	ti.publish(newKey)
	clk.Add(300 * time.Second) // the max-age
	_, err = v.Verify(ctx, oldKey.sign(t, "at+jwt", claimsAt(ti.URL(), clk.Now())))
	require.ErrorIs(t, err, verify.ErrUnknownKey, "a removed key stops verifying once the cache expires")
	require.EqualValues(t, 3, ti.jwksHits.Load())
}

// TestStaleKeysServeWhenTheIssuerFails: when a refetch fails, the keys
// fetched before stay in use, and the failing issuer is not hammered.
func TestStaleKeysServeWhenTheIssuerFails(t *testing.T) {
	es := newKey(t, "ES256", "es")
	ti := newTestIssuer(t, es)
	clk := newClock()
	v := newVerifier(t, ti, clk, verify.Config{})
	ti.set(func(ti *testIssuer) { ti.status = 503 })
	clk.Add(time.Hour)
	for range 10 {
		_, err := v.Verify(context.Background(), es.sign(t, "at+jwt", claimsAt(ti.URL(), clk.Now())))
		require.NoError(t, err)
	}
	require.EqualValues(t, 2, ti.jwksHits.Load(), "one failed attempt, then none until the refresh interval")
	_, err := v.Verify(context.Background(), newKey(t, "ES256", "x").sign(t, "at+jwt", claimsAt(ti.URL(), clk.Now())))
	require.ErrorIs(t, err, verify.ErrUnknownKey)
	require.NotErrorIs(t, err, verify.ErrKeysUnavailable)

	ti.set(func(ti *testIssuer) { ti.status = 200 })
	clk.Add(verify.DefaultRefreshInterval)
	_, err = v.Verify(context.Background(), es.sign(t, "at+jwt", claimsAt(ti.URL(), clk.Now())))
	require.NoError(t, err)
	require.EqualValues(t, 3, ti.jwksHits.Load())
}

// TestUnusableKeysSkipped: keys the verifier cannot or must not use (a
// shared secret, an encryption key, an unknown key type) are skipped
// without losing the others.
func TestUnusableKeysSkipped(t *testing.T) {
	es := newKey(t, "ES256", "es")
	srv := rawJWKSServer(t, `{"keys":[
		{"kty":"oct","kid":"hmac","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"},
		{"kty":"weird","kid":"w"},
		`+jwkJSON(t, es, "enc")+`,
		`+jwkJSON(t, es, "sig")+`]}`)
	v, err := verify.New(context.Background(), verify.Config{Issuer: "https://sts.test", Audience: testAudience, JWKSURL: srv})
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), es.sign(t, "at+jwt", claimsAt("https://sts.test", time.Now())))
	require.NoError(t, err)
}

// TestConcurrentVerify exercises the cache under the race detector.
func TestConcurrentVerify(t *testing.T) {
	es := newKey(t, "ES256", "es")
	ti := newTestIssuer(t, es)
	clk := newClock()
	v := newVerifier(t, ti, clk, verify.Config{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				if i == 0 && j%5 == 0 {
					clk.Add(20 * time.Second)
				}
				key := es
				if j%3 == 0 {
					key = newKey(t, "ES256", "unknown")
				}
				_, err := v.Verify(context.Background(), key.sign(t, "at+jwt", claimsAt(ti.URL(), clk.Now())))
				if key == es {
					assert.NoError(t, err)
				}
			}
		})
	}
	wg.Wait()
}

// rawJWKSServer serves body as the JWKS and returns its URL.
func rawJWKSServer(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// jwkJSON is k's public JWK with the given use.
func jwkJSON(t *testing.T, k *testKey, use string) string {
	t.Helper()
	key := k.public()
	key.Use = use
	b, err := json.Marshal(key)
	require.NoError(t, err)
	return string(b)
}
