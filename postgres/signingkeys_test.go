package postgres_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/admin"
	"github.com/claimbridge/claimbridge/keys"
	"github.com/claimbridge/claimbridge/keys/keystest"
)

func fakeKey() (keys.Key, error) {
	b := make([]byte, 8)
	rand.Read(b)
	return keys.Key{
		ID:        hex.EncodeToString(b),
		Algorithm: "ES256",
		State:     keys.StateActive,
		PublicJWK: []byte(`{"kty":"EC","crv":"P-256","x":"x","y":"y"}`),
		Sealed:    []byte("sealed"),
		KEKID:     "kek-1",
	}, nil
}

func TestLifecycleStoreContract(t *testing.T) {
	t.Parallel()
	keystest.RunTests(t, func(t *testing.T) keys.LifecycleStore { return openStore(t, freshDatabase(t)) })
}

func TestEnsureActiveKeyConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, freshDatabase(t))
	const n = 8
	var generated atomic.Int32
	generate := func() (keys.Key, error) {
		generated.Add(1)
		return fakeKey()
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = s.EnsureActiveKey(ctx, generate) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "caller %d", i)
	}
	require.Equal(t, int32(1), generated.Load(), "only the first caller generates")

	list, err := s.Keys(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1, "exactly one key")
	k := list[0]
	require.Equal(t, keys.StateActive, k.State)
	require.False(t, k.CreatedAt.IsZero())
	require.False(t, k.ActivatedAt.IsZero(), "an active key has an activation time")
	require.True(t, k.RetiredAt.IsZero())
	require.JSONEq(t, `{"kty":"EC","crv":"P-256","x":"x","y":"y"}`, string(k.PublicJWK))
	require.Equal(t, []byte("sealed"), k.Sealed)
	require.Equal(t, "kek-1", k.KEKID)

	require.NoError(t, s.EnsureActiveKey(ctx, func() (keys.Key, error) {
		t.Fatal("generate must not be called while a key is active")
		return keys.Key{}, nil
	}))
}

func TestEnsureActiveKeyGenerateFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, freshDatabase(t))
	boom := errors.New("no entropy")
	err := s.EnsureActiveKey(ctx, func() (keys.Key, error) { return keys.Key{}, boom })
	require.ErrorIs(t, err, boom)
	list, err := s.Keys(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
}

func TestOneActiveAndOneNextKeyPerAlgorithmInSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, freshDatabase(t))
	require.NoError(t, s.EnsureActiveKey(ctx, fakeKey))
	insert := func(alg, state string) error {
		k, _ := fakeKey()
		_, err := s.Pool().Exec(ctx, `insert into signing_keys (kid, alg, state, public_jwk, sealed, kek_id)
			values ($1, $2, $3, '{}', '\x00', 'kek')`, k.ID, alg, state)
		return err
	}
	require.ErrorContains(t, insert("ES256", "active"), "signing_keys_one_active", "one active key per algorithm")
	require.NoError(t, insert("RS256", "active"), "another algorithm has its own active key")
	require.NoError(t, insert("ES256", "next"), "a next key may sit beside the active one")
	require.ErrorContains(t, insert("ES256", "next"), "signing_keys_one_next", "one next key per algorithm")
	require.NoError(t, insert("ES256", "retired"))
	require.NoError(t, insert("ES256", "retired"), "any number of retired keys")
	require.NoError(t, insert("ES256", "revoked"))
	require.ErrorContains(t, insert("ES256", "lost"), "signing_keys_state_check")
}

// secrets returns a private key's secret values in the encodings a row
// could show them in: raw bytes, hex (bytea's text form), base64.
func secrets(t *testing.T, priv crypto.Signer) [][]byte {
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
		out = append(out, r, []byte(hex.EncodeToString(r)),
			[]byte(base64.RawURLEncoding.EncodeToString(r)), []byte(base64.StdEncoding.EncodeToString(r)))
	}
	return out
}

