package sts

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/claimbridge/claimbridge/policy"
)

// tokenClaims are the claims the token service sets itself (RFC 9068 §2.2).
type tokenClaims struct {
	Issuer  string
	Subject string
	// Audience is one target, encoded as a string, or several, encoded as
	// an array (RFC 7519 §4.1.3).
	Audience []string
	Expiry   int64
	IssuedAt int64
	JTI      string
	ClientID string
	Scope    string
}

// marshal encodes the registered claims followed by the policy's claims in
// the policy's order. Building the object directly avoids the map sort and
// reflection of encoding a map[string]any on every exchange.
func (t *tokenClaims) marshal(extra []policy.Claim) ([]byte, error) {
	b := make([]byte, 0, 512)
	b = appendStringField(b, '{', "iss", t.Issuer)
	b = appendStringField(b, ',', "sub", t.Subject)
	b = appendAudience(b, t.Audience)
	b = strconv.AppendInt(append(b, `,"exp":`...), t.Expiry, 10)
	b = strconv.AppendInt(append(b, `,"iat":`...), t.IssuedAt, 10)
	b = appendStringField(b, ',', "jti", t.JTI)
	b = appendStringField(b, ',', "client_id", t.ClientID)
	if t.Scope != "" {
		b = appendStringField(b, ',', "scope", t.Scope)
	}
	for _, c := range extra {
		v, err := json.Marshal(c.Value)
		if err != nil {
			return nil, err
		}
		b = appendString(append(b, ','), c.Name)
		b = append(append(b, ':'), v...)
	}
	return append(b, '}'), nil
}

func appendAudience(b []byte, aud []string) []byte {
	if len(aud) == 1 {
		return appendStringField(b, ',', "aud", aud[0])
	}
	b = append(appendString(append(b, ','), "aud"), ':', '[')
	for i, a := range aud {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, a)
	}
	return append(b, ']')
}

func appendStringField(b []byte, sep byte, name, value string) []byte {
	b = appendString(append(b, sep), name)
	return appendString(append(b, ':'), value)
}

// appendString appends s as a JSON string (RFC 8259 §7): quotes,
// backslashes and control characters escaped, invalid UTF-8 replaced.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		default:
			b = utf8.AppendRune(b, r) // RuneError for invalid bytes
		}
	}
	return append(b, '"')
}
