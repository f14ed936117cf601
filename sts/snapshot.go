package sts

import (
	"context"
	"fmt"
	"time"

	"github.com/claimbridge/claimbridge/policy"
)

// snapshot is an immutable view of the configuration, read without locks by
// every exchange and replaced as a whole when the configuration changes.
type snapshot struct {
	issuers    map[string]*issuerVerifier // by issuer URL
	clients    map[string]*Client         // by client ID
	byAudience map[string]*policy.Compiled
	loadedAt   time.Time
}

// Load builds a snapshot from state and makes it current. Verifiers of
// unchanged issuers are carried over so their JWKS caches survive; compiled
// policies whose version did not change are reused. A stored policy that no
// longer compiles is skipped and logged, never served half-applied.
func (e *Exchanger) Load(state State) {
	e.loadMu.Lock()
	defer e.loadMu.Unlock()
	old := e.snap.Load()
	next := &snapshot{
		issuers:    make(map[string]*issuerVerifier, len(state.Issuers)),
		clients:    make(map[string]*Client, len(state.Clients)),
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
	for _, p := range state.Policies {
		if old != nil {
			if prev := old.byAudience[p.Audience]; prev != nil && prev.Policy.Name == p.Name && prev.Policy.Version == p.Version && prev.Policy.UpdatedAt.Equal(p.UpdatedAt) {
				next.byAudience[p.Audience] = prev
				continue
			}
		}
		c, err := policy.Compile(p)
		if err != nil {
			e.opts.Logger.Error("skipping a stored policy that does not compile", "policy", p.Name, "err", err)
			continue
		}
		next.byAudience[p.Audience] = c
	}
	e.snap.Store(next)
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
	return len(s.issuers), len(s.clients), len(s.byAudience), s.loadedAt
}
