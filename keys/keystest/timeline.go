package keystest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/claimbridge/claimbridge/keys"
)

// clock is an injected clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testTimeline runs a key through next → active → retired → removed on the
// store with two rings (replicas) and an injected clock: a token minted
// before the rotation verifies through the JWKS after it.
func testTimeline(t *testing.T, s keys.LifecycleStore) {
	ctx := context.Background()
	c := &clock{t: start}
	kek := newKEK(t)
	sched := keys.Schedule{RotationPeriod: 30 * time.Hour, LeadTime: time.Hour, RetireGrace: 25 * time.Hour, CheckInterval: time.Minute}
	a := keys.NewRing(s, kek, keys.RingOptions{Schedule: sched, Now: c.Now})
	b := keys.NewRing(s, kek, keys.RingOptions{Schedule: sched, Now: c.Now})
	must(t, a.Init(ctx))
	must(t, b.Init(ctx))
	first := a.KeyID()
	if b.KeyID() != first || len(mustKeys(t, s)) != 1 {
		t.Fatalf("replicas starting together agree on one key: %q, %q, %d keys", first, b.KeyID(), len(mustKeys(t, s)))
	}
	token, err := b.Sign(keys.TypeAccessToken, []byte(`{"n":1}`))
	must(t, err)

	c.advance(29 * time.Hour)
	must(t, a.Check(ctx))
	must(t, b.Check(ctx))
	states := stateOf(t, s)
	if len(states) != 2 || states[first] != keys.StateActive {
		t.Fatalf("after 29h: %v, want the first key active and a next key", states)
	}
	must(t, b.Reload(ctx))
	if kids := jwksKIDs(t, b.JWKS()); len(kids) != 2 {
		t.Fatalf("the other replica publishes %v, want both keys", kids)
	}

	c.advance(time.Hour)
	must(t, b.Check(ctx))
	must(t, a.Reload(ctx))
	if a.KeyID() == first || stateOf(t, s)[first] != keys.StateRetired {
		t.Fatalf("after 30h the next key signs and the first is retired: %v", stateOf(t, s))
	}
	verifies(t, a.JWKS(), token, true)

	c.advance(25 * time.Hour)
	must(t, a.Check(ctx))
	must(t, b.Reload(ctx))
	if stateOf(t, s)[first] != keys.StateRemoved {
		t.Fatalf("after the grace the first key is removed: %v", stateOf(t, s))
	}
	verifies(t, b.JWKS(), token, false)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func stateOf(t *testing.T, s keys.LifecycleStore) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, k := range mustKeys(t, s) {
		m[k.ID] = k.State
	}
	return m
}

func jwksKIDs(t *testing.T, doc []byte) []string {
	t.Helper()
	var set jose.JSONWebKeySet
	must(t, json.Unmarshal(doc, &set))
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

// verifies checks whether token verifies through the JWKS document.
func verifies(t *testing.T, doc []byte, token string, want bool) {
	t.Helper()
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	must(t, err)
	var set jose.JSONWebKeySet
	must(t, json.Unmarshal(doc, &set))
	kid := jws.Signatures[0].Protected.KeyID
	found := set.Key(kid)
	ok := len(found) == 1
	if ok {
		_, err := jws.Verify(found[0])
		ok = err == nil
	}
	if ok != want {
		t.Fatalf("token of %s verifies: %v, want %v (published: %v)", kid, ok, want, jwksKIDs(t, doc))
	}
}
