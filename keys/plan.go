package keys

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// event is something a lifecycle step did or foresees; the Ring logs it
// once the step is committed.
type event struct {
	level slog.Level
	msg   string
	key   Key
	// verb and detail make the audit Event of a change; verb is empty for
	// what changes nothing (a warning).
	verb, detail string
}

// planner decides lifecycle steps over the stored keys. It is pure except
// for key generation, and every time comes from now.
type planner struct {
	sched Schedule
	algs  []string // configured algorithms, the default first
	now   time.Time
	// gen returns a fresh key of alg, sealed and created at now, no state.
	gen func(alg string) (Key, error)
}

// step accumulates a plan: the working set of keys, the changes to write
// and the events to log.
type step struct {
	p       *planner
	keys    []Key // the working set, changed in place
	added   map[string]bool
	changed map[string]bool
	events  []event
}

func (p *planner) begin(ks []Key) *step {
	return &step{p: p, keys: slices.Clone(ks), added: map[string]bool{}, changed: map[string]bool{}}
}

// find returns the key of alg in state, or nil.
func (s *step) find(alg, state string) *Key {
	for i := range s.keys {
		if k := &s.keys[i]; k.Algorithm == alg && k.State == state {
			return k
		}
	}
	return nil
}

func (s *step) byID(kid string) *Key {
	for i := range s.keys {
		if s.keys[i].ID == kid {
			return &s.keys[i]
		}
	}
	return nil
}

func (s *step) anyActive() bool {
	return slices.ContainsFunc(s.keys, func(k Key) bool { return k.State == StateActive })
}

// note records an event about k: verb and detail for the audit log (none
// for a mere warning), msg for the log.
func (s *step) note(level slog.Level, msg string, k Key, verb, detail string) {
	s.events = append(s.events, event{level: level, msg: msg, key: k.Public(), verb: verb, detail: detail})
}

// explain replaces the detail of kid's event of verb.
func (s *step) explain(kid, verb, detail string) {
	for i := range s.events {
		if e := &s.events[i]; e.key.ID == kid && e.verb == verb {
			e.detail = detail
		}
	}
}

// add generates a key of alg: active at once, or next (published now,
// signing after the lead time).
func (s *step) add(alg string, active bool) (*Key, error) {
	k, err := s.p.gen(alg)
	if err != nil {
		return nil, err
	}
	if active {
		k.State, k.ActivatedAt = StateActive, s.p.now
		s.note(slog.LevelInfo, "signing key created and active at once", k, "activate",
			"Created, published and signing at once: no key of this algorithm could sign.")
	} else {
		k.State, k.ActivatesAt = StateNext, s.p.now.Add(s.p.sched.LeadTime)
		s.note(slog.LevelInfo, "signing key published; it signs after the lead time", k, "publish",
			fmt.Sprintf("Published in the JWKS; signs from %s, after the lead time of %s (JWKS max-age %s).",
				k.ActivatesAt.Format(time.RFC3339), s.p.sched.LeadTime, s.p.sched.MaxAge()))
	}
	s.keys = append(s.keys, k)
	s.added[k.ID] = true
	return &s.keys[len(s.keys)-1], nil
}

func (s *step) activate(k *Key) {
	k.State, k.ActivatedAt = StateActive, s.p.now
	s.changed[k.ID] = true
	s.note(slog.LevelInfo, "signing key activated", *k, "activate",
		fmt.Sprintf("Signing from now; published since %s.", k.CreatedAt.Format(time.RFC3339)))
}

func (s *step) retire(k *Key) {
	k.State, k.RetiredAt, k.RemoveAfter = StateRetired, s.p.now, s.p.now.Add(s.p.sched.RetireGrace)
	k.wipe()
	s.changed[k.ID] = true
	s.note(slog.LevelInfo, "signing key retired; published until every token it signed has expired", *k, "retire",
		fmt.Sprintf("Stopped signing; its private key is wiped. Stays published until %s, when every token it signed has expired.",
			k.RemoveAfter.Format(time.RFC3339)))
}

