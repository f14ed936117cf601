package keys

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

func newLog() (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// timelineSchedule rotates every 30h with a 1h lead and a 25h grace, so
// that one key's removal comes before its successor's successor.
func timelineSchedule() Schedule {
	s := testSchedule()
	s.RotationPeriod = 30 * time.Hour
	return s
}

// TestLifecycleTimeline walks one key through next → active → retired →
// removed with an injected clock, and checks that tokens minted before the
// rotation verify through the JWKS after it, until their key is removed.
func TestLifecycleTimeline(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	log, logs := newLog()
	sched := timelineSchedule()
	r, s := lifecycleRing(t, c, RingOptions{Schedule: sched, Logger: log})
	check := func() { t.Helper(); require.NoError(t, r.Check(ctx)) }
	t0 := testNow

	a := s.inState(StateActive)
	require.Len(t, a, 1, "bootstrap: one active key")
	first := a[0]
	require.Equal(t, []string{first.ID}, kidsOf(t, r.JWKS()))
	before, err := r.Sign(TypeAccessToken, []byte(`{"n":"before"}`))
	require.NoError(t, err)
	require.Equal(t, []Status{{Algorithm: "ES256", KeyID: first.ID, ActiveAge: 0, NextRotation: 30 * time.Hour}}, r.Status())

	// Just before the successor is due nothing happens.
	c.Advance(sched.RotationPeriod - sched.LeadTime - time.Second)
	check()
	require.Empty(t, s.inState(StateNext))

	// Publish: the successor is in the JWKS, not signing.
	c.Advance(time.Second)
	check()
	next := s.inState(StateNext)
	require.Len(t, next, 1)
	second := next[0]
	require.Equal(t, c.Now(), second.CreatedAt)
	require.Equal(t, c.Now().Add(sched.LeadTime), second.ActivatesAt)
	require.Equal(t, []string{first.ID, second.ID}, kidsOf(t, r.JWKS()))
	require.Equal(t, first.ID, r.KeyID(), "a next key does not sign")
	require.Equal(t, sched.LeadTime, r.Status()[0].NextRotation)
	require.Equal(t, 29*time.Hour, r.Status()[0].ActiveAge)

	// Not before the lead time has passed.
	c.Advance(sched.LeadTime - time.Second)
	check()
	require.Equal(t, first.ID, r.KeyID())

	// Activate: the successor signs, the old key retires and stays published.
	c.Advance(time.Second)
	check()
	require.Equal(t, second.ID, r.KeyID())
	old := s.inState(StateRetired)
	require.Len(t, old, 1)
	require.Equal(t, first.ID, old[0].ID)
	require.Equal(t, c.Now(), old[0].RetiredAt)
	require.Equal(t, c.Now().Add(sched.RetireGrace), old[0].RemoveAfter)
	require.Empty(t, old[0].Sealed, "a retired key keeps no private part")
	require.Empty(t, old[0].KEKID)
	step := s.commits[len(s.commits)-1]
	require.Equal(t, "keys.schedule", step.Action)
	require.Equal(t, []string{"retire", "activate"}, []string{step.Events[0].Action, step.Events[1].Action})
	require.Equal(t, []string{first.ID, second.ID}, []string{step.Events[0].KeyID, step.Events[1].KeyID})
	require.Equal(t, []string{second.ID, first.ID}, kidsOf(t, r.JWKS()))
	_, header := verify(t, r.JWKS(), before)
	require.Equal(t, first.ID, header["kid"], "a token minted before the rotation verifies after it")
	after, err := r.Sign(TypeAccessToken, []byte(`{"n":"after"}`))
	require.NoError(t, err)
	_, header = verify(t, r.JWKS(), after)
	require.Equal(t, second.ID, header["kid"])
	require.Equal(t, t0.Add(30*time.Hour), c.Now())

	// A warning one check before removal.
	logs.Reset()
	c.Advance(sched.RetireGrace - sched.CheckInterval)
	check()
	require.Contains(t, logs.String(), "level=WARN msg=\"signing key will be removed from the JWKS at the next check")
	require.Contains(t, logs.String(), "kid="+first.ID)
	require.Len(t, s.inState(StateRetired), 1)

	// Remove: gone from the JWKS, kept as a tombstone without secrets.
	c.Advance(sched.CheckInterval)
	check()
	require.Equal(t, []string{second.ID}, kidsOf(t, r.JWKS()))
	gone := s.inState(StateRemoved)
	require.Len(t, gone, 1)
	require.Equal(t, first.ID, gone[0].ID)
	require.Equal(t, c.Now(), gone[0].RemovedAt)
	require.Contains(t, logs.String(), "msg=\"signing key removed from the JWKS\"")

	// Nothing else is due: checks are idempotent.
	commits := len(s.commits)
	check()
	check()
	require.Len(t, s.commits, commits)
}

// TestMaxAgeNeverUnknownKid simulates verifiers that honour Cache-Control:
// they fetch the JWKS from a replica that learns of changes only at its
// periodic reload, and cache it for max-age. Every token either replica
// signs must carry a kid that every fresh cached copy knows, and every
// unexpired token's kid must stay published.
func TestMaxAgeNeverUnknownKid(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	sched := Schedule{
		RotationPeriod: 2 * time.Hour, LeadTime: 20 * time.Minute, JWKSMaxAge: 15 * time.Minute,
		MaxTokenLifetime: 10 * time.Minute, RetireGrace: 12 * time.Minute, CheckInterval: 2 * time.Minute,
	}
	require.NoError(t, sched.Validate())
	require.Equal(t, 10*time.Minute, sched.MaxAge(), "max-age is capped at half the lead time")
	leader, s := lifecycleRing(t, c, RingOptions{Schedule: sched})
	follower := NewRing(s, testKEK(t), RingOptions{Schedule: sched, Now: c.Now})
	require.NoError(t, follower.Reload(ctx))

	type cached struct {
		at   time.Time
		kids []string
	}
	type token struct {
		kid string
		exp time.Time
	}
	var caches []cached
	var tokens []token
	const step = 30 * time.Second
	rotations := 0
	for i := 0; c.Now().Before(testNow.Add(7 * time.Hour)); i++ {
		if i%2 == 0 {
			require.NoError(t, leader.Check(ctx))
		}
		// The follower reloads out of phase with the leader's checks, so
		// it lags by up to 1.5 minutes.
		if c.Now().Sub(testNow)%sched.CheckInterval == 90*time.Second {
			require.NoError(t, follower.Reload(ctx))
		}
		doc := kidsOf(t, follower.JWKS())
		caches = append(caches, cached{c.Now(), doc})
		for len(caches) > 0 && c.Now().Sub(caches[0].at) >= leader.MaxAge() {
			caches = caches[1:]
		}
		for _, r := range []*Ring{leader, follower} {
			kid := r.KeyID()
			if len(tokens) > 0 && tokens[len(tokens)-1].kid != kid {
				rotations++
			}
			tokens = append(tokens, token{kid, c.Now().Add(sched.MaxTokenLifetime)})
			for _, cc := range caches {
				require.Contains(t, cc.kids, kid, "at %s a verifier's copy fetched at %s does not know kid %s",
					c.Now().Sub(testNow), cc.at.Sub(testNow), kid)
			}
		}
		for _, tk := range tokens {
			if c.Now().Before(tk.exp) {
				require.Contains(t, doc, tk.kid, "at %s an unexpired token's key is no longer published", c.Now().Sub(testNow))
			}
		}
		c.Advance(step)
	}
	require.GreaterOrEqual(t, len(s.inState(StateRemoved)), 2, "the simulation covered several rotations")
	require.Positive(t, rotations)
}

func TestRotate(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	sched := testSchedule()
	r, s := lifecycleRing(t, c, RingOptions{Schedule: sched})
	active := s.inState(StateActive)[0]
	c.Advance(time.Hour)

	rs, err := r.Rotate(ctx, "")
	require.NoError(t, err)
	require.Len(t, rs, 1)
	require.True(t, rs[0].Created)
	require.Equal(t, active.ID, rs[0].Replaces)
	require.Equal(t, StateNext, rs[0].Key.State)
	require.Equal(t, c.Now().Add(sched.LeadTime), rs[0].Key.ActivatesAt, "planned: signs after the lead time")
	require.Nil(t, rs[0].Key.Sealed, "results carry public parts only")
	require.Equal(t, "keys.rotate", s.commits[len(s.commits)-1].Action)
	require.Equal(t, "rotate", s.commits[len(s.commits)-1].Events[0].Action)
	require.Contains(t, s.commits[len(s.commits)-1].Events[0].Detail, "after the lead time of 1h0m0s (JWKS max-age 5m0s)")

	again, err := r.Rotate(ctx, "ES256")
	require.NoError(t, err)
	require.False(t, again[0].Created, "a pending next key is kept")
	require.Equal(t, rs[0].Key.ID, again[0].Key.ID)
	require.Len(t, s.inState(StateNext), 1)

	c.Advance(sched.LeadTime - time.Second)
	require.NoError(t, r.Check(ctx))
	require.Equal(t, active.ID, r.KeyID(), "not before the lead time")
	c.Advance(time.Second)
	require.NoError(t, r.Check(ctx))
	require.Equal(t, rs[0].Key.ID, r.KeyID())

	_, err = r.Rotate(ctx, "RS256")
	require.ErrorIs(t, err, ErrUnsupportedAlgorithm, "only configured algorithms rotate")
}

// TestRotateConcurrentReplicas has two replicas rotate at once, many times:
// the lock lets exactly one new key through.
func TestRotateConcurrentReplicas(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	a, s := lifecycleRing(t, c, RingOptions{})
	b := NewRing(s, testKEK(t), RingOptions{Schedule: testSchedule(), Now: c.Now})
	require.NoError(t, b.Init(ctx))
	var wg sync.WaitGroup
	created := make(chan string, 20)
	for i := range 20 {
		r := []*Ring{a, b}[i%2]
		wg.Go(func() {
			rs, err := r.Rotate(ctx, "")
			if err != nil {
				t.Error(err)
				return
			}
			if rs[0].Created {
				created <- rs[0].Key.ID
			}
		})
	}
	wg.Wait()
	close(created)
	var kids []string
	for k := range created {
		kids = append(kids, k)
	}
	require.Len(t, kids, 1, "exactly one rotation created a key")
	require.Len(t, s.inState(StateNext), 1)
	require.Len(t, s.stored(), 2)
}

func TestRevoke(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		pick        func(s *memStore) string // the kid to revoke
		replacement bool
		consequence string
	}{
		{"active key", func(s *memStore) string { return s.inState(StateActive)[0].ID }, true, "Signing switched at once to the fresh key"},
		{"next key", func(s *memStore) string { return s.inState(StateNext)[0].ID }, false, "Signing is unaffected"},
		{"retired key", func(s *memStore) string { return s.inState(StateRetired)[0].ID }, false, "Signing is unaffected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			log, logs := newLog()
			r, s := lifecycleRing(t, c, RingOptions{Logger: log})
			// One retired, one active, one next key.
			_, err := r.Rotate(ctx, "")
			require.NoError(t, err)
			c.Advance(time.Hour)
			require.NoError(t, r.Check(ctx))
			_, err = r.Rotate(ctx, "")
			require.NoError(t, err)
			signedBefore, err := r.Sign(TypeJWT, []byte("{}"))
			require.NoError(t, err)

			kid := tt.pick(s)
			res, err := r.Revoke(ctx, kid, "key file found in a public bucket")
			require.NoError(t, err)
			require.Equal(t, kid, res.Revoked.ID)
			require.Equal(t, StateRevoked, res.Revoked.State)
			require.Equal(t, c.Now(), res.Revoked.RemovedAt)
			require.NotContains(t, kidsOf(t, r.JWKS()), kid, "removed from the JWKS at once")
			require.Contains(t, res.Consequence, kid)
			require.Contains(t, res.Consequence, "max-age 5m0s")
			require.Contains(t, res.Consequence, tt.consequence)
			for _, k := range s.stored() {
				if k.ID == kid {
					require.Empty(t, k.Sealed, "the revoked key's private part is wiped")
				}
			}
			commit := s.commits[len(s.commits)-1]
			require.Equal(t, "keys.revoke", commit.Action)
			require.Equal(t, Event{KeyID: kid, Algorithm: "ES256", Action: "revoke",
				Detail: res.Consequence + " Reason given: key file found in a public bucket"}, commit.Events[0])
			require.Contains(t, logs.String(), "level=WARN msg=\"signing key revoked\"")

			if tt.replacement {
				require.NotNil(t, res.Replacement)
				require.Equal(t, StateActive, res.Replacement.State)
				require.Equal(t, c.Now(), res.Replacement.ActivatedAt, "the fresh key signs at once")
				require.Equal(t, res.Replacement.ID, r.KeyID())
				require.Contains(t, kidsOf(t, r.JWKS()), res.Replacement.ID)
				require.Contains(t, res.Consequence, res.Replacement.ID)
				require.Len(t, commit.Events, 2)
				require.Equal(t, "activate", commit.Events[1].Action)
				require.Equal(t, res.Replacement.ID, commit.Events[1].KeyID)
				require.Contains(t, commit.Events[1].Detail, "in place of the revoked key "+kid)
				require.NotContains(t, kidsOf(t, r.JWKS()), tokenKID(t, signedBefore), "tokens of the revoked key no longer verify")
			} else {
				require.Nil(t, res.Replacement)
				require.Contains(t, kidsOf(t, r.JWKS()), tokenKID(t, signedBefore))
			}

			_, err = r.Revoke(ctx, kid, "")
			require.ErrorIs(t, err, ErrKeyGone)
			_, err = r.Revoke(ctx, "no-such-kid", "")
			require.ErrorIs(t, err, ErrKeyNotFound)
		})
	}
}

