package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// Algorithms are the JWS algorithms keys can be generated for, the default
// first.
var Algorithms = []string{string(jose.ES256), string(jose.RS256), string(jose.PS256), string(jose.EdDSA)}

// DefaultAlgorithm is the algorithm of the default signing key.
const DefaultAlgorithm = string(jose.ES256)

// RSA modulus sizes RS256 and PS256 keys may have.
const (
	RSABits2048 = 2048
	RSABits3072 = 3072
)

// algorithm describes how to generate, check and use keys of one JWS
// algorithm.
type algorithm struct {
	jose jose.SignatureAlgorithm
	// generate makes a private key; bits is the RSA modulus size.
	generate func(bits int) (crypto.Signer, error)
	// fits reports whether a public key is of the type and size alg needs.
	fits func(pub crypto.PublicKey) bool
	// hash and opts are what crypto.Signer.Sign needs for a JWS signature.
	hash crypto.Hash
	opts crypto.SignerOpts
}

// lookupAlgorithm returns the description of a JWS algorithm name.
func lookupAlgorithm(name string) (algorithm, error) {
	switch name {
	case string(jose.ES256):
		return algorithm{
			jose: jose.ES256,
			generate: func(int) (crypto.Signer, error) {
				return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			},
			fits: func(pub crypto.PublicKey) bool {
				ec, ok := pub.(*ecdsa.PublicKey)
				return ok && ec.Curve == elliptic.P256()
			},
			hash: crypto.SHA256, opts: crypto.SHA256,
		}, nil
	case string(jose.RS256), string(jose.PS256):
		a := algorithm{
			jose:     jose.SignatureAlgorithm(name),
			generate: func(bits int) (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, bits) },
			fits: func(pub crypto.PublicKey) bool {
				r, ok := pub.(*rsa.PublicKey)
				return ok && (r.N.BitLen() == RSABits2048 || r.N.BitLen() == RSABits3072)
			},
			hash: crypto.SHA256, opts: crypto.SHA256,
		}
		if name == string(jose.PS256) {
			a.opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
		}
		return a, nil
	case string(jose.EdDSA):
		return algorithm{
			jose: jose.EdDSA,
			generate: func(int) (crypto.Signer, error) {
				_, priv, err := ed25519.GenerateKey(rand.Reader)
				return priv, err
			},
			fits: func(pub crypto.PublicKey) bool {
				_, ok := pub.(ed25519.PublicKey)
				return ok
			},
			opts: crypto.Hash(0),
		}, nil
	default:
		return algorithm{}, fmt.Errorf("%w %q (supported: ES256, RS256, PS256, EdDSA)", ErrUnsupportedAlgorithm, name)
	}
}

// CheckAlgorithm reports whether keys can be generated for name.
func CheckAlgorithm(name string) error {
	_, err := lookupAlgorithm(name)
	return err
}

// CheckRSABits reports whether bits is an RSA modulus size keys may have.
func CheckRSABits(bits int) error {
	if bits != RSABits2048 && bits != RSABits3072 {
		return fmt.Errorf("keys: RSA keys must have %d or %d bits, not %d", RSABits2048, RSABits3072, bits)
	}
	return nil
}
