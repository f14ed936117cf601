package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// celInput is an evaluation input over subjectClaims.
func celInput(t *testing.T) *Input {
	return &Input{Subject: subjectClaims(t), Issuer: "auth0", Request: Request{
		ClientID: "gateway", Audiences: []string{"https://orders.example.com"}, Scopes: []string{"orders:read"},
		GrantedScopes: []string{"orders:read"}, SubjectTokenType: "urn:ietf:params:oauth:token-type:access_token",
		RequestedTokenType: "urn:ietf:params:oauth:token-type:access_token",
	}}
}

// exprPolicy is validPolicy with one expression mapping "x".
func exprPolicy(expr string) Policy {
	p := validPolicy()
	p.Claims = []ClaimMapping{{Claim: "x", Expression: expr}}
	return p
}

func TestExpressionMappings(t *testing.T) {
	tests := []struct {
		expr string
		want any // the claim's value; nil means no claim
	}{
		// Strings, booleans and numbers keep their types.
		{`subject.email`, "ada@example.com"},
		{`subject.email.split("@")[1]`, "example.com"},
		{`subject.verified`, true},
		{`!subject.verified`, false},
		{`subject.realm_access.level`, json.Number("3")},
		{`subject.realm_access.level + 1`, json.Number("4")},
		{`subject.tenant`, json.Number("12345678901234567890")},
		{`subject.ratio`, json.Number("0.25")},
		{`subject.ratio * 4.0`, json.Number("1")},
		{`-7`, json.Number("-7")},
		{`2u`, json.Number("2")},
		{`1e300 * 10.0`, json.Number("1e+301")},
		// Arrays and objects stay arrays and objects.
		{`subject.permissions.filter(p, p.startsWith("orders:w"))`, []any{"orders:write"}},
		{`subject.permissions.map(p, p.upperAscii())`, []any{"ORDERS:READ", "ORDERS:WRITE"}},
		{`subject.permissions`, []any{"orders:read", "orders:write"}},
		{`subject["https://example.com/roles"]`, []any{"admin", "billing"}},
		{`subject.realm_access`, map[string]any{"roles": []any{"offline_access", "uma"}, "level": json.Number("3")}},
		{`{"n": subject.realm_access.level, "list": [1, 2.5, true, "s", null], "nested": {"a": []}}`,
			map[string]any{"n": json.Number("3"), "list": []any{json.Number("1"), json.Number("2.5"), true, "s", nil}, "nested": map[string]any{"a": []any{}}}},
		{`subject.permissions.filter(p, p.startsWith("nope"))`, []any{}},
		{`sets.intersects(subject.permissions, ["orders:read"])`, true},
		{`size(subject.permissions)`, json.Number("2")},
		// The request and the issuer.
		{`request.client_id`, "gateway"},
		{`request.audiences`, []any{"https://orders.example.com"}},
		{`request.granted_scopes`, []any{"orders:read"}},
		{`request.requested_token_type.endsWith(":access_token")`, true},
		{`issuer`, "auth0"},
		// No value: a missing claim, null, an empty optional.
		{`subject.nope`, nil},
		{`subject.realm_access.nope`, nil},
		{`subject.nothing`, nil},
		{`null`, nil},
		{`subject.?nope`, nil},
		{`subject.?email`, "ada@example.com"},
		{`subject.?nope.orValue("default")`, "default"},
		{`has(subject.nope) ? subject.nope : "absent"`, "absent"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			c, err := Compile(exprPolicy(tt.expr))
			require.NoError(t, err)
			got, err := c.Evaluate(celInput(t), nil, nil)
			require.NoError(t, err)
			if tt.want == nil {
				require.Empty(t, got)
				return
			}
			require.Equal(t, []Claim{{"x", tt.want}}, got)
			_, err = json.Marshal(got[0].Value)
			require.NoError(t, err, "the value encodes as JSON")
		})
	}
}

