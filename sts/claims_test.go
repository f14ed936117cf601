package sts

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/policy"
)

// decodeJSON decodes b as one JSON value with numbers as json.Number.
func decodeJSON(t testing.TB, b []byte) map[string]any {
	t.Helper()
	require.True(t, json.Valid(b), "valid JSON: %s", b)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	require.NoError(t, dec.Decode(&m))
	return m
}

// keyOrder returns the top-level keys of a JSON object in document order.
func keyOrder(t testing.TB, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok)
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		require.NoError(t, err)
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		require.NoError(t, dec.Decode(&skip))
	}
	return keys
}

func baseClaims() tokenClaims {
	return tokenClaims{
		Issuer: "https://sts.example.test", Subject: "auth0|42", Audience: []string{"https://orders.example.test"},
		Expiry: 1772366700, IssuedAt: 1772366400, JTI: "jti-1", ClientID: "gateway", Scope: "orders:read orders:write",
	}
}

func baseWant() map[string]any {
	return map[string]any{
		"iss": "https://sts.example.test", "sub": "auth0|42", "aud": "https://orders.example.test",
		"exp": json.Number("1772366700"), "iat": json.Number("1772366400"), "jti": "jti-1",
		"client_id": "gateway", "scope": "orders:read orders:write",
	}
}

func TestTokenClaimsMarshal(t *testing.T) {
	perms := make([]any, 20)
	for i := range perms {
		perms[i] = "p" + strings.Repeat("x", i)
	}
	tests := []struct {
		name   string
		change func(c *tokenClaims)
		extra  []policy.Claim
		want   func(m map[string]any)
	}{
		{name: "registered claims only"},
		{name: "no scope claim when no scope is granted",
			change: func(c *tokenClaims) { c.Scope = "" },
			want:   func(m map[string]any) { delete(m, "scope") }},
		{name: "quotes and backslashes are escaped",
			change: func(c *tokenClaims) { c.Subject = `a"b\c` + `\"` },
			want:   func(m map[string]any) { m["sub"] = `a"b\c\"` }},
		{name: "control characters are escaped",
			change: func(c *tokenClaims) { c.Subject = "\x00\x01\t\n\r\x1f\x7f" },
			want:   func(m map[string]any) { m["sub"] = "\x00\x01\t\n\r\x1f\x7f" }},
		{name: "invalid UTF-8 becomes U+FFFD, one per bad byte",
			change: func(c *tokenClaims) { c.Subject = "a\xffb\xc3" },
			want:   func(m map[string]any) { m["sub"] = "a\uFFFDb\uFFFD" }},
		{name: "unicode passes through",
			change: func(c *tokenClaims) { c.Subject = "Ådå 日本 🔑 \u2028\u2029 \uFFFD" },
			want:   func(m map[string]any) { m["sub"] = "Ådå 日本 🔑 \u2028\u2029 \uFFFD" }},
		{name: "HTML characters are kept",
			change: func(c *tokenClaims) { c.Issuer = "https://a.test/?x=<y>&z" },
			want:   func(m map[string]any) { m["iss"] = "https://a.test/?x=<y>&z" }},
		{name: "every string field is escaped",
			change: func(c *tokenClaims) {
				c.Issuer, c.Audience, c.JTI, c.ClientID, c.Scope = "i\"", []string{"a\\"}, "j\n", "c\x00", "s\"t"
			},
			want: func(m map[string]any) {
				m["iss"], m["aud"], m["jti"], m["client_id"], m["scope"] = "i\"", "a\\", "j\n", "c\x00", "s\"t"
			}},
		{name: "several audiences are an array",
			change: func(c *tokenClaims) { c.Audience = []string{"https://a.test", "b\"c"} },
			want:   func(m map[string]any) { m["aud"] = []any{"https://a.test", "b\"c"} }},
		{name: "negative and zero times",
			change: func(c *tokenClaims) { c.Expiry, c.IssuedAt = 0, -1 },
			want:   func(m map[string]any) { m["exp"], m["iat"] = json.Number("0"), json.Number("-1") }},
		{name: "policy claims keep their JSON types",
			extra: []policy.Claim{
				{Name: "permissions", Value: perms},
				{Name: "roles", Value: []any{"admin"}},
				{Name: "tenant", Value: json.Number("12345678901234567890")},
				{Name: "ratio", Value: json.Number("-1.5e-7")},
				{Name: "verified", Value: true},
				{Name: "address", Value: map[string]any{"country": "FR", "lines": []any{"1 rue", json.Number("2")}}},
				{Name: "empty", Value: []any{}},
			},
			want: func(m map[string]any) {
				m["permissions"] = perms
				m["roles"] = []any{"admin"}
				m["tenant"] = json.Number("12345678901234567890")
				m["ratio"] = json.Number("-1.5e-7")
				m["verified"] = true
				m["address"] = map[string]any{"country": "FR", "lines": []any{"1 rue", json.Number("2")}}
				m["empty"] = []any{}
			}},
		{name: "policy claim names and string values are escaped",
			extra: []policy.Claim{{Name: "https://x.test/\"roles\"", Value: "v\"\\\x01\xff"}},
			want:  func(m map[string]any) { m["https://x.test/\"roles\""] = "v\"\\\x01\uFFFD" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseClaims()
			if tt.change != nil {
				tt.change(&c)
			}
			want := baseWant()
			if tt.want != nil {
				tt.want(want)
			}
			b, err := c.marshal(tt.extra)
			require.NoError(t, err)
			require.Equal(t, want, decodeJSON(t, b))
		})
	}
}

