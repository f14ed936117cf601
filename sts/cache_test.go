package sts

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeMint returns a Mint that counts its calls and answers a response
// with the given lifetime and a token naming the call.
func fakeMint(calls *atomic.Int64, lifetime time.Duration) Mint {
	return func() (*Response, Stamp, error) {
		n := calls.Add(1)
		return &Response{AccessToken: fmt.Sprintf("token-%d", n), ExpiresIn: int64(lifetime / time.Second), JTI: fmt.Sprint(n)}, Stamp{}, nil
	}
}

func key(s string) CacheKey { return KeyFor(&Request{ClientID: "c", SubjectToken: s}, "") }

func TestCacheKey(t *testing.T) {
	base := Request{ClientID: "gw", SubjectToken: "tok", SubjectTokenType: TokenTypeAccessToken,
		Audiences: []string{"a", "b"}, Scopes: []string{"x", "y"}}
	k := KeyFor(&base, "")
	same := []struct {
		name   string
		change func(r *Request)
	}{
		{"a target as resource", func(r *Request) { r.Audiences, r.Resources = []string{"a"}, []string{"b"} }},
	}
	for _, tc := range same {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			tc.change(&r)
			require.Equal(t, k, KeyFor(&r, ""))
		})
	}
	differ := []struct {
		name   string
		change func(r *Request)
		asked  string
	}{
		{"another client", func(r *Request) { r.ClientID = "other" }, ""},
		{"another subject token", func(r *Request) { r.SubjectToken = "tok2" }, ""},
		{"another subject token type", func(r *Request) { r.SubjectTokenType = TokenTypeIDToken }, ""},
		{"another target", func(r *Request) { r.Audiences = []string{"a"} }, ""},
		// CEL sees request.audiences and request.scopes in request order.
		{"targets in another order", func(r *Request) { r.Audiences = []string{"b", "a"} }, ""},
		{"scopes in another order", func(r *Request) { r.Scopes = []string{"y", "x"} }, ""},
		{"fewer scopes", func(r *Request) { r.Scopes = []string{"x"} }, ""},
		{"a requested token type", func(*Request) {}, TokenTypeAccessToken},
		{"fields do not run together", func(r *Request) { r.ClientID, r.SubjectToken = "gwt", "ok" }, ""},
	}
	for _, tc := range differ {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			tc.change(&r)
			require.NotEqual(t, k, KeyFor(&r, tc.asked))
		})
	}
}

func TestCacheHitsUntilTheRefreshMargin(t *testing.T) {
	clk := newClock(testNow)
	c := NewCache(CacheOptions{RefreshMargin: 30 * time.Second, Now: clk.Now})
	var calls atomic.Int64
	mint := fakeMint(&calls, 10*time.Minute) // margin: max(30s, 60s) = 60s
	ctx := context.Background()

	r1, err := c.Do(ctx, key("a"), nil, mint)
	require.NoError(t, err)
	require.False(t, r1.Cached)
	require.EqualValues(t, 600, r1.ExpiresIn)

	clk.Advance(100 * time.Second)
	r2, err := c.Do(ctx, key("a"), nil, mint)
	require.NoError(t, err)
	require.True(t, r2.Cached)
	require.Equal(t, r1.AccessToken, r2.AccessToken)
	require.EqualValues(t, 500, r2.ExpiresIn, "expires_in counts from now")
	require.EqualValues(t, 1, calls.Load())

	clk.Advance(440 * time.Second) // 540s: exp - 60s
	r3, err := c.Do(ctx, key("a"), nil, mint)
	require.NoError(t, err)
	require.False(t, r3.Cached, "a token within the margin of its expiry is minted again")
	require.NotEqual(t, r1.AccessToken, r3.AccessToken)

	st := c.Stats()
	require.Equal(t, CacheStats{Hits: 1, Misses: 2, Entries: 1}, st)
}

