package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// validPolicy is a policy that passes Validate; cases change one thing.
func validPolicy() Policy {
	return Policy{
		Name:           "orders",
		Audience:       "https://orders.example.com",
		AllowedClients: []string{"gateway"},
		AllowedIssuers: []string{"auth0"},
		Claims: []ClaimMapping{
			{Claim: "permissions"},
			{Claim: "roles", From: "https://example.com/roles"},
			{Claim: "realm_roles", From: "/realm_access/roles"},
		},
		Scopes:               []string{"orders:read", "orders:write"},
		TokenLifetimeSeconds: 300,
	}
}

// fields returns the field names of err, which must be a *ValidationError.
func fields(t *testing.T, err error) []string {
	t.Helper()
	var v *ValidationError
	require.True(t, errors.As(err, &v), "want a *ValidationError, got %T: %v", err, err)
	names := make([]string, len(v.Fields))
	for i, f := range v.Fields {
		names[i] = f.Field
		require.NotEmpty(t, f.Reason, "field %s has a reason", f.Field)
	}
	return names
}

func repeat(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(p *Policy)
		want   []string // field names in the ValidationError; nil means valid
	}{
		{"a complete policy is valid", func(*Policy) {}, nil},
		{"a minimal policy is valid", func(p *Policy) { p.Claims, p.Scopes, p.TokenLifetimeSeconds = nil, nil, 0 }, nil},
		{"names may use dots, dashes and underscores after the first character", func(p *Policy) { p.Name = "a1.b-c_d" }, nil},
		{"a 128-character name is valid", func(p *Policy) { p.Name = strings.Repeat("a", 128) }, nil},

		{"name is required", func(p *Policy) { p.Name = "" }, []string{"name"}},
		{"name must be lower case", func(p *Policy) { p.Name = "Orders" }, []string{"name"}},
		{"name must not start with a dash", func(p *Policy) { p.Name = "-orders" }, []string{"name"}},
		{"name must not start with a dot", func(p *Policy) { p.Name = ".orders" }, []string{"name"}},
		{"name must not contain a slash", func(p *Policy) { p.Name = "a/b" }, []string{"name"}},
		{"name must not contain a space", func(p *Policy) { p.Name = "a b" }, []string{"name"}},
		{"name must be ASCII", func(p *Policy) { p.Name = "ordérs" }, []string{"name"}},
		{"name is at most 128 characters", func(p *Policy) { p.Name = strings.Repeat("a", 129) }, []string{"name"}},

		{"audience is required", func(p *Policy) { p.Audience = "" }, []string{"audience"}},
		{"audience is at most 512 characters", func(p *Policy) { p.Audience = strings.Repeat("a", 513) }, []string{"audience"}},
		{"a 512-character audience is valid", func(p *Policy) { p.Audience = strings.Repeat("a", 512) }, nil},
		{"audience must not contain a space", func(p *Policy) { p.Audience = "a b" }, []string{"audience"}},
		{"audience must not contain a tab", func(p *Policy) { p.Audience = "a\tb" }, []string{"audience"}},
		{"audience must not contain a newline", func(p *Policy) { p.Audience = "a\nb" }, []string{"audience"}},
		{"audience must not contain a carriage return", func(p *Policy) { p.Audience = "a\rb" }, []string{"audience"}},

		{"allowed_clients is required", func(p *Policy) { p.AllowedClients = nil }, []string{"allowed_clients"}},
		{"allowed_clients must not hold an empty entry", func(p *Policy) { p.AllowedClients = []string{"a", ""} }, []string{"allowed_clients[1]"}},
		{"allowed_clients must not list a client twice", func(p *Policy) { p.AllowedClients = []string{"a", "b", "a"} }, []string{"allowed_clients[2]"}},
		{"allowed_clients holds at most 256 entries", func(p *Policy) { p.AllowedClients = repeat("c", MaxListLength+1) }, []string{"allowed_clients"}},
		{"allowed_clients may hold 256 entries", func(p *Policy) { p.AllowedClients = repeat("c", MaxListLength) }, nil},

		{"allowed_issuers is required", func(p *Policy) { p.AllowedIssuers = []string{} }, []string{"allowed_issuers"}},
		{"allowed_issuers must not hold an empty entry", func(p *Policy) { p.AllowedIssuers = []string{""} }, []string{"allowed_issuers[0]"}},
		{"allowed_issuers must not list an issuer twice", func(p *Policy) { p.AllowedIssuers = []string{"x", "x"} }, []string{"allowed_issuers[1]"}},
		{"allowed_issuers holds at most 256 entries", func(p *Policy) { p.AllowedIssuers = repeat("i", MaxListLength+1) }, []string{"allowed_issuers"}},

		{"scopes may be empty", func(p *Policy) { p.Scopes = nil }, nil},
		{"scopes must not hold an empty entry", func(p *Policy) { p.Scopes = []string{"a", ""} }, []string{"scopes[1]"}},
		{"scopes must not list a scope twice", func(p *Policy) { p.Scopes = []string{"a", "a"} }, []string{"scopes[1]"}},
		{"scopes holds at most 256 entries", func(p *Policy) { p.Scopes = repeat("s", MaxListLength+1) }, []string{"scopes"}},
		{"a scope must not contain a space", func(p *Policy) { p.Scopes = []string{"a b"} }, []string{"scopes[0]"}},
		{"a scope must not contain a tab", func(p *Policy) { p.Scopes = []string{"ok", "a\tb"} }, []string{"scopes[1]"}},
		{"a scope must not contain a newline", func(p *Policy) { p.Scopes = []string{"a\n"} }, []string{"scopes[0]"}},
		{"a scope must not contain a carriage return", func(p *Policy) { p.Scopes = []string{"a\r"} }, []string{"scopes[0]"}},
		{"a scope must not contain a double quote", func(p *Policy) { p.Scopes = []string{`a"b`} }, []string{"scopes[0]"}},
		{"a scope must not contain a backslash", func(p *Policy) { p.Scopes = []string{`a\b`} }, []string{"scopes[0]"}},
		{"a scope may contain URL characters", func(p *Policy) { p.Scopes = []string{"https://api.example.com/orders:read"} }, nil},

		{"at most 64 mappings", func(p *Policy) {
			p.Claims = nil
			for _, c := range repeat("c", MaxClaims+1) {
				p.Claims = append(p.Claims, ClaimMapping{Claim: c})
			}
		}, []string{"claims"}},
		{"64 mappings are allowed", func(p *Policy) {
			p.Claims = nil
			for _, c := range repeat("c", MaxClaims) {
				p.Claims = append(p.Claims, ClaimMapping{Claim: c})
			}
		}, nil},
		{"a mapping needs a claim name", func(p *Policy) { p.Claims = []ClaimMapping{{From: "email"}} }, []string{"claims[0].claim"}},
		{"a claim must not be mapped twice", func(p *Policy) {
			p.Claims = []ClaimMapping{{Claim: "roles"}, {Claim: "email"}, {Claim: "roles", From: "groups"}}
		}, []string{"claims[2].claim"}},
		{"two claims may share a source", func(p *Policy) {
			p.Claims = []ClaimMapping{{Claim: "roles", From: "groups"}, {Claim: "groups"}}
		}, nil},

		{"from may be a JSON Pointer with escapes", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "x", From: "/a~1b/c~0d"}} }, nil},
		{"from may be a namespaced claim name taken literally", func(p *Policy) {
			p.Claims = []ClaimMapping{{Claim: "x", From: "https://example.com/a~b//c"}}
		}, nil},
		{"a pointer must not be only a slash", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "x", From: "/"}} }, []string{"claims[0].from"}},
		{"a pointer must not start with an empty segment", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "x", From: "//a"}} }, []string{"claims[0].from"}},
		{"a pointer must not end with an empty segment", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "x", From: "/a/"}} }, []string{"claims[0].from"}},
		{"a pointer must not hold an empty middle segment", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "x", From: "/a//b"}} }, []string{"claims[0].from"}},
		{"a pointer must not use the escape ~2", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "x", From: "/a~2"}} }, []string{"claims[0].from"}},
		{"a pointer must not end with a lone tilde", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "x", From: "/a~"}} }, []string{"claims[0].from"}},
		{"a pointer must not hold a tilde before a letter", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "x", From: "/~a/b"}} }, []string{"claims[0].from"}},
		{"a pointer must not hold ~~1", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "x", From: "/a~~1"}} }, []string{"claims[0].from"}},
		{"a claim name starting with a slash is a pointer when from is empty", func(p *Policy) {
			p.Claims = []ClaimMapping{{Claim: "/a//b"}}
		}, []string{"claims[0].from"}},

		{"token_lifetime_seconds 0 means the default", func(p *Policy) { p.TokenLifetimeSeconds = 0 }, nil},
		{"token_lifetime_seconds may be the minimum", func(p *Policy) { p.TokenLifetimeSeconds = 10 }, nil},
		{"token_lifetime_seconds may be the maximum", func(p *Policy) { p.TokenLifetimeSeconds = 86400 }, nil},
		{"token_lifetime_seconds below the minimum", func(p *Policy) { p.TokenLifetimeSeconds = 9 }, []string{"token_lifetime_seconds"}},
		{"token_lifetime_seconds above the maximum", func(p *Policy) { p.TokenLifetimeSeconds = 86401 }, []string{"token_lifetime_seconds"}},
		{"token_lifetime_seconds must not be negative", func(p *Policy) { p.TokenLifetimeSeconds = -300 }, []string{"token_lifetime_seconds"}},

		{"audiences may list further targets", func(p *Policy) { p.Audiences = []string{"https://orders.example.com/v2", "urn:orders"} }, nil},
		{"audiences must not repeat audience", func(p *Policy) { p.Audiences = []string{"x", p.Audience} }, []string{"audiences[1]"}},
		{"audiences must not list a target twice", func(p *Policy) { p.Audiences = []string{"x", "x"} }, []string{"audiences[1]"}},
		{"audiences must not hold an empty entry", func(p *Policy) { p.Audiences = []string{""} }, []string{"audiences[0]"}},
		{"audiences must not hold whitespace", func(p *Policy) { p.Audiences = []string{"a b"} }, []string{"audiences[0]"}},
		{"audiences entries are at most 512 characters", func(p *Policy) { p.Audiences = []string{strings.Repeat("a", 513)} }, []string{"audiences[0]"}},

		{"conditions are CEL", func(p *Policy) {
			p.Conditions = []string{`"orders:read" in subject.permissions && subject.email_verified`}
		}, nil},
		{"a condition must not be empty", func(p *Policy) { p.Conditions = []string{"true", ""} }, []string{"conditions[1]"}},
		{"a condition is at most 4096 characters", func(p *Policy) { p.Conditions = []string{strings.Repeat(" ", 4093) + "true"} }, []string{"conditions[0]"}},
		{"at most 16 conditions", func(p *Policy) { p.Conditions = slices.Repeat([]string{"true"}, MaxConditions+1) }, []string{"conditions"}},

		{"a claim may be computed", func(p *Policy) {
			p.Claims = []ClaimMapping{{Claim: "orders", Expression: `subject.permissions.filter(p, p.startsWith("orders:"))`, Required: true, Empty: EmptyDrop}}
		}, nil},
		{"a claim may be static", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "env", Value: json.RawMessage(`{"tier": "gold"}`)}} }, nil},
		{"an expression is at most 4096 characters", func(p *Policy) {
			p.Claims = []ClaimMapping{{Claim: "x", Expression: strings.Repeat(" ", 4096) + "1"}}
		}, []string{"claims[0].expression"}},
		{"expression and from exclude each other", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "x", From: "a", Expression: "1"}} }, []string{"claims[0]"}},
		{"expression and value exclude each other", func(p *Policy) {
			p.Claims = []ClaimMapping{{Claim: "x", Value: json.RawMessage("1"), Expression: "1"}}
		}, []string{"claims[0]"}},
		{"value and sources exclude each other", func(p *Policy) {
			p.Claims = []ClaimMapping{{Claim: "x", Value: json.RawMessage("1"), Sources: map[string]string{"auth0": "a"}}}
		}, []string{"claims[0]"}},
		{"a static value cannot be required", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "x", Value: json.RawMessage("1"), Required: true}} }, []string{"claims[0].required"}},
		{"a static value must be JSON", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "x", Value: json.RawMessage("{")}} }, []string{"claims[0].value"}},
		{"a static value must not be null", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "x", Value: json.RawMessage(" null")}} }, []string{"claims[0].value"}},
		{"a static value is at most 4096 bytes", func(p *Policy) {
			p.Claims = []ClaimMapping{{Claim: "x", Value: json.RawMessage(`"` + strings.Repeat("a", 4095) + `"`)}}
		}, []string{"claims[0].value"}},
		{"a computed claim must not be reserved", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "aud", Expression: `"x"`}} }, []string{"claims[0].claim"}},
		{"a static claim must not be reserved", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "scope", Value: json.RawMessage(`"admin"`)}} }, []string{"claims[0].claim"}},
		{"sources per issuer", func(p *Policy) {
			p.Claims = []ClaimMapping{{Claim: "permissions", Sources: map[string]string{"auth0": "https://corp/perm"}}}
		}, nil},
		{"sources must name allowed issuers", func(p *Policy) {
			p.Claims = []ClaimMapping{{Claim: "permissions", Sources: map[string]string{"okta": "perm", "auth0": "/x/"}}}
		}, []string{"claims[0].sources[auth0]", "claims[0].sources[okta]"}},
		{"a source must not be empty", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "x", Sources: map[string]string{"auth0": ""}}} }, []string{"claims[0].sources[auth0]"}},
		{"empty must be keep or drop", func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "x", Empty: "omit"}} }, []string{"claims[0].empty"}},

		{"empty_claims drop", func(p *Policy) { p.EmptyClaims = EmptyDrop }, nil},
		{"empty_claims must be keep or drop", func(p *Policy) { p.EmptyClaims = "remove" }, []string{"empty_claims"}},
		{"subject_scope ignore", func(p *Policy) { p.SubjectScope = SubjectScopeIgnore }, nil},
		{"subject_scope must be intersect or ignore", func(p *Policy) { p.SubjectScope = "union" }, []string{"subject_scope"}},
		{"token_type jwt", func(p *Policy) { p.TokenType = TokenTypeJWT }, nil},
		{"token_type access_token", func(p *Policy) { p.TokenType = TokenTypeAccessToken }, nil},
		{"token_type must be access_token or jwt", func(p *Policy) { p.TokenType = "urn:ietf:params:oauth:token-type:jwt" }, []string{"token_type"}},

		{"every problem is reported at once", func(p *Policy) {
			*p = Policy{
				Claims:               []ClaimMapping{{Claim: "sub"}, {Claim: "x", From: "/"}},
				Scopes:               []string{"a b"},
				TokenLifetimeSeconds: 1,
			}
		}, []string{"name", "audience", "allowed_clients", "allowed_issuers", "scopes[0]", "claims[0].claim", "claims[1].from", "token_lifetime_seconds"}},
		{"every problem is reported at once, new fields in field order", func(p *Policy) {
			p.Audiences = []string{""}
			p.Conditions = []string{"nope"}
			p.Claims = []ClaimMapping{{Claim: "iat", Expression: "1 +"}}
			p.EmptyClaims, p.SubjectScope, p.TokenType = "x", "y", "z"
		}, []string{"audiences[0]", "conditions[0]", "claims[0].claim", "claims[0].expression", "empty_claims", "subject_scope", "token_type"}},
	}
	for _, reserved := range Reserved {
		tests = append(tests, struct {
			name   string
			change func(p *Policy)
			want   []string
		}{
			name:   "reserved claim " + reserved + " cannot be mapped",
			change: func(p *Policy) { p.Claims = []ClaimMapping{{Claim: "email"}, {Claim: reserved, From: "other"}} },
			want:   []string{"claims[1].claim"},
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validPolicy()
			tt.change(&p)
			err := p.Validate()
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.Equal(t, tt.want, fields(t, err))
		})
	}
}

