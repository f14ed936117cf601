package sts

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/claimbridge/claimbridge/policy"
)

// Cache defaults.
const (
	// DefaultCacheEntries bounds a cache whose options set no limit. An
	// entry holds one minted token and its description: about 1-2 KiB.
	DefaultCacheEntries = 20_000
	// DefaultRefreshMargin is the least time before a cached token's
	// expiry at which it is no longer served, so that a caller never
	// receives a token about to expire; the margin is at least a tenth of
	// the token's lifetime.
	DefaultRefreshMargin = 30 * time.Second
)

// cacheShards spreads the entries over independently locked shards.
const cacheShards = 64

// CacheOptions configure a Cache. Zero fields take their defaults.
type CacheOptions struct {
	// MaxEntries bounds the number of cached tokens; the least recently
	// used ones (CLOCK) make room for new ones.
	MaxEntries int
	// RefreshMargin: a token is served from the cache until its expiry
	// minus max(RefreshMargin, a tenth of its lifetime).
	RefreshMargin time.Duration
	Now           func() time.Time
}

// Cache holds the results of exchanges, keyed by a hash of what was asked
// (never by the subject token itself), so that repeated exchanges of one
// token for one audience mint once. An entry never outlives the minted
// token (nor so the subject token, which caps it), memory is bounded, and
// concurrent misses for one key mint once. It is safe for concurrent use.
type Cache struct {
	shards [cacheShards]cacheShard
	margin time.Duration
	now    func() time.Time
}

// cacheShard is one lock's worth of entries, evicted with CLOCK: a hit
// only sets the entry's reference bit under the read lock.
type cacheShard struct {
	mu      sync.RWMutex
	entries map[CacheKey]*cacheEntry
	ring    []*cacheEntry // CLOCK order; an entry knows its slot
	hand    int
	limit   int
	calls   map[CacheKey]*cacheCall // misses being minted
	// counters, read by Stats
	hits, misses, evictions atomic.Uint64
	_                       [64]byte // keep shards off each other's cache lines
}

// cacheEntry is immutable once stored, but for its reference bit.
type cacheEntry struct {
	key     CacheKey
	resp    Response
	expires time.Time // the minted token's exp
	stale   time.Time // served before this time only
	stamp   Stamp
	slot    int
	ref     atomic.Bool
}

// cacheCall is one miss being minted; waiters for the same key share it.
type cacheCall struct {
	done  chan struct{}
	resp  *Response
	stamp Stamp
	err   error
}

// errMintPanicked is what waiters get when the mint they waited for
// panicked (the panic goes on in the minting caller).
var errMintPanicked = errors.New("the exchange being waited for failed")

// Stamp records what a cached token was minted under: the policy, the
// trusted issuer and the signing key. A lookup serves an entry only while
// the caller says its stamp is still current, so that a policy, issuer or
// key change invalidates the affected entries without a scan. Callers that
// cannot tell (a remote client) use the zero Stamp.
type Stamp struct {
	pol    *policy.Compiled
	issuer *Issuer
	kid    string
}

// CacheKey identifies one exchange: a SHA-256 over the client, the subject
// token and its type, the targets, the scopes and the requested token type.
type CacheKey [sha256.Size]byte

// NewCache returns an empty cache.
func NewCache(opts CacheOptions) *Cache {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultCacheEntries
	}
	if opts.RefreshMargin <= 0 {
		opts.RefreshMargin = DefaultRefreshMargin
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Cache{margin: opts.RefreshMargin, now: opts.Now}
	per := max(1, (opts.MaxEntries+cacheShards-1)/cacheShards)
	for i := range c.shards {
		c.shards[i].entries = make(map[CacheKey]*cacheEntry)
		c.shards[i].calls = make(map[CacheKey]*cacheCall)
		c.shards[i].limit = per
	}
	return c
}

// KeyFor returns the cache key of req. Targets and scopes count in request
// order (see list); requestedTokenType is
// the value as sent (before Validate defaults it), since a policy that
// fixes the token type treats "" and an explicit type differently.
func KeyFor(req *Request, requestedTokenType string) CacheKey {
	// One buffer hashed once: no hasher, closure or string copies per field.
	n := 8 * (6 + len(req.Audiences) + len(req.Resources) + len(req.Scopes))
	for _, f := range [][]string{{req.ClientID, req.SubjectToken, req.SubjectTokenType, requestedTokenType}, req.Audiences, req.Resources, req.Scopes} {
		for _, s := range f {
			n += len(s)
		}
	}
	b := make([]byte, 0, n)
	b = appendField(b, req.ClientID)
	b = appendField(b, req.SubjectToken)
	b = appendField(b, req.SubjectTokenType)
	b = appendField(b, requestedTokenType)
	b = binary.BigEndian.AppendUint64(b, uint64(len(req.Audiences)+len(req.Resources)))
	for _, l := range [2][]string{req.Audiences, req.Resources} {
		for _, t := range l {
			b = appendField(b, t)
		}
	}
	b = binary.BigEndian.AppendUint64(b, uint64(len(req.Scopes)))
	for _, sc := range req.Scopes {
		b = appendField(b, sc)
	}
	return sha256.Sum256(b)
}

// appendField appends s preceded by its length, so that fields never run
// together. Lists count in request order: a policy's CEL expressions see
// request.audiences and request.scopes in that order, so two orders are
// two exchanges.
func appendField(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint64(b, uint64(len(s))), s...)
}

// Mint produces a response and the stamp it was minted under.
type Mint func() (*Response, Stamp, error)