// TestNoPrivateKeyInTheDatabase runs the lifecycle with every algorithm on
// Postgres and reads the raw rows, as a backup or a leaked dump would show
// them: no private scalar, exponent, prime or seed appears in any form.
func TestNoPrivateKeyInTheDatabase(t *testing.T) {
	t.Parallel()
	ctx := admin.WithActor(context.Background(), "token:0123abcd")
	s := openStore(t, freshDatabase(t))
	kek, err := keys.ParseKEK(hex.EncodeToString(bytes.Repeat([]byte{0x5a}, 32)))
	require.NoError(t, err)
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	r := keys.NewRing(s, kek, keys.RingOptions{Algorithms: []string{"RS256", "PS256", "EdDSA"}, RSABits: keys.RSABits3072, Now: clock})
	require.NoError(t, r.Init(ctx))
	_, err = r.Rotate(ctx, "")
	require.NoError(t, err)

	var leaks [][]byte
	stored, err := s.Keys(ctx)
	require.NoError(t, err)
	require.Len(t, stored, 8, "an active and a next key per algorithm")
	for _, k := range stored {
		priv, err := keys.Open(k, kek)
		require.NoError(t, err)
		leaks = append(leaks, secrets(t, priv)...)
	}
	now = now.Add(time.Hour)
	require.NoError(t, r.Check(ctx), "activate the next keys, retire the others")
	_, err = r.Revoke(ctx, r.KeyID(), "test")
	require.NoError(t, err)

	var dump bytes.Buffer
	rows, err := s.Pool().Query(ctx, "select row_to_json(k)::text, sealed from signing_keys k")
	require.NoError(t, err)
	for rows.Next() {
		var text string
		var sealed []byte
		require.NoError(t, rows.Scan(&text, &sealed))
		dump.WriteString(text)
		dump.Write(sealed)
	}
	require.NoError(t, rows.Err())
	var audit string
	require.NoError(t, s.Pool().QueryRow(ctx, "select coalesce(string_agg(row_to_json(a)::text, ''), '') from audit_log a").Scan(&audit))
	dump.WriteString(audit)
	require.Greater(t, dump.Len(), 1000)
	for _, leak := range leaks {
		require.False(t, bytes.Contains(dump.Bytes(), leak), "a private value is in the database in clear")
	}

	var wiped int
	require.NoError(t, s.Pool().QueryRow(ctx,
		"select count(*) from signing_keys where state in ('retired', 'removed', 'revoked') and octet_length(sealed) = 0 and kek_id = ''").Scan(&wiped))
	require.Equal(t, 5, wiped, "keys that can never sign again keep no private part: 4 retired, 1 revoked")
}

// TestKeyChangesAreAudited checks the audit entries of a rotation, an
// activation, a revoke and a rewrap.
func TestKeyChangesAreAudited(t *testing.T) {
	t.Parallel()
	ctx := admin.WithActor(context.Background(), "token:0123abcd")
	s := openStore(t, freshDatabase(t))
	kek, err := keys.ParseKEK(hex.EncodeToString(bytes.Repeat([]byte{1}, 32)))
	require.NoError(t, err)
	newKEK, err := keys.ParseKEK(hex.EncodeToString(bytes.Repeat([]byte{2}, 32)))
	require.NoError(t, err)
	r := keys.NewRing(s, kek, keys.RingOptions{})
	require.NoError(t, r.Init(context.Background()))
	first := r.KeyID()
	rot, err := r.Rotate(ctx, "")
	require.NoError(t, err)
	res, err := r.Revoke(ctx, first, "leaked")
	require.NoError(t, err)
	_, err = keys.Rewrap(ctx, s, newKEK, kek)
	require.NoError(t, err)

	type entry struct {
		Actor, Action, Name string
		Detail              struct{ Alg, Step, Detail string }
	}
	rows, err := s.Pool().Query(ctx, "select actor, action, name, detail from audit_log where kind = 'key' order by id")
	require.NoError(t, err)
	var got []entry
	for rows.Next() {
		var e entry
		var detail []byte
		require.NoError(t, rows.Scan(&e.Actor, &e.Action, &e.Name, &detail))
		require.NoError(t, json.Unmarshal(detail, &e.Detail))
		got = append(got, e)
	}
	require.NoError(t, rows.Err())
	require.Len(t, got, 6)
	want := []struct{ actor, action, name, step string }{
		{admin.SystemActor, "activate", first, "keys.schedule"},
		{"token:0123abcd", "rotate", rot[0].Key.ID, "keys.rotate"},
		{"token:0123abcd", "revoke", first, "keys.revoke"},
		{"token:0123abcd", "activate", res.Replacement.ID, "keys.revoke"},
		{"token:0123abcd", "rewrap", rot[0].Key.ID, "keys.rewrap"},
		{"token:0123abcd", "rewrap", res.Replacement.ID, "keys.rewrap"},
	}
	for i, w := range want {
		require.Equal(t, w.actor, got[i].Actor, "entry %d", i)
		require.Equal(t, w.action, got[i].Action, "entry %d", i)
		require.Equal(t, w.name, got[i].Name, "entry %d", i)
		require.Equal(t, w.step, got[i].Detail.Step, "entry %d", i)
		require.Equal(t, "ES256", got[i].Detail.Alg)
	}
	require.Equal(t, res.Consequence+" Reason given: leaked", got[2].Detail.Detail)
}

// TestTwoStoresRotateOnce has two stores (replicas) on one database rotate
// at once, many times: exactly one new key.
func TestTwoStoresRotateOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := freshDatabase(t)
	kek, err := keys.ParseKEK(hex.EncodeToString(bytes.Repeat([]byte{3}, 32)))
	require.NoError(t, err)
	var rings []*keys.Ring
	for range 2 {
		r := keys.NewRing(openStore(t, url), kek, keys.RingOptions{})
		require.NoError(t, r.Init(ctx))
		rings = append(rings, r)
	}
	require.Equal(t, rings[0].KeyID(), rings[1].KeyID())
	var created atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			rs, err := rings[i%2].Rotate(ctx, "")
			if err != nil {
				t.Error(err)
				return
			}
			if rs[0].Created {
				created.Add(1)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(1), created.Load())
	ks, err := rings[1].ListKeys(ctx)
	require.NoError(t, err)
	require.Len(t, ks, 2)
}
