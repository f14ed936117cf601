package sts

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/policy"
)

func TestLoadKeepsUnchangedIssuers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.ex.Exchange(ctx, f.request(f.validToken(t)))
	require.NoError(t, err)
	before := f.ex.snap.Load().issuers[f.idp.URL()]
	hits := f.idp.jwksHits.Load()

	state := f.state
	state.Issuers = []Issuer{testIssuer(f.idp.URL())}
	state.Issuers[0].Version, state.Issuers[0].UpdatedAt = 2, testNow.Add(time.Minute)
	f.ex.Load(state)

	after := f.ex.snap.Load().issuers[f.idp.URL()]
	require.Same(t, before, after, "the verifier, and so its JWKS cache, is kept")

	_, err = f.ex.Exchange(ctx, f.request(f.validToken(t)))
	require.NoError(t, err)
	require.Equal(t, hits, f.idp.jwksHits.Load(), "no JWKS fetch after a reload of an unchanged issuer")
}

func TestLoadReplacesChangedIssuers(t *testing.T) {
	tests := []struct {
		name   string
		change func(i *Issuer)
	}{
		{"another name", func(i *Issuer) { i.Name = "dev2" }},
		{"another audience", func(i *Issuer) { i.Audiences = []string{testIdPAud, "more"} }},
		{"another algorithm list", func(i *Issuer) { i.Algorithms = []string{"RS256"} }},
		{"another token type list", func(i *Issuer) { i.TokenTypes = []string{TokenTypeJWT} }},
		{"a fixed JWKS URI", func(i *Issuer) { i.JWKSURI = i.URL + "/jwks.json" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			before := f.ex.snap.Load().issuers[f.idp.URL()]
			state := f.state
			iss := testIssuer(f.idp.URL())
			tt.change(&iss)
			state.Issuers = []Issuer{iss}
			f.ex.Load(state)
			after := f.ex.snap.Load().issuers[f.idp.URL()]
			require.NotSame(t, before, after)
			require.NotSame(t, before.keys, after.keys, "a changed issuer starts with a fresh JWKS cache")
			iss.Normalize()
			require.Equal(t, iss, after.issuer)
		})
	}
}

func TestLoadNormalizesIssuerDefaults(t *testing.T) {
	f := newFixture(t)
	state := f.state
	iss := testIssuer(f.idp.URL())
	iss.Algorithms, iss.TokenTypes = nil, nil
	state.Issuers = []Issuer{iss}
	f.ex.Load(state)
	v := f.ex.snap.Load().issuers[f.idp.URL()]
	require.Equal(t, DefaultIssuerAlgorithms, v.issuer.Algorithms)
	require.Equal(t, SubjectTokenTypes, v.issuer.TokenTypes)

	token := f.validToken(t)
	req := f.request(token)
	req.SubjectTokenType = TokenTypeIDToken
	_, err := f.ex.Exchange(context.Background(), req)
	require.NoError(t, err, "every subject token type is accepted by default")
}

func TestLoadDropsRemovedIssuers(t *testing.T) {
	f := newFixture(t)
	state := f.state
	state.Issuers = nil
	f.ex.Load(state)
	token := f.validToken(t)
	_, err := f.ex.Exchange(context.Background(), f.request(token))
	e := requireCode(t, err, InvalidRequest, token)
	require.Contains(t, e.Description, "not trusted")
}

func TestLoadReusesCompiledPolicies(t *testing.T) {
	f := newFixture(t)
	before := f.ex.snap.Load().byAudience[testAudience]
	require.NotNil(t, before)

	f.ex.Load(f.state)
	require.Same(t, before, f.ex.snap.Load().byAudience[testAudience], "same name, version and update time: reused")

	tests := []struct {
		name   string
		change func(p *policy.Policy)
	}{
		{"a new version", func(p *policy.Policy) { p.Version = 2 }},
		{"a new update time", func(p *policy.Policy) { p.UpdatedAt = testNow.Add(time.Second) }},
		{"another name", func(p *policy.Policy) { p.Name = "orders-v2" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := f.state
			state.Policies = testPolicies()
			tt.change(&state.Policies[0])
			state.Policies[0].Scopes = []string{"orders:admin"}
			f.ex.Load(state)
			after := f.ex.snap.Load().byAudience[testAudience]
			require.NotSame(t, before, after)
			require.Equal(t, []string{"orders:admin"}, after.GrantScopes([]string{"orders:read", "orders:admin"}, []string{"orders:read", "orders:admin"}), "the new version is served")
			f.ex.Load(f.state) // back to the original for the next case
			before = f.ex.snap.Load().byAudience[testAudience]
		})
	}
}