func TestTokenClaimsMarshalOrder(t *testing.T) {
	c := baseClaims()
	b, err := c.marshal([]policy.Claim{{Name: "zeta", Value: "1"}, {Name: "alpha", Value: "2"}, {Name: "mid", Value: "3"}})
	require.NoError(t, err)
	require.Equal(t, []string{"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "zeta", "alpha", "mid"}, keyOrder(t, b),
		"registered claims first, then the policy's claims in policy order")
}

func TestTokenClaimsMarshalErrors(t *testing.T) {
	tests := []struct {
		name  string
		value any
	}{
		{"an invalid json.Number", json.Number("12abc")},
		{"a value JSON cannot encode", make(chan int)},
		{"NaN", nan()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseClaims()
			b, err := c.marshal([]policy.Claim{{Name: "x", Value: tt.value}})
			require.Error(t, err)
			require.Nil(t, b)
		})
	}
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

func TestAppendString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // the exact encoding
	}{
		{"empty", "", `""`},
		{"plain", "abc", `"abc"`},
		{"quote", `"`, `"\""`},
		{"backslash", `\`, `"\\"`},
		{"NUL", "\x00", `"\u0000"`},
		{"newline", "\n", `"\u000a"`},
		{"unit separator", "\x1f", `"\u001f"`},
		{"DEL is not a control character in JSON", "\x7f", "\"\x7f\""},
		{"slash is not escaped", "/", `"/"`},
		{"invalid byte", "\xff", "\"\uFFFD\""},
		{"truncated sequence", "\xe6\x97", "\"\uFFFD\uFFFD\""},
		{"surrogate half encoded in UTF-8", "\xed\xa0\x80", "\"\uFFFD\uFFFD\uFFFD\""},
		{"multibyte", "日本", `"日本"`},
		{"appends", "x", `"x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, "prefix"+tt.want, string(appendString([]byte("prefix"), tt.in)))
		})
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{
		"", "abc", `"`, `\`, "\x00", "\x1f", "\x7f", "\xff", "\xe6\x97", "\xed\xa0\x80",
		"日本", "🔑", "\u2028", "\uFFFD", "<script>&", `\u0000`, strings.Repeat(`"\`, 64),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendString(nil, s)
		if !json.Valid(out) {
			t.Fatalf("appendString(%q) = %q: not valid JSON", s, out)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("appendString(%q) = %q: %v", s, out, err)
		}
		if utf8.ValidString(s) {
			if got != s {
				t.Fatalf("appendString(%q) decodes to %q", s, got)
			}
			return
		}
		// Each invalid byte becomes one U+FFFD, as a []rune conversion does.
		if want := string([]rune(s)); got != want {
			t.Fatalf("appendString(%q) decodes to %q, want %q", s, got, want)
		}
	})
}