func TestConditions(t *testing.T) {
	tests := []struct {
		cond    string
		holds   bool
		outcome string
		reason  string // of the denial
	}{
		{`"orders:read" in subject.permissions && subject.verified`, true, OutcomeSatisfied, ""},
		{`subject.verified`, true, OutcomeSatisfied, ""},
		{`subject.tenant > 5`, true, OutcomeSatisfied, ""},
		{`subject.tenant == 12345678901234567890u`, true, OutcomeSatisfied, ""},
		{`subject.realm_access.level == 3.0`, true, OutcomeSatisfied, ""},
		{`request.client_id in ["gateway", "other"]`, true, OutcomeSatisfied, ""},
		{`issuer == "auth0"`, true, OutcomeSatisfied, ""},
		{`"orders:delete" in subject.permissions`, false, OutcomeNotSatisfied,
			`conditions[0] is not satisfied: "orders:delete" in subject.permissions`},
		{`subject.email_verified`, false, OutcomeNotSatisfied,
			"conditions[0] is not satisfied (it reads a claim the subject does not have): subject.email_verified"},
		{`subject.email`, false, OutcomeError, "conditions[0] does not yield a boolean: subject.email"},
		{`int(subject.email) > 0`, false, OutcomeError, "conditions[0] could not be evaluated: int(subject.email) > 0"},
		{"subject.verified &&\n   false", false, OutcomeNotSatisfied, "conditions[0] is not satisfied: subject.verified && false"},
	}
	for _, tt := range tests {
		t.Run(tt.cond, func(t *testing.T) {
			p := validPolicy()
			p.Conditions = []string{tt.cond}
			c, err := Compile(p)
			require.NoError(t, err)
			var tr Trace
			out, err := c.Evaluate(celInput(t), nil, &tr)
			require.Equal(t, tt.outcome, tr.Steps[0].Outcome)
			if tt.holds {
				require.NoError(t, err)
				require.NotEmpty(t, out)
				return
			}
			var d *Denied
			require.True(t, errors.As(err, &d), "%v", err)
			require.Equal(t, "conditions[0]", d.Field)
			require.Equal(t, tt.reason, d.Reason)
			require.NotContains(t, d.Reason, "ada@example.com")
			require.Nil(t, out)
		})
	}
}

// TestEvaluateStopsAtFirstDenial: without a trace nothing after the
// denial runs; with one everything is explained and the first denial wins.
func TestEvaluateStopsAtFirstDenial(t *testing.T) {
	p := validPolicy()
	p.Conditions = []string{`false`, `subject.nope`}
	p.Claims = []ClaimMapping{{Claim: "email"}, {Claim: "x", From: "nope", Required: true}}
	c, err := Compile(p)
	require.NoError(t, err)
	_, err = c.Evaluate(celInput(t), nil, nil)
	require.Equal(t, "conditions[0]", err.(*Denied).Field)

	var tr Trace
	_, err = c.Evaluate(celInput(t), nil, &tr)
	require.Equal(t, "conditions[0]", err.(*Denied).Field)
	require.Equal(t, []Step{
		{Field: "conditions[0]", Outcome: OutcomeNotSatisfied, Reason: "false"},
		{Field: "conditions[1]", Outcome: OutcomeNotSatisfied, Reason: "it reads a claim the subject does not have"},
		{Field: "claims[0]", Claim: "email", Outcome: OutcomePassed, Reason: `copied from "email"`},
		{Field: "claims[1]", Claim: "x", Outcome: OutcomeDenied, Reason: "required, but the subject has no such claim, or it is null"},
	}, tr.Steps)
}