func (s *step) remove(k *Key, state string) {
	k.State, k.RemovedAt = state, s.p.now
	k.wipe()
	s.changed[k.ID] = true
	if state == StateRevoked {
		s.note(slog.LevelInfo, "signing key revoked: removed from the JWKS at once", *k, "revoke", "Revoked.")
		return
	}
	s.note(slog.LevelInfo, "signing key removed from the JWKS", *k, "remove",
		"Removed from the JWKS: every token it signed has expired.")
}

// changes returns what the step writes.
func (s *step) changes(action string) Changes {
	c := Changes{Action: action}
	for _, k := range s.keys {
		switch {
		case s.added[k.ID]:
			c.Insert = append(c.Insert, k)
		case s.changed[k.ID]:
			c.Update = append(c.Update, k)
		}
	}
	for _, e := range s.events {
		if e.verb != "" {
			c.Events = append(c.Events, Event{KeyID: e.key.ID, Algorithm: e.key.Algorithm, Action: e.verb, Detail: e.detail})
		}
	}
	return c
}

// schedule is the periodic step: it gives every configured algorithm an
// active key (at once only when nothing at all could sign, otherwise
// through a published next key), publishes a successor when an active key
// nears the end of its period, activates a next key once its lead time has
// passed (retiring its predecessor), retires active keys of algorithms no
// longer configured, and removes retired keys whose tokens have all expired.
func (p *planner) schedule(ks []Key) (*step, error) {
	s := p.begin(ks)
	bootstrap := !s.anyActive()
	for _, alg := range p.algs {
		a, n := s.find(alg, StateActive), s.find(alg, StateNext)
		switch {
		case n != nil && !p.now.Before(p.sched.activationTime(*n)):
			if a != nil {
				s.retire(a)
			}
			s.activate(n)
		case a == nil && n == nil:
			if _, err := s.add(alg, bootstrap); err != nil {
				return nil, err
			}
		case a != nil && n == nil && !p.now.Before(p.sched.successorDue(*a)):
			if _, err := s.add(alg, false); err != nil {
				return nil, err
			}
		}
	}
	// An active key of an algorithm this replica is not configured for is
	// left alone: during a rolling deploy that adds or drops an algorithm,
	// replicas disagree, and retiring would fight the replicas that use it.
	// An algorithm is dropped by revoking its key (keys revoke).
	p.expire(s)
	return s, nil
}

// expire removes retired keys past their removal time and warns about
// those that will be removed before the next check.
func (p *planner) expire(s *step) {
	for i := range s.keys {
		k := &s.keys[i]
		if k.State != StateRetired || s.changed[k.ID] || (k.RetiredAt.IsZero() && k.RemoveAfter.IsZero()) {
			continue // a retired key without dates is kept: nothing says its tokens have expired
		}
		at := p.sched.removalTime(*k)
		switch {
		case !p.now.Before(at):
			s.remove(k, StateRemoved)
		case at.Sub(p.now) <= p.sched.CheckInterval:
			s.note(slog.LevelWarn, "signing key will be removed from the JWKS at the next check; tokens it signed stop verifying then", *k, "", "")
		}
	}
}

// Rotation is the outcome of a planned rotation for one algorithm.
type Rotation struct {
	// Key is the next key, public parts only: published now (or earlier,
	// when Created is false) and signing from Key.ActivatesAt.
	Key Key
	// Created is false when a next key was already pending and was kept.
	Created bool
	// Replaces is the kid of the active key it will retire, if any.
	Replaces string
	// Detail explains the plan in a sentence or two.
	Detail string
}

// rotate publishes a next key for each of algs that has none; the
// schedule activates it after the lead time.
func (p *planner) rotate(ks []Key, algs []string) (*step, []Rotation, error) {
	s := p.begin(ks)
	var out []Rotation
	for _, alg := range algs {
		r := Rotation{}
		if a := s.find(alg, StateActive); a != nil {
			r.Replaces = a.ID
		}
		n := s.find(alg, StateNext)
		if n == nil {
			var err error
			if n, err = s.add(alg, false); err != nil {
				return nil, nil, err
			}
			r.Created = true
			s.events[len(s.events)-1].verb = "rotate"
		}
		r.Key = n.Public()
		r.Key.ActivatesAt = p.sched.activationTime(*n)
		r.Detail = p.explainRotation(r)
		out = append(out, r)
	}
	return s, out, nil
}

