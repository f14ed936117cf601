package keys

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

var errNoLifecycle = errors.New("keys: the key store cannot run lifecycle steps")

// planner returns a planner for one step at the ring's current time.
func (r *Ring) planner() *planner {
	now := r.timestamp()
	return &planner{sched: r.sched, algs: r.algs, now: now, gen: func(alg string) (Key, error) {
		return generate(alg, r.bits, r.kek, now)
	}}
}

// update runs plan under the store's cluster-wide lock, writes its changes,
// logs its events once committed and reloads the ring if it is loaded.
func (r *Ring) update(ctx context.Context, action string, plan func(p *planner, ks []Key) (*step, error)) (*step, error) {
	ls, ok := r.store.(LifecycleStore)
	if !ok {
		return nil, errNoLifecycle
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	var done *step
	var changes Changes
	err := ls.UpdateKeys(ctx, func(ks []Key) (Changes, error) {
		s, err := plan(r.planner(), ks)
		if err != nil {
			return Changes{}, err
		}
		done, changes = s, s.changes(action)
		return changes, nil
	})
	if err != nil {
		return nil, err
	}
	for _, e := range done.events {
		r.log.Log(ctx, e.level, e.msg, eventAttrs(e.key)...)
	}
	if !changes.Empty() && r.gen.Load() != nil {
		if err := r.Reload(ctx); err != nil {
			r.log.ErrorContext(ctx, "signing keys reload after a lifecycle step failed", "err", err)
		}
	}
	return done, nil
}

// eventAttrs describes a key for a log line: never its private part.
func eventAttrs(k Key) []any {
	attrs := []any{"kid", k.ID, "alg", k.Algorithm, "state", k.State}
	for _, t := range []struct {
		name string
		at   time.Time
	}{{"activates_at", k.ActivatesAt}, {"retired_at", k.RetiredAt}, {"remove_after", k.RemoveAfter}} {
		if !t.at.IsZero() && (k.State != StateActive || t.name != "activates_at") {
			attrs = append(attrs, t.name, t.at)
		}
	}
	return attrs
}

// Check runs one step of the schedule (see planner.schedule) under the
// cluster-wide lock. Every replica may call it: the lock serializes them
// and the later ones find nothing left to do.
func (r *Ring) Check(ctx context.Context) error {
	_, err := r.update(ctx, "keys.schedule", func(p *planner, ks []Key) (*step, error) { return p.schedule(ks) })
	if err != nil {
		return fmt.Errorf("keys: lifecycle check: %w", err)
	}
	return nil
}

// Run checks the schedule and reloads the ring every CheckInterval until
// ctx ends: a replica whose change notifications are lost still learns of
// every key change within CheckInterval, which the schedule relies on.
// Failures (the database is down, say) are logged and retried at the next
// tick; signing goes on with the keys loaded.
func (r *Ring) Run(ctx context.Context) {
	t := time.NewTicker(r.sched.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := r.Check(ctx)
			if err == nil {
				err = r.Reload(ctx)
			}
			if err != nil && ctx.Err() == nil {
				r.log.WarnContext(ctx, "signing key lifecycle check failed; retrying at the next check", "err", err)
			}
		}
	}
}

// Rotate plans a rotation of alg, or of every configured algorithm when
// alg is "": each gets a next key, published now, that starts signing once
// the lead time has passed and then retires the active key. An algorithm
// that already has a next key keeps it: concurrent rotations on several
// replicas make exactly one new key.
func (r *Ring) Rotate(ctx context.Context, alg string) ([]Rotation, error) {
	algs := r.algs
	if alg != "" {
		if !slices.Contains(r.algs, alg) {
			return nil, fmt.Errorf("%w %q: not a configured signing algorithm (configured: %v)", ErrUnsupportedAlgorithm, alg, r.algs)
		}
		algs = []string{alg}
	}
	var out []Rotation
	_, err := r.update(ctx, "keys.rotate", func(p *planner, ks []Key) (*step, error) {
		s, rs, err := p.rotate(ks, algs)
		out = rs
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("keys: rotate: %w", err)
	}
	return out, nil
}

// Revoke is the emergency revoke of a compromised key: it leaves the JWKS
// at once and its private part is wiped; when it was active, a fresh key
// signs instead at once. reason is recorded with the change. The result
// spells out the consequence for verifiers.
func (r *Ring) Revoke(ctx context.Context, kid, reason string) (RevokeResult, error) {
	var res RevokeResult
	_, err := r.update(ctx, "keys.revoke", func(p *planner, ks []Key) (*step, error) {
		s, rr, err := p.revoke(ks, kid)
		if err != nil {
			return nil, err
		}
		res = rr
		if reason != "" {
			s.explain(kid, "revoke", rr.Consequence+" Reason given: "+reason)
		}
		return s, nil
	})
	if err != nil {
		return RevokeResult{}, fmt.Errorf("keys: revoke: %w", err)
	}
	attrs := []any{"kid", res.Revoked.ID, "alg", res.Revoked.Algorithm, "reason", reason, "consequence", res.Consequence}
	if res.Replacement != nil {
		attrs = append(attrs, "replacement_kid", res.Replacement.ID)
	}
	r.log.WarnContext(ctx, "signing key revoked", attrs...)
	return res, nil
}

// Retire gracefully drops alg, which this ring is not configured for: its
// active and next keys stop signing now, their private parts are wiped,
// and they stay published until every token they signed has expired. The
// schedule never does this by itself: during a rolling deploy replicas
// disagree on the configured algorithms. A replica still configured for
// alg would give it a new key, so reconfigure every replica first.
func (r *Ring) Retire(ctx context.Context, alg string) ([]Key, error) {
	if slices.Contains(r.algs, alg) {
		return nil, fmt.Errorf("keys: retire: %q is configured here (--signing-algorithm, --signing-algorithms): drop it from every replica's configuration first", alg)
	}
	var out []Key
	_, err := r.update(ctx, "keys.retire", func(p *planner, ks []Key) (*step, error) {
		s := p.begin(ks)
		out = nil
		for i := range s.keys {
			if k := &s.keys[i]; k.Algorithm == alg && (k.State == StateActive || k.State == StateNext) {
				s.retire(k)
				out = append(out, k.Public())
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%w: no active or next key of %q", ErrKeyNotFound, alg)
		}
		return s, nil
	})
	if err != nil {
		return nil, fmt.Errorf("keys: retire: %w", err)
	}
	return out, nil
}

// ListKeys returns every stored key, public parts only, with the effective
// activation time of next keys and removal time of retired keys.
func (r *Ring) ListKeys(ctx context.Context) ([]Key, error) {
	ks, err := r.store.Keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: list: %w", err)
	}
	out := make([]Key, 0, len(ks))
	for _, k := range ks {
		k = k.Public()
		switch k.State {
		case StateNext:
			k.ActivatesAt = r.sched.activationTime(k)
		case StateRetired:
			k.RemoveAfter = r.sched.removalTime(k)
		}
		out = append(out, k)
	}
	return out, nil
}
