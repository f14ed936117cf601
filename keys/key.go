package keys

import (
	"errors"
	"time"
)

// Key states. A key is published in the JWKS while next, active or retired;
// removed and revoked keys stay in the store as tombstones (public part and
// dates only: their private part is wiped) and are never published again.
const (
	StateNext    = "next"    // published, not yet signing
	StateActive  = "active"  // signing
	StateRetired = "retired" // published until its tokens have expired
	StateRemoved = "removed" // no longer published: every token it signed has expired
	StateRevoked = "revoked" // unpublished at once by an emergency revoke
)

// ErrKeyNotFound reports a key ID that no stored key has.
var ErrKeyNotFound = errors.New("keys: no such signing key")

// ErrKeyGone reports an operation on a key that is already removed or
// revoked.
var ErrKeyGone = errors.New("keys: signing key is already removed or revoked")

// Key is a signing key as stored: the public part in clear, the private
// part sealed under a key-encryption key.
type Key struct {
	// ID is the key's "kid": its RFC 7638 JWK thumbprint, base64url.
	ID string
	// Algorithm is the JWS algorithm, e.g. "ES256".
	Algorithm string
	State     string
	// PublicJWK is the public key as a JWK JSON document.
	PublicJWK []byte
	// Sealed is nonce || AES-256-GCM(private key as PKCS#8 DER), with the
	// key ID as additional data. It is empty once the key can never sign
	// again (retired, removed, revoked).
	Sealed []byte
	// KEKID identifies the key-encryption key that sealed the private part;
	// empty when Sealed is.
	KEKID string
	// CreatedAt is when the key was generated and published in the JWKS.
	CreatedAt time.Time
	// ActivatesAt is when a next key may start signing, at the earliest:
	// CreatedAt plus the lead time. Zero for keys activated at creation.
	ActivatesAt time.Time
	// ActivatedAt is when the key started signing; zero for a next key.
	ActivatedAt time.Time
	// RetiredAt is when the key stopped signing; zero unless retired.
	RetiredAt time.Time
	// RemoveAfter is when a retired key may leave the JWKS: every token it
	// signed has expired by then (RetiredAt plus the retire grace).
	RemoveAfter time.Time
	// RemovedAt is when the key left the JWKS (removed or revoked).
	RemovedAt time.Time
}

// Published reports whether k belongs in the JWKS.
func (k Key) Published() bool {
	switch k.State {
	case StateNext, StateActive, StateRetired:
		return true
	}
	return false
}

// Public returns k without its sealed private part, for listing.
func (k Key) Public() Key {
	k.Sealed = nil
	return k
}

// wipe forgets k's private part: a key that can never sign again keeps
// nothing secret in the store.
func (k *Key) wipe() {
	k.Sealed, k.KEKID = []byte{}, ""
}

// Changes are the writes a lifecycle step makes, applied in one transaction
// under the cluster-wide keys lock (see LifecycleStore).
type Changes struct {
	// Insert are new keys.
	Insert []Key
	// Update are existing keys, matched by ID; every column but ID,
	// Algorithm and PublicJWK is written.
	Update []Key
	// Action names the step: "keys.bootstrap", "keys.schedule",
	// "keys.rotate", "keys.revoke" or "keys.rewrap".
	Action string
	// Events say what happened to each key, for the audit log: one per
	// inserted or updated key.
	Events []Event
}

// Event is one key's part in a change. It holds no secret.
type Event struct {
	KeyID     string
	Algorithm string
	// Action is the verb: "publish" (a next key from the schedule),
	// "rotate" (a next key from a planned rotation), "activate", "retire",
	// "remove", "revoke" or "rewrap".
	Action string
	// Detail says in a sentence or two what changed and what follows from
	// it; for a revoke, the consequence for verifiers and the reason given.
	Detail string
}

// Empty reports whether c writes nothing.
func (c Changes) Empty() bool { return len(c.Insert) == 0 && len(c.Update) == 0 }