func tokenKID(t *testing.T, token string) string {
	t.Helper()
	jws, err := jose.ParseSignedCompact(token, allAlgorithms)
	require.NoError(t, err)
	return jws.Signatures[0].Protected.KeyID
}

func TestSeveralAlgorithms(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	sched := testSchedule()
	r, s := lifecycleRing(t, c, RingOptions{Algorithms: []string{"EdDSA", "ES256", "RS256"}})
	require.Equal(t, []string{"ES256", "EdDSA", "RS256"}, r.Algorithms())
	require.Len(t, s.inState(StateActive), 3, "an empty store gets every algorithm active at once")
	for _, alg := range r.Algorithms() {
		token, err := r.SignWith(alg, TypeAccessToken, []byte(`{}`))
		require.NoError(t, err, alg)
		_, header := verify(t, r.JWKS(), token)
		require.Equal(t, alg, header["alg"])
	}
	require.Equal(t, r.KeyID(), kidsOf(t, r.JWKS())[0], "the default key is listed first")
	require.Len(t, r.Status(), 3)

	// An algorithm added to a running cluster is announced before it signs.
	added := NewRing(s, testKEK(t), RingOptions{Algorithms: []string{"EdDSA", "RS256", "PS256"}, Schedule: sched, Now: c.Now})
	require.NoError(t, added.Init(ctx))
	require.Len(t, s.inState(StateNext), 1)
	_, err := added.SignWith("PS256", TypeJWT, []byte(`{}`))
	require.ErrorIs(t, err, ErrNoActiveKey)
	c.Advance(sched.LeadTime)
	require.NoError(t, added.Check(ctx))
	_, err = added.SignWith("PS256", TypeJWT, []byte(`{}`))
	require.NoError(t, err)

	// A replica configured for fewer algorithms leaves the others alone (in
	// a rolling deploy the replicas disagree); an operator retires one.
	fewer := NewRing(s, testKEK(t), RingOptions{Algorithms: []string{"PS256"}, Schedule: sched, Now: c.Now})
	require.NoError(t, fewer.Init(ctx))
	require.Empty(t, s.inState(StateRetired), "no algorithm is retired by the schedule")
	_, err = fewer.Retire(ctx, "PS256")
	require.ErrorContains(t, err, "configured here")
	_, err = fewer.Retire(ctx, "none")
	require.ErrorIs(t, err, ErrKeyNotFound)
	for _, alg := range []string{"EdDSA", "RS256"} {
		gone, err := fewer.Retire(ctx, alg)
		require.NoError(t, err)
		require.Len(t, gone, 1)
		require.Equal(t, StateRetired, gone[0].State)
	}
	var retired []string
	for _, k := range s.inState(StateRetired) {
		retired = append(retired, k.Algorithm)
		require.Empty(t, k.Sealed, "a retired key's private part is wiped")
	}
	require.ElementsMatch(t, []string{"EdDSA", "RS256"}, retired)
	require.Len(t, kidsOf(t, fewer.JWKS()), 4, "retired keys stay published (ES256, EdDSA, RS256, PS256)")
}

