package sts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
)

// maxJWKSBytes bounds an IdP's JWKS or discovery document.
const maxJWKSBytes = 1 << 20

// Key set errors, told apart with errors.Is.
var (
	// errUnknownKey: no key of the issuer matches the token's kid, even
	// after a refresh.
	errUnknownKey = errors.New("no key of the issuer matches the token's key ID")
	// errBadSignature: a key with the token's kid exists but the signature
	// does not verify with it.
	errBadSignature = errors.New("the signature does not verify with the issuer's key")
	// errKeysUnavailable: the issuer's keys could not be fetched.
	errKeysUnavailable = errors.New("the issuer's keys are unavailable")
)

// keySet holds one trusted issuer's keys. It caches the issuer's JWKS,
// refetches it when a token names an unknown kid — at most once per
// minRefresh, so that a stream of forged kids cannot make us hammer the IdP —
// and refreshes a stale cache in the background, no more often either. Keys
// come only from the configured jwks_uri or the issuer's discovery document
// (read through go-oidc): a token's kid, jku or x5u never chooses where keys
// come from.
type keySet struct {
	issuerURL  string
	jwksURI    string // fixed by configuration, or "" for discovery
	client     *http.Client
	minRefresh time.Duration
	maxAge     time.Duration
	now        func() time.Time

	keys       atomic.Pointer[fetchedKeys]
	refreshing atomic.Bool
	mu         sync.Mutex // serializes fetches
	lastTry    time.Time  // guarded by mu
	discovered string     // discovered jwks_uri; guarded by mu
}

type fetchedKeys struct {
	keys []jose.JSONWebKey
	at   time.Time
}

// fetchTimeout bounds one discovery or JWKS fetch. Fetches never use the
// exchange's context: a client that goes away must not abort a fetch that
// every other exchange of that issuer waits for.
const fetchTimeout = 10 * time.Second

// verify checks jws's single signature with the issuer's keys.
func (k *keySet) verify(ctx context.Context, jws *jose.JSONWebSignature) error {
	hdr := jws.Signatures[0].Header
	cur := k.keys.Load()
	if cur != nil && k.now().Sub(cur.at) > k.maxAge && k.refreshing.CompareAndSwap(false, true) {
		go k.refreshInBackground()
	}
	ok, found := verifyWith(jws, hdr, cur)
	switch {
	case ok:
		return nil
	case found && hdr.KeyID != "":
		return errBadSignature // a known key: refetching would not help
	}
	if err := k.refresh(ctx, cur); err != nil {
		return err
	}
	if ok, found = verifyWith(jws, hdr, k.keys.Load()); ok {
		return nil
	}
	if found {
		return errBadSignature
	}
	return errUnknownKey
}

// verifyWith tries the keys whose kid (when the token names one) and
// algorithm match the token's header; found reports whether there was any.
func verifyWith(jws *jose.JSONWebSignature, hdr jose.Header, fk *fetchedKeys) (ok, found bool) {
	if fk == nil {
		return false, false
	}
	for i := range fk.keys {
		key := &fk.keys[i]
		if (hdr.KeyID != "" && key.KeyID != hdr.KeyID) || (key.Algorithm != "" && key.Algorithm != hdr.Algorithm) {
			continue
		}
		found = true
		if _, err := jws.Verify(key); err == nil {
			return true, true
		}
	}
	return false, found
}

// refresh refetches the JWKS unless another caller did since seen was loaded
// or the last attempt was less than minRefresh ago.
func (k *keySet) refresh(ctx context.Context, seen *fetchedKeys) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if cur := k.keys.Load(); cur != seen {
		return nil // someone else refreshed while we waited
	}
	if !k.lastTry.IsZero() && k.now().Sub(k.lastTry) < k.minRefresh {
		if seen == nil {
			return fmt.Errorf("%w: the last fetch failed; retrying later", errKeysUnavailable)
		}
		return errUnknownKey
	}
	k.lastTry = k.now()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	if err := k.fetch(fctx); err != nil {
		if seen == nil {
			return fmt.Errorf("%w: %w", errKeysUnavailable, err)
		}
		return fmt.Errorf("%w (refreshing the keys also failed: %w)", errUnknownKey, err)
	}
	return nil
}

// refreshInBackground refetches a stale cache, at most once per
// minRefresh: a failing IdP is not hammered, and the cached keys stay in use.
func (k *keySet) refreshInBackground() {
	defer k.refreshing.Store(false)
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.lastTry.IsZero() && k.now().Sub(k.lastTry) < k.minRefresh {
		return
	}
	k.lastTry = k.now()
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	_ = k.fetch(ctx)
}

// fetch loads the JWKS (discovering its URL first if needed). Called with mu held.
func (k *keySet) fetch(ctx context.Context) error {
	uri := k.jwksURI
	if uri == "" {
		if k.discovered == "" {
			d, err := k.discover(ctx)
			if err != nil {
				return err
			}
			k.discovered = d
		}
		uri = k.discovered
	}
	var set jose.JSONWebKeySet
	if err := k.getJSON(ctx, uri, &set); err != nil {
		return fmt.Errorf("fetching the issuer's JWKS: %w", err)
	}
	usable := make([]jose.JSONWebKey, 0, len(set.Keys))
	for _, key := range set.Keys {
		// Only asymmetric public signing keys: never a shared secret.
		if key.IsPublic() && key.Valid() && (key.Use == "" || key.Use == "sig") {
			usable = append(usable, key)
		}
	}
	k.keys.Store(&fetchedKeys{keys: usable, at: k.now()})
	return nil
}

// discover reads the issuer's OpenID configuration through go-oidc, which
// also checks that the document names exactly this issuer.
func (k *keySet) discover(ctx context.Context) (string, error) {
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, k.client), k.issuerURL)
	if err != nil {
		return "", fmt.Errorf("discovering the issuer: %w", err)
	}
	var doc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := p.Claims(&doc); err != nil || doc.JWKSURI == "" {
		return "", errors.New("the issuer's discovery document has no jwks_uri")
	}
	return doc.JWKSURI, nil
}

func (k *keySet) getJSON(ctx context.Context, uri string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", uri, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return err
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("GET %s: document larger than %d bytes", uri, maxJWKSBytes)
	}
	return json.Unmarshal(body, v)
}

// signatureAlgorithms converts an allow-list of algorithm names.
func signatureAlgorithms(names []string) []jose.SignatureAlgorithm {
	algs := make([]jose.SignatureAlgorithm, 0, len(names))
	for _, n := range names {
		if slices.Contains(Algorithms, n) {
			algs = append(algs, jose.SignatureAlgorithm(n))
		}
	}
	return algs
}
