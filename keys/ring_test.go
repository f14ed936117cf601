package keys

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"
)

// keyWith generates a key and sets its state and activation time.
func keyWith(t testing.TB, kek *KEK, state string, activated time.Time) Key {
	t.Helper()
	k := genKey(t, kek)
	k.State, k.ActivatedAt = state, activated
	return k
}

var allAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA}

// verify checks token against the JWKS document and returns its payload
// and protected header members.
func verify(t testing.TB, jwks []byte, token string) ([]byte, map[string]any) {
	t.Helper()
	jws, err := jose.ParseSignedCompact(token, allAlgorithms)
	require.NoError(t, err)
	require.Len(t, jws.Signatures, 1)
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(jwks, &set))
	found := set.Key(jws.Signatures[0].Protected.KeyID)
	require.Len(t, found, 1, "the token's kid is in the JWKS")
	payload, err := jws.Verify(found[0])
	require.NoError(t, err)

	rawHeader, err := base64.RawURLEncoding.DecodeString(strings.SplitN(token, ".", 2)[0])
	require.NoError(t, err)
	var header map[string]any
	require.NoError(t, json.Unmarshal(rawHeader, &header))
	return payload, header
}

// kidsOf lists the kids of a JWKS document, in order.
func kidsOf(t testing.TB, jwks []byte) []string {
	t.Helper()
	var doc struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(jwks, &doc))
	var kids []string
	for _, k := range doc.Keys {
		kids = append(kids, k.KID)
	}
	return kids
}

func newTestRing(t testing.TB, s *memStore) *Ring {
	t.Helper()
	r := NewRing(s, testKEK(t), RingOptions{Now: func() time.Time { return testNow }})
	require.NoError(t, r.Init(context.Background()))
	return r
}

func TestRingInitGeneratesAndSigns(t *testing.T) {
	s := &memStore{}
	r := newTestRing(t, s)
	stored := s.stored()
	require.Len(t, stored, 1, "Init generates a key into an empty store")
	require.Equal(t, StateActive, stored[0].State)
	require.Equal(t, testNow, stored[0].CreatedAt, "the injected clock dates the key")
	require.Equal(t, testNow, stored[0].ActivatedAt, "the first key of a store signs at once")
	require.Equal(t, stored[0].ID, r.KeyID())
	require.Equal(t, 5*time.Minute, r.MaxAge())

	payload := []byte(`{"sub":"s","aud":"a"}`)
	for _, typ := range []string{TypeAccessToken, TypeJWT} {
		t.Run(typ, func(t *testing.T) {
			token, err := r.Sign(typ, payload)
			require.NoError(t, err)
			got, header := verify(t, r.JWKS(), token)
			require.Equal(t, payload, got)
			require.Equal(t, map[string]any{"alg": "ES256", "kid": r.KeyID(), "typ": typ}, header)
		})
	}
}

func TestRingInitSignOnlyStore(t *testing.T) {
	s := &memStore{}
	r := NewRing(signOnly{s}, testKEK(t), RingOptions{Now: func() time.Time { return testNow }})
	require.NoError(t, r.Init(context.Background()), "a plain Store is enough to sign")
	require.Len(t, s.stored(), 1)
	require.Equal(t, StateActive, s.stored()[0].State)
	_, err := r.Sign(TypeJWT, []byte("{}"))
	require.NoError(t, err)
	require.ErrorIs(t, r.Check(context.Background()), errNoLifecycle)
	_, err = r.Rotate(context.Background(), "")
	require.ErrorIs(t, err, errNoLifecycle)
}

func TestRingInitKeepsExistingActiveKey(t *testing.T) {
	kek := testKEK(t)
	existing := genKey(t, kek)
	s := &memStore{keys: []Key{existing}}
	r := NewRing(s, kek, RingOptions{Now: func() time.Time { return testNow }})
	require.NoError(t, r.Init(context.Background()))
	require.Len(t, s.stored(), 1, "no key generated")
	require.Empty(t, s.commits)
	require.Equal(t, existing.ID, r.KeyID())
}

func TestRingInitErrors(t *testing.T) {
	boom := errors.New("boom")
	failing := fakeStore{ensure: func(context.Context, func() (Key, error)) error { return boom }}
	tests := []struct {
		name    string
		ring    *Ring
		wantIs  error
		wantMsg string
	}{
		{"ensure fails", NewRing(failing, testKEK(t), RingOptions{}), boom, "ensure an active signing key"},
		{"unsupported algorithm", NewRing(&memStore{}, testKEK(t), RingOptions{Algorithm: "HS256"}), ErrUnsupportedAlgorithm, "HS256"},
		{"unsupported extra algorithm", NewRing(&memStore{}, testKEK(t), RingOptions{Algorithms: []string{"ES512"}}), ErrUnsupportedAlgorithm, "ES512"},
		{"RSA size", NewRing(&memStore{}, testKEK(t), RingOptions{RSABits: 1024}), nil, "2048 or 3072"},
		{"no KEK", NewRing(&memStore{}, nil, RingOptions{}), nil, "needs a store and a KEK"},
		{"no store", NewRing(nil, testKEK(t), RingOptions{}), nil, "needs a store and a KEK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.ring.Init(context.Background())
			require.ErrorContains(t, err, tt.wantMsg)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
			require.Empty(t, tt.ring.KeyID())
			require.Nil(t, tt.ring.JWKS())
			require.Nil(t, tt.ring.Status())
		})
	}
}

