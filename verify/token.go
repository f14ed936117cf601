package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// Token is a verified token.
type Token struct {
	Issuer    string
	Subject   string
	Audience  []string
	Expiry    time.Time
	NotBefore time.Time // zero when the token has no nbf
	IssuedAt  time.Time // zero when the token has no iat
	ID        string    // jti
	ClientID  string    // client_id: the gateway that asked for the token
	Scope     []string  // the granted scope, split on spaces
	// Claims holds every claim of the payload, the policy's (for example
	// "permissions") included; numbers are json.Number, so that they keep
	// their exact value.
	Claims map[string]any
	// Type, KeyID and Algorithm are the header's typ, kid and alg.
	Type      string
	KeyID     string
	Algorithm string

	payload []byte
}

// DecodeClaims decodes the token's payload into v, a pointer to a struct
// with json tags (or a map), as encoding/json does.
func (t *Token) DecodeClaims(v any) error {
	return json.Unmarshal(t.payload, v)
}

// Strings returns the claim name as a list of strings: a JSON array of
// strings as it is, a single string as a one-element list, anything else
// (absent, numbers, a mixed array) as nil.
func (t *Token) Strings(name string) []string {
	switch c := t.Claims[name].(type) {
	case string:
		return []string{c}
	case []any:
		out := make([]string, 0, len(c))
		for _, e := range c {
			s, ok := e.(string)
			if !ok {
				return nil
			}
			out = append(out, s)
		}
		return out
	}
	return nil
}

// registered are the claims Verify reads, with the types RFC 7519 gives them.
type registered struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.Audience     `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	ID        string           `json:"jti"`
	ClientID  string           `json:"client_id"`
	Scope     string           `json:"scope"`
}

// parseToken decodes a verified payload; it needs an exp.
func parseToken(payload []byte) (*Token, error) {
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil || claims == nil || dec.More() {
		return nil, fmt.Errorf("%w: the payload is not a JSON object", ErrMalformed)
	}
	var r registered
	if err := json.Unmarshal(payload, &r); err != nil {
		return nil, fmt.Errorf("%w: a registered claim has the wrong type: %w", ErrMalformed, err)
	}
	if r.Expiry == nil {
		return nil, fmt.Errorf("%w: the token has no exp", ErrMalformed)
	}
	return &Token{
		Issuer:    r.Issuer,
		Subject:   r.Subject,
		Audience:  r.Audience,
		Expiry:    r.Expiry.Time(),
		NotBefore: r.NotBefore.Time(),
		IssuedAt:  r.IssuedAt.Time(),
		ID:        r.ID,
		ClientID:  r.ClientID,
		Scope:     strings.Fields(r.Scope),
		Claims:    claims,
		payload:   payload,
	}, nil
}
