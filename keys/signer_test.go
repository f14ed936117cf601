package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"io"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// remoteSigner stands for a KMS: a crypto.Signer that is not one of the
// in-memory key types, so that signing goes through the opaque adapter.
type remoteSigner struct {
	priv  crypto.Signer
	calls int
}

func (s *remoteSigner) Public() crypto.PublicKey { return s.priv.Public() }

func (s *remoteSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.calls++
	return s.priv.Sign(r, digest, opts)
}

// remoteOpener is an Opener for remoteSigners.
type remoteOpener struct {
	kek     *KEK
	signers []*remoteSigner
}

func (o *remoteOpener) Open(k Key) (crypto.Signer, error) {
	priv, err := Open(k, o.kek)
	if err != nil {
		return nil, err
	}
	s := &remoteSigner{priv: priv}
	o.signers = append(o.signers, s)
	return s, nil
}

func TestExternalSigner(t *testing.T) {
	kek := testKEK(t)
	for _, tc := range algCases {
		t.Run(tc.alg, func(t *testing.T) {
			opener := &remoteOpener{kek: kek}
			r := NewRing(&memStore{}, kek, RingOptions{Algorithm: tc.alg, RSABits: max(tc.bits, RSABits2048), Opener: opener, Now: func() time.Time { return testNow }})
			require.NoError(t, r.Init(t.Context()))
			for range 3 {
				token, err := r.Sign(TypeAccessToken, []byte(`{"sub":"s"}`))
				require.NoError(t, err)
				_, header := verify(t, r.JWKS(), token)
				require.Equal(t, tc.alg, header["alg"])
			}
			require.Len(t, opener.signers, 1)
			require.Equal(t, 3, opener.signers[0].calls, "every signature went through the external signer")
		})
	}
}

type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("kms unavailable")
}

func TestOpaqueSignerErrors(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	a, err := lookupAlgorithm("ES256")
	require.NoError(t, err)

	s := opaqueSigner{priv: failingSigner{priv}, alg: a}
	_, err = s.SignPayload([]byte("x"), "ES256")
	require.ErrorContains(t, err, "kms unavailable")
	_, err = opaqueSigner{priv: priv, alg: a}.SignPayload([]byte("x"), "RS256")
	require.ErrorContains(t, err, "cannot sign RS256")

	der := func(r, s *big.Int) []byte {
		b, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
		require.NoError(t, err)
		return b
	}
	big256 := new(big.Int).Lsh(big.NewInt(1), 256)
	tests := []struct {
		name string
		der  []byte
		want string
	}{
		{"not ASN.1", []byte("garbage"), "malformed"},
		{"trailing data", append(der(big.NewInt(1), big.NewInt(2)), 0), "malformed"},
		{"zero r", der(big.NewInt(0), big.NewInt(2)), "out-of-range"},
		{"negative s", der(big.NewInt(1), big.NewInt(-2)), "out-of-range"},
		{"r too large", der(big256, big.NewInt(2)), "out-of-range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ecdsaRaw(tt.der, 32)
			require.ErrorContains(t, err, tt.want)
		})
	}
	raw, err := ecdsaRaw(der(big.NewInt(1), big.NewInt(2)), 32)
	require.NoError(t, err)
	require.Len(t, raw, 64)
	require.Equal(t, byte(1), raw[31])
	require.Equal(t, byte(2), raw[63])
}

func TestJWSKeyNativeTypes(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	var a algorithm
	for _, priv := range []crypto.Signer{ec, ed, (*rsa.PrivateKey)(nil)} {
		require.Equal(t, priv, jwsKey(priv, a), "in-memory keys take go-jose's own path")
	}
	_, opaque := jwsKey(&remoteSigner{priv: ec}, a).(opaqueSigner)
	require.True(t, opaque)
}
