package keys

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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

// ErrNoActiveKey reports that no key of the requested algorithm signs (yet).
var ErrNoActiveKey = errors.New("keys: no active signing key for this algorithm")

// Store holds signing keys. The Postgres adapter implements it.
type Store interface {
	// Keys returns every stored key, in any state.
	Keys(ctx context.Context) ([]Key, error)
	// EnsureActiveKey, under a cluster-wide lock, inserts the key generate
	// returns if no key is in StateActive; otherwise it does nothing and
	// does not call generate.
	EnsureActiveKey(ctx context.Context, generate func() (Key, error)) error
}

// LifecycleStore is a Store that can run lifecycle steps: a Ring over it
// rotates, revokes and rewraps keys. Without it a Ring only signs.
type LifecycleStore interface {
	Store
	// UpdateKeys takes a cluster-wide lock, calls plan with every stored
	// key, writes the changes plan returns and announces them to every
	// replica, all in one transaction. Callers on other replicas wait for
	// the lock and then see the changes. plan may be called again on retry.
	UpdateKeys(ctx context.Context, plan func(current []Key) (Changes, error)) error
}

// RingOptions configures a Ring. Zero fields take their defaults.
type RingOptions struct {
	// Algorithm is the JWS algorithm of the default signing key, used by
	// Sign; "ES256" by default.
	Algorithm string
	// Algorithms are further algorithms that keep an active key of their
	// own, for SignWith (per-policy algorithms). The default is implied.
	Algorithms []string
	// RSABits is the modulus size of new RS256 and PS256 keys: 2048 (the
	// default) or 3072.
	RSABits int
	// Schedule is the lifecycle timing; zero fields take their defaults.
	Schedule Schedule
	// OldKEK, when set, opens keys still sealed under a previous KEK while
	// they are being rewrapped; new keys are always sealed under the KEK.
	OldKEK *KEK
	// Opener yields the private half of stored keys; by default the sealed
	// key opened with the KEK (or OldKEK).
	Opener Opener
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// Logger receives lifecycle events; nothing is logged by default.
	Logger *slog.Logger
}

// Ring is the in-memory set of signing keys: the signers of the active key
// of each configured algorithm and the published JWKS document. Init or
// Reload loads it from the Store; Sign, SignWith, KeyID and JWKS are cheap
// and safe for concurrent use. Over a LifecycleStore it also runs the key
// lifecycle (see Run, Rotate, Revoke).
type Ring struct {
	store  Store
	kek    *KEK
	opener Opener
	algs   []string // configured algorithms, the default first
	bits   int
	sched  Schedule
	now    func() time.Time
	log    *slog.Logger

	reload sync.Mutex // serializes Reload; never taken by readers
	gen    atomic.Pointer[generation]
}

// generation is an immutable snapshot of the ring, built once per Reload.
type generation struct {
	def     *keySigners            // the default algorithm's active key, else the latest active key
	byAlg   map[string]*keySigners // the active key of each algorithm
	byKID   map[string]*keySigners // every opened key (active and next), for reuse
	jwks    []byte
	current []Key // the active and next keys, public parts, for Status
}

var errNotLoaded = errors.New("keys: signing keys are not loaded: call Ring.Init first")

// NewRing returns a Ring over store whose keys are sealed under kek. It is
// empty until Init succeeds.
func NewRing(store Store, kek *KEK, opts RingOptions) *Ring {
	r := &Ring{store: store, kek: kek, opener: opts.Opener, bits: cmp.Or(opts.RSABits, RSABits2048),
		sched: opts.Schedule.withDefaults(), now: opts.Now, log: opts.Logger}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.algs = []string{cmp.Or(opts.Algorithm, DefaultAlgorithm)}
	for _, a := range opts.Algorithms {
		if !slices.Contains(r.algs, a) {
			r.algs = append(r.algs, a)
		}
	}
	if r.opener == nil && kek != nil {
		r.opener = kekOpener{kek, opts.OldKEK}
	}
	return r
}

// Algorithms returns the configured signing algorithms, the default first.
func (r *Ring) Algorithms() []string { return slices.Clone(r.algs) }

