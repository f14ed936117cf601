package keys

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func otherKEK(t testing.TB, b byte) *KEK {
	t.Helper()
	k, err := newKEK(bytes.Repeat([]byte{b}, kekSize))
	require.NoError(t, err)
	return k
}

// oldStore holds an active, a next, a retired (still sealed, as rows of the
// first schema are) and a removed key, all sealed under old.
func oldStore(t *testing.T, old *KEK) *memStore {
	t.Helper()
	active := keyWith(t, old, StateActive, testNow)
	next := keyWith(t, old, StateNext, time.Time{})
	retired := keyWith(t, old, StateRetired, testNow.Add(-time.Hour))
	removed := keyWith(t, old, StateRemoved, testNow.Add(-time.Hour))
	removed.wipe()
	return &memStore{keys: []Key{active, next, retired, removed}}
}

func TestRewrap(t *testing.T) {
	ctx := context.Background()
	old, cur := otherKEK(t, 1), otherKEK(t, 2)
	s := oldStore(t, old)
	before := s.stored()

	// During the switch, serve opens keys under either KEK.
	both := NewRing(s, cur, RingOptions{OldKEK: old, Now: func() time.Time { return testNow }})
	require.NoError(t, both.Init(ctx))
	signed, err := both.Sign(TypeJWT, []byte(`{}`))
	require.NoError(t, err)

	res, err := Rewrap(ctx, s, cur, old)
	require.NoError(t, err)
	require.Equal(t, cur.ID(), res.KEKID)
	require.Equal(t, []string{before[0].ID, before[1].ID, before[2].ID}, res.Rewrapped)
	require.Equal(t, 1, res.Unchanged, "the removed key holds nothing to rewrap")
	commit := s.commits[len(s.commits)-1]
	require.Equal(t, "keys.rewrap", commit.Action)
	require.Len(t, commit.Events, 3)
	require.Equal(t, Event{KeyID: before[0].ID, Algorithm: "ES256", Action: "rewrap",
		Detail: "Private key re-sealed under KEK " + cur.ID() + " (was " + old.ID() + ")."}, commit.Events[0])

	for i, k := range s.stored()[:3] {
		require.Equal(t, cur.ID(), k.KEKID)
		require.NotEqual(t, before[i].Sealed, k.Sealed)
		_, err := Open(k, cur)
		require.NoError(t, err, "opens under the new KEK alone")
		_, err = Open(k, old)
		require.ErrorIs(t, err, ErrWrongKEK)
	}

	// After the switch the new KEK alone serves, with the same keys.
	only := NewRing(s, cur, RingOptions{Now: func() time.Time { return testNow }})
	require.NoError(t, only.Init(ctx))
	require.Equal(t, both.KeyID(), only.KeyID())
	verify(t, only.JWKS(), signed)
	require.NoError(t, both.Reload(ctx), "a replica still configured with both KEKs reloads fine")

	again, err := Rewrap(ctx, s, cur, old)
	require.NoError(t, err)
	require.Empty(t, again.Rewrapped, "rewrap is idempotent")
	require.Equal(t, 4, again.Unchanged)
}

func TestRewrapAllOrNothing(t *testing.T) {
	ctx := context.Background()
	old, cur, lost := otherKEK(t, 1), otherKEK(t, 2), otherKEK(t, 3)
	s := oldStore(t, old)
	s.keys = append(s.keys, keyWith(t, lost, StateNext, time.Time{}))
	before := s.stored()

	_, err := Rewrap(ctx, s, cur, old)
	require.ErrorIs(t, err, ErrWrongKEK)
	require.ErrorContains(t, err, lost.ID())
	require.Equal(t, before, s.stored(), "no key moved")
	require.Empty(t, s.commits)
}

func TestStartFailsWithWrongKEK(t *testing.T) {
	ctx := context.Background()
	old, cur := otherKEK(t, 1), otherKEK(t, 2)
	s := oldStore(t, old)
	r := NewRing(s, cur, RingOptions{Now: func() time.Time { return testNow }})
	err := r.Init(ctx)
	require.ErrorIs(t, err, ErrWrongKEK)
	require.ErrorContains(t, err, old.ID())
	require.ErrorContains(t, err, "configure the KEK it was sealed with")
	require.Len(t, s.stored(), 4, "no key generated")
	require.Empty(t, r.KeyID())
}
