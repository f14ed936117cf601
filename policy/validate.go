package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// validateFields checks everything but the claim mappings and the CEL
// expressions, in the order of the policy's fields.
func validateFields(p *Policy, v *ValidationError) {
	if !ValidName(p.Name) {
		v.Add("name", "must be 1-128 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit")
	}
	if reason := targetProblem(p.Audience); reason != "" {
		v.Add("audience", "%s", reason)
	}
	validList(v, "audiences", p.Audiences, false)
	for i, a := range p.Audiences {
		field := fmt.Sprintf("audiences[%d]", i)
		if reason := targetProblem(a); a != "" && reason != "" {
			v.Add(field, "%s", reason)
		} else if a != "" && a == p.Audience {
			v.Add(field, "repeats audience")
		}
	}
	validList(v, "allowed_clients", p.AllowedClients, true)
	validList(v, "allowed_issuers", p.AllowedIssuers, true)
	validList(v, "scopes", p.Scopes, false)
	for i, s := range p.Scopes {
		if strings.ContainsAny(s, " \t\r\n\"\\") {
			v.Add(fmt.Sprintf("scopes[%d]", i), "a scope value must not contain whitespace, '\"' or '\\'")
		}
	}
}

// validateTail checks the fields that follow the claims.
func validateTail(p *Policy, v *ValidationError) {
	oneOf(v, "empty_claims", p.EmptyClaims, EmptyKeep, EmptyDrop)
	oneOf(v, "subject_scope", p.SubjectScope, SubjectScopeIntersect, SubjectScopeIgnore)
	oneOf(v, "token_type", p.TokenType, TokenTypeAccessToken, TokenTypeJWT)
	oneOf(v, "signing_algorithm", p.SigningAlgorithm, SigningAlgorithms...)
	if s := p.TokenLifetimeSeconds; s != 0 {
		// Compared in seconds: a Duration product could wrap around.
		if s < int64(MinTokenLifetime/time.Second) || s > int64(MaxTokenLifetime/time.Second) {
			v.Add("token_lifetime_seconds", "must be between %d and %d", int64(MinTokenLifetime/time.Second), int64(MaxTokenLifetime/time.Second))
		}
	}
}

// targetProblem explains what is wrong with an audience value, or "".
func targetProblem(a string) string {
	switch {
	case a == "":
		return "is required"
	case len(a) > 512:
		return "must be at most 512 characters"
	case strings.ContainsAny(a, " \t\r\n"):
		return "must not contain whitespace"
	}
	return ""
}

func oneOf(v *ValidationError, field, value string, allowed ...string) {
	if value != "" && !slices.Contains(allowed, value) {
		v.Add(field, "must be one of %s (or left out)", strings.Join(allowed, ", "))
	}
}

func validList(v *ValidationError, field string, list []string, required bool) {
	if required && len(list) == 0 {
		v.Add(field, "must name at least one entry")
	}
	if len(list) > MaxListLength {
		v.Add(field, "at most %d entries", MaxListLength)
	}
	seen := make(map[string]bool, len(list))
	for i, s := range list {
		if s == "" {
			v.Add(fmt.Sprintf("%s[%d]", field, i), "must not be empty")
		} else if seen[s] {
			v.Add(fmt.Sprintf("%s[%d]", field, i), "%q is listed twice", s)
		}
		seen[s] = true
	}
}

// validateMapping checks one mapping's name and the combination of its
// fields; the expression is compiled by the caller.
func validateMapping(p *Policy, i int, m ClaimMapping, seen map[string]bool, v *ValidationError) {
	field := fmt.Sprintf("claims[%d]", i)
	switch {
	case m.Claim == "":
		v.Add(field+".claim", "is required")
	case slices.Contains(Reserved, m.Claim):
		v.Add(field+".claim", "%q is reserved and set by the token service (reserved: %s)", m.Claim, strings.Join(Reserved, " "))
	case seen[m.Claim]:
		v.Add(field+".claim", "%q is mapped twice", m.Claim)
	}
	seen[m.Claim] = true
	hasValue := len(m.Value) > 0
	switch {
	case m.Expression != "" && (m.From != "" || len(m.Sources) > 0 || hasValue):
		v.Add(field, "expression cannot be combined with from, sources or value: a mapping is a copy, an expression or a static value")
	case hasValue && (m.From != "" || len(m.Sources) > 0):
		v.Add(field, "value cannot be combined with from or sources: a mapping is a copy, an expression or a static value")
	case hasValue && m.Required:
		v.Add(field+".required", "a static value is always present; required applies to copies and expressions")
	}
	oneOf(v, field+".empty", m.Empty, EmptyKeep, EmptyDrop)
	if m.Expression == "" && !hasValue {
		if _, err := parseSource(m.source()); err != nil {
			v.Add(field+".from", "%v", err)
		}
	}
	for _, iss := range sortedKeys(m.Sources) {
		if !slices.Contains(p.AllowedIssuers, iss) {
			v.Add(fmt.Sprintf("%s.sources[%s]", field, iss), "issuer %q is not in allowed_issuers", iss)
		}
		if _, err := parseSource(m.Sources[iss]); err != nil || m.Sources[iss] == "" {
			v.Add(fmt.Sprintf("%s.sources[%s]", field, iss), "must be a claim name or a JSON Pointer: %v", orEmpty(err))
		}
	}
	if len(m.Expression) > MaxExpressionLength {
		v.Add(field+".expression", "must be at most %d characters", MaxExpressionLength)
	}
	if hasValue {
		validateValue(v, field+".value", m.Value)
	}
}

// validateValue checks a static value: one JSON value, not null, small.
func validateValue(v *ValidationError, field string, raw json.RawMessage) {
	switch {
	case len(raw) > MaxValueBytes:
		v.Add(field, "must be at most %d bytes of JSON", MaxValueBytes)
	case !json.Valid(raw):
		v.Add(field, "must be a JSON value")
	case bytes.Equal(bytes.TrimSpace(raw), []byte("null")):
		v.Add(field, "must not be null; leave the mapping out instead")
	}
}

func orEmpty(err error) error {
	if err == nil {
		return fmt.Errorf("it is empty")
	}
	return err
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