// explainRotation says what a planned rotation does and when.
func (p *planner) explainRotation(r Rotation) string {
	var b strings.Builder
	if !r.Created {
		fmt.Fprintf(&b, "A rotation was already planned: ")
	}
	fmt.Fprintf(&b, "key %s (%s) is published in the JWKS since %s and starts signing at %s, after the lead time of %s "+
		"(longer than the JWKS max-age of %s, so verifiers that honour the cache headers know it by then).",
		r.Key.ID, r.Key.Algorithm, r.Key.CreatedAt.Format(time.RFC3339), r.Key.ActivatesAt.Format(time.RFC3339),
		p.sched.LeadTime, p.sched.MaxAge())
	if r.Replaces != "" {
		fmt.Fprintf(&b, " Key %s then retires and stays published for %s, until every token it signed has expired.", r.Replaces, p.sched.RetireGrace)
	}
	return b.String()
}

// RevokeResult is the outcome of an emergency revoke.
type RevokeResult struct {
	// Revoked is the revoked key, public parts only.
	Revoked Key
	// Replacement is the fresh key that signs instead of it from now, when
	// the revoked key was active.
	Replacement *Key
	// Consequence spells out what the revoke means for verifiers and tokens.
	Consequence string
}

// revoke unpublishes kid at once; when it was active and nothing else of
// its algorithm could sign, a fresh key signs instead at once.
func (p *planner) revoke(ks []Key, kid string) (*step, RevokeResult, error) {
	s := p.begin(ks)
	k := s.byID(kid)
	switch {
	case k == nil:
		return nil, RevokeResult{}, fmt.Errorf("%w: %q", ErrKeyNotFound, kid)
	case !k.Published():
		return nil, RevokeResult{}, fmt.Errorf("%w: %q is %s", ErrKeyGone, kid, k.State)
	}
	wasActive := k.State == StateActive
	s.remove(k, StateRevoked)
	res := RevokeResult{Revoked: k.Public()}
	if wasActive && (slices.Contains(p.algs, k.Algorithm) || !s.anyActive()) {
		fresh, err := s.add(k.Algorithm, true)
		if err != nil {
			return nil, RevokeResult{}, err
		}
		pub := fresh.Public()
		res.Replacement = &pub
		s.explain(pub.ID, "activate", fmt.Sprintf("Fresh key signing at once in place of the revoked key %s; not announced in the JWKS in advance.", kid))
	}
	res.Consequence = p.consequence(res, wasActive)
	s.explain(kid, "revoke", res.Consequence)
	return s, res, nil
}

// consequence explains a revoke to the operator and the audit log.
func (p *planner) consequence(r RevokeResult, wasActive bool) string {
	maxAge := p.sched.MaxAge()
	var b strings.Builder
	fmt.Fprintf(&b, "Key %s (%s) is revoked and no longer published in the JWKS. "+
		"Tokens it signed no longer verify at any verifier once it refreshes the JWKS; "+
		"verifiers that cached the JWKS keep accepting them until their copy expires (max-age %s).",
		r.Revoked.ID, r.Revoked.Algorithm, maxAge)
	switch {
	case r.Replacement != nil:
		fmt.Fprintf(&b, " Signing switched at once to the fresh key %s, which was not announced in advance: "+
			"verifiers holding a cached JWKS reject its tokens as an unknown kid until they refetch it "+
			"(at once for verifiers that refetch on an unknown kid, otherwise within max-age %s).",
			r.Replacement.ID, maxAge)
	case wasActive:
		fmt.Fprintf(&b, " No %s key signs any more: %s is not a configured signing algorithm.", r.Revoked.Algorithm, r.Revoked.Algorithm)
	default:
		b.WriteString(" Signing is unaffected: the key was not active.")
	}
	return b.String()
}