// Init makes sure every configured algorithm has a key, then loads the
// ring. In an empty store the keys are active at once; an algorithm added
// later gets a next key that signs after the lead time.
func (r *Ring) Init(ctx context.Context) error {
	if err := r.check(); err != nil {
		return err
	}
	for _, a := range r.algs {
		if err := CheckAlgorithm(a); err != nil {
			return err
		}
	}
	if err := CheckRSABits(r.bits); err != nil {
		return err
	}
	var err error
	if _, ok := r.store.(LifecycleStore); ok {
		err = r.Check(ctx)
	} else {
		err = r.store.EnsureActiveKey(ctx, func() (Key, error) {
			k, err := generate(r.algs[0], r.bits, r.kek, r.timestamp())
			k.State, k.ActivatedAt = StateActive, k.CreatedAt
			return k, err
		})
	}
	if err != nil {
		return fmt.Errorf("keys: ensure an active signing key: %w", err)
	}
	return r.Reload(ctx)
}

func (r *Ring) check() error {
	if r.store == nil || r.kek == nil {
		return errors.New("keys: ring needs a store and a KEK")
	}
	return nil
}

// timestamp is the clock at the precision Postgres keeps.
func (r *Ring) timestamp() time.Time { return r.now().UTC().Truncate(time.Microsecond) }