// TestReservedList pins the reserved claims, so that removing one is a
// deliberate change.
func TestReservedList(t *testing.T) {
	require.ElementsMatch(t, []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "act", "may_act", "client_id", "scope", "cnf"}, Reserved)
}

// TestValidateLifetimeOverflow proves that a lifetime whose conversion to a
// time.Duration overflows is rejected rather than wrapped into range.
func TestValidateLifetimeOverflow(t *testing.T) {
	p := validPolicy()
	p.TokenLifetimeSeconds = 3600 + 1<<55
	require.Equal(t, []string{"token_lifetime_seconds"}, fields(t, p.Validate()))
}

func TestValidationErrorMessage(t *testing.T) {
	p := validPolicy()
	p.Name, p.Audience = "", ""
	err := p.Validate()
	require.EqualError(t, err, "invalid: name: must be 1-128 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit; audience: is required")
	var v ValidationError
	require.NoError(t, v.Err(), "no problem recorded means no error")
}

func TestCompileRejectsInvalid(t *testing.T) {
	p := validPolicy()
	p.Claims = append(p.Claims, ClaimMapping{Claim: "sub"})
	c, err := Compile(p)
	require.Nil(t, c)
	require.Equal(t, []string{"claims[3].claim"}, fields(t, err))
}

// subjectClaims are decoded the way the token service decodes a subject
// token: numbers are json.Number.
func subjectClaims(t *testing.T) map[string]any {
	t.Helper()
	const doc = `{
		"sub": "auth0|42",
		"email": "ada@example.com",
		"permissions": ["orders:read", "orders:write"],
		"https://example.com/roles": ["admin", "billing"],
		"realm_access": {"roles": ["offline_access", "uma"], "level": 3},
		"a/b": {"c~d": "escaped"},
		"tenant": 12345678901234567890,
		"ratio": 0.25,
		"verified": true,
		"address": {"country": "FR"},
		"nothing": null,
		"flat": "not an object"
	}`
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var m map[string]any
	require.NoError(t, dec.Decode(&m))
	return m
}

