package sts

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/go-jose/go-jose/v4"
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
	scope := pol.GrantScopes(req.Scopes)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.ex.mint(req, pol, testAudience, subj, scope); err != nil {
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
