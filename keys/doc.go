// Package keys owns Claimbridge's signing keys: generation (ES256, RS256
// and PS256 with 2048 or 3072 bits, EdDSA), envelope encryption of private
// parts under a key-encryption key (KEK) and rewrapping under a new one,
// the lifecycle (next → active → retired → removed, on a Schedule whose
// lead time bounds the JWKS max-age; planned rotation; emergency revoke),
// and the Ring: the active signer of each algorithm and the published JWKS
// document, swapped atomically. An Opener is the seam for external signers
// (a KMS, Vault transit). keystest holds the contract of a LifecycleStore.
//
// It must not import net/http, echo, fosite, pgx or any other Claimbridge
// package.
package keys
