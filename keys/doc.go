// Package keys owns Claimbridge's signing keys: generation, envelope
// encryption of private parts under a key-encryption key (KEK), the active
// signer and the published JWKS document.
//
// It must not import echo, fosite, pgx or any other Claimbridge package.
package keys
