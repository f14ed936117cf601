package keys

import "time"

// Key states. A key is published in the JWKS in every state but removed
// (removed keys are deleted from the store).
const (
	StateNext    = "next"    // published, not yet signing
	StateActive  = "active"  // signing
	StateRetired = "retired" // published until its tokens have expired
)

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
	// key ID as additional data.
	Sealed []byte
	// KEKID identifies the key-encryption key that sealed the private part.
	KEKID     string
	CreatedAt time.Time
	// ActivatedAt is when the key started signing; zero for a next key.
	ActivatedAt time.Time
	// RetiredAt is when the key stopped signing; zero unless retired.
	RetiredAt time.Time
}