func TestRequiredAndEmpty(t *testing.T) {
	subject := map[string]any{"sub": "s", "groups": []any{}, "nick": "", "org": map[string]any{}, "name": "Ada", "nothing": nil}
	tests := []struct {
		name    string
		policy  string // empty_claims
		mapping ClaimMapping
		want    []Claim
		denied  bool
	}{
		{"an empty array passes by default", "", ClaimMapping{Claim: "groups"}, []Claim{{"groups", []any{}}}, false},
		{"an empty string passes by default", "", ClaimMapping{Claim: "nick"}, []Claim{{"nick", ""}}, false},
		{"empty_claims drop drops an empty array", EmptyDrop, ClaimMapping{Claim: "groups"}, nil, false},
		{"empty_claims drop drops an empty string", EmptyDrop, ClaimMapping{Claim: "nick"}, nil, false},
		{"empty_claims drop drops an empty object", EmptyDrop, ClaimMapping{Claim: "org"}, nil, false},
		{"empty_claims drop keeps a value", EmptyDrop, ClaimMapping{Claim: "name"}, []Claim{{"name", "Ada"}}, false},
		{"a mapping's empty keep wins over the policy's drop", EmptyDrop, ClaimMapping{Claim: "groups", Empty: EmptyKeep}, []Claim{{"groups", []any{}}}, false},
		{"a mapping's empty drop wins over the policy's keep", EmptyKeep, ClaimMapping{Claim: "groups", Empty: EmptyDrop}, nil, false},
		{"required and present", "", ClaimMapping{Claim: "name", Required: true}, []Claim{{"name", "Ada"}}, false},
		{"required and missing", "", ClaimMapping{Claim: "missing", Required: true}, nil, true},
		{"required and null", "", ClaimMapping{Claim: "nothing", Required: true}, nil, true},
		{"required, empty and kept", "", ClaimMapping{Claim: "groups", Required: true}, []Claim{{"groups", []any{}}}, false},
		{"required, empty and dropped", EmptyDrop, ClaimMapping{Claim: "groups", Required: true}, nil, true},
		{"required expression without a value", "", ClaimMapping{Claim: "x", Expression: "subject.missing", Required: true}, nil, true},
		{"a static value", "", ClaimMapping{Claim: "env", Value: json.RawMessage(` { "tier" : [1, 12345678901234567890] } `)},
			[]Claim{{"env", json.RawMessage(`{"tier":[1,12345678901234567890]}`)}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validPolicy()
			p.EmptyClaims = tt.policy
			p.Claims = []ClaimMapping{tt.mapping}
			c, err := Compile(p)
			require.NoError(t, err)
			got, err := c.Evaluate(&Input{Subject: subject}, nil, nil)
			if tt.denied {
				var d *Denied
				require.True(t, errors.As(err, &d))
				require.Equal(t, fmt.Sprintf("the required claim %q (claims[0]) has no value for this subject", tt.mapping.Claim), d.Reason)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestIssuerSources(t *testing.T) {
	p := validPolicy()
	p.AllowedIssuers = []string{"auth0", "okta"}
	p.Claims = []ClaimMapping{{Claim: "permissions", Sources: map[string]string{"okta": "https://corp/perm"}},
		{Claim: "roles", From: "/a/roles", Sources: map[string]string{"auth0": "/b/roles"}}}
	c, err := Compile(p)
	require.NoError(t, err)
	subject := map[string]any{"permissions": []any{"p"}, "https://corp/perm": []any{"corp"},
		"a": map[string]any{"roles": []any{"ra"}}, "b": map[string]any{"roles": []any{"rb"}}}
	for issuer, want := range map[string][]Claim{
		"auth0": {{"permissions", []any{"p"}}, {"roles", []any{"rb"}}},
		"okta":  {{"permissions", []any{"corp"}}, {"roles", []any{"ra"}}},
		"other": {{"permissions", []any{"p"}}, {"roles", []any{"ra"}}},
	} {
		got, err := c.Evaluate(&Input{Subject: subject, Issuer: issuer}, nil, nil)
		require.NoError(t, err)
		require.Equal(t, want, got, issuer)
	}
	require.ElementsMatch(t, []string{"https://corp/perm", "a"}, c.CopiedClaims("okta"))
}

func TestCostLimit(t *testing.T) {
	big := make([]any, 20_000)
	for i := range big {
		big[i] = fmt.Sprintf("perm:%05d", i)
	}
	subject := map[string]any{"permissions": big}

	t.Run("one expression beyond the limit denies", func(t *testing.T) {
		c, err := Compile(exprPolicy(`subject.permissions.filter(p, p.startsWith("perm:1")).size() > 0`))
		require.NoError(t, err)
		var tr Trace
		_, err = c.Evaluate(&Input{Subject: subject}, nil, &tr)
		var d *Denied
		require.True(t, errors.As(err, &d))
		require.Equal(t, "the evaluation exceeded its cost limit at claims[0]", d.Reason)
		require.ErrorIs(t, err, errCostLimit)
		require.Greater(t, tr.Cost, uint64(MaxCost))
	})
	t.Run("the limit is for the whole policy", func(t *testing.T) {
		p := validPolicy()
		p.Claims = nil
		for i := range 8 {
			p.Claims = append(p.Claims, ClaimMapping{Claim: fmt.Sprintf("c%d", i), Expression: `subject.permissions.exists(p, p == "none")`})
		}
		c, err := Compile(p)
		require.NoError(t, err)
		small := map[string]any{"permissions": big[:4000]}
		var tr Trace
		_, err = c.Evaluate(&Input{Subject: small}, nil, &tr)
		var d *Denied
		require.True(t, errors.As(err, &d), "%v", err)
		require.Contains(t, d.Reason, "exceeded its cost limit")
		require.NotEqual(t, "claims[0]", d.Field, "the first expressions fit, a later one tips the total")
	})
	t.Run("a large but bounded subject is fine", func(t *testing.T) {
		c, err := Compile(exprPolicy(`subject.permissions.filter(p, p.startsWith("perm:0001"))`))
		require.NoError(t, err)
		got, err := c.Evaluate(&Input{Subject: map[string]any{"permissions": big[:1000]}}, nil, nil)
		require.NoError(t, err)
		require.Len(t, got[0].Value, 10)
	})
}

func TestCompileExpressionErrors(t *testing.T) {
	tests := []struct {
		name  string
		field string // "" is a condition
		expr  string
		want  FieldError
	}{
		{"an undeclared variable, with its position", "claims[0].expression", `subjct.email`,
			FieldError{Field: "claims[0].expression", Line: 1, Column: 1, Reason: "at 1:1: undeclared reference to 'subjct' (did you mean 'subject'?)"}},
		{"an unknown request field", "claims[0].expression", `request.client_id + request.clientid`,
			FieldError{Field: "claims[0].expression", Line: 1, Column: 28, Reason: "at 1:28: undefined field 'clientid'"}},
		{"a syntax error on the second line", "claims[0].expression", "subject.email +\n  )",
			FieldError{Field: "claims[0].expression", Line: 2, Column: 3, Reason: "at 2:3: Syntax error: mismatched input ')' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}"}},
		{"a type error", "claims[0].expression", `request.client_id + 1`,
			FieldError{Field: "claims[0].expression", Line: 1, Column: 19, Reason: "at 1:19: found no matching overload for '_+_' applied to '(string, int)'"}},
		{"a value with no JSON form", "claims[0].expression", `timestamp("2026-01-01T00:00:00Z")`,
			FieldError{Field: "claims[0].expression", Reason: "yields google.protobuf.Timestamp, which has no JSON form; convert it, e.g. with string()"}},
		{"bytes have no JSON form", "claims[0].expression", `b"abc"`,
			FieldError{Field: "claims[0].expression", Reason: "yields bytes, which has no JSON form; convert it, e.g. with string()"}},
		{"a condition that is not boolean", "conditions[0]", `request.client_id`,
			FieldError{Field: "conditions[0]", Reason: "must be a boolean expression, not string"}},
		{"a quadratic expression is too costly", "claims[0].expression", `subject.a.filter(x, subject.b.exists(y, x == y))`,
			FieldError{Field: "claims[0].expression", Reason: "its estimated cost (2101261) exceeds the limit of 100000 for a subject whose claims hold up to 256 values of 256 bytes; simplify it (iterating over one claim inside another is the usual cause)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := exprPolicy(tt.expr)
			if tt.field == "conditions[0]" {
				p.Claims, p.Conditions = nil, []string{tt.expr}
			}
			_, err := Compile(p)
			var v *ValidationError
			require.True(t, errors.As(err, &v), "%v", err)
			require.Equal(t, []FieldError{tt.want}, v.Fields)
		})
	}
}

func TestCompileReportsEveryExpression(t *testing.T) {
	p := validPolicy()
	p.Conditions = []string{`subjct`, `true`, `1 +`}
	p.Claims = []ClaimMapping{{Claim: "a", Expression: `nope`}, {Claim: "b", Expression: `subject.x`}}
	require.Equal(t, []string{"conditions[0]", "conditions[2]", "claims[0].expression"}, fields(t, p.Validate()))
}

func TestEvaluateResultLimits(t *testing.T) {
	deep := strings.Repeat("[", maxResultDepth+2) + strings.Repeat("]", maxResultDepth+2)
	c, err := Compile(exprPolicy(deep))
	require.NoError(t, err)
	_, err = c.Evaluate(celInput(t), nil, nil)
	require.ErrorContains(t, err, "nested deeper")

	c, err = Compile(exprPolicy(`{1: "a"}`))
	require.NoError(t, err)
	_, err = c.Evaluate(celInput(t), nil, nil)
	require.ErrorContains(t, err, "JSON object keys are strings")
	require.Equal(t, `claims[0] ("x") could not be computed`, err.(*Denied).Reason)
}

// FuzzExpression: no expression makes compilation or evaluation panic;
// what compiles either denies or yields values that encode as JSON.
func FuzzExpression(f *testing.F) {
	for _, s := range []string{
		`subject.permissions.filter(p, p.startsWith("orders:"))`, `subject.tenant + 1u`, `{"a": [1, 2.5, null]}`,
		`subject.?nope.orValue(1)`, `request.audiences[0]`, `1 / 0`, `"a".repeat(3)`, `[[[]]]`, `subject`, `issuer + ""`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		c, err := Compile(exprPolicy(expr))
		if err != nil {
			var v *ValidationError
			if !errors.As(err, &v) {
				t.Fatalf("%q: %T %v", expr, err, err)
			}
			return
		}
		out, err := c.Evaluate(celInput(t), nil, nil)
		if err != nil {
			if _, ok := err.(*Denied); !ok {
				t.Fatalf("%q: %T %v", expr, err, err)
			}
			return
		}
		for _, cl := range out {
			if _, err := json.Marshal(cl.Value); err != nil {
				t.Fatalf("%q: %v", expr, err)
			}
		}
	})
}
