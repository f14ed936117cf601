package sts

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/policy"
)

// previewClaims is a claims object standing in for a subject token.
const previewClaims = `{"sub": "auth0|bob", "scope": "orders:read orders:write", "exp": 1893456000,
	"permissions": ["orders:perm-01", "orders:perm-02"], "tenant": 12345678901234567890,
	"email": "bob@example.com", "https://example.com/roles": ["admin"], "azp": "spa"}`

func previewRequest(aud string) PreviewRequest {
	return PreviewRequest{ClientID: testClient, Audiences: []string{aud}, Scopes: []string{"orders:read"}, SubjectClaims: json.RawMessage(previewClaims)}
}

// stepsByField indexes a preview's steps.
func stepsByField(p *Preview) map[string]policy.Step {
	m := make(map[string]policy.Step, len(p.Steps))
	for _, s := range p.Steps {
		m[s.Field] = s
	}
	return m
}

func TestPreviewSavedPolicyWithToken(t *testing.T) {
	f := newFixture(t)
	f.load(nil, celPolicy())
	pr := PreviewRequest{ClientID: testClient, Audiences: []string{celAudience}, Scopes: []string{"orders:read"},
		SubjectToken: f.validToken(t), SubjectTokenType: TokenTypeAccessToken}
	p, err := f.ex.Preview(context.Background(), pr)
	require.NoError(t, err)
	require.Equal(t, DecisionAllow, p.Decision)
	require.Nil(t, p.Error)
	require.True(t, p.SubjectVerified)
	require.Equal(t, "cel", p.Policy)
	require.Equal(t, testIssuerName, p.Issuer)
	require.Equal(t, &PreviewHeader{Alg: "ES256", Kid: f.ring.KeyID(), Typ: "at+jwt"}, p.Header)
	require.Equal(t, "Bearer", p.TokenType)
	require.Equal(t, "orders:read", p.Scope)

	claims := decodeJSON(t, p.Claims)
	require.Equal(t, []any{"orders:perm-01", "orders:perm-02"}, claims["orders"])
	require.Equal(t, json.Number("12345678901234567890"), claims["tenant"])

	steps := stepsByField(p)
	require.Equal(t, policy.OutcomeSatisfied, steps["conditions[0]"].Outcome)
	require.Equal(t, policy.OutcomePassed, steps["claims[0]"].Outcome)
	require.Equal(t, policy.Step{Field: "claims[12]", Claim: "nickname", Outcome: policy.OutcomeDropped,
		Reason: "the subject has no such claim, or it is null"}, steps["claims[12]"])
	require.Equal(t, policy.OutcomeDropped, steps["claims[13]"].Outcome)
	require.Contains(t, steps["claims[13]"].Reason, "empty")
	require.Len(t, p.Steps, 2+15, "every condition and mapping is explained")
	require.Contains(t, p.UnmappedClaims, "email")
	require.Contains(t, p.UnmappedClaims, "secret_internal_id")
	require.NotContains(t, p.UnmappedClaims, "permissions")
	require.NotContains(t, p.UnmappedClaims, "sub", "claims the service sets itself are not listed")
	require.NotZero(t, p.Cost)
}

func TestPreviewClaimsObject(t *testing.T) {
	f := newFixture(t)
	f.load(nil, celPolicy())
	p, err := f.ex.Preview(context.Background(), previewRequest(celAudience))
	require.NoError(t, err)
	require.Equal(t, DecisionAllow, p.Decision, "%+v", p.Error)
	require.False(t, p.SubjectVerified)
	require.Equal(t, testIssuerName, p.Issuer, "the policy's first allowed issuer by default")
	require.Len(t, p.Notes, 1)
	require.Contains(t, p.Notes[0], "no token was verified")
	claims := decodeJSON(t, p.Claims)
	require.Equal(t, "auth0|bob", claims["sub"])
	require.Equal(t, json.Number("12345678901234567890"), claims["tenant"], "numbers of the claims object stay exact")

	pr := previewRequest(celAudience)
	pr.Issuer = "corp"
	p, err = f.ex.Preview(context.Background(), pr)
	require.NoError(t, err)
	require.Equal(t, DecisionAllow, p.Decision)
	require.Equal(t, "corp", p.Issuer)
	require.Equal(t, policy.OutcomeDropped, stepsByField(p)["claims[11]"].Outcome, "corp's permissions come from a claim this subject lacks")
}