// Do returns the cached response for key when one is fresh and current
// (valid is nil or reports its stamp current), and otherwise calls mint —
// once for all concurrent callers of one key — and caches its result.
// Errors are not cached. The response is the caller's own copy; its
// ExpiresIn counts from now and Cached says whether it came from the cache.
func (c *Cache) Do(ctx context.Context, key CacheKey, valid func(Stamp) bool, mint Mint) (*Response, error) {
	s := &c.shards[key[0]%cacheShards]
	now := c.now()
	s.mu.RLock()
	e := s.entries[key]
	s.mu.RUnlock()
	if e != nil && e.usable(now, valid) {
		s.hits.Add(1)
		if !e.ref.Load() {
			e.ref.Store(true)
		}
		return e.response(now, true), nil
	}
	return c.miss(ctx, s, key, valid, mint)
}

// miss mints under the shard's in-flight table: the first caller of a key
// mints, the others wait for its result — and use it only if it is still
// current for them (valid), else they mint their own.
func (c *Cache) miss(ctx context.Context, s *cacheShard, key CacheKey, valid func(Stamp) bool, mint Mint) (*Response, error) {
	s.mu.Lock()
	if e := s.entries[key]; e != nil && e.usable(c.now(), valid) { // minted meanwhile
		s.mu.Unlock()
		s.hits.Add(1)
		return e.response(c.now(), true), nil
	}
	if call := s.calls[key]; call != nil {
		s.mu.Unlock()
		s.hits.Add(1) // joined another caller's mint
		select {
		case <-call.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if call.err != nil {
			return nil, call.err
		}
		if valid == nil || valid(call.stamp) {
			r := *call.resp
			r.Cached = true // the token another caller is being given
			return &r, nil
		}
		// Minted under a policy, issuer or key that changed since: our own.
		s.misses.Add(1)
		resp, _, err := c.mintAndPut(s, key, mint)
		return resp, err
	}
	call := &cacheCall{done: make(chan struct{})}
	s.calls[key] = call
	s.mu.Unlock()
	s.misses.Add(1)
	defer func() { // also when mint panics: waiters must never hang
		s.mu.Lock()
		delete(s.calls, key)
		s.mu.Unlock()
		if call.resp == nil && call.err == nil {
			call.err = errMintPanicked
		}
		close(call.done)
	}()
	resp, stamp, err := c.mintAndPut(s, key, mint)
	call.resp, call.stamp, call.err = resp, stamp, err // waiters copy call.resp
	if err != nil {
		return nil, err
	}
	r := *resp
	return &r, nil
}

// mintAndPut mints and caches the result; the response is the caller's
// copy.
func (c *Cache) mintAndPut(s *cacheShard, key CacheKey, mint Mint) (*Response, Stamp, error) {
	start := c.now()
	resp, stamp, err := mint()
	if err != nil {
		return nil, Stamp{}, err
	}
	s.mu.Lock()
	c.put(s, key, start, resp, stamp)
	s.mu.Unlock()
	r := *resp
	return &r, stamp, nil
}

// put stores resp, minted at or after start, unless it would be stale at
// once. The caller holds s.mu.
func (c *Cache) put(s *cacheShard, key CacheKey, start time.Time, resp *Response, stamp Stamp) {
	lifetime := time.Duration(resp.ExpiresIn) * time.Second
	// The token's exp is at least start (in whole seconds) plus expires_in:
	// counting from start never overestimates it.
	expires := start.Truncate(time.Second).Add(lifetime)
	stale := expires.Add(-max(c.margin, lifetime/10))
	if !stale.After(c.now()) {
		return
	}
	e := &cacheEntry{key: key, resp: *resp, expires: expires, stale: stale, stamp: stamp}
	if old := s.entries[key]; old != nil {
		e.slot = old.slot
	} else {
		e.slot = s.slotFor(c.now())
	}
	s.ring[e.slot] = e
	s.entries[key] = e
}

// slotFor returns a free slot of the CLOCK ring, evicting an entry when
// the shard is full: the first stale one the hand meets, else the first
// one not referenced since the hand last passed. The caller holds s.mu.
func (s *cacheShard) slotFor(now time.Time) int {
	if len(s.ring) < s.limit {
		s.ring = append(s.ring, nil)
		return len(s.ring) - 1
	}
	for {
		e := s.ring[s.hand]
		slot := s.hand
		s.hand = (s.hand + 1) % len(s.ring)
		if !now.Before(e.stale) || !e.ref.Swap(false) {
			delete(s.entries, e.key)
			s.evictions.Add(1)
			return slot
		}
	}
}

// usable reports whether the entry may be served at now.
func (e *cacheEntry) usable(now time.Time, valid func(Stamp) bool) bool {
	return now.Before(e.stale) && (valid == nil || valid(e.stamp))
}

// response is a copy of the cached response with expires_in from now.
func (e *cacheEntry) response(now time.Time, cached bool) *Response {
	r := e.resp
	r.ExpiresIn = int64(e.expires.Sub(now) / time.Second)
	r.Cached = cached
	return &r
}

// CacheStats are a cache's counters since it was created.
type CacheStats struct {
	// Hits counts lookups served from the cache or by waiting for a
	// concurrent mint of the same key; Misses counts mints.
	Hits, Misses, Evictions uint64
	// Entries is the number of cached tokens now.
	Entries int
}

// Stats sums the shards' counters.
func (c *Cache) Stats() CacheStats {
	var st CacheStats
	for i := range c.shards {
		s := &c.shards[i]
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
		st.Evictions += s.evictions.Load()
		s.mu.RLock()
		st.Entries += len(s.entries)
		s.mu.RUnlock()
	}
	return st
}
