// Package keystest is the contract of keys.LifecycleStore: RunTests checks
// an implementation against it, with a real keys.Ring and an injected
// clock. It is test support only and imports nothing but keys and the
// standard library's testing.
package keystest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claimbridge/claimbridge/keys"
)

// start is the injected clock's origin, at microsecond precision.
var start = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// RunTests runs the contract against stores newStore makes, one empty
// store per subtest.
func RunTests(t *testing.T, newStore func(t *testing.T) keys.LifecycleStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s keys.LifecycleStore)
	}{
		{"round trip", testRoundTrip},
		{"failed plan writes nothing", testFailedPlan},
		{"unknown update fails", testUnknownUpdate},
		{"duplicate insert fails", testDuplicateInsert},
		{"concurrent updates serialize", testConcurrent},
		{"timeline", testTimeline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore(t)) })
	}
}

func newKEK(t *testing.T) *keys.KEK {
	t.Helper()
	raw := make([]byte, 32)
	rand.Read(raw)
	k, err := keys.ParseKEK(hex.EncodeToString(raw))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newKey(t *testing.T, kek *keys.KEK) keys.Key {
	t.Helper()
	k, err := keys.Generate(keys.DefaultAlgorithm, kek, start)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustKeys(t *testing.T, s keys.LifecycleStore) []keys.Key {
	t.Helper()
	ks, err := s.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func insert(ks ...keys.Key) func([]keys.Key) (keys.Changes, error) {
	return func([]keys.Key) (keys.Changes, error) { return keys.Changes{Insert: ks, Action: "test"}, nil }
}

func testRoundTrip(t *testing.T, s keys.LifecycleStore) {
	ctx := context.Background()
	if ks := mustKeys(t, s); len(ks) != 0 {
		t.Fatalf("a new store holds %d keys", len(ks))
	}
	kek := newKEK(t)
	a, b := newKey(t, kek), newKey(t, kek)
	b.State, b.ActivatedAt, b.ActivatesAt = keys.StateNext, time.Time{}, start.Add(time.Hour+time.Microsecond)
	if err := s.UpdateKeys(ctx, insert(a, b)); err != nil {
		t.Fatal(err)
	}
	got := mustKeys(t, s)
	if len(got) != 2 || !equal(got[0], a) && !equal(got[1], a) {
		t.Fatalf("stored %+v, want %+v and %+v", got, a.Public(), b.Public())
	}

	a.State, a.RetiredAt, a.RemoveAfter = keys.StateRetired, start.Add(time.Hour), start.Add(25*time.Hour)
	a.Sealed, a.KEKID = []byte{}, ""
	a.RemovedAt = start.Add(26 * time.Hour)
	err := s.UpdateKeys(ctx, func(cur []keys.Key) (keys.Changes, error) {
		if len(cur) != 2 {
			t.Errorf("plan sees %d keys, want 2", len(cur))
		}
		return keys.Changes{Update: []keys.Key{a}, Action: "test"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range mustKeys(t, s) {
		want := map[string]keys.Key{a.ID: a, b.ID: b}[k.ID]
		if !equal(k, want) {
			t.Errorf("stored %+v\nwant    %+v", k.Public(), want.Public())
		}
	}
}

// equal compares keys field by field, treating nil and empty bytes alike.
func equal(a, b keys.Key) bool {
	return a.ID == b.ID && a.Algorithm == b.Algorithm && a.State == b.State && string(a.Sealed) == string(b.Sealed) &&
		a.KEKID == b.KEKID && a.CreatedAt.Equal(b.CreatedAt) && a.ActivatesAt.Equal(b.ActivatesAt) &&
		a.ActivatedAt.Equal(b.ActivatedAt) && a.RetiredAt.Equal(b.RetiredAt) && a.RemoveAfter.Equal(b.RemoveAfter) &&
		a.RemovedAt.Equal(b.RemovedAt) && len(a.PublicJWK) > 0 && len(b.PublicJWK) > 0
}

func testFailedPlan(t *testing.T, s keys.LifecycleStore) {
	boom := errors.New("boom")
	err := s.UpdateKeys(context.Background(), func([]keys.Key) (keys.Changes, error) {
		return keys.Changes{Insert: []keys.Key{newKey(t, newKEK(t))}}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateKeys = %v, want the plan's error", err)
	}
	if ks := mustKeys(t, s); len(ks) != 0 {
		t.Fatalf("a failed plan wrote %d keys", len(ks))
	}
}

func testUnknownUpdate(t *testing.T, s keys.LifecycleStore) {
	k := newKey(t, newKEK(t))
	err := s.UpdateKeys(context.Background(), func([]keys.Key) (keys.Changes, error) {
		return keys.Changes{Update: []keys.Key{k}}, nil
	})
	if !errors.Is(err, keys.ErrKeyNotFound) {
		t.Fatalf("updating an unknown key = %v, want keys.ErrKeyNotFound", err)
	}
}

func testDuplicateInsert(t *testing.T, s keys.LifecycleStore) {
	ctx := context.Background()
	kek := newKEK(t)
	k, other := newKey(t, kek), newKey(t, kek)
	if err := s.UpdateKeys(ctx, insert(k)); err != nil {
		t.Fatal(err)
	}
	other.State = keys.StateNext
	if err := s.UpdateKeys(ctx, insert(other, k)); err == nil {
		t.Fatal("inserting a kid twice succeeded")
	}
	if ks := mustKeys(t, s); len(ks) != 1 {
		t.Fatalf("a failed transaction left %d keys, want 1", len(ks))
	}
}

// testConcurrent has many callers insert a next key unless one exists: the
// store's lock must let exactly one through.
func testConcurrent(t *testing.T, s keys.LifecycleStore) {
	kek := newKEK(t)
	var inserted atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			err := s.UpdateKeys(context.Background(), func(cur []keys.Key) (keys.Changes, error) {
				if slices.ContainsFunc(cur, func(k keys.Key) bool { return k.State == keys.StateNext }) {
					return keys.Changes{}, nil
				}
				k := newKey(t, kek)
				k.State, k.ActivatedAt = keys.StateNext, time.Time{}
				inserted.Add(1)
				return keys.Changes{Insert: []keys.Key{k}}, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(mustKeys(t, s)); n != 1 || inserted.Load() != 1 {
		t.Fatalf("%d keys stored, %d inserted: want exactly one", n, inserted.Load())
	}
}
