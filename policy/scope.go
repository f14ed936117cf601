package policy

import (
	"slices"
	"strings"
)

// SubjectScopes reads the scope a subject token was granted: the "scope"
// claim (a space-separated string, RFC 8693 §4.2 and RFC 9068 §2.2.3) or,
// when it is absent, "scp" (an array of strings, as Okta issues it, or a
// space-separated string, as Entra ID does). Values of another type count
// as no scope.
func SubjectScopes(claims map[string]any) []string {
	v, ok := claims["scope"]
	if !ok {
		v = claims["scp"]
	}
	switch s := v.(type) {
	case string:
		return strings.Fields(s)
	case []any:
		out := make([]string, 0, len(s))
		for _, e := range s {
			if str, ok := e.(string); ok && str != "" {
				out = append(out, str)
			}
		}
		return out
	}
	return nil
}

// GrantScopes returns the scope to grant: the requested scopes that the
// policy allows and the subject holds, in request order; when nothing is
// requested, the allowed scopes the subject holds, in policy order. The
// subject's scope does not count when the policy's SubjectScope is
// SubjectScopeIgnore. Each scope is granted once.
func (c *Compiled) GrantScopes(requested, subject []string) []string {
	want := requested
	if len(want) == 0 {
		want = c.Policy.Scopes
	}
	ignore := c.Policy.SubjectScope == SubjectScopeIgnore
	var granted []string
	for _, s := range want {
		if slices.Contains(c.Policy.Scopes, s) && (ignore || slices.Contains(subject, s)) && !slices.Contains(granted, s) {
			granted = append(granted, s)
		}
	}
	return granted
}