func TestRingSignErrors(t *testing.T) {
	r := NewRing(&memStore{}, testKEK(t), RingOptions{})
	_, err := r.Sign(TypeJWT, []byte("{}"))
	require.ErrorIs(t, err, errNotLoaded, "signing before Init")
	_, err = r.SignWith("ES256", TypeJWT, []byte("{}"))
	require.ErrorIs(t, err, errNotLoaded, "signing before Init")

	r = newTestRing(t, &memStore{})
	for _, typ := range []string{"", "jwt", "at+JWT", "application/at+jwt", "JOSE"} {
		_, err := r.Sign(typ, []byte("{}"))
		require.ErrorContains(t, err, "unsupported typ", typ)
	}
	for _, alg := range []string{"RS256", "none", "es256"} {
		_, err := r.SignWith(alg, TypeJWT, []byte("{}"))
		require.ErrorIs(t, err, ErrNoActiveKey, alg)
		require.Empty(t, r.KeyIDFor(alg))
	}
	_, err = r.SignWith("", TypeJWT, []byte("{}"))
	require.NoError(t, err, `"" is the default algorithm`)
	require.Equal(t, r.KeyID(), r.KeyIDFor(""))
}

func TestRingJWKS(t *testing.T) {
	kek := testKEK(t)
	next := keyWith(t, kek, StateNext, time.Time{})
	active := keyWith(t, kek, StateActive, testNow)
	retired := keyWith(t, kek, StateRetired, testNow.Add(-time.Hour))
	removed := keyWith(t, kek, StateRemoved, testNow)
	revoked := keyWith(t, kek, StateRevoked, testNow)
	unknown := keyWith(t, kek, "lost", testNow)
	r := newTestRing(t, &memStore{keys: []Key{retired, removed, unknown, next, revoked, active, active}})

	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(r.JWKS(), &doc))
	for _, k := range doc.Keys {
		require.Equal(t, "ES256", k["alg"])
		require.Equal(t, "sig", k["use"])
		for member := range k {
			require.Contains(t, []string{"kty", "crv", "x", "y", "kid", "alg", "use"}, member, "only public members")
		}
	}
	require.Equal(t, []string{active.ID, retired.ID, next.ID}, kidsOf(t, r.JWKS()),
		"active first, each key once, never removed, revoked or unknown states")
	require.NotContains(t, string(r.JWKS()), `"d"`)
}

func TestRingSignsWithLatestActive(t *testing.T) {
	kek := testKEK(t)
	older := keyWith(t, kek, StateActive, testNow.Add(-time.Minute))
	newer := keyWith(t, kek, StateActive, testNow)
	tieA := keyWith(t, kek, StateActive, testNow)
	tieB := keyWith(t, kek, StateActive, testNow)
	tieB.CreatedAt = testNow.Add(time.Second)
	tests := []struct {
		name string
		keys []Key
		want string
	}{
		{"newer last", []Key{older, newer}, newer.ID},
		{"newer first", []Key{newer, older}, newer.ID},
		{"activation tie, later creation wins", []Key{tieB, tieA}, tieB.ID},
		{"full tie, greater ID wins", []Key{tieA, newer}, max(tieA.ID, newer.ID)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRing(t, &memStore{keys: tt.keys})
			require.Equal(t, tt.want, r.KeyID())
			token, err := r.Sign(TypeJWT, []byte("{}"))
			require.NoError(t, err)
			_, header := verify(t, r.JWKS(), token)
			require.Equal(t, tt.want, header["kid"])
		})
	}
}

func TestRingReloadRotates(t *testing.T) {
	kek := testKEK(t)
	s := &memStore{}
	r := newTestRing(t, s)
	oldToken, err := r.Sign(TypeAccessToken, []byte(`{"n":1}`))
	require.NoError(t, err)
	oldKID := r.KeyID()

	s.keys[0].State, s.keys[0].RetiredAt = StateRetired, testNow
	s.keys = append(s.keys, keyWith(t, kek, StateActive, testNow))
	require.NoError(t, r.Reload(context.Background()))
	require.NotEqual(t, oldKID, r.KeyID())

	newToken, err := r.Sign(TypeAccessToken, []byte(`{"n":2}`))
	require.NoError(t, err)
	_, header := verify(t, r.JWKS(), newToken)
	require.Equal(t, r.KeyID(), header["kid"])
	_, header = verify(t, r.JWKS(), oldToken)
	require.Equal(t, oldKID, header["kid"], "tokens of the retired key still verify")
}