func TestCacheShortLivedTokensAreNotCached(t *testing.T) {
	c := NewCache(CacheOptions{RefreshMargin: 30 * time.Second})
	var calls atomic.Int64
	for range 3 {
		_, err := c.Do(context.Background(), key("a"), nil, fakeMint(&calls, 30*time.Second))
		require.NoError(t, err)
	}
	require.EqualValues(t, 3, calls.Load())
	require.Zero(t, c.Stats().Entries)
}

func TestCacheStampMustBeCurrent(t *testing.T) {
	c := NewCache(CacheOptions{})
	var calls atomic.Int64
	current := true
	valid := func(Stamp) bool { return current }
	_, err := c.Do(context.Background(), key("a"), valid, fakeMint(&calls, time.Hour))
	require.NoError(t, err)
	_, err = c.Do(context.Background(), key("a"), valid, fakeMint(&calls, time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 1, calls.Load())
	current = false
	r, err := c.Do(context.Background(), key("a"), valid, fakeMint(&calls, time.Hour))
	require.NoError(t, err)
	require.False(t, r.Cached)
	require.EqualValues(t, 2, calls.Load())
	require.Equal(t, 1, c.Stats().Entries, "the stale entry was replaced in place")
}

func TestCacheErrorsAreNotCached(t *testing.T) {
	c := NewCache(CacheOptions{})
	var calls atomic.Int64
	fail := func() (*Response, Stamp, error) {
		calls.Add(1)
		return nil, Stamp{}, errorf(InvalidRequest, "no", nil)
	}
	for range 2 {
		_, err := c.Do(context.Background(), key("a"), nil, fail)
		requireCode(t, err, InvalidRequest, "")
	}
	require.EqualValues(t, 2, calls.Load())
}

// TestCacheConcurrentMissesMintOnce: callers of one key that miss together
// wait for one mint and get its token.
func TestCacheConcurrentMissesMintOnce(t *testing.T) {
	c := NewCache(CacheOptions{})
	var calls atomic.Int64
	release := make(chan struct{})
	slow := func() (*Response, Stamp, error) {
		<-release
		return fakeMint(&calls, time.Hour)()
	}
	const n = 16
	tokens := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := c.Do(context.Background(), key("a"), nil, slow)
			if err == nil {
				tokens[i] = r.AccessToken
			}
		})
	}
	require.Eventually(t, func() bool {
		s := &c.shards[key("a")[0]%cacheShards]
		return s.hits.Load() == n-1
	}, 5*time.Second, time.Millisecond, "all but one wait for the mint")
	close(release)
	wg.Wait()
	require.EqualValues(t, 1, calls.Load())
	for _, tok := range tokens {
		require.Equal(t, "token-1", tok)
	}
}

