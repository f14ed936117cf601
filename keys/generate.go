package keys

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// ErrWrongKEK reports a sealed private key that no configured KEK can
// open: it was sealed under another KEK, or the stored row is corrupted.
var ErrWrongKEK = errors.New("keys: wrong key-encryption key")

// ErrUnsupportedAlgorithm reports a signing algorithm this package cannot
// generate or use.
var ErrUnsupportedAlgorithm = errors.New("keys: unsupported signing algorithm")

// useSig is the JWK "use" of every key: signatures.
const useSig = "sig"

// Generate creates a new signing key for alg (RSA keys have 2048 bits),
// with its private part sealed under kek. The key is active from now.
func Generate(alg string, kek *KEK, now time.Time) (Key, error) {
	k, err := generate(alg, RSABits2048, kek, now)
	if err != nil {
		return Key{}, err
	}
	k.State, k.ActivatedAt = StateActive, now
	return k, nil
}

// generate creates a key for alg, sealed under kek and created at now, in
// no state yet. bits is the RSA modulus size.
func generate(alg string, bits int, kek *KEK, now time.Time) (Key, error) {
	if kek == nil {
		return Key{}, errors.New("keys: generate: no KEK")
	}
	a, err := lookupAlgorithm(alg)
	if err != nil {
		return Key{}, err
	}
	priv, err := a.generate(bits)
	if err != nil {
		return Key{}, fmt.Errorf("keys: generate %s key: %w", alg, err)
	}
	jwk := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: useSig}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return Key{}, fmt.Errorf("keys: key thumbprint: %w", err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	pubJSON, err := json.Marshal(jwk)
	if err != nil {
		return Key{}, fmt.Errorf("keys: marshal public key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return Key{}, fmt.Errorf("keys: marshal private key: %w", err)
	}
	defer clear(der)
	return Key{
		ID:        jwk.KeyID,
		Algorithm: alg,
		PublicJWK: pubJSON,
		Sealed:    kek.seal(der, []byte(jwk.KeyID)),
		KEKID:     kek.ID(),
		CreatedAt: now,
	}, nil
}

// Open decrypts k's private part with whichever of keks sealed it (the one
// whose ID k names) and checks it against k's public JWK. It fails with an
// error wrapping ErrWrongKEK when none of keks sealed k or k does not
// decrypt.
func Open(k Key, keks ...*KEK) (crypto.Signer, error) {
	pub, err := publicJWK(k)
	if err != nil {
		return nil, err
	}
	der, err := unseal(k, keks)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("keys: signing key %q: parse private key: %w", k.ID, err)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keys: signing key %q: private key of type %T cannot sign", k.ID, parsed)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if eq, ok := pub.Key.(equaler); !ok || !eq.Equal(signer.Public()) {
		return nil, fmt.Errorf("keys: signing key %q: private key does not match its public JWK", k.ID)
	}
	return signer, nil
}

// unseal returns k's private key as PKCS#8 DER, decrypted with the KEK of
// keks that sealed it. The caller clears the result.
func unseal(k Key, keks []*KEK) ([]byte, error) {
	var ids []string
	var kek *KEK
	for _, c := range keks {
		if c == nil {
			continue
		}
		ids = append(ids, c.ID())
		if c.ID() == k.KEKID {
			kek = c
		}
	}
	switch {
	case len(ids) == 0:
		return nil, errors.New("keys: open: no KEK")
	case len(k.Sealed) == 0:
		return nil, fmt.Errorf("keys: signing key %q (%s) holds no private key", k.ID, k.State)
	case kek == nil:
		return nil, fmt.Errorf("%w: signing key %q is sealed under KEK %s but the configured %s %s: configure the KEK it was sealed with",
			ErrWrongKEK, k.ID, k.KEKID, plural(len(ids), "KEK is", "KEKs are"), strings.Join(ids, ", "))
	}
	der, err := kek.open(k.Sealed, []byte(k.ID))
	if err != nil {
		return nil, fmt.Errorf("%w: signing key %q does not decrypt under KEK %s: the stored key is corrupted or was sealed under another KEK",
			ErrWrongKEK, k.ID, kek.ID())
	}
	return der, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// publicJWK parses and checks k's public JWK: a public key of k's algorithm
// whose thumbprint, kid and alg match k. Its use is set to "sig".
func publicJWK(k Key) (jose.JSONWebKey, error) {
	a, err := lookupAlgorithm(k.Algorithm)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("keys: signing key %q: %w", k.ID, err)
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(k.PublicJWK, &jwk); err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("keys: signing key %q: parse public JWK: %w", k.ID, err)
	}
	if !jwk.IsPublic() || !a.fits(jwk.Key) {
		return jose.JSONWebKey{}, fmt.Errorf("keys: signing key %q: stored JWK is not a %s public key", k.ID, k.Algorithm)
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("keys: signing key %q: thumbprint: %w", k.ID, err)
	}
	if base64.RawURLEncoding.EncodeToString(tp) != k.ID || jwk.KeyID != k.ID {
		return jose.JSONWebKey{}, fmt.Errorf("keys: signing key %q: ID does not match the thumbprint of its public JWK", k.ID)
	}
	if jwk.Algorithm != k.Algorithm {
		return jose.JSONWebKey{}, fmt.Errorf("keys: signing key %q: JWK alg %q does not match %q", k.ID, jwk.Algorithm, k.Algorithm)
	}
	jwk.Use = useSig
	return jwk, nil
}