func TestPreviewDenials(t *testing.T) {
	f := newFixture(t)
	f.load(nil, celPolicy())
	tests := []struct {
		name   string
		change func(pr *PreviewRequest)
		code   Code
		desc   string
		steps  int // explained steps
	}{
		{"a failed condition: every step is still explained", func(pr *PreviewRequest) {
			pr.SubjectClaims = json.RawMessage(`{"sub": "x", "scope": "orders:read", "permissions": ["orders:perm-02"], "email": "a@b"}`)
		}, InvalidRequest, "conditions[0] is not satisfied", 17},
		{"an unknown client", func(pr *PreviewRequest) { pr.ClientID = "stranger" }, InvalidClient, "unknown", 0},
		{"a client the policy does not allow", func(pr *PreviewRequest) { pr.Audiences = []string{"https://admin.example.test"} }, UnauthorizedClient, "may not request", 0},
		{"an issuer the policy does not accept", func(pr *PreviewRequest) { pr.Issuer = "okta" }, InvalidRequest, "does not accept subject tokens from issuer", 0},
		{"no sub", func(pr *PreviewRequest) { pr.SubjectClaims = json.RawMessage(`{"email": "a@b"}`) }, InvalidRequest, "'sub'", 0},
		{"claims that are not an object", func(pr *PreviewRequest) { pr.SubjectClaims = json.RawMessage(`[1]`) }, InvalidRequest, "not a JSON object", 0},
		{"nothing grantable", func(pr *PreviewRequest) { pr.Scopes = []string{"admin"} }, InvalidScope, "None of the requested scopes", 0},
		{"an invalid subject token", func(pr *PreviewRequest) {
			pr.SubjectClaims, pr.SubjectToken, pr.SubjectTokenType = nil, "not.a.token", TokenTypeAccessToken
		}, InvalidRequest, "not a JWT", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := previewRequest(celAudience)
			tt.change(&pr)
			p, err := f.ex.Preview(context.Background(), pr)
			require.NoError(t, err)
			require.Equal(t, DecisionDeny, p.Decision)
			require.Equal(t, tt.code, p.Error.Code)
			require.Contains(t, p.Error.Description, tt.desc)
			require.Len(t, p.Steps, tt.steps)
			require.Nil(t, p.Claims)
			require.Nil(t, p.Header)
			require.False(t, p.SubjectVerified)
		})
	}
}

func TestPreviewUnsavedPolicy(t *testing.T) {
	f := newFixture(t)
	unsaved := celPolicy()
	unsaved.Name = ""
	unsaved.Claims = []policy.ClaimMapping{{Claim: "first_perm", Expression: `subject.permissions[0]`}}
	unsaved.TokenType = policy.TokenTypeJWT
	pr := previewRequest(celAudience)
	pr.Policy = &unsaved
	p, err := f.ex.Preview(context.Background(), pr)
	require.NoError(t, err)
	require.Equal(t, DecisionAllow, p.Decision, "%+v", p.Error)
	require.Equal(t, "preview", p.Policy, "an unnamed policy is called preview")
	require.Equal(t, "JWT", p.Header.Typ)
	require.Equal(t, "N_A", p.TokenType)
	require.Equal(t, "orders:perm-01", decodeJSON(t, p.Claims)["first_perm"])

	t.Run("it must serve the targets", func(t *testing.T) {
		pr.Audiences = []string{testAudience}
		p, err := f.ex.Preview(context.Background(), pr)
		require.NoError(t, err)
		require.Equal(t, InvalidTarget, p.Error.Code)
	})
	t.Run("it replaces the stored policy of the same targets", func(t *testing.T) {
		f.load(nil, celPolicy())
		pr.Audiences = []string{celAudience}
		p, err := f.ex.Preview(context.Background(), pr)
		require.NoError(t, err)
		require.Equal(t, "orders:perm-01", decodeJSON(t, p.Claims)["first_perm"])
	})
	t.Run("its problems are reported with their position", func(t *testing.T) {
		bad := celPolicy()
		bad.Claims = []policy.ClaimMapping{{Claim: "x", Expression: `subjct.email`}}
		pr.Policy = &bad
		_, err := f.ex.Preview(context.Background(), pr)
		var v *policy.ValidationError
		require.True(t, errors.As(err, &v))
		require.Equal(t, []policy.FieldError{{Field: "policy.claims[0].expression", Line: 1, Column: 1,
			Reason: "at 1:1: undeclared reference to 'subjct' (did you mean 'subject'?)"}}, v.Fields)
	})
}

func TestPreviewRequestErrors(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		change func(pr *PreviewRequest)
		field  string
	}{
		{"no client", func(pr *PreviewRequest) { pr.ClientID = "" }, "client_id"},
		{"neither token nor claims", func(pr *PreviewRequest) { pr.SubjectClaims = nil }, "subject_token"},
		{"null claims are no claims", func(pr *PreviewRequest) { pr.SubjectClaims = json.RawMessage(" null ") }, "subject_token"},
		{"both token and claims", func(pr *PreviewRequest) { pr.SubjectToken, pr.SubjectTokenType = "a.b.c", TokenTypeJWT }, "subject_token"},
		{"a token without its type", func(pr *PreviewRequest) { pr.SubjectClaims, pr.SubjectToken = nil, "a.b.c" }, "subject_token_type"},
		{"no target", func(pr *PreviewRequest) { pr.Audiences = nil }, "request"},
		{"a bad requested_token_type", func(pr *PreviewRequest) { pr.RequestedTokenType = "x" }, "request"},
		{"claims too large", func(pr *PreviewRequest) { pr.SubjectClaims = make(json.RawMessage, MaxTokenLength+1) }, "subject_claims"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr := previewRequest(celAudience)
			tt.change(&pr)
			p, err := f.ex.Preview(context.Background(), pr)
			require.Nil(t, p)
			var v *policy.ValidationError
			require.True(t, errors.As(err, &v), "%v", err)
			require.Equal(t, tt.field, v.Fields[0].Field)
		})
	}
}
