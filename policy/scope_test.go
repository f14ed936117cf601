package policy

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGrantScopes(t *testing.T) {
	all := []string{"a", "b", "c"}
	tests := []struct {
		name      string
		allowed   []string
		requested []string
		subject   []string
		ignore    bool // subject_scope: ignore
		want      []string
	}{
		{"requested ∩ allowed ∩ subject", []string{"a", "b"}, []string{"a", "b"}, all, false, []string{"a", "b"}},
		{"keeps the request order", all, []string{"c", "a"}, all, false, []string{"c", "a"}},
		{"drops what the policy does not allow", []string{"a", "b"}, []string{"a", "x", "b"}, append(all, "x"), false, []string{"a", "b"}},
		{"drops what the subject does not hold", all, []string{"a", "b", "c"}, []string{"c", "a"}, false, []string{"a", "c"}},
		{"nothing allowed grants nothing", []string{"a"}, []string{"x", "y"}, all, false, nil},
		{"a policy without scopes grants nothing", nil, []string{"a"}, all, false, nil},
		{"a subject without scope is granted nothing", all, []string{"a"}, nil, false, nil},
		{"a scope requested twice is granted once", []string{"a"}, []string{"a", "a"}, all, false, []string{"a"}},
		{"matching is exact and case-sensitive", []string{"orders:read"}, []string{"Orders:Read", "orders:read "}, []string{"Orders:Read", "orders:read "}, false, nil},
		{"nothing requested: allowed ∩ subject, in policy order", []string{"c", "b", "a"}, nil, []string{"a", "c", "x"}, false, []string{"c", "a"}},
		{"nothing requested, subject without scope: nothing", all, nil, nil, false, nil},
		{"nothing requested, nothing allowed: nothing", nil, nil, all, false, nil},
		{"subject_scope ignore: requested ∩ allowed", []string{"a", "b"}, []string{"b", "x"}, nil, true, []string{"b"}},
		{"subject_scope ignore, nothing requested: everything allowed", []string{"a", "b"}, nil, nil, true, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validPolicy()
			p.Scopes = tt.allowed
			if tt.ignore {
				p.SubjectScope = SubjectScopeIgnore
			}
			c, err := Compile(p)
			require.NoError(t, err)
			require.Equal(t, tt.want, c.GrantScopes(tt.requested, tt.subject))
		})
	}
}

func TestSubjectScopes(t *testing.T) {
	tests := []struct {
		name   string
		claims map[string]any
		want   []string
	}{
		{"a space-separated scope string", map[string]any{"scope": "openid  orders:read\torders:write"}, []string{"openid", "orders:read", "orders:write"}},
		{"an scp array (Okta)", map[string]any{"scp": []any{"orders:read", "", 42, "orders:write"}}, []string{"orders:read", "orders:write"}},
		{"an scp string (Entra ID)", map[string]any{"scp": "User.Read Mail.Read"}, []string{"User.Read", "Mail.Read"}},
		{"scope wins over scp", map[string]any{"scope": "a", "scp": []any{"b"}}, []string{"a"}},
		{"no scope at all", map[string]any{"sub": "x"}, nil},
		{"a scope of another type counts as none", map[string]any{"scope": json.Number("1")}, nil},
		{"an empty scope", map[string]any{"scope": ""}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SubjectScopes(tt.claims)
			if len(tt.want) == 0 {
				require.Empty(t, got)
				return
			}
			require.Equal(t, tt.want, got)
		})
	}
}