// Reload reads the keys from the store and replaces the ring's snapshot.
// Each algorithm's active key signs; every next, active and retired key is
// published. Active and next keys are opened, so that a KEK that cannot
// open them fails here, not when they start signing. On error the previous
// snapshot stays in use.
func (r *Ring) Reload(ctx context.Context) error {
	if err := r.check(); err != nil {
		return err
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

// build makes a generation from ks, reusing prev's signers by kid.
func (r *Ring) build(ks []Key, prev *generation) (*generation, error) {
	g := &generation{byAlg: map[string]*keySigners{}, byKID: map[string]*keySigners{}}
	for _, k := range ks {
		if k.State != StateActive && k.State != StateNext {
			continue
		}
		if _, dup := g.byKID[k.ID]; dup {
			continue
		}
		s, err := r.signers(k, prev)
		if err != nil && !slices.Contains(r.algs, k.Algorithm) {
			// A key of an algorithm this replica does not sign with (another
			// replica's configuration): publish it, but a key it cannot open
			// must not freeze the whole ring.
			r.log.Error("cannot open a signing key of an algorithm not configured here; publishing it without signing", "kid", k.ID, "alg", k.Algorithm, "err", err)
			continue
		}
		if err != nil {
			return nil, err
		}
		g.byKID[k.ID] = s
		g.current = append(g.current, k.Public())
		if k.State == StateActive {
			if cur, ok := g.byAlg[k.Algorithm]; !ok || activatedAfter(k, keyByID(ks, cur.kid)) {
				g.byAlg[k.Algorithm] = s
			}
		}
	}
	g.def = g.byAlg[r.algs[0]]
	if g.def == nil { // switching the default algorithm: the latest active key signs meanwhile
		if latest, ok := pickActive(ks); ok {
			g.def = g.byAlg[latest.Algorithm]
		}
	}
	if g.def == nil {
		return nil, errors.New("keys: no active signing key in the store")
	}
	jwks, err := buildJWKS(ks, g)
	if err != nil {
		return nil, err
	}
	g.jwks = jwks
	return g, nil
}

// signers returns k's signers from prev, or opens k.
func (r *Ring) signers(k Key, prev *generation) (*keySigners, error) {
	if prev != nil {
		if s, ok := prev.byKID[k.ID]; ok && s.alg == k.Algorithm {
			return s, nil
		}
	}
	if _, err := publicJWK(k); err != nil {
		return nil, err
	}
	priv, err := r.opener.Open(k)
	if err != nil {
		return nil, err
	}
	return newKeySigners(k, priv)
}

func keyByID(ks []Key, kid string) Key {
	for _, k := range ks {
		if k.ID == kid {
			return k
		}
	}
	return Key{}
}

// pickActive returns the active key activated last (ties: created last,
// then the greater ID, so that every replica picks the same key).
func pickActive(ks []Key) (Key, bool) {
	var best Key
	found := false
	for _, k := range ks {
		if k.State == StateActive && (!found || activatedAfter(k, best)) {
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

// buildJWKS marshals the public parts of every published key: the signing
// keys first (the default's first), then the others in store order.
func buildJWKS(ks []Key, g *generation) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(ks))}
	seen := make(map[string]bool, len(ks))
	add := func(k Key) error {
		if seen[k.ID] || !k.Published() {
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
	signing := func(k Key) bool {
		s, ok := g.byAlg[k.Algorithm]
		return k.State == StateActive && ok && s.kid == k.ID
	}
	first := slices.Concat(
		slices.DeleteFunc(slices.Clone(ks), func(k Key) bool { return k.ID != g.def.kid }),
		slices.DeleteFunc(slices.Clone(ks), func(k Key) bool { return !signing(k) }),
		ks)
	for _, k := range first {
		if err := add(k); err != nil {
			return nil, err
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("keys: marshal JWKS: %w", err)
	}
	return b, nil
}

// Sign signs payload as a compact JWS with the default algorithm's active
// key: SignWith("", typ, payload).
func (r *Ring) Sign(typ string, payload []byte) (string, error) {
	return r.SignWith("", typ, payload)
}

// SignWith is Sign with the active key of alg, one of the configured
// algorithms, or of the default algorithm when alg is "". It fails with an
// error wrapping ErrNoActiveKey while alg has no active key (an algorithm
// added to a running cluster signs only after the lead time).
func (r *Ring) SignWith(alg, typ string, payload []byte) (string, error) {
	g := r.gen.Load()
	if g == nil {
		return "", errNotLoaded
	}
	s, err := g.signerFor(alg)
	if err != nil {
		return "", err
	}
	return sign(s, typ, payload)
}

// KeyIDFor is the kid that SignWith(alg, …) signs with, or "" when alg has
// no active key.
func (r *Ring) KeyIDFor(alg string) string {
	g := r.gen.Load()
	if g == nil {
		return ""
	}
	s, err := g.signerFor(alg)
	if err != nil {
		return ""
	}
	return s.kid
}

func (g *generation) signerFor(alg string) (*keySigners, error) {
	if alg == "" {
		return g.def, nil
	}
	s, ok := g.byAlg[alg]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoActiveKey, alg)
	}
	return s, nil
}

func sign(s *keySigners, typ string, payload []byte) (string, error) {
	var js jose.Signer
	switch typ {
	case TypeAccessToken:
		js = s.accessToken
	case TypeJWT:
		js = s.jwt
	default:
		return "", fmt.Errorf("keys: sign: unsupported typ %q", typ)
	}
	jws, err := js.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("keys: sign: %w", err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("keys: sign: serialize: %w", err)
	}
	return token, nil
}

// KeyID returns the kid Sign signs with, or "" before Init.
func (r *Ring) KeyID() string {
	if g := r.gen.Load(); g != nil {
		return g.def.kid
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

// MaxAge returns how long clients may cache the JWKS document; see
// Schedule.MaxAge.
func (r *Ring) MaxAge() time.Duration { return r.sched.MaxAge() }

// Schedule returns the lifecycle timing in effect, defaults filled in.
func (r *Ring) Schedule() Schedule { return r.sched }

// Status is the lifecycle position of one algorithm's active key.
type Status struct {
	Algorithm string
	// KeyID is the active key's kid.
	KeyID string
	// ActiveAge is how long the key has been signing.
	ActiveAge time.Duration
	// NextRotation is the time until a successor takes over: the next key's
	// activation, or the end of the rotation period when none is published
	// yet. Negative when overdue.
	NextRotation time.Duration
}

// Status reports each configured algorithm that has an active key, as of
// the last Reload and the ring's clock.
func (r *Ring) Status() []Status {
	g := r.gen.Load()
	if g == nil {
		return nil
	}
	now := r.now()
	var out []Status
	for _, alg := range r.algs {
		s, ok := g.byAlg[alg]
		if !ok {
			continue
		}
		active := keyByID(g.current, s.kid)
		next := active.ActivatedAt.Add(r.sched.RotationPeriod)
		for _, k := range g.current {
			if k.State == StateNext && k.Algorithm == alg {
				next = r.sched.activationTime(k)
			}
		}
		out = append(out, Status{Algorithm: alg, KeyID: s.kid, ActiveAge: now.Sub(active.ActivatedAt), NextRotation: next.Sub(now)})
	}
	return out
}