// TestDefaultAlgorithmSwitch changes the default algorithm of a running
// cluster: the old default signs until the new one is announced.
func TestDefaultAlgorithmSwitch(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	sched := testSchedule()
	old, s := lifecycleRing(t, c, RingOptions{})
	oldKID := old.KeyID()
	r := NewRing(s, testKEK(t), RingOptions{Algorithm: "EdDSA", Schedule: sched, Now: c.Now})
	require.NoError(t, r.Init(ctx))
	require.Equal(t, oldKID, r.KeyID(), "the ES256 key signs while the EdDSA key is announced")
	c.Advance(sched.LeadTime)
	require.NoError(t, r.Check(ctx))
	require.NotEqual(t, oldKID, r.KeyID())
	token, err := r.Sign(TypeJWT, []byte(`{}`))
	require.NoError(t, err)
	_, header := verify(t, r.JWKS(), token)
	require.Equal(t, "EdDSA", header["alg"])
	require.Equal(t, oldKID, s.inState(StateActive)[0].ID, "the old default stays until an operator retires it")
	_, err = r.Retire(ctx, "ES256")
	require.NoError(t, err)
	require.Equal(t, oldKID, s.inState(StateRetired)[0].ID)
}

func TestRunChecksPeriodically(t *testing.T) {
	c := newClock()
	sched := testSchedule()
	sched.CheckInterval = 5 * time.Millisecond
	r, s := lifecycleRing(t, c, RingOptions{Schedule: sched})
	c.Advance(sched.RotationPeriod)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	require.Eventually(t, func() bool { return len(s.inState(StateNext)) == 1 }, 5*time.Second, 5*time.Millisecond)
	cancel()
	<-done
}