func TestRingReloadFailureKeepsGeneration(t *testing.T) {
	kek := testKEK(t)
	otherKEK, err := newKEK(bytes.Repeat([]byte{9}, kekSize))
	require.NoError(t, err)
	boom := errors.New("database down")
	corrupt := keyWith(t, kek, StateRetired, testNow)
	corrupt.PublicJWK = []byte(`{"kty":"EC"}`)
	tests := []struct {
		name    string
		keys    []Key
		err     error
		wantIs  error
		wantMsg string
	}{
		{"store fails", nil, boom, boom, "load signing keys"},
		{"no active key", []Key{keyWith(t, kek, StateRetired, testNow)}, nil, nil, "no active signing key"},
		{"active key under another KEK", []Key{genKey(t, otherKEK)}, nil, ErrWrongKEK, otherKEK.ID()},
		{"next key under another KEK", []Key{genKey(t, kek), keyWith(t, otherKEK, StateNext, time.Time{})}, nil, ErrWrongKEK, otherKEK.ID()},
		{"corrupt published key", []Key{genKey(t, kek), corrupt}, nil, nil, corrupt.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRing(t, &memStore{})
			kid, jwks := r.KeyID(), r.JWKS()
			r.store = fakeStore{keys: func(context.Context) ([]Key, error) { return tt.keys, tt.err }}

			err := r.Reload(context.Background())
			require.ErrorContains(t, err, tt.wantMsg)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
			require.Equal(t, kid, r.KeyID())
			require.Equal(t, jwks, r.JWKS())
			token, err := r.Sign(TypeJWT, []byte("{}"))
			require.NoError(t, err)
			verify(t, r.JWKS(), token)
		})
	}
}

func TestRingConcurrentSignAndReload(t *testing.T) {
	kek := testKEK(t)
	s := &memStore{}
	r := newTestRing(t, s)
	s.keys = append(s.keys, keyWith(t, kek, StateNext, time.Time{}))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if _, err := r.Sign(TypeAccessToken, []byte("{}")); err != nil {
					t.Error(err)
					return
				}
				_ = r.JWKS()
			}
		})
	}
	for range 10 {
		require.NoError(t, r.Reload(context.Background()))
	}
	wg.Wait()
}

// benchPayload is a realistic access token payload.
var benchPayload = []byte(`{"iss":"https://sts.example.com","sub":"system:serviceaccount:payments:api",` +
	`"aud":["https://orders.example.com","https://billing.example.com"],"client_id":"payments-api",` +
	`"scope":"orders:read orders:write billing:read","act":{"sub":"spiffe://example.com/ns/ci/sa/deployer",` +
	`"iss":"https://token.actions.githubusercontent.com"},"may_act":{"sub":"ops"},` +
	`"iat":1748779200,"nbf":1748779200,"exp":1748782800,"jti":"5f0c3a4e-9b1d-4c1e-8a61-2f6d2b8c9e70"}`)

// BenchmarkSign measures the signing cost of one access token per
// algorithm (and RSA size), through Ring.SignWith as the exchange does.
func BenchmarkSign(b *testing.B) {
	for _, bc := range []struct {
		name, alg string
		bits      int
	}{
		{"ES256", "ES256", 0}, {"EdDSA", "EdDSA", 0},
		{"RS256-2048", "RS256", RSABits2048}, {"RS256-3072", "RS256", RSABits3072},
		{"PS256-2048", "PS256", RSABits2048}, {"PS256-3072", "PS256", RSABits3072},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := NewRing(&memStore{}, testKEK(b), RingOptions{Algorithm: bc.alg, RSABits: bc.bits, Now: func() time.Time { return testNow }})
			require.NoError(b, r.Init(context.Background()))
			b.ReportAllocs()
			b.SetBytes(int64(len(benchPayload)))
			for b.Loop() {
				if _, err := r.SignWith(bc.alg, TypeAccessToken, benchPayload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignES256 is the default Sign path the exchange takes.
func BenchmarkSignES256(b *testing.B) {
	r := newTestRing(b, &memStore{})
	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	for b.Loop() {
		if _, err := r.Sign(TypeAccessToken, benchPayload); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRingPublishesKeysItCannotOpen: a key of an algorithm this replica does
// not sign with, sealed under a KEK it lacks, is published but never
// freezes the ring; one of its own algorithms must open.
func TestRingPublishesKeysItCannotOpen(t *testing.T) {
	kek := testKEK(t)
	otherKEK, err := newKEK(bytes.Repeat([]byte{7}, kekSize))
	require.NoError(t, err)
	foreign, err := Generate("EdDSA", otherKEK, testNow)
	require.NoError(t, err)
	foreign.State, foreign.ActivatedAt = StateActive, testNow
	own := genKey(t, kek)
	r := NewRing(&memStore{keys: []Key{own, foreign}}, kek, RingOptions{Now: func() time.Time { return testNow }})
	require.NoError(t, r.Reload(context.Background()))
	require.Equal(t, own.ID, r.KeyID())
	require.ElementsMatch(t, []string{own.ID, foreign.ID}, kidsOf(t, r.JWKS()))
	_, err = r.SignWith("EdDSA", TypeJWT, []byte(`{}`))
	require.ErrorIs(t, err, ErrNoActiveKey)
}
