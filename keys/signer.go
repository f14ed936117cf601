package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/go-jose/go-jose/v4"
)

// Opener yields the private half of a stored key as a crypto.Signer. It is
// the seam for external signers: the default opens the sealed private key
// with the configured KEKs and signs in memory; a KMS or Vault transit
// backend implements Opener by returning a crypto.Signer whose Sign calls
// out to it (for ES256 it returns an ASN.1 signature, as crypto/ecdsa
// does). The Ring and the exchange stay as they are.
type Opener interface {
	Open(k Key) (crypto.Signer, error)
}

// kekOpener is the default Opener: sealed private keys, opened in memory.
type kekOpener []*KEK

var _ Opener = kekOpener(nil)

func (o kekOpener) Open(k Key) (crypto.Signer, error) { return Open(k, o...) }

// keySigners are the JWS signers of one key, one per "typ".
type keySigners struct {
	kid, alg    string
	accessToken jose.Signer // typ "at+jwt"
	jwt         jose.Signer // typ "JWT"
}

// newKeySigners builds k's JWS signers over priv.
func newKeySigners(k Key, priv crypto.Signer) (*keySigners, error) {
	a, err := lookupAlgorithm(k.Algorithm)
	if err != nil {
		return nil, err
	}
	key := jwsKey(priv, a)
	signer := func(typ string) (jose.Signer, error) {
		opts := (&jose.SignerOptions{}).
			WithType(jose.ContentType(typ)).
			WithHeader(jose.HeaderKey("kid"), k.ID)
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: a.jose, Key: key}, opts)
		if err != nil {
			return nil, fmt.Errorf("keys: signing key %q: new %s signer: %w", k.ID, typ, err)
		}
		return s, nil
	}
	ks := &keySigners{kid: k.ID, alg: k.Algorithm}
	if ks.accessToken, err = signer(TypeAccessToken); err != nil {
		return nil, err
	}
	if ks.jwt, err = signer(TypeJWT); err != nil {
		return nil, err
	}
	return ks, nil
}

// jwsKey returns what go-jose signs with: in-memory keys as they are (its
// fastest path), any other crypto.Signer through an opaque adapter.
func jwsKey(priv crypto.Signer, a algorithm) any {
	switch priv.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		return priv
	}
	return opaqueSigner{priv: priv, alg: a}
}

// opaqueSigner adapts a crypto.Signer (a KMS key, say) to go-jose.
type opaqueSigner struct {
	priv crypto.Signer
	alg  algorithm
}

var _ jose.OpaqueSigner = opaqueSigner{}

func (s opaqueSigner) Public() *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: s.priv.Public(), Algorithm: string(s.alg.jose), Use: useSig}
}

func (s opaqueSigner) Algs() []jose.SignatureAlgorithm { return []jose.SignatureAlgorithm{s.alg.jose} }

// SignPayload signs the JWS signing input: hashed (except for EdDSA), then
// encoded as JWS wants it (ECDSA as r || s, RFC 7518 §3.4).
func (s opaqueSigner) SignPayload(payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	if alg != s.alg.jose {
		return nil, fmt.Errorf("keys: signer for %s cannot sign %s", s.alg.jose, alg)
	}
	digest := payload
	if s.alg.hash != 0 {
		h := s.alg.hash.New()
		h.Write(payload)
		digest = h.Sum(nil)
	}
	sig, err := s.priv.Sign(rand.Reader, digest, s.alg.opts)
	if err != nil {
		return nil, fmt.Errorf("keys: external signer: %w", err)
	}
	if alg != jose.ES256 {
		return sig, nil
	}
	return ecdsaRaw(sig, 32)
}

// ecdsaRaw converts an ASN.1 ECDSA signature to the fixed-size r || s of
// JWS, each size bytes.
func ecdsaRaw(der []byte, size int) ([]byte, error) {
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &rs)
	if err != nil || len(rest) != 0 || rs.R == nil || rs.S == nil {
		return nil, errors.New("keys: external signer returned a malformed ECDSA signature")
	}
	if rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 8*size || rs.S.BitLen() > 8*size {
		return nil, errors.New("keys: external signer returned an out-of-range ECDSA signature")
	}
	out := make([]byte, 2*size)
	rs.R.FillBytes(out[:size])
	rs.S.FillBytes(out[size:])
	return out, nil
}
