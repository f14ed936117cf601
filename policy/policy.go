package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Limits that keep a policy reviewable and its evaluation cheap.
const (
	MaxClaims        = 64
	MaxListLength    = 256
	MaxTokenLifetime = 24 * time.Hour
	MinTokenLifetime = 10 * time.Second
)

// Reserved claims are set by the token service itself and can never be the
// target of a mapping.
var Reserved = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "act", "may_act", "client_id", "scope", "cnf"}

// Policy says what one audience receives in the tokens minted for it.
type Policy struct {
	// Name identifies the policy in the admin API.
	Name string `json:"name"`
	// Audience is the audience (or resource) value a client asks for.
	Audience string `json:"audience"`
	// AllowedClients lists the client IDs that may ask for this audience.
	AllowedClients []string `json:"allowed_clients"`
	// AllowedIssuers lists the names of the trusted issuers whose subject
	// tokens this audience accepts.
	AllowedIssuers []string `json:"allowed_issuers"`
	// Claims lists the subject claims that pass into the minted token.
	Claims []ClaimMapping `json:"claims,omitempty"`
	// Scopes lists the scope values that may be granted.
	Scopes []string `json:"scopes,omitempty"`
	// TokenLifetimeSeconds is the lifetime of minted tokens; 0 means the
	// server's default. It never extends beyond the subject token's expiry.
	TokenLifetimeSeconds int64 `json:"token_lifetime_seconds,omitempty"`

	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ClaimMapping passes one subject claim into the minted token.
type ClaimMapping struct {
	// Claim is the name in the minted token.
	Claim string `json:"claim"`
	// From names the source claim; empty means the same name as Claim.
	// A value starting with "/" is a JSON Pointer (RFC 6901) into the
	// subject's claims, for nested sources such as "/realm_access/roles";
	// any other value is a top-level claim name taken literally, so that
	// namespaced claims such as "https://example.com/roles" need no escaping.
	From string `json:"from,omitempty"`
}

// FieldError says which field of a resource is wrong and why.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Reason }

// ValidationError lists every problem of a resource at once.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid: " + strings.Join(parts, "; ")
}

// Add records one problem.
func (e *ValidationError) Add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// Err returns nil when no problem was recorded.
func (e *ValidationError) Err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// ValidName reports whether s can name a resource in the admin API.
func ValidName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case (r == '-' || r == '_' || r == '.') && i > 0:
		default:
			return false
		}
	}
	return true
}

// Validate reports every problem of the policy at once.
func (p *Policy) Validate() error {
	var v ValidationError
	if !ValidName(p.Name) {
		v.Add("name", "must be 1-128 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit")
	}
	switch {
	case p.Audience == "":
		v.Add("audience", "is required")
	case len(p.Audience) > 512:
		v.Add("audience", "must be at most 512 characters")
	case strings.ContainsAny(p.Audience, " \t\r\n"):
		v.Add("audience", "must not contain whitespace")
	}
	validList(&v, "allowed_clients", p.AllowedClients, true)
	validList(&v, "allowed_issuers", p.AllowedIssuers, true)
	validList(&v, "scopes", p.Scopes, false)
	for i, s := range p.Scopes {
		if strings.ContainsAny(s, " \t\r\n\"\\") {
			v.Add(fmt.Sprintf("scopes[%d]", i), "a scope value must not contain whitespace, '\"' or '\\'")
		}
	}
	if len(p.Claims) > MaxClaims {
		v.Add("claims", "at most %d mappings", MaxClaims)
	}
	seen := make(map[string]bool, len(p.Claims))
	for i, m := range p.Claims {
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
		if _, err := parseSource(m.source()); err != nil {
			v.Add(field+".from", "%v", err)
		}
	}
	if s := p.TokenLifetimeSeconds; s != 0 {
		// Compared in seconds: a Duration product could wrap around.
		if s < int64(MinTokenLifetime/time.Second) || s > int64(MaxTokenLifetime/time.Second) {
			v.Add("token_lifetime_seconds", "must be between %d and %d", int64(MinTokenLifetime/time.Second), int64(MaxTokenLifetime/time.Second))
		}
	}
	return v.Err()
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

func (m ClaimMapping) source() string {
	if m.From == "" {
		return m.Claim
	}
	return m.From
}

// parseSource turns a mapping's source into path segments: a literal claim
// name, or the tokens of a JSON Pointer.
func parseSource(s string) ([]string, error) {
	if !strings.HasPrefix(s, "/") {
		return []string{s}, nil
	}
	parts := strings.Split(s[1:], "/")
	for i, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("JSON Pointer %q has an empty segment", s)
		}
		if strings.Contains(strings.ReplaceAll(strings.ReplaceAll(p, "~0", ""), "~1", ""), "~") {
			return nil, fmt.Errorf("JSON Pointer %q has an invalid escape (only ~0 and ~1 are allowed)", s)
		}
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
	}
	return parts, nil
}
