package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func genKey(t testing.TB, kek *KEK) Key {
	t.Helper()
	k, err := Generate("ES256", kek, testNow)
	require.NoError(t, err)
	return k
}

// secrets returns the private values of a key in the encodings they could
// leak in: raw big-endian bytes (and base64url, hex) of EC D, RSA D and
// primes, and the Ed25519 seed.
func secrets(t testing.TB, priv crypto.Signer) [][]byte {
	t.Helper()
	var raw [][]byte
	switch p := priv.(type) {
	case *ecdsa.PrivateKey:
		d, err := p.Bytes()
		require.NoError(t, err)
		raw = append(raw, d)
	case *rsa.PrivateKey:
		raw = append(raw, p.D.Bytes(), p.Primes[0].Bytes(), p.Primes[1].Bytes())
	case ed25519.PrivateKey:
		raw = append(raw, p.Seed())
	default:
		t.Fatalf("unexpected private key type %T", priv)
	}
	var out [][]byte
	for _, r := range raw {
		out = append(out, r, []byte(base64.RawURLEncoding.EncodeToString(r)),
			[]byte(base64.StdEncoding.EncodeToString(r)), []byte(hex.EncodeToString(r)))
	}
	return out
}

// algCases are the algorithms and RSA sizes keys are generated for.
var algCases = []struct {
	alg     string
	bits    int
	kty     string
	members []string // the JWK members besides kid, alg, use
}{
	{"ES256", 0, "EC", []string{"kty", "crv", "x", "y"}},
	{"RS256", RSABits2048, "RSA", []string{"kty", "n", "e"}},
	{"PS256", RSABits3072, "RSA", []string{"kty", "n", "e"}},
	{"EdDSA", 0, "OKP", []string{"kty", "crv", "x"}},
}

func TestGenerateOpenRoundTrip(t *testing.T) {
	kek := testKEK(t)
	for _, tc := range algCases {
		t.Run(tc.alg, func(t *testing.T) {
			k, err := generate(tc.alg, tc.bits, kek, testNow)
			require.NoError(t, err)
			require.Equal(t, tc.alg, k.Algorithm)
			require.Empty(t, k.State, "the caller decides the state")
			require.Equal(t, kek.ID(), k.KEKID)
			require.Equal(t, testNow, k.CreatedAt)

			signer, err := Open(k, kek)
			require.NoError(t, err)
			if pub, ok := signer.Public().(*rsa.PublicKey); ok {
				require.Equal(t, tc.bits, pub.N.BitLen())
			}
			a, err := lookupAlgorithm(tc.alg)
			require.NoError(t, err)
			require.True(t, a.fits(signer.Public()))

			var jwk map[string]any
			require.NoError(t, json.Unmarshal(k.PublicJWK, &jwk))
			require.Equal(t, k.ID, jwk["kid"])
			require.Equal(t, tc.alg, jwk["alg"])
			require.Equal(t, "sig", jwk["use"])
			require.Equal(t, tc.kty, jwk["kty"])
			for member := range jwk {
				require.Contains(t, append([]string{"kid", "alg", "use"}, tc.members...), member, "only public members")
			}
			for _, s := range secrets(t, signer) {
				require.False(t, bytes.Contains(k.PublicJWK, s), "public JWK holds private material")
				require.False(t, bytes.Contains(k.Sealed, s), "sealed bytes hold private material in clear")
			}
		})
	}
}

func TestGenerateActive(t *testing.T) {
	k := genKey(t, testKEK(t))
	require.Equal(t, StateActive, k.State)
	require.Equal(t, testNow, k.ActivatedAt)
	require.True(t, k.RetiredAt.IsZero())
}