func TestLoadSkipsPoliciesThatDoNotCompile(t *testing.T) {
	var logs bytes.Buffer
	f := newFixtureWith(t, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	state := f.state
	state.Policies = testPolicies()
	state.Policies[1].Claims = []policy.ClaimMapping{{Claim: "sub"}} // reserved
	state.Policies[1].Version = 2
	state.Policies[2].Name = ""
	state.Policies[2].Version = 2
	f.ex.Load(state)

	_, _, policies, _ := f.ex.Stats()
	require.Equal(t, 1, policies, "only the valid policy is served")
	require.Contains(t, logs.String(), "policy=billing")
	require.Contains(t, logs.String(), "skipping a stored policy that does not compile")

	ctx := context.Background()
	_, err := f.ex.Exchange(ctx, f.request(f.validToken(t)))
	require.NoError(t, err, "the other policies are still served")

	token := f.validToken(t)
	req := f.request(token)
	req.Audiences, req.Scopes = []string{"https://billing.example.test"}, nil
	_, err = f.ex.Exchange(ctx, req)
	requireCode(t, err, InvalidTarget, token)

	// A policy that compiled before but whose new version does not is not
	// served at all, rather than served in its old version.
	state.Policies = testPolicies()
	state.Policies[0].Version = 2
	state.Policies[0].Claims = append(state.Policies[0].Claims, policy.ClaimMapping{Claim: "x", From: "/a//b"})
	f.ex.Load(state)
	_, err = f.ex.Exchange(ctx, f.request(token))
	requireCode(t, err, InvalidTarget, token)
}

func TestClientAndStats(t *testing.T) {
	f := newFixture(t)
	c, ok := f.ex.Client(testClient)
	require.True(t, ok)
	require.Equal(t, testClient, c.ID)
	_, ok = f.ex.Client("stranger")
	require.False(t, ok)

	issuers, clients, policies, loadedAt := f.ex.Stats()
	require.Equal(t, 1, issuers)
	require.Equal(t, 2, clients)
	require.Equal(t, 3, policies)
	require.Equal(t, testNow, loadedAt)

	empty := NewExchanger(f.ring, Options{})
	_, ok = empty.Client(testClient)
	require.False(t, ok)
	issuers, clients, policies, _ = empty.Stats()
	require.Zero(t, issuers+clients+policies)
}

// loaderFunc is a StateLoader.
type loaderFunc func(ctx context.Context) (State, error)

func (l loaderFunc) LoadState(ctx context.Context) (State, error) { return l(ctx) }

func TestReload(t *testing.T) {
	f := newFixture(t)
	boom := errors.New("database down")
	err := f.ex.Reload(context.Background(), loaderFunc(func(context.Context) (State, error) { return State{}, boom }))
	require.ErrorIs(t, err, boom)
	_, _, policies, _ := f.ex.Stats()
	require.Equal(t, 3, policies, "a failed reload keeps the current snapshot")

	state := f.state
	state.Policies = state.Policies[:1]
	require.NoError(t, f.ex.Reload(context.Background(), loaderFunc(func(context.Context) (State, error) { return state, nil })))
	_, _, policies, _ = f.ex.Stats()
	require.Equal(t, 1, policies)
}

func TestRunReloadsOnSignal(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	state := f.state
	loader := loaderFunc(func(context.Context) (State, error) {
		mu.Lock()
		defer mu.Unlock()
		return state, nil
	})
	changed := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.ex.Run(ctx, loader, changed, time.Hour)
	}()

	mu.Lock()
	state.Policies = state.Policies[:2]
	mu.Unlock()
	changed <- struct{}{}
	require.Eventually(t, func() bool {
		_, _, p, _ := f.ex.Stats()
		return p == 2
	}, 5*time.Second, 5*time.Millisecond)

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop with its context")
	}
}

// TestLoadConcurrentWithExchange runs exchanges while the same state is
// reloaded; run it with -race.
func TestLoadConcurrentWithExchange(t *testing.T) {
	f := newFixture(t)
	token := f.validToken(t)
	ctx := context.Background()
	_, err := f.ex.Exchange(ctx, f.request(token))
	require.NoError(t, err)

	stop := make(chan struct{})
	var loader, exchangers sync.WaitGroup
	loader.Go(func() {
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			state := f.state
			state.Issuers = []Issuer{testIssuer(f.idp.URL())}
			state.Issuers[0].Version = i
			f.ex.Load(state)
		}
	})
	for range 4 {
		exchangers.Go(func() {
			for range 50 {
				if _, err := f.ex.Exchange(ctx, f.request(token)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	exchangers.Wait()
	close(stop)
	loader.Wait()
}