// TestCacheWaiterGivesUp: a waiter whose context ends stops waiting; the
// mint goes on for the others.
func TestCacheWaiterGivesUp(t *testing.T) {
	c := NewCache(CacheOptions{})
	release := make(chan struct{})
	var calls atomic.Int64
	go func() {
		_, _ = c.Do(context.Background(), key("a"), nil, func() (*Response, Stamp, error) {
			<-release
			return fakeMint(&calls, time.Hour)()
		})
	}()
	require.Eventually(t, func() bool { return c.shards[key("a")[0]%cacheShards].misses.Load() == 1 }, 5*time.Second, time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Do(ctx, key("a"), nil, fakeMint(&calls, time.Hour))
	require.ErrorIs(t, err, context.Canceled)
	close(release)
	require.Eventually(t, func() bool { return c.Stats().Entries == 1 }, 5*time.Second, time.Millisecond)
}

// TestCacheIsBounded: past MaxEntries the CLOCK hand evicts entries not
// used since it last passed, and stale ones first.
func TestCacheIsBounded(t *testing.T) {
	c := NewCache(CacheOptions{MaxEntries: cacheShards * 4})
	var calls atomic.Int64
	for i := range 5000 {
		_, err := c.Do(context.Background(), key(fmt.Sprint(i)), nil, fakeMint(&calls, time.Hour))
		require.NoError(t, err)
	}
	st := c.Stats()
	require.LessOrEqual(t, st.Entries, cacheShards*4)
	require.EqualValues(t, 5000-st.Entries, st.Evictions)
	for i := range c.shards {
		s := &c.shards[i]
		require.Len(t, s.ring, len(s.entries), "every entry has one slot")
		for slot, e := range s.ring {
			require.Equal(t, slot, e.slot)
			require.Same(t, e, s.entries[e.key])
		}
	}
}

func TestCacheKeepsReferencedEntries(t *testing.T) {
	c := NewCache(CacheOptions{MaxEntries: cacheShards * 2})
	var calls atomic.Int64
	hot := key("hot")
	s := &c.shards[hot[0]%cacheShards]
	ctx := context.Background()
	_, err := c.Do(ctx, hot, nil, fakeMint(&calls, time.Hour))
	require.NoError(t, err)
	for i := 0; s.evictions.Load() < 10; i++ {
		k := key(fmt.Sprint(i))
		if k[0]%cacheShards != hot[0]%cacheShards {
			continue
		}
		_, err := c.Do(ctx, k, nil, fakeMint(&calls, time.Hour))
		require.NoError(t, err)
		r, err := c.Do(ctx, hot, nil, fakeMint(&calls, time.Hour))
		require.NoError(t, err)
		require.True(t, r.Cached, "an entry used between two passes of the hand stays")
	}
}

func TestCacheErrorKinds(t *testing.T) {
	c := NewCache(CacheOptions{})
	sentinel := errors.New("boom")
	_, err := c.Do(context.Background(), key("a"), nil, func() (*Response, Stamp, error) { return nil, Stamp{}, sentinel })
	require.ErrorIs(t, err, sentinel)
}

// TestCacheWaiterChecksTheStamp: a caller that waited for another caller's
// mint uses its result only if it is still current for it.
func TestCacheWaiterChecksTheStamp(t *testing.T) {
	c := NewCache(CacheOptions{MaxEntries: 16})
	var key CacheKey
	started, release := make(chan struct{}), make(chan struct{})
	oldStamp, newStamp := Stamp{kid: "old"}, Stamp{kid: "new"}
	go func() {
		_, _ = c.Do(context.Background(), key, nil, func() (*Response, Stamp, error) {
			close(started)
			<-release
			return &Response{AccessToken: "minted-under-old", ExpiresIn: 300}, oldStamp, nil
		})
	}()
	<-started
	done := make(chan *Response)
	go func() {
		r, err := c.Do(context.Background(), key, func(s Stamp) bool { return s == newStamp }, func() (*Response, Stamp, error) {
			return &Response{AccessToken: "minted-under-new", ExpiresIn: 300}, newStamp, nil
		})
		require.NoError(t, err)
		done <- r
	}()
	time.Sleep(20 * time.Millisecond) // let the second caller wait on the first
	close(release)
	require.Equal(t, "minted-under-new", (<-done).AccessToken)
}

// TestCacheMintPanicReleasesWaiters: a mint that panics never leaves the
// key blocked.
func TestCacheMintPanicReleasesWaiters(t *testing.T) {
	c := NewCache(CacheOptions{MaxEntries: 16})
	var key CacheKey
	func() {
		defer func() { require.NotNil(t, recover()) }()
		_, _ = c.Do(context.Background(), key, nil, func() (*Response, Stamp, error) { panic("boom") })
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Do(ctx, key, nil, func() (*Response, Stamp, error) {
		return &Response{AccessToken: "ok", ExpiresIn: 300}, Stamp{}, nil
	})
	require.NoError(t, err)
	require.Equal(t, "ok", r.AccessToken)
}