func TestGenerateKIDIsRFC7638Thumbprint(t *testing.T) {
	kek := testKEK(t)
	for _, tc := range algCases {
		t.Run(tc.alg, func(t *testing.T) {
			k, err := generate(tc.alg, tc.bits, kek, testNow)
			require.NoError(t, err)
			var jwk struct{ Crv, E, Kty, N, X, Y string }
			require.NoError(t, json.Unmarshal(k.PublicJWK, &jwk))
			// RFC 7638 section 3.2: required members only, lexicographic
			// order, no whitespace (RFC 8037 section 2 for OKP).
			var canonical string
			switch jwk.Kty {
			case "EC":
				canonical = fmt.Sprintf(`{"crv":%q,"kty":%q,"x":%q,"y":%q}`, jwk.Crv, jwk.Kty, jwk.X, jwk.Y)
			case "RSA":
				canonical = fmt.Sprintf(`{"e":%q,"kty":%q,"n":%q}`, jwk.E, jwk.Kty, jwk.N)
			case "OKP":
				canonical = fmt.Sprintf(`{"crv":%q,"kty":%q,"x":%q}`, jwk.Crv, jwk.Kty, jwk.X)
			}
			sum := sha256.Sum256([]byte(canonical))
			require.Equal(t, base64.RawURLEncoding.EncodeToString(sum[:]), k.ID)
			require.Len(t, k.ID, 43)
		})
	}
	require.NotEqual(t, genKey(t, kek).ID, genKey(t, kek).ID, "fresh keys have distinct kids")
}

func TestGenerateUnsupportedAlgorithm(t *testing.T) {
	for _, alg := range []string{"", "none", "HS256", "es256", "ES384", "RS512", "Ed25519"} {
		t.Run(alg, func(t *testing.T) {
			_, err := Generate(alg, testKEK(t), testNow)
			require.ErrorIs(t, err, ErrUnsupportedAlgorithm)
			require.ErrorContains(t, err, fmt.Sprintf("%q", alg))
			require.ErrorIs(t, CheckAlgorithm(alg), ErrUnsupportedAlgorithm)
		})
	}
	for _, alg := range Algorithms {
		require.NoError(t, CheckAlgorithm(alg))
	}
	_, err := Generate("ES256", nil, testNow)
	require.Error(t, err)
	for _, bits := range []int{0, 1024, 4096} {
		require.ErrorContains(t, CheckRSABits(bits), "2048 or 3072")
	}
}

func TestOpenWrongKEK(t *testing.T) {
	sealer := testKEK(t)
	other, err := newKEK(bytes.Repeat([]byte{7}, kekSize))
	require.NoError(t, err)
	third, err := newKEK(bytes.Repeat([]byte{8}, kekSize))
	require.NoError(t, err)
	k := genKey(t, sealer)

	_, err = Open(k, other)
	require.ErrorIs(t, err, ErrWrongKEK)
	msg := err.Error()
	require.Contains(t, msg, fmt.Sprintf("%q", k.ID))
	require.Contains(t, msg, "sealed under KEK "+sealer.ID())
	require.Contains(t, msg, "configured KEK is "+other.ID())
	require.Contains(t, msg, "configure the KEK it was sealed with")

	_, err = Open(k, other, third)
	require.ErrorIs(t, err, ErrWrongKEK)
	require.Contains(t, err.Error(), "configured KEKs are "+other.ID()+", "+third.ID())

	_, err = Open(k, other, nil, sealer)
	require.NoError(t, err, "any of the configured KEKs opens the key it sealed")

	// A row that claims the configured KEK but was sealed under another one
	// fails in GCM, with the same sentinel.
	k.KEKID = other.ID()
	_, err = Open(k, other)
	require.ErrorIs(t, err, ErrWrongKEK)
	require.Contains(t, err.Error(), other.ID())

	_, err = Open(k)
	require.ErrorContains(t, err, "no KEK")
}