func compile(t *testing.T, mappings ...ClaimMapping) *Compiled {
	t.Helper()
	p := validPolicy()
	p.Claims = mappings
	c, err := Compile(p)
	require.NoError(t, err)
	return c
}

// apply evaluates c for subject, which must not be denied.
func apply(t *testing.T, c *Compiled, subject map[string]any) []Claim {
	t.Helper()
	out, err := c.Evaluate(&Input{Subject: subject, Issuer: "auth0"}, nil, nil)
	require.NoError(t, err)
	return out
}

func TestApply(t *testing.T) {
	subject := subjectClaims(t)
	tests := []struct {
		name     string
		mappings []ClaimMapping
		want     []Claim
	}{
		{"copies a claim under its own name", []ClaimMapping{{Claim: "email"}},
			[]Claim{{"email", "ada@example.com"}}},
		{"renames a claim", []ClaimMapping{{Claim: "mail", From: "email"}},
			[]Claim{{"mail", "ada@example.com"}}},
		{"takes a namespaced claim name literally", []ClaimMapping{{Claim: "roles", From: "https://example.com/roles"}},
			[]Claim{{"roles", []any{"admin", "billing"}}}},
		{"follows a nested JSON Pointer", []ClaimMapping{{Claim: "realm_roles", From: "/realm_access/roles"}},
			[]Claim{{"realm_roles", []any{"offline_access", "uma"}}}},
		{"a one-segment pointer is a top-level claim", []ClaimMapping{{Claim: "mail", From: "/email"}},
			[]Claim{{"mail", "ada@example.com"}}},
		{"unescapes ~1 and ~0 in a pointer", []ClaimMapping{{Claim: "x", From: "/a~1b/c~0d"}},
			[]Claim{{"x", "escaped"}}},
		{"skips a missing top-level source", []ClaimMapping{{Claim: "groups"}, {Claim: "email"}},
			[]Claim{{"email", "ada@example.com"}}},
		{"skips a missing nested source", []ClaimMapping{{Claim: "x", From: "/realm_access/groups"}}, nil},
		{"skips a pointer through a non-object", []ClaimMapping{{Claim: "x", From: "/flat/roles"}}, nil},
		{"skips a pointer through an array", []ClaimMapping{{Claim: "x", From: "/permissions/0"}}, nil},
		{"skips a null source as missing", []ClaimMapping{{Claim: "nothing"}}, nil},
		{"a pointer into a missing parent is skipped", []ClaimMapping{{Claim: "x", From: "/nope/roles"}}, nil},
		{"keeps numbers as json.Number, exactly", []ClaimMapping{{Claim: "tenant"}, {Claim: "ratio"}},
			[]Claim{{"tenant", json.Number("12345678901234567890")}, {"ratio", json.Number("0.25")}}},
		{"keeps booleans and objects", []ClaimMapping{{Claim: "verified"}, {Claim: "address"}},
			[]Claim{{"verified", true}, {"address", map[string]any{"country": "FR"}}}},
		{"keeps a nested object under a pointer", []ClaimMapping{{Claim: "realm", From: "/realm_access"}},
			[]Claim{{"realm", map[string]any{"roles": []any{"offline_access", "uma"}, "level": json.Number("3")}}}},
		{"outputs in policy order, not source order", []ClaimMapping{{Claim: "z", From: "email"}, {Claim: "a", From: "verified"}, {Claim: "m", From: "tenant"}},
			[]Claim{{"z", "ada@example.com"}, {"a", true}, {"m", json.Number("12345678901234567890")}}},
		{"maps one source to two claims", []ClaimMapping{{Claim: "email"}, {Claim: "mail", From: "email"}},
			[]Claim{{"email", "ada@example.com"}, {"mail", "ada@example.com"}}},
		{"no mappings, no claims", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, apply(t, compile(t, tt.mappings...), subject))
		})
	}
}

