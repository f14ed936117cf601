package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// maxDocumentBytes bounds the discovery document and the JWKS.
const maxDocumentBytes = 1 << 20

// fetchTimeout bounds one fetch. Fetches do not stop when the request that
// caused them is cancelled: every other request waits for the same fetch.
const fetchTimeout = 10 * time.Second

// errRateLimited: a fetch was due, but the last one was less than the
// refresh interval ago.
var errRateLimited = errors.New("the keys were fetched moments ago")

// keySet caches the issuer's JWKS. It refetches the set when its
// Cache-Control max-age (bounded by MinCacheAge and MaxCacheAge) has passed
// or a token names an unknown key, but never twice within interval: a flood
// of made-up key IDs costs the issuer at most one request per interval.
// When a fetch fails, the keys fetched before stay in use.
type keySet struct {
	url      string
	client   *http.Client
	now      func() time.Time
	interval time.Duration

	cur       atomic.Pointer[keyCache]
	mu        sync.Mutex // serializes fetches
	lastFetch time.Time  // guarded by mu
}

type keyCache struct {
	keys    []jose.JSONWebKey
	expires time.Time
}

// verify checks jws's signature with the issuer's keys and returns its payload.
func (s *keySet) verify(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	cur := s.cur.Load()
	if !s.now().Before(cur.expires) && s.mu.TryLock() {
		// One caller refreshes expired keys; the others go on with them
		// meanwhile instead of queueing behind the fetch.
		if fresh, err := s.refreshLocked(ctx, cur); err == nil {
			cur = fresh // on failure the stale keys go on serving
		}
		s.mu.Unlock()
	}
	hdr := jws.Signatures[0].Header
	payload, found := cur.verify(jws, hdr)
	if payload != nil {
		return payload, nil
	}
	if found && hdr.KeyID != "" {
		return nil, ErrBadSignature // a known key: refetching would not help
	}
	fresh, err := s.refresh(ctx, cur)
	if err != nil {
		if found {
			return nil, ErrBadSignature
		}
		return nil, fmt.Errorf("%w (%.40q; not refetched: %v)", ErrUnknownKey, hdr.KeyID, err)
	}
	if payload, found = fresh.verify(jws, hdr); payload != nil {
		return payload, nil
	}
	if found {
		return nil, ErrBadSignature
	}
	return nil, fmt.Errorf("%w (%.40q)", ErrUnknownKey, hdr.KeyID)
}

// verify tries the keys whose kid (when the token names one) and alg (when
// the key names one) match the header; found reports whether there was any.
func (c *keyCache) verify(jws *jose.JSONWebSignature, hdr jose.Header) (payload []byte, found bool) {
	for i := range c.keys {
		key := &c.keys[i]
		if (hdr.KeyID != "" && key.KeyID != hdr.KeyID) || (key.Algorithm != "" && key.Algorithm != hdr.Algorithm) {
			continue
		}
		found = true
		if p, err := jws.Verify(key); err == nil {
			return p, true
		}
	}
	return nil, found
}

// refresh fetches the JWKS unless another caller did since seen was loaded
// (then it returns that caller's keys) or the last fetch was less than
// interval ago (errRateLimited). seen is nil for the first fetch.
func (s *keySet) refresh(ctx context.Context, seen *keyCache) (*keyCache, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshLocked(ctx, seen)
}

// refreshLocked is refresh with s.mu held.
func (s *keySet) refreshLocked(ctx context.Context, seen *keyCache) (*keyCache, error) {
	if cur := s.cur.Load(); cur != seen {
		return cur, nil
	}
	now := s.now()
	if seen != nil && now.Sub(s.lastFetch) < s.interval {
		return nil, errRateLimited
	}
	s.lastFetch = now
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	header, err := getJSON(ctx, s.client, s.url, &doc)
	if err != nil {
		return nil, fmt.Errorf("%w: fetching the JWKS: %w", ErrKeysUnavailable, err)
	}
	fresh := &keyCache{expires: now.Add(cacheAge(header))}
	for _, raw := range doc.Keys {
		var key jose.JSONWebKey
		// A key this package cannot use is skipped, not fatal: only public
		// signing keys, never a shared secret.
		if key.UnmarshalJSON(raw) == nil && key.IsPublic() && key.Valid() && (key.Use == "" || key.Use == "sig") {
			fresh.keys = append(fresh.keys, key)
		}
	}
	s.cur.Store(fresh)
	return fresh, nil
}

// cacheAge is the response's Cache-Control max-age, within MinCacheAge and
// MaxCacheAge; no-cache, no-store or no max-age at all mean MinCacheAge.
func cacheAge(h http.Header) time.Duration {
	age := time.Duration(0)
	for d := range strings.SplitSeq(strings.Join(h.Values("Cache-Control"), ","), ",") {
		name, value, _ := strings.Cut(strings.ToLower(strings.TrimSpace(d)), "=")
		switch name {
		case "no-cache", "no-store":
			return MinCacheAge
		case "max-age":
			n, err := strconv.ParseUint(strings.Trim(value, `"`), 10, 64)
			if errors.Is(err, strconv.ErrRange) || n > uint64(MaxCacheAge/time.Second) {
				n = uint64(MaxCacheAge / time.Second)
			}
			age = time.Duration(n) * time.Second
		}
	}
	return min(max(age, MinCacheAge), MaxCacheAge)
}

// discover reads the JWKS URL from the issuer's OpenID configuration, whose
// issuer must be exactly ours (OpenID Connect Discovery §4.3).
func discover(ctx context.Context, client *http.Client, issuer string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if _, err := getJSON(ctx, client, strings.TrimSuffix(issuer, "/")+"/.well-known/openid-configuration", &doc); err != nil {
		return "", fmt.Errorf("%w: discovering the issuer: %w", ErrKeysUnavailable, err)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("verify: the discovery document names issuer %q, not %q", doc.Issuer, issuer)
	}
	if doc.JWKSURI == "" {
		return "", errors.New("verify: the discovery document has no jwks_uri")
	}
	return doc.JWKSURI, nil
}

// getJSON GETs url into v and returns the response's header.
func getJSON(ctx context.Context, client *http.Client, url string, v any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxDocumentBytes {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", url, maxDocumentBytes)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return resp.Header, nil
}
