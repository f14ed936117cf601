package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// JWS "typ" headers Sign accepts.
const (
	TypeAccessToken = "at+jwt" // RFC 9068 JWT access tokens
	TypeJWT         = "JWT"    // any other JWT
)

// Store holds signing keys. The Postgres adapter implements it.
type Store interface {
	// Keys returns every stored key, in any state.
	Keys(ctx context.Context) ([]Key, error)
	// EnsureActiveKey, under a cluster-wide lock, inserts the key generate
	// returns if no key is in StateActive; otherwise it does nothing and
	// does not call generate.
	EnsureActiveKey(ctx context.Context, generate func() (Key, error)) error
}

// RingOptions configures a Ring. Zero fields take their defaults.
type RingOptions struct {
	// Algorithm is the JWS algorithm of keys the ring generates; "ES256" by
	// default. Existing keys sign with their own algorithm.
	Algorithm string
	// JWKSMaxAge is how long clients may cache the JWKS document; 5 minutes
	// by default.
	JWKSMaxAge time.Duration
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Ring is the in-memory set of signing keys: the active key's signers and
// the published JWKS document. Init or Reload loads it from the Store; Sign,
// KeyID and JWKS are cheap and safe for concurrent use.
type Ring struct {
	store Store
	kek   *KEK
	opts  RingOptions

	reload sync.Mutex // serializes Reload; never taken by readers
	gen    atomic.Pointer[generation]
}

// generation is an immutable snapshot of the ring, built once per Reload.
type generation struct {
	kid         string
	accessToken jose.Signer // typ "at+jwt"
	jwt         jose.Signer // typ "JWT"
	jwks        []byte
}

var errNotLoaded = errors.New("keys: signing keys are not loaded: call Ring.Init first")

// NewRing returns a Ring over store whose keys are sealed under kek. It is
// empty until Init succeeds.
func NewRing(store Store, kek *KEK, opts RingOptions) *Ring {
	if opts.Algorithm == "" {
		opts.Algorithm = string(jose.ES256)
	}
	if opts.JWKSMaxAge <= 0 {
		opts.JWKSMaxAge = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Ring{store: store, kek: kek, opts: opts}
}

// Init makes sure the store has an active key, generating one if it has
// none, then loads the ring.
func (r *Ring) Init(ctx context.Context) error {
	if r.store == nil || r.kek == nil {
		return errors.New("keys: ring needs a store and a KEK")
	}
	err := r.store.EnsureActiveKey(ctx, func() (Key, error) {
		return Generate(r.opts.Algorithm, r.kek, r.opts.Now())
	})
	if err != nil {
		return fmt.Errorf("keys: ensure an active signing key: %w", err)
	}
	return r.Reload(ctx)
}

// Reload reads the keys from the store and replaces the ring's snapshot.
// The most recently activated active key signs; every next, active and
// retired key is published. On error the previous snapshot stays in use.
func (r *Ring) Reload(ctx context.Context) error {
	if r.store == nil || r.kek == nil {
		return errors.New("keys: ring needs a store and a KEK")
	}
	r.reload.Lock()
	defer r.reload.Unlock()
	ks, err := r.store.Keys(ctx)
	if err != nil {
		return fmt.Errorf("keys: load signing keys: %w", err)
	}
	g, err := r.build(ks, r.gen.Load())
	if err != nil {
		return err
	}
	r.gen.Store(g)
	return nil
}

// build makes a generation from ks, reusing prev's signers when the active
// key has not changed.
func (r *Ring) build(ks []Key, prev *generation) (*generation, error) {
	active, ok := pickActive(ks)
	if !ok {
		return nil, errors.New("keys: no active signing key in the store")
	}
	g := &generation{kid: active.ID}
	if prev != nil && prev.kid == active.ID {
		g.accessToken, g.jwt = prev.accessToken, prev.jwt
	} else {
		var err error
		if g.accessToken, g.jwt, err = newSigners(active, r.kek); err != nil {
			return nil, err
		}
	}
	jwks, err := buildJWKS(ks, active.ID)
	if err != nil {
		return nil, err
	}
	g.jwks = jwks
	return g, nil
}

// pickActive returns the active key activated last (ties: created last,
// then the greater ID, so that every replica picks the same key).
func pickActive(ks []Key) (Key, bool) {
	var best Key
	found := false
	for _, k := range ks {
		if k.State != StateActive {
			continue
		}
		if !found || activatedAfter(k, best) {
			best, found = k, true
		}
	}
	return best, found
}

// activatedAfter orders active keys for pickActive.
func activatedAfter(a, b Key) bool {
	if !a.ActivatedAt.Equal(b.ActivatedAt) {
		return a.ActivatedAt.After(b.ActivatedAt)
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.ID > b.ID
}

// newSigners opens k and builds its two JWS signers, one per "typ".
func newSigners(k Key, kek *KEK) (accessToken, jwt jose.Signer, err error) {
	priv, err := Open(k, kek)
	if err != nil {
		return nil, nil, err
	}
	a, err := lookupAlgorithm(k.Algorithm)
	if err != nil {
		return nil, nil, err
	}
	signer := func(typ string) (jose.Signer, error) {
		opts := (&jose.SignerOptions{}).
			WithType(jose.ContentType(typ)).
			WithHeader(jose.HeaderKey("kid"), k.ID)
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: a.jose, Key: priv}, opts)
		if err != nil {
			return nil, fmt.Errorf("keys: signing key %q: new %s signer: %w", k.ID, typ, err)
		}
		return s, nil
	}
	if accessToken, err = signer(TypeAccessToken); err != nil {
		return nil, nil, err
	}
	if jwt, err = signer(TypeJWT); err != nil {
		return nil, nil, err
	}
	return accessToken, jwt, nil
}

// buildJWKS marshals the public parts of every published key, the active
// one first.
func buildJWKS(ks []Key, activeID string) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(ks))}
	seen := make(map[string]bool, len(ks))
	add := func(k Key) error {
		if seen[k.ID] {
			return nil
		}
		seen[k.ID] = true
		jwk, err := publicJWK(k)
		if err != nil {
			return err
		}
		set.Keys = append(set.Keys, jwk)
		return nil
	}
	for _, k := range ks {
		if k.ID == activeID && k.State == StateActive {
			if err := add(k); err != nil {
				return nil, err
			}
		}
	}
	for _, k := range ks {
		switch k.State {
		case StateNext, StateActive, StateRetired:
			if err := add(k); err != nil {
				return nil, err
			}
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("keys: marshal JWKS: %w", err)
	}
	return b, nil
}

// Sign signs payload as a compact JWS with the active key. typ is
// TypeAccessToken or TypeJWT; the header carries alg, kid and typ.
func (r *Ring) Sign(typ string, payload []byte) (string, error) {
	g := r.gen.Load()
	if g == nil {
		return "", errNotLoaded
	}
	var s jose.Signer
	switch typ {
	case TypeAccessToken:
		s = g.accessToken
	case TypeJWT:
		s = g.jwt
	default:
		return "", fmt.Errorf("keys: sign: unsupported typ %q", typ)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("keys: sign: %w", err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("keys: sign: serialize: %w", err)
	}
	return token, nil
}

// KeyID returns the kid of the signing key, or "" before Init.
func (r *Ring) KeyID() string {
	if g := r.gen.Load(); g != nil {
		return g.kid
	}
	return ""
}

// JWKS returns the JSON Web Key Set document to publish, or nil before
// Init. The slice is shared: callers must not modify it.
func (r *Ring) JWKS() []byte {
	if g := r.gen.Load(); g != nil {
		return g.jwks
	}
	return nil
}

// MaxAge returns how long clients may cache the JWKS document.
func (r *Ring) MaxAge() time.Duration { return r.opts.JWKSMaxAge }