// TestApplyPassesValuesThrough proves arrays and objects are the subject's
// own values, not copies or flattened renderings.
func TestApplyPassesValuesThrough(t *testing.T) {
	subject := subjectClaims(t)
	c := compile(t, ClaimMapping{Claim: "permissions"}, ClaimMapping{Claim: "address"}, ClaimMapping{Claim: "realm", From: "/realm_access"})
	got := apply(t, c, subject)
	require.Len(t, got, 3)

	perms := subject["permissions"].([]any)
	require.Same(t, &perms[0], &got[0].Value.([]any)[0], "the array is passed through, not copied")
	require.Equal(t, reflect.ValueOf(subject["address"]).UnsafePointer(), reflect.ValueOf(got[1].Value).UnsafePointer(), "the object is passed through, not copied")
	require.Equal(t, reflect.ValueOf(subject["realm_access"]).UnsafePointer(), reflect.ValueOf(got[2].Value).UnsafePointer())
}

func TestApplyAppends(t *testing.T) {
	c := compile(t, ClaimMapping{Claim: "email"})
	out := make([]Claim, 0, 4)
	out = append(out, Claim{"first", "kept"})
	got, err := c.Evaluate(&Input{Subject: subjectClaims(t)}, out, nil)
	require.NoError(t, err)
	require.Equal(t, []Claim{{"first", "kept"}, {"email", "ada@example.com"}}, got)
}