func TestOpenTampered(t *testing.T) {
	kek := testKEK(t)
	a, b := genKey(t, kek), genKey(t, kek)
	tests := []struct {
		name      string
		mutate    func(k *Key)
		wrongKEK  bool   // wraps ErrWrongKEK
		wantError string // substring
	}{
		{"nonce bit flipped", func(k *Key) { k.Sealed[0] ^= 1 }, true, "does not decrypt"},
		{"ciphertext bit flipped", func(k *Key) { k.Sealed[20] ^= 0x80 }, true, "does not decrypt"},
		{"tag bit flipped", func(k *Key) { k.Sealed[len(k.Sealed)-1] ^= 1 }, true, "does not decrypt"},
		{"sealed truncated", func(k *Key) { k.Sealed = k.Sealed[:len(k.Sealed)-1] }, true, "does not decrypt"},
		{"sealed too short", func(k *Key) { k.Sealed = k.Sealed[:11] }, true, "does not decrypt"},
		{"sealed empty (wiped)", func(k *Key) { k.Sealed = nil }, false, "holds no private key"},
		{"sealed moved to another row", func(k *Key) { k.Sealed = a.Sealed }, true, "does not decrypt"},
		{"ID changed", func(k *Key) { k.ID = a.ID }, false, "does not match the thumbprint"},
		{"public JWK swapped", func(k *Key) { k.PublicJWK = a.PublicJWK }, false, "does not match the thumbprint"},
		{"ID and public JWK swapped", func(k *Key) { k.ID, k.PublicJWK = a.ID, a.PublicJWK }, true, "does not decrypt"},
		{"algorithm changed", func(k *Key) { k.Algorithm = "RS256" }, false, "not a RS256 public key"},
		{"algorithm unknown", func(k *Key) { k.Algorithm = "HS256" }, false, "unsupported signing algorithm"},
		{"public JWK garbage", func(k *Key) { k.PublicJWK = []byte("{") }, false, "parse public JWK"},
		{"KEK ID changed", func(k *Key) { k.KEKID = "kek-0000000000000000" }, true, "kek-0000000000000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := b
			k.Sealed = bytes.Clone(b.Sealed)
			tt.mutate(&k)
			signer, err := Open(k, kek)
			require.Nil(t, signer)
			require.ErrorContains(t, err, tt.wantError)
			require.Equal(t, tt.wrongKEK, errors.Is(err, ErrWrongKEK), "ErrWrongKEK: %v", err)
		})
	}
	_, err := Open(b, kek)
	require.NoError(t, err, "the original still opens")
}

func TestOpenRejectsPrivateJWK(t *testing.T) {
	kek := testKEK(t)
	k := genKey(t, kek)
	signer, err := Open(k, kek)
	require.NoError(t, err)
	d, err := signer.(*ecdsa.PrivateKey).Bytes()
	require.NoError(t, err)

	var jwk map[string]any
	require.NoError(t, json.Unmarshal(k.PublicJWK, &jwk))
	jwk["d"] = base64.RawURLEncoding.EncodeToString(d)
	k.PublicJWK, err = json.Marshal(jwk)
	require.NoError(t, err)
	_, err = Open(k, kek)
	require.ErrorContains(t, err, "not a ES256 public key")
}

func TestSealedHidesPrivateKey(t *testing.T) {
	kek := testKEK(t)
	for range 20 {
		k := genKey(t, kek)
		signer, err := Open(k, kek)
		require.NoError(t, err)
		d, err := signer.(*ecdsa.PrivateKey).Bytes()
		require.NoError(t, err)
		require.False(t, bytes.Contains(k.Sealed, d), "sealed bytes contain D in clear")
		require.False(t, bytes.Contains(k.Sealed, d[:8]), "sealed bytes contain a prefix of D")
		require.False(t, bytes.Contains(k.PublicJWK, []byte(base64.RawURLEncoding.EncodeToString(d))))
		require.NotContains(t, fmt.Sprintf("%+v", k), base64.RawURLEncoding.EncodeToString(d))
	}
}

func TestSignaturesVerifyPerAlgorithm(t *testing.T) {
	kek := testKEK(t)
	for _, tc := range algCases {
		t.Run(tc.alg, func(t *testing.T) {
			k, err := generate(tc.alg, tc.bits, kek, testNow)
			require.NoError(t, err)
			k.State, k.ActivatedAt = StateActive, testNow
			r := NewRing(&memStore{keys: []Key{k}}, kek, RingOptions{Algorithm: tc.alg, Now: func() time.Time { return testNow }})
			require.NoError(t, r.Init(t.Context()))
			token, err := r.Sign(TypeAccessToken, []byte(`{"n":1}`))
			require.NoError(t, err)
			_, header := verify(t, r.JWKS(), token)
			require.Equal(t, map[string]any{"alg": tc.alg, "kid": k.ID, "typ": TypeAccessToken}, header)
		})
	}
}
