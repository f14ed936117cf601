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

// fakeStore is a Store made of function fields.
type fakeStore struct {
	keys   func(ctx context.Context) ([]Key, error)
	ensure func(ctx context.Context, generate func() (Key, error)) error
}

var _ Store = fakeStore{}

func (s fakeStore) Keys(ctx context.Context) ([]Key, error) { return s.keys(ctx) }

func (s fakeStore) EnsureActiveKey(ctx context.Context, generate func() (Key, error)) error {
	return s.ensure(ctx, generate)
}

// memStore is a fakeStore over a slice, honouring EnsureActiveKey's contract.
func memStore(keys *[]Key) fakeStore {
	var mu sync.Mutex
	return fakeStore{
		keys: func(context.Context) ([]Key, error) {
			mu.Lock()
			defer mu.Unlock()
			return append([]Key(nil), *keys...), nil
		},
		ensure: func(_ context.Context, generate func() (Key, error)) error {
			mu.Lock()
			defer mu.Unlock()
			for _, k := range *keys {
				if k.State == StateActive {
					return nil
				}
			}
			k, err := generate()
			if err != nil {
				return err
			}
			*keys = append(*keys, k)
			return nil
		},
	}
}

// keyWith generates a key and sets its state and activation time.
func keyWith(t testing.TB, kek *KEK, state string, activated time.Time) Key {
	t.Helper()
	k := generate(t, kek)
	k.State, k.ActivatedAt = state, activated
	return k
}

// verify checks token against the JWKS document and returns its payload
// and protected header members.
func verify(t *testing.T, jwks []byte, token string) ([]byte, map[string]any) {
	t.Helper()
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
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

func newTestRing(t testing.TB, keys *[]Key) *Ring {
	t.Helper()
	r := NewRing(memStore(keys), testKEK(t), RingOptions{Now: func() time.Time { return testNow }})
	require.NoError(t, r.Init(context.Background()))
	return r
}

func TestRingInitGeneratesAndSigns(t *testing.T) {
	var stored []Key
	r := newTestRing(t, &stored)
	require.Len(t, stored, 1, "Init generates a key into an empty store")
	require.Equal(t, StateActive, stored[0].State)
	require.Equal(t, testNow, stored[0].CreatedAt, "the injected clock dates the key")
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

func TestRingInitKeepsExistingActiveKey(t *testing.T) {
	kek := testKEK(t)
	existing := generate(t, kek)
	stored := []Key{existing}
	generated := false
	store := memStore(&stored)
	ensure := store.ensure
	store.ensure = func(ctx context.Context, gen func() (Key, error)) error {
		return ensure(ctx, func() (Key, error) { generated = true; return gen() })
	}
	r := NewRing(store, kek, RingOptions{JWKSMaxAge: time.Hour})
	require.NoError(t, r.Init(context.Background()))
	require.False(t, generated)
	require.Equal(t, existing.ID, r.KeyID())
	require.Equal(t, time.Hour, r.MaxAge())
}

func TestRingInitErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		ring    *Ring
		wantIs  error
		wantMsg string
	}{
		{"ensure fails", NewRing(fakeStore{ensure: func(context.Context, func() (Key, error)) error { return boom }}, testKEK(t), RingOptions{}), boom, "ensure an active signing key"},
		{"unsupported algorithm", NewRing(memStore(new([]Key)), testKEK(t), RingOptions{Algorithm: "HS256"}), ErrUnsupportedAlgorithm, "HS256"},
		{"no KEK", NewRing(memStore(new([]Key)), nil, RingOptions{}), nil, "needs a store and a KEK"},
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
		})
	}
}

func TestRingSignErrors(t *testing.T) {
	r := NewRing(memStore(new([]Key)), testKEK(t), RingOptions{})
	_, err := r.Sign(TypeJWT, []byte("{}"))
	require.ErrorIs(t, err, errNotLoaded, "signing before Init")

	r = newTestRing(t, new([]Key))
	for _, typ := range []string{"", "jwt", "at+JWT", "application/at+jwt", "JOSE"} {
		_, err := r.Sign(typ, []byte("{}"))
		require.ErrorContains(t, err, "unsupported typ", typ)
	}
}

func TestRingJWKS(t *testing.T) {
	kek := testKEK(t)
	next := keyWith(t, kek, StateNext, time.Time{})
	active := keyWith(t, kek, StateActive, testNow)
	retired := keyWith(t, kek, StateRetired, testNow.Add(-time.Hour))
	unknown := keyWith(t, kek, "removed", testNow)
	stored := []Key{retired, unknown, next, active, active}
	r := newTestRing(t, &stored)

	var doc struct {
		Keys []map[string]any `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(r.JWKS(), &doc))
	var kids []string
	for _, k := range doc.Keys {
		kids = append(kids, k["kid"].(string))
		require.Equal(t, "ES256", k["alg"])
		require.Equal(t, "sig", k["use"])
		for member := range k {
			require.Contains(t, []string{"kty", "crv", "x", "y", "kid", "alg", "use"}, member, "only public members")
		}
	}
	require.Equal(t, []string{active.ID, retired.ID, next.ID}, kids, "active first, each key once, no unknown state")
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
			r := newTestRing(t, &tt.keys)
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
	var stored []Key
	r := newTestRing(t, &stored)
	oldToken, err := r.Sign(TypeAccessToken, []byte(`{"n":1}`))
	require.NoError(t, err)
	oldKID := r.KeyID()

	stored[0].State, stored[0].RetiredAt = StateRetired, testNow
	stored = append(stored, keyWith(t, kek, StateActive, testNow))
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
		{"active key under another KEK", []Key{generate(t, otherKEK)}, nil, ErrWrongKEK, otherKEK.ID()},
		{"corrupt published key", []Key{generate(t, kek), corrupt}, nil, nil, corrupt.ID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stored []Key
			r := newTestRing(t, &stored)
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
	var stored []Key
	r := newTestRing(t, &stored)
	stored = append(stored, keyWith(t, kek, StateNext, time.Time{}))
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

func BenchmarkSignES256(b *testing.B) {
	r := newTestRing(b, new([]Key))
	payload := []byte(`{"iss":"https://sts.example.com","sub":"system:serviceaccount:payments:api",` +
		`"aud":["https://orders.example.com","https://billing.example.com"],"client_id":"payments-api",` +
		`"scope":"orders:read orders:write billing:read","act":{"sub":"spiffe://example.com/ns/ci/sa/deployer",` +
		`"iss":"https://token.actions.githubusercontent.com"},"may_act":{"sub":"ops"},` +
		`"iat":1748779200,"nbf":1748779200,"exp":1748782800,"jti":"5f0c3a4e-9b1d-4c1e-8a61-2f6d2b8c9e70"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := r.Sign(TypeAccessToken, payload); err != nil {
			b.Fatal(err)
		}
	}
}
