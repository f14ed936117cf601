package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func generate(t testing.TB, kek *KEK) Key {
	t.Helper()
	k, err := Generate("ES256", kek, testNow)
	require.NoError(t, err)
	return k
}

func TestGenerateOpenRoundTrip(t *testing.T) {
	kek := testKEK(t)
	k := generate(t, kek)
	require.Equal(t, "ES256", k.Algorithm)
	require.Equal(t, StateActive, k.State)
	require.Equal(t, kek.ID(), k.KEKID)
	require.Equal(t, testNow, k.CreatedAt)
	require.Equal(t, testNow, k.ActivatedAt)
	require.True(t, k.RetiredAt.IsZero())

	signer, err := Open(k, kek)
	require.NoError(t, err)
	pub, ok := signer.Public().(*ecdsa.PublicKey)
	require.True(t, ok, "ES256 opens to an ECDSA key, got %T", signer.Public())

	digest := sha256.Sum256([]byte("hello"))
	sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	require.NoError(t, err)
	require.True(t, ecdsa.VerifyASN1(pub, digest[:], sig))

	var jwk map[string]any
	require.NoError(t, json.Unmarshal(k.PublicJWK, &jwk))
	require.Equal(t, k.ID, jwk["kid"])
	require.Equal(t, "ES256", jwk["alg"])
	require.Equal(t, "sig", jwk["use"])
	require.Equal(t, "EC", jwk["kty"])
	require.Equal(t, "P-256", jwk["crv"])
	require.NotContains(t, jwk, "d")
}

func TestGenerateKIDIsRFC7638Thumbprint(t *testing.T) {
	k := generate(t, testKEK(t))
	var jwk struct{ Crv, Kty, X, Y string }
	require.NoError(t, json.Unmarshal(k.PublicJWK, &jwk))
	// RFC 7638 section 3.2: required members only, lexicographic order, no
	// whitespace.
	canonical := fmt.Sprintf(`{"crv":%q,"kty":%q,"x":%q,"y":%q}`, jwk.Crv, jwk.Kty, jwk.X, jwk.Y)
	sum := sha256.Sum256([]byte(canonical))
	require.Equal(t, base64.RawURLEncoding.EncodeToString(sum[:]), k.ID)
	require.Len(t, k.ID, 43)

	other := generate(t, testKEK(t))
	require.NotEqual(t, k.ID, other.ID, "fresh keys have distinct kids")
}

func TestGenerateUnsupportedAlgorithm(t *testing.T) {
	for _, alg := range []string{"", "none", "HS256", "RS256", "PS256", "EdDSA", "es256", "ES384"} {
		t.Run(alg, func(t *testing.T) {
			_, err := Generate(alg, testKEK(t), testNow)
			require.ErrorIs(t, err, ErrUnsupportedAlgorithm)
			require.ErrorContains(t, err, fmt.Sprintf("%q", alg))
		})
	}
	_, err := Generate("ES256", nil, testNow)
	require.Error(t, err)
}

func TestOpenWrongKEK(t *testing.T) {
	sealer := testKEK(t)
	other, err := newKEK(bytes.Repeat([]byte{7}, kekSize))
	require.NoError(t, err)
	k := generate(t, sealer)

	_, err = Open(k, other)
	require.ErrorIs(t, err, ErrWrongKEK)
	msg := err.Error()
	require.Contains(t, msg, fmt.Sprintf("%q", k.ID))
	require.Contains(t, msg, "sealed under KEK "+sealer.ID())
	require.Contains(t, msg, "configured KEK is "+other.ID())
	require.Contains(t, msg, "configure the KEK it was sealed with")

	// A row that claims the configured KEK but was sealed under another one
	// fails in GCM, with the same sentinel.
	k.KEKID = other.ID()
	_, err = Open(k, other)
	require.ErrorIs(t, err, ErrWrongKEK)
	require.Contains(t, err.Error(), other.ID())
}

func TestOpenTampered(t *testing.T) {
	kek := testKEK(t)
	a, b := generate(t, kek), generate(t, kek)
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
		{"sealed empty", func(k *Key) { k.Sealed = nil }, true, "does not decrypt"},
		{"sealed moved to another row", func(k *Key) { k.Sealed = a.Sealed }, true, "does not decrypt"},
		{"ID changed", func(k *Key) { k.ID = a.ID }, false, "does not match the thumbprint"},
		{"public JWK swapped", func(k *Key) { k.PublicJWK = a.PublicJWK }, false, "does not match the thumbprint"},
		{"ID and public JWK swapped", func(k *Key) { k.ID, k.PublicJWK = a.ID, a.PublicJWK }, true, "does not decrypt"},
		{"algorithm changed", func(k *Key) { k.Algorithm = "RS256" }, false, "unsupported signing algorithm"},
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
	k := generate(t, kek)
	signer, err := Open(k, kek)
	require.NoError(t, err)
	priv := signer.(*ecdsa.PrivateKey)
	d, err := priv.Bytes()
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
		k := generate(t, kek)
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
