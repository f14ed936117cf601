package policy

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Limits that keep a policy reviewable and its evaluation cheap.
const (
	MaxClaims           = 64
	MaxConditions       = 16
	MaxListLength       = 256
	MaxExpressionLength = 4096
	MaxValueBytes       = 4096
	MaxTokenLifetime    = 24 * time.Hour
	MinTokenLifetime    = 10 * time.Second
)

// Reserved claims are set by the token service itself and can never be the
// target of a mapping.
var Reserved = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "act", "may_act", "client_id", "scope", "cnf"}

// Values of Policy.EmptyClaims and ClaimMapping.Empty.
const (
	EmptyKeep = "keep"
	EmptyDrop = "drop"
)

// Values of Policy.SubjectScope.
const (
	SubjectScopeIntersect = "intersect"
	SubjectScopeIgnore    = "ignore"
)

// SigningAlgorithms are the values of Policy.SigningAlgorithm: the
// algorithms the token service can sign with.
var SigningAlgorithms = []string{"ES256", "RS256", "PS256", "EdDSA"}

// Values of Policy.TokenType.
const (
	TokenTypeAccessToken = "access_token"
	TokenTypeJWT         = "jwt"
)

// Policy says what one audience receives in the tokens minted for it.
type Policy struct {
	// Name identifies the policy in the admin API.
	Name string `json:"name"`
	// Audience is the audience (or resource) value a client asks for. No two
	// policies share one.
	Audience string `json:"audience"`
	// Audiences lists further targets this policy serves, so that one
	// request may name several of them (the minted "aud" is then the list
	// of the requested targets). A target that another policy serves as its
	// Audience stays that policy's.
	Audiences []string `json:"audiences,omitempty"`
	// AllowedClients lists the client IDs that may ask for this audience.
	AllowedClients []string `json:"allowed_clients"`
	// AllowedIssuers lists the names of the trusted issuers whose subject
	// tokens this audience accepts.
	AllowedIssuers []string `json:"allowed_issuers"`
	// Conditions are CEL expressions over subject, request and issuer that
	// must all be true for the exchange to go ahead.
	Conditions []string `json:"conditions,omitempty"`
	// Claims lists the claims of the minted token beyond the registered ones.
	Claims []ClaimMapping `json:"claims,omitempty"`
	// EmptyClaims says what happens to a mapping whose value is an empty
	// string, array or object: EmptyKeep (the default) passes it,
	// EmptyDrop leaves the claim out. A mapping's Empty overrides it.
	EmptyClaims string `json:"empty_claims,omitempty"`
	// Scopes lists the scope values that may be granted.
	Scopes []string `json:"scopes,omitempty"`
	// SubjectScope says whether the subject token's own scope ("scope" or
	// "scp") bounds the granted scope: SubjectScopeIntersect (the default)
	// or SubjectScopeIgnore, for subject tokens that carry none (ID tokens).
	SubjectScope string `json:"subject_scope,omitempty"`
	// TokenType fixes the kind of token minted: TokenTypeAccessToken (an
	// RFC 9068 "at+jwt") or TokenTypeJWT (a plain "JWT"). Empty lets the
	// request's requested_token_type choose, an access token by default.
	TokenType string `json:"token_type,omitempty"`
	// SigningAlgorithm overrides the server's default signing algorithm for
	// this audience (one of SigningAlgorithms, and configured on the
	// server); empty means the default.
	SigningAlgorithm string `json:"signing_algorithm,omitempty"`
	// TokenLifetimeSeconds is the lifetime of minted tokens; 0 means the
	// server's default. It never extends beyond the subject token's expiry.
	TokenLifetimeSeconds int64 `json:"token_lifetime_seconds,omitempty"`
	// CacheTokens lets the token endpoint serve a repeated exchange (same
	// client, subject token, targets, scopes and token type) from the
	// exchange cache: it answers the same token until shortly before it
	// expires. Forward-auth and the sidecar always use the cache.
	CacheTokens bool `json:"cache_tokens,omitempty"`

	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ClaimMapping sets one claim of the minted token. It is one of three
// kinds: a copy of a subject claim (From and Sources, both optional), a
// CEL Expression, or a static Value.
type ClaimMapping struct {
	// Claim is the name in the minted token.
	Claim string `json:"claim"`
	// From names the source claim; empty means the same name as Claim.
	// A value starting with "/" is a JSON Pointer (RFC 6901) into the
	// subject's claims, for nested sources such as "/realm_access/roles";
	// any other value is a top-level claim name taken literally, so that
	// namespaced claims such as "https://example.com/roles" need no escaping.
	From string `json:"from,omitempty"`
	// Sources overrides From for subject tokens of the named issuers: the
	// key is an issuer name of AllowedIssuers, the value a source as in
	// From.
	Sources map[string]string `json:"sources,omitempty"`
	// Expression computes the value with CEL over subject, request and
	// issuer; arrays, objects and numbers keep their JSON types.
	Expression string `json:"expression,omitempty"`
	// Value is a static JSON value.
	Value json.RawMessage `json:"value,omitempty"`
	// Required denies the exchange when the source is missing or null, or
	// its value is empty and dropped, or the expression has no value.
	Required bool `json:"required,omitempty"`
	// Empty overrides the policy's EmptyClaims for this mapping.
	Empty string `json:"empty,omitempty"`
}

// FieldError says which field of a resource is wrong and why. Line and
// Column (1-based) locate the problem inside a CEL expression.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
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

// Validate reports every problem of the policy at once, CEL expressions
// included (they are compiled and type-checked).
func (p *Policy) Validate() error {
	_, err := Compile(*p)
	return err
}

// Targets returns every audience or resource value the policy serves:
// Audience first, then Audiences.
func (p *Policy) Targets() []string {
	return append([]string{p.Audience}, p.Audiences...)
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