func TestApplyPermissionsArray(t *testing.T) {
	perms := make([]any, 20)
	for i := range perms {
		perms[i] = fmt.Sprintf("perm:%d", i)
	}
	c := compile(t, ClaimMapping{Claim: "permissions"})
	got := apply(t, c, map[string]any{"permissions": perms})
	require.Equal(t, []Claim{{"permissions", perms}}, got, "a 20-element array stays one array claim")
}

func TestCompiledAccessors(t *testing.T) {
	p := validPolicy()
	p.TokenLifetimeSeconds = 0
	c, err := Compile(p)
	require.NoError(t, err)
	require.True(t, c.AllowsClient("gateway"))
	require.False(t, c.AllowsClient("Gateway"))
	require.False(t, c.AllowsClient(""))
	require.True(t, c.AllowsIssuer("auth0"))
	require.False(t, c.AllowsIssuer("okta"))
	require.Equal(t, 7*time.Minute, c.Lifetime(7*time.Minute), "no lifetime set: the default applies")

	p.TokenLifetimeSeconds = 60
	c, err = Compile(p)
	require.NoError(t, err)
	require.Equal(t, time.Minute, c.Lifetime(7*time.Minute), "the policy's lifetime wins")
}

func TestParseSource(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{"a plain claim name is one segment", "email", []string{"email"}, false},
		{"a namespaced URL is taken literally", "https://example.com/roles", []string{"https://example.com/roles"}, false},
		{"a literal name may hold tildes", "a~b", []string{"a~b"}, false},
		{"a pointer splits on slashes", "/realm_access/roles", []string{"realm_access", "roles"}, false},
		{"~1 is a slash", "/a~1b", []string{"a/b"}, false},
		{"~0 is a tilde", "/a~0b", []string{"a~b"}, false},
		{"~01 is a tilde then 1, not a slash", "/~01", []string{"~1"}, false},
		{"~10 is a slash then 0", "/~10", []string{"/0"}, false},
		{"a lone slash is an empty segment", "/", nil, true},
		{"a trailing slash is an empty segment", "/a/", nil, true},
		{"a double slash is an empty segment", "/a//b", nil, true},
		{"~2 is not an escape", "/a~2", nil, true},
		{"a trailing tilde is not an escape", "/a~", nil, true},
		{"an escape in a later segment is checked", "/ok/b~x", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSource(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// escapePointer is the inverse of parseSource for pointers (RFC 6901 §4).
func escapePointer(segs []string) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

func FuzzParseSource(f *testing.F) {
	for _, s := range []string{
		"", "/", "//", "email", "https://example.com/roles", "/realm_access/roles",
		"/a~0b/c~1d", "/~01", "/~", "/a~2", "/a//b", "/a/", "~", "/\xff", strings.Repeat("/a", 100),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		segs, err := parseSource(s)
		if err != nil {
			if segs != nil {
				t.Fatalf("segments %q with an error", segs)
			}
			if !strings.HasPrefix(s, "/") {
				t.Fatalf("a literal claim name %q was rejected: %v", s, err)
			}
			return
		}
		if !strings.HasPrefix(s, "/") {
			if !slices.Equal(segs, []string{s}) {
				t.Fatalf("literal %q parsed as %q", s, segs)
			}
			// "" is the empty claim name, rejected by Validate as a
			// missing claim; every other source has no empty segment.
			if s == "" {
				return
			}
		}
		if len(segs) == 0 {
			t.Fatalf("%q: no segments", s)
		}
		for i, seg := range segs {
			if seg == "" {
				t.Fatalf("%q: segment %d is empty", s, i)
			}
		}
		if strings.HasPrefix(s, "/") {
			if back := escapePointer(segs); back != s {
				t.Fatalf("%q parsed as %q, which escapes back to %q", s, segs, back)
			}
		}
	})
}
