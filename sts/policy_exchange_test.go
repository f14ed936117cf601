package sts

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/internal/devidp"
	"github.com/claimbridge/claimbridge/policy"
)

// The policy the CEL tests exchange for: several targets, conditions,
// computed, static, copied and dropped claims.
const (
	celAudience = "https://cel.example.test"
	celV2       = "https://cel.example.test/v2"
	celReports  = "urn:cel:reports"
)

func celPolicy() policy.Policy {
	return policy.Policy{
		Name:           "cel",
		Audience:       celAudience,
		Audiences:      []string{celV2, celReports},
		AllowedClients: []string{testClient},
		AllowedIssuers: []string{testIssuerName, "corp"},
		Conditions:     []string{`"orders:perm-01" in subject.permissions`, `request.client_id == "gateway"`},
		Claims: []policy.ClaimMapping{
			{Claim: "orders", Expression: `subject.permissions.filter(p, p.endsWith("-01") || p.endsWith("-02"))`},
			{Claim: "perm_count", Expression: `size(subject.permissions)`},
			{Claim: "tenant", Expression: `subject.tenant`},
			{Claim: "ratio", Expression: `double(size(subject.permissions)) / 8.0`},
			{Claim: "is_admin", Expression: `"admin" in subject["` + devidp.RolesClaim + `"]`},
			{Claim: "profile", Expression: `{"email": subject.email, "domain": subject.email.split("@")[1]}`},
			{Claim: "granted", Expression: `request.granted_scopes`},
			{Claim: "targets", Expression: `request.audiences`},
			{Claim: "via", Expression: `issuer`},
			{Claim: "env", Value: json.RawMessage(`"prod"`)},
			{Claim: "limits", Value: json.RawMessage(`{"rate": 10, "big": 12345678901234567890}`)},
			{Claim: "permissions", Sources: map[string]string{"corp": "https://corp.example/perm"}},
			{Claim: "nickname"},
			{Claim: "none_dropped", Expression: `subject.permissions.filter(p, p.startsWith("nope:"))`, Empty: policy.EmptyDrop},
			{Claim: "none_kept", Expression: `subject.permissions.filter(p, p.startsWith("nope:"))`},
		},
		Scopes:  []string{"orders:read", "orders:write"},
		Version: 1,
	}
}

// load serves state's policies plus extra, and the extra issuers.
func (f *fixture) load(extraIssuers []Issuer, extra ...policy.Policy) {
	state := f.state
	state.Issuers = append(append([]Issuer(nil), f.state.Issuers...), extraIssuers...)
	state.Policies = append(testPolicies(), extra...)
	f.ex.Load(state)
}

func celRequest(f *fixture, token string) Request {
	r := f.request(token)
	r.Audiences = []string{celAudience}
	return r
}

func TestExchangeCELPolicy(t *testing.T) {
	f := newFixture(t)
	f.load(nil, celPolicy())
	resp, err := f.ex.Exchange(context.Background(), celRequest(f, f.validToken(t)))
	require.NoError(t, err)
	typ, got := f.minted(t, resp.AccessToken)
	require.Equal(t, "at+jwt", typ)
	for _, registered := range []string{"iss", "sub", "exp", "iat", "jti", "client_id"} {
		delete(got, registered)
	}
	require.Equal(t, map[string]any{
		"aud":        celAudience,
		"scope":      "orders:read",
		"orders":     []any{"orders:perm-01", "orders:perm-02"},
		"perm_count": json.Number("20"),
		"tenant":     json.Number("12345678901234567890"),
		"ratio":      json.Number("2.5"),
		"is_admin":   true,
		"profile":    map[string]any{"email": "ada@example.com", "domain": "example.com"},
		"granted":    []any{"orders:read"},
		"targets":    []any{celAudience},
		"via":        testIssuerName,
		"env":        "prod",
		"limits":     map[string]any{"rate": json.Number("10"), "big": json.Number("12345678901234567890")},
		"permissions": func() []any {
			p := make([]any, 20)
			for i, s := range f.idp.claims(testNow)["permissions"].([]string) {
				p[i] = s
			}
			return p
		}(),
		"none_kept": []any{},
	}, got, "types kept: arrays, objects, exact integers, doubles, booleans; the missing and the dropped are absent")
}

