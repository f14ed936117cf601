package sts

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// switchableKeys is an ActiveKeys whose answer a test can change, as a
// key rotation or revoke would.
type switchableKeys struct {
	inner ActiveKeys
	kid   atomic.Pointer[string]
}

func (k *switchableKeys) KeyIDFor(alg string) string {
	if p := k.kid.Load(); p != nil {
		return *p
	}
	return k.inner.KeyIDFor(alg)
}

// cachedFixture is a fixture whose Exchanger has a cache.
func cachedFixture(t *testing.T) (*fixture, *switchableKeys) {
	t.Helper()
	keys := &switchableKeys{}
	f := newFixtureWith(t, func(o *Options) {
		o.Cache = NewCache(CacheOptions{Now: o.Now})
		o.ActiveKeys = keys
	})
	keys.inner = f.ring
	return f, keys
}

func TestExchangeCachedServesOneToken(t *testing.T) {
	f, _ := cachedFixture(t)
	ctx := context.Background()
	req := f.request(f.validToken(t))
	r1, err := f.ex.ExchangeCached(ctx, req)
	require.NoError(t, err)
	require.False(t, r1.Cached)
	f.clock.Advance(time.Minute)
	r2, err := f.ex.ExchangeCached(ctx, req)
	require.NoError(t, err)
	require.True(t, r2.Cached)
	require.Equal(t, r1.AccessToken, r2.AccessToken)
	require.Equal(t, r1.JTI, r2.JTI)
	require.Equal(t, r1.ExpiresIn-60, r2.ExpiresIn)

	t.Run("the token endpoint mints anew unless the policy says cache_tokens", func(t *testing.T) {
		r, err := f.ex.Exchange(ctx, req)
		require.NoError(t, err)
		require.NotEqual(t, r1.JTI, r.JTI)
		f.state.Policies[0].CacheTokens = true
		f.state.Policies[0].Version++
		f.ex.Load(f.state)
		a, err := f.ex.Exchange(ctx, req)
		require.NoError(t, err)
		b, err := f.ex.Exchange(ctx, req)
		require.NoError(t, err)
		require.Equal(t, a.JTI, b.JTI)
		require.True(t, b.Cached)
	})
	t.Run("scope order is a different exchange", func(t *testing.T) {
		two := f.request(f.validToken(t))
		two.Scopes = []string{"orders:read", "orders:write"}
		r, err := f.ex.ExchangeCached(ctx, two)
		require.NoError(t, err)
		require.False(t, r.ScopeChanged)
		two.Scopes = []string{"orders:write", "orders:read"}
		r, err = f.ex.ExchangeCached(ctx, two)
		require.NoError(t, err)
		require.False(t, r.Cached, "CEL sees request.scopes in order: not served from another order's entry")
		require.False(t, r.ScopeChanged)
	})
}

// TestExchangeCachedInvalidation: what a hit skips (authorization, subject
// verification, the signing key) is checked against the current snapshot.
func TestExchangeCachedInvalidation(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		change func(f *fixture, keys *switchableKeys)
		code   Code // "" when the exchange succeeds with a new token
	}{
		{"a new policy version", func(f *fixture, _ *switchableKeys) {
			f.state.Policies[0].Version++
			f.ex.Load(f.state)
		}, ""},
		{"the signing key changed", func(_ *fixture, k *switchableKeys) {
			kid := "another-key"
			k.kid.Store(&kid)
		}, ""},
		{"the issuer changed", func(f *fixture, _ *switchableKeys) {
			f.state.Issuers[0].Audiences = append(f.state.Issuers[0].Audiences, "more")
			f.ex.Load(f.state)
		}, ""},
		{"the issuer is no longer trusted", func(f *fixture, _ *switchableKeys) {
			f.state.Issuers = nil
			f.ex.Load(f.state)
		}, InvalidRequest},
		{"the client is removed", func(f *fixture, _ *switchableKeys) {
			f.state.Clients = f.state.Clients[1:]
			f.ex.Load(f.state)
		}, InvalidClient},
		{"the policy no longer allows the client", func(f *fixture, _ *switchableKeys) {
			f.state.Policies[0].AllowedClients = []string{"backoffice"}
			f.state.Policies[0].Version++
			f.ex.Load(f.state)
		}, UnauthorizedClient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, keys := cachedFixture(t)
			tok := f.validToken(t)
			first, err := f.ex.ExchangeCached(ctx, f.request(tok))
			require.NoError(t, err)
			tc.change(f, keys)
			r, err := f.ex.ExchangeCached(ctx, f.request(tok))
			if tc.code != "" {
				requireCode(t, err, tc.code, tok)
				return
			}
			require.NoError(t, err)
			require.False(t, r.Cached)
			require.NotEqual(t, first.JTI, r.JTI)
		})
	}
}

// TestExchangeCachedRefusesWhatWouldBeRefused: a request that differs from
// a cached one in anything the exchange checks is a miss.
func TestExchangeCachedRefusesWhatWouldBeRefused(t *testing.T) {
	f, _ := cachedFixture(t)
	ctx := context.Background()
	tok := f.validToken(t)
	_, err := f.ex.ExchangeCached(ctx, f.request(tok))
	require.NoError(t, err)

	idToken := f.request(tok)
	idToken.SubjectTokenType = TokenTypeIDToken // the issuer accepts access tokens and JWTs only
	_, err = f.ex.ExchangeCached(ctx, idToken)
	requireCode(t, err, InvalidRequest, tok)

	other := f.request(tok)
	other.ClientID = "backoffice"
	_, err = f.ex.ExchangeCached(ctx, other)
	requireCode(t, err, UnauthorizedClient, tok)

	expired := f.request(tok)
	f.clock.Advance(2 * time.Hour)
	_, err = f.ex.ExchangeCached(ctx, expired)
	requireCode(t, err, InvalidRequest, tok)
}

func TestExchangeCachedConcurrent(t *testing.T) {
	f, _ := cachedFixture(t)
	req := f.request(f.validToken(t))
	var wg sync.WaitGroup
	jtis := make([]string, 32)
	for i := range jtis {
		wg.Go(func() {
			r, err := f.ex.ExchangeCached(context.Background(), req)
			if err == nil {
				jtis[i] = r.JTI
			}
		})
	}
	wg.Wait()
	for _, j := range jtis {
		require.Equal(t, jtis[0], j)
		require.NotEmpty(t, j)
	}
	require.EqualValues(t, 1, f.ex.opts.Cache.Stats().Misses)
}

func TestExchangeWithoutCache(t *testing.T) {
	f := newFixture(t)
	req := f.request(f.validToken(t))
	a, err := f.ex.ExchangeCached(context.Background(), req)
	require.NoError(t, err)
	b, err := f.ex.ExchangeCached(context.Background(), req)
	require.NoError(t, err)
	require.NotEqual(t, a.JTI, b.JTI, "no cache configured: every exchange mints")
}
