package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/keys"
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

func TestOnlyOneActiveKeyInSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := freshDatabase(t)
	s := openStore(t, url)
	require.NoError(t, s.EnsureActiveKey(ctx, fakeKey))
	k, _ := fakeKey()
	_, err := s.Pool().Exec(ctx, `insert into signing_keys (kid, alg, state, public_jwk, sealed, kek_id)
		values ($1, 'ES256', 'active', '{}', '\x00', 'kek')`, k.ID)
	require.ErrorContains(t, err, "signing_keys_one_active", "the partial unique index allows one active key")
	_, err = s.Pool().Exec(ctx, `insert into signing_keys (kid, alg, state, public_jwk, sealed, kek_id)
		values ($1, 'ES256', 'next', '{}', '\x00', 'kek')`, k.ID)
	require.NoError(t, err, "a next key may sit beside the active one")
}