// TestNoSecretsInLogsOrResults runs every lifecycle step with every
// algorithm and looks for private key material in the logs, the change
// descriptions and the results.
func TestNoSecretsInLogsOrResults(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	log, logs := newLog()
	r, s := lifecycleRing(t, c, RingOptions{Algorithms: []string{"RS256", "EdDSA"}, Logger: log})
	var leaks [][]byte
	collect := func() {
		for _, k := range s.stored() {
			if len(k.Sealed) > 0 {
				priv, err := Open(k, testKEK(t))
				require.NoError(t, err)
				leaks = append(leaks, secrets(t, priv)...)
			}
		}
	}
	rs, err := r.Rotate(ctx, "")
	require.NoError(t, err)
	collect()
	c.Advance(time.Hour)
	require.NoError(t, r.Check(ctx))
	collect()
	res, err := r.Revoke(ctx, r.KeyID(), "test")
	require.NoError(t, err)
	collect()
	c.Advance(48 * time.Hour)
	require.NoError(t, r.Check(ctx))
	listed, err := r.ListKeys(ctx)
	require.NoError(t, err)

	var text strings.Builder
	text.WriteString(logs.String())
	for _, cm := range s.commits {
		for _, e := range cm.Events {
			text.WriteString(e.Action + e.Detail)
		}
	}
	for _, k := range append(listed, res.Revoked, *res.Replacement, rs[0].Key) {
		require.Nil(t, k.Sealed)
	}
	require.NotEmpty(t, leaks)
	for _, leak := range leaks {
		require.NotContains(t, text.String(), string(leak))
	}
}
