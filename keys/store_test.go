package keys

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// memStore is a LifecycleStore over a slice; its mutex plays the
// cluster-wide lock.
type memStore struct {
	mu      sync.Mutex
	keys    []Key
	commits []Changes // every non-empty change written
}

var _ LifecycleStore = (*memStore)(nil)

func (s *memStore) Keys(context.Context) ([]Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys), nil
}

func (s *memStore) EnsureActiveKey(_ context.Context, generate func() (Key, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.ContainsFunc(s.keys, func(k Key) bool { return k.State == StateActive }) {
		return nil
	}
	k, err := generate()
	if err != nil {
		return err
	}
	s.keys = append(s.keys, k)
	return nil
}

func (s *memStore) UpdateKeys(_ context.Context, plan func([]Key) (Changes, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := plan(slices.Clone(s.keys))
	if err != nil || c.Empty() {
		return err
	}
	for _, u := range c.Update {
		i := slices.IndexFunc(s.keys, func(k Key) bool { return k.ID == u.ID })
		if i < 0 {
			panic("update of an unknown key " + u.ID)
		}
		s.keys[i] = u
	}
	s.keys = append(s.keys, c.Insert...)
	s.commits = append(s.commits, c)
	return nil
}

// stored returns the keys, and byState the kids in each state.
func (s *memStore) stored() []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys)
}

func (s *memStore) inState(state string) []Key {
	var out []Key
	for _, k := range s.stored() {
		if k.State == state {
			out = append(out, k)
		}
	}
	return out
}

// signOnly hides UpdateKeys: a plain Store, as older adapters have.
type signOnly struct{ Store }

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

// clock is an injected clock that tests advance.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: testNow} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testSchedule is a short schedule: rotation every 10h, 1h lead, 25h grace.
func testSchedule() Schedule {
	return Schedule{
		RotationPeriod: 10 * time.Hour, LeadTime: time.Hour, RetireGrace: 25 * time.Hour,
		JWKSMaxAge: 5 * time.Minute, MaxTokenLifetime: 24 * time.Hour,
		CheckInterval: time.Minute,
	}
}

// lifecycleRing returns an initialized ring over a fresh memStore with the
// test schedule, the clock and opts' algorithms.
func lifecycleRing(t testing.TB, c *clock, opts RingOptions) (*Ring, *memStore) {
	t.Helper()
	s := &memStore{}
	if opts.Schedule == (Schedule{}) {
		opts.Schedule = testSchedule()
	}
	opts.Now = c.Now
	r := NewRing(s, testKEK(t), opts)
	require.NoError(t, r.Init(context.Background()))
	return r, s
}
