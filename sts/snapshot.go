package sts

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/claimbridge/claimbridge/policy"
)

// snapshot is an immutable view of the configuration, read without locks by
// every exchange and replaced as a whole when the configuration changes.
type snapshot struct {
	issuers    map[string]*issuerVerifier // by issuer URL
	clients    map[string]*Client         // by client ID
	policies   map[string]*policy.Compiled
	byAudience map[string]*policy.Compiled // by target: audience and audiences
	loadedAt   time.Time
}

// Load builds a snapshot from state and makes it current. Verifiers of
// unchanged issuers are carried over so their JWKS caches survive; compiled
// policies whose version did not change are reused. A stored policy that no
// longer compiles is skipped and logged, never served half-applied.
//
// Each target is served by one policy: a policy's audience is its own (the
// store keeps audiences unique); a target that two policies list in their
// audiences is served by neither and logged, never by a guess.
func (e *Exchanger) Load(state State) {
	e.loadMu.Lock()
	defer e.loadMu.Unlock()
	old := e.snap.Load()
	next := &snapshot{
		issuers:    make(map[string]*issuerVerifier, len(state.Issuers)),
		clients:    make(map[string]*Client, len(state.Clients)),
		policies:   make(map[string]*policy.Compiled, len(state.Policies)),
		byAudience: make(map[string]*policy.Compiled, len(state.Policies)),
		loadedAt:   e.opts.Now(),
	}
	for _, iss := range state.Issuers {
		iss.Normalize()
		var v *issuerVerifier
		if old != nil {
			if prev := old.issuers[iss.URL]; prev != nil && prev.issuer.Name == iss.Name && prev.sameConfig(iss) {
				v = prev // verifiers are shared by exchanges in flight: never mutated
			}
		}
		if v == nil {
			v = newIssuerVerifier(iss, e.verifierConfig())
			go v.warm()
		}
		next.issuers[iss.URL] = v
	}
	for i := range state.Clients {
		c := state.Clients[i]
		next.clients[c.ID] = &c
	}
	e.loadPolicies(old, next, state.Policies)
	next.indexTargets(e.opts.Logger)
	e.snap.Store(next)
}

// loadPolicies puts state's policies into next: the compiled policy of
// old when its version is unchanged, else a fresh compilation. Compiling
// CEL is the slow part of a load, so it runs on every CPU.
func (e *Exchanger) loadPolicies(old, next *snapshot, policies []policy.Policy) {
	var changed []policy.Policy
	for _, p := range policies {
		if old != nil {
			if prev := old.policies[p.Name]; prev != nil && prev.Policy.Version == p.Version && prev.Policy.UpdatedAt.Equal(p.UpdatedAt) {
				next.policies[p.Name] = prev
				continue
			}
		}
		changed = append(changed, p)
	}
	compiled := make([]*policy.Compiled, len(changed))
	errs := make([]error, len(changed))
	var cursor atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(changed)) {
		wg.Go(func() {
			for i := int(cursor.Add(1) - 1); i < len(changed); i = int(cursor.Add(1) - 1) {
				compiled[i], errs[i] = policy.Compile(changed[i])
			}
		})
	}
	wg.Wait()
	for i, p := range changed {
		if errs[i] != nil {
			e.opts.Logger.Error("skipping a stored policy that does not compile", "policy", p.Name, "err", errs[i])
			continue
		}
		next.policies[p.Name] = compiled[i]
	}
}

// indexTargets maps every target to the policy serving it: audiences
// first, then the further audiences no other policy claims.
func (s *snapshot) indexTargets(log *slog.Logger) {
	for _, c := range s.policies {
		s.byAudience[c.Policy.Audience] = c
	}
	claimedBy := make(map[string]string)
	for _, c := range s.policies {
		for _, t := range c.Policy.Audiences {
			if owner := s.byAudience[t]; owner != nil && owner.Policy.Audience == t {
				log.Error("a target listed in a policy's audiences is another policy's audience; it stays that policy's", "target", t, "policy", c.Policy.Name, "owner", owner.Policy.Name)
				continue
			}
			if other, ok := claimedBy[t]; ok {
				log.Error("two policies list the same target in their audiences; it is served by neither", "target", t, "policies", []string{other, c.Policy.Name})
				delete(s.byAudience, t)
				continue
			}
			claimedBy[t] = c.Policy.Name
			s.byAudience[t] = c
		}
	}
}

func (e *Exchanger) verifierConfig() verifierConfig {
	return verifierConfig{
		client:     e.opts.HTTPClient,
		skew:       e.opts.ClockSkew,
		minRefresh: e.opts.JWKSMinRefresh,
		maxAge:     e.opts.JWKSMaxAge,
		now:        e.opts.Now,
	}
}

// Reload reads the whole state from loader and makes it current. On error
// the current snapshot stays in use.
func (e *Exchanger) Reload(ctx context.Context, loader StateLoader) error {
	state, err := loader.LoadState(ctx)
	if err != nil {
		return fmt.Errorf("loading the configuration: %w", err)
	}
	e.Load(state)
	return nil
}

// Run keeps the snapshot current: it reloads on every signal from changed
// and every interval, until ctx ends. Failures are logged and retried at the
// next signal or tick; exchanges go on from the last good snapshot.
func (e *Exchanger) Run(ctx context.Context, loader StateLoader, changed <-chan struct{}, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
		start := time.Now()
		if err := e.Reload(ctx, loader); err != nil {
			if ctx.Err() != nil {
				return
			}
			e.opts.Logger.WarnContext(ctx, "configuration reload failed; serving the previous snapshot", "err", err)
			continue
		}
		e.opts.Logger.DebugContext(ctx, "configuration reloaded", "took", time.Since(start))
	}
}

// Client returns the client with the given ID from the current snapshot.
func (e *Exchanger) Client(id string) (*Client, bool) {
	s := e.snap.Load()
	if s == nil {
		return nil, false
	}
	c, ok := s.clients[id]
	return c, ok
}

// Stats describes the current snapshot.
func (e *Exchanger) Stats() (issuers, clients, policies int, loadedAt time.Time) {
	s := e.snap.Load()
	if s == nil {
		return 0, 0, 0, time.Time{}
	}
	return len(s.issuers), len(s.clients), len(s.policies), s.loadedAt
}