func TestExchangeCELDenials(t *testing.T) {
	f := newFixture(t)
	required := celPolicy()
	required.Name, required.Audience, required.Audiences = "required", "https://required.example.test", nil
	required.Conditions = nil
	required.Claims = []policy.ClaimMapping{
		{Claim: "tenant_id", From: "/org/tenant", Required: true},
		{Claim: "none", Expression: `subject.permissions.filter(p, p.startsWith("nope:"))`, Required: true, Empty: policy.EmptyDrop},
	}
	broken := celPolicy()
	broken.Name, broken.Audience, broken.Audiences = "broken", "https://broken.example.test", nil
	broken.Conditions = nil
	broken.Claims = []policy.ClaimMapping{{Claim: "n", Expression: `int(subject.email)`}}
	f.load(nil, celPolicy(), required, broken)
	base := f.idp.claims(f.clock.Now())

	tests := []struct {
		name   string
		claims map[string]any
		aud    string
		desc   string
	}{
		{"a false condition names the policy and the condition", with(base, "permissions", []string{"orders:perm-02"}), celAudience,
			`Policy "cel": conditions[0] is not satisfied: "orders:perm-01" in subject.permissions.`},
		{"a condition reading a missing claim is not satisfied", without(base, "permissions"), celAudience,
			`Policy "cel": conditions[0] is not satisfied (it reads a claim the subject does not have): "orders:perm-01" in subject.permissions.`},
		{"a missing required claim", base, "https://required.example.test",
			`Policy "required": the required claim "tenant_id" (claims[0]) has no value for this subject.`},
		{"a required claim whose empty value is dropped", with(base, "org", map[string]any{"tenant": "t1"}), "https://required.example.test",
			`Policy "required": the required claim "none" (claims[1]) has no value for this subject.`},
		{"an expression failing at run time", base, "https://broken.example.test",
			`Policy "broken": claims[0] ("n") could not be computed.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := f.idp.mint(t, tt.claims)
			req := f.request(token)
			req.Audiences = []string{tt.aud}
			_, err := f.ex.Exchange(context.Background(), req)
			e := requireCode(t, err, InvalidRequest, token)
			require.Equal(t, tt.desc, e.Description)
			require.NotContains(t, e.Description, "ada@example.com", "no claim value in the description")
		})
	}
}

func TestExchangeSeveralTargets(t *testing.T) {
	f := newFixture(t)
	f.load(nil, celPolicy())
	token := f.validToken(t)
	tests := []struct {
		name      string
		audiences []string
		resources []string
		wantAud   any
		err       string
	}{
		{"the audience and a further audience as resource", []string{celAudience}, []string{celV2}, []any{celAudience, celV2}, ""},
		{"two further audiences, duplicates once", []string{celReports, celReports}, []string{celV2}, []any{celReports, celV2}, ""},
		{"a further audience alone", []string{celReports}, nil, celReports, ""},
		{"targets of two policies", []string{celAudience, testAudience}, nil, nil, "served by different policies"},
		{"a served target and an unserved one", []string{celV2}, []string{"https://nobody.example.test/"}, nil, "No policy serves"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := f.request(token)
			req.Audiences, req.Resources = tt.audiences, tt.resources
			resp, err := f.ex.Exchange(context.Background(), req)
			if tt.err != "" {
				e := requireCode(t, err, InvalidTarget, token)
				require.Contains(t, e.Description, tt.err)
				return
			}
			require.NoError(t, err)
			_, got := f.minted(t, resp.AccessToken)
			require.Equal(t, tt.wantAud, got["aud"])
			want := []any{}
			if s, ok := tt.wantAud.(string); ok {
				want = append(want, s)
			} else {
				want = tt.wantAud.([]any)
			}
			require.Equal(t, want, got["targets"], "request.audiences holds the distinct targets")
		})
	}
}

// TestLoadTargetConflicts: a target another policy has as its audience
// stays that policy's; one that two policies list is served by neither.
func TestLoadTargetConflicts(t *testing.T) {
	f := newFixture(t)
	a := celPolicy()
	a.Audiences = []string{testAudience, "https://shared.example.test", "https://a-only.example.test"}
	b := celPolicy()
	b.Name, b.Audience, b.Audiences = "b", "https://b.example.test", []string{"https://shared.example.test"}
	f.load(nil, a, b)
	snap := f.ex.snap.Load()
	require.Equal(t, testPolicy, snap.byAudience[testAudience].Policy.Name, "an audience stays its policy's")
	require.NotContains(t, snap.byAudience, "https://shared.example.test", "listed twice: served by neither")
	require.Equal(t, "cel", snap.byAudience["https://a-only.example.test"].Policy.Name)
	require.Equal(t, "b", snap.byAudience["https://b.example.test"].Policy.Name)
}

func TestExchangeTokenTypeRule(t *testing.T) {
	tests := []struct {
		name      string
		policy    string // token_type
		requested string
		typ       string // "" means refused
	}{
		{"no token_type, nothing asked: access token", "", "", "at+jwt"},
		{"no token_type: the request chooses jwt", "", TokenTypeJWT, "JWT"},
		{"token_type jwt, nothing asked: jwt", policy.TokenTypeJWT, "", "JWT"},
		{"token_type jwt, jwt asked", policy.TokenTypeJWT, TokenTypeJWT, "JWT"},
		{"token_type jwt, access token asked: refused", policy.TokenTypeJWT, TokenTypeAccessToken, ""},
		{"token_type access_token, nothing asked", policy.TokenTypeAccessToken, "", "at+jwt"},
		{"token_type access_token, jwt asked: refused", policy.TokenTypeAccessToken, TokenTypeJWT, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			p := celPolicy()
			p.TokenType = tt.policy
			f.load(nil, p)
			token := f.validToken(t)
			req := celRequest(f, token)
			req.RequestedTokenType = tt.requested
			resp, err := f.ex.Exchange(context.Background(), req)
			if tt.typ == "" {
				e := requireCode(t, err, InvalidRequest, token)
				require.Contains(t, e.Description, `Policy "cel" issues only`)
				return
			}
			require.NoError(t, err)
			typ, _ := f.minted(t, resp.AccessToken)
			require.Equal(t, tt.typ, typ)
			if typ == "JWT" {
				require.Equal(t, "N_A", resp.TokenType)
				require.Equal(t, TokenTypeJWT, resp.IssuedTokenType)
			} else {
				require.Equal(t, "Bearer", resp.TokenType)
				require.Equal(t, TokenTypeAccessToken, resp.IssuedTokenType)
			}
		})
	}
}

// TestExchangeIssuerSources takes permissions from "permissions" of one
// IdP's tokens and from a namespaced claim of another's.
func TestExchangeIssuerSources(t *testing.T) {
	f := newFixture(t)
	corp := newTestIdP(t)
	iss := testIssuer(corp.URL())
	iss.Name = "corp"
	f.load([]Issuer{iss}, celPolicy())

	corpClaims := with(corp.claims(testNow), "https://corp.example/perm", []string{"orders:perm-01", "corp:admin"})
	corpToken := corp.mint(t, corpClaims)
	resp, err := f.ex.Exchange(context.Background(), celRequest(f, corpToken))
	require.NoError(t, err)
	_, got := f.minted(t, resp.AccessToken)
	require.Equal(t, []any{"orders:perm-01", "corp:admin"}, got["permissions"], "corp: from its namespaced claim")
	require.Equal(t, "corp", got["via"])

	resp, err = f.ex.Exchange(context.Background(), celRequest(f, f.validToken(t)))
	require.NoError(t, err)
	_, got = f.minted(t, resp.AccessToken)
	require.Len(t, got["permissions"], 20, "dev: from permissions")
	require.Equal(t, testIssuerName, got["via"])
}

func TestRequestValidateTargetsBound(t *testing.T) {
	r := validRequest()
	r.Audiences = make([]string, MaxTargets+1)
	for i := range r.Audiences {
		r.Audiences[i] = "a"
	}
	e := requireCode(t, r.Validate(), InvalidTarget, "")
	require.Contains(t, e.Description, "At most 16")
}

// TestExchangeCELConcurrent runs CEL policies from several goroutines
// while the snapshot is reloaded; run it with -race.
func TestExchangeCELConcurrent(t *testing.T) {
	f := newFixture(t)
	f.load(nil, celPolicy())
	token := f.validToken(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 25 {
				if i == 0 {
					f.load(nil, celPolicy())
				}
				if _, err := f.ex.Exchange(context.Background(), celRequest(f, token)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
