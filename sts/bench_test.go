package sts

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/claimbridge/claimbridge/internal/devidp"
	"github.com/claimbridge/claimbridge/policy"
)

// benchFixture returns a fixture, a request for a typical subject token
// (20 permissions, a namespaced roles claim, a big number) and the IdP's
// keys already cached by one exchange.
func benchFixture(b *testing.B) (*fixture, Request) {
	b.Helper()
	f := newFixture(b)
	req := f.request(f.validToken(b))
	if _, err := f.ex.Exchange(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	return f, req
}

// BenchmarkExchange is one full in-process exchange: request validation,
// RS256 verification of the subject token, policy evaluation and an ES256
// signature.
func BenchmarkExchange(b *testing.B) {
	f, req := benchFixture(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.ex.Exchange(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExchangeParallel(b *testing.B) {
	f, req := benchFixture(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.ex.Exchange(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVerifySubject is the subject token's half: issuer lookup, RS256
// signature, claims decoding and time and audience checks.
func BenchmarkVerifySubject(b *testing.B) {
	f, req := benchFixture(b)
	snap := f.ex.snap.Load()
	pol := snap.byAudience[testAudience]
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := snap.verifySubject(ctx, req, pol); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMint is the minted token's half: policy evaluation, claims
// encoding and the ES256 signature.
func BenchmarkMint(b *testing.B) {
	f, req := benchFixture(b)
	snap := f.ex.snap.Load()
	pol := snap.byAudience[testAudience]
	if err := req.Validate(); err != nil {
		b.Fatal(err)
	}
	subj, err := snap.verifySubject(context.Background(), req, pol)
	if err != nil {
		b.Fatal(err)
	}
	d, err := decide(&req, pol, []string{testAudience}, subj, accessTokenKind, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.ex.mint(&d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBaselineExchange is the yardstick for BenchmarkExchange: the
// least an exchange can do with go-jose and encoding/json — parse and
// verify the same RS256 subject token with a known key, decode its claims,
// copy three of them and sign an ES256 token — with no framework, no
// policy and no checks. Compare the two as a ratio within one run.
func BenchmarkBaselineExchange(b *testing.B) {
	f, req := benchFixture(b)
	pub := &f.idp.idp.Load().Key().PublicKey
	ring := newRing(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		jws, err := jose.ParseSignedCompact(req.SubjectToken, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			b.Fatal(err)
		}
		payload, err := jws.Verify(pub)
		if err != nil {
			b.Fatal(err)
		}
		var in map[string]any
		if err := json.Unmarshal(payload, &in); err != nil {
			b.Fatal(err)
		}
		out := map[string]any{
			"iss": "https://sts.example.test", "sub": in["sub"], "aud": testAudience,
			"exp": 1, "iat": 1, "permissions": in["permissions"], "roles": in["https://example.com/roles"],
		}
		body, err := json.Marshal(out)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ring.Sign("at+jwt", body); err != nil {
			b.Fatal(err)
		}
	}
}

// celBenchPolicy is the orders policy with five CEL mappings and a
// condition, as a typical computed-claims policy.
func celBenchPolicy() policy.Policy {
	p := testPolicies()[0]
	p.Version++ // a new version: the fixture's compiled one is not reused
	p.Conditions = []string{`"orders:perm-01" in subject.permissions`}
	p.Claims = []policy.ClaimMapping{
		{Claim: "orders", Expression: `subject.permissions.filter(p, p.startsWith("orders:perm-0"))`},
		{Claim: "roles", Expression: `subject["` + devidp.RolesClaim + `"].map(r, "role:" + r)`},
		{Claim: "tenant", Expression: `subject.tenant`},
		{Claim: "domain", Expression: `subject.email.split("@")[1]`},
		{Claim: "admin", Expression: `"admin" in subject["` + devidp.RolesClaim + `"] && request.client_id == "gateway"`},
	}
	return p
}

// BenchmarkPolicyEvaluate is the policy's share of one exchange with five
// CEL mappings and a condition: scope grant and evaluation, no signature.
func BenchmarkPolicyEvaluate(b *testing.B) {
	f, req := benchFixture(b)
	f.state.Policies = []policy.Policy{celBenchPolicy()}
	f.ex.Load(f.state)
	snap := f.ex.snap.Load()
	pol := snap.byAudience[testAudience]
	if err := req.Validate(); err != nil {
		b.Fatal(err)
	}
	subj, err := snap.verifySubject(context.Background(), req, pol)
	if err != nil {
		b.Fatal(err)
	}
	targets := []string{testAudience}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := decide(&req, pol, targets, subj, accessTokenKind, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExchangeCEL is BenchmarkExchange under the five-mapping CEL
// policy.
func BenchmarkExchangeCEL(b *testing.B) {
	f, req := benchFixture(b)
	f.state.Policies = []policy.Policy{celBenchPolicy()}
	f.ex.Load(f.state)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.ex.Exchange(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// manyPolicies returns n policies, each with its own audience, a
// condition, two CEL mappings and two copies, every expression text its
// own; the first is the orders policy the benchmark exchanges for.
func manyPolicies(n int) []policy.Policy {
	out := make([]policy.Policy, n)
	out[0] = celBenchPolicy()
	for i := 1; i < n; i++ {
		p := celBenchPolicy()
		p.Name, p.Audience = fmt.Sprintf("p%05d", i), fmt.Sprintf("https://api-%05d.example.test", i)
		p.Conditions = []string{fmt.Sprintf(`"api-%05d:read" in subject.permissions`, i)}
		p.Claims = []policy.ClaimMapping{
			{Claim: "perms", Expression: fmt.Sprintf(`subject.permissions.filter(p, p.startsWith("api-%05d:"))`, i)},
			{Claim: "tier", Expression: fmt.Sprintf(`subject.?tier.orValue("t%d")`, i)},
			{Claim: "email"},
			{Claim: "groups", From: "/org/groups"},
		}
		out[i] = p
	}
	return out
}

// BenchmarkExchangePolicies is one exchange with 10 and with 10,000
// policies loaded: the lookup is by target, so the time must not grow.
func BenchmarkExchangePolicies(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			f, req := benchFixture(b)
			f.state.Policies = manyPolicies(n)
			f.ex.Load(f.state)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := f.ex.Exchange(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoad is a snapshot reload with 10,000 policies: cold, every
// policy compiled (the first load, or every policy changed) — with three
// CEL expressions each, and with copies only — and warm, nothing changed
// (the periodic reload: compiled policies are reused).
func BenchmarkLoad(b *testing.B) {
	f := newFixture(b)
	state := f.state
	state.Policies = manyPolicies(10_000)
	b.Run("policies=10000/cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f.ex.snap.Store(&snapshot{})
			f.ex.Load(state)
		}
	})
	copies := f.state
	copies.Policies = manyPolicies(10_000)
	for i := range copies.Policies {
		copies.Policies[i].Conditions = nil
		copies.Policies[i].Claims = copies.Policies[i].Claims[2:]
	}
	b.Run("policies=10000/cold/copies-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			f.ex.snap.Store(&snapshot{})
			f.ex.Load(copies)
		}
	})
	b.Run("policies=10000/warm", func(b *testing.B) {
		f.ex.Load(state)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			f.ex.Load(state)
		}
	})
}
