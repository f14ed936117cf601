package sts

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// jwsWith builds a compact JWS with the given payload and a fake signature.
func jwsWith(payload string) string {
	return b64url(`{"alg":"RS256","kid":"k1","typ":"at+jwt"}`) + "." + b64url(payload) + ".c2lnbmF0dXJl"
}

// realJWT is a compact JWS as an IdP sends it (the signature is not checked
// by parseSubject).
var realJWT = jwsWith(`{"iss":"https://idp.example.com","sub":"auth0|42","aud":["api"],"exp":1772370000,"iat":1772366400,"permissions":["a","b"]}`)

func TestParseSubject(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    string
		wantErr string
	}{
		{"a real JWT", realJWT, "https://idp.example.com", ""},
		{"alg none is never parsed", b64url(`{"alg":"none"}`) + "." + b64url(`{"iss":"https://a.test"}`) + ".", "", "compact JWS"},
		{"HS256 is never parsed", b64url(`{"alg":"HS256"}`) + "." + b64url(`{"iss":"https://a.test"}`) + ".c2ln", "", "compact JWS"},
		{"an iss with unicode and escapes", jwsWith(`{"iss":"https://a.test/\u00e9\/x"}`), "https://a.test/é/x", ""},
		{"empty", "", "", "compact JWS"},
		{"garbage", "not a token", "", "compact JWS"},
		{"two parts", b64url(`{}`) + "." + b64url(`{"iss":"x"}`), "", "compact JWS"},
		{"four parts", realJWT + ".extra", "", "compact JWS"},
		{"JWE compact (five parts)", "a.b.c.d.e", "", "compact JWS"},
		{"an empty payload", b64url(`{"alg":"RS256"}`) + "..c2ln", "", "JSON object"},
		{"a payload that is not base64url", b64url(`{"alg":"RS256"}`) + ".###.c2ln", "", "compact JWS"},
		{"a payload that is a JSON array", jwsWith(`["iss"]`), "", "JSON object"},
		{"a payload that is a JSON string", jwsWith(`"iss"`), "", "JSON object"},
		{"a payload that is not JSON", jwsWith(`iss=x`), "", "JSON object"},
		{"an iss that is a number", jwsWith(`{"iss":42}`), "", "no 'iss'"},
		{"an iss that is an array", jwsWith(`{"iss":["a","b"]}`), "", "no 'iss'"},
		{"no iss", jwsWith(`{"sub":"x"}`), "", "no 'iss'"},
		{"an empty iss", jwsWith(`{"iss":""}`), "", "no 'iss'"},
		{"a null iss", jwsWith(`{"iss":null}`), "", "no 'iss'"},
		{"a null payload", jwsWith(`null`), "", "JSON object"},
		{"an empty object", jwsWith(`{}`), "", "no 'iss'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSubject(tt.raw)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got.iss)
			require.Equal(t, tt.want, got.claims["iss"])
		})
	}
}

func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{
		realJWT,
		"",
		"garbage",
		"...",
		b64url(`{"alg":"RS256"}`) + "." + b64url(`{"iss":"x"}`),
		b64url(`{"alg":"RS256"}`) + "..sig",
		jwsWith(`{"iss":"` + strings.Repeat("a", 20000) + `"}`),
		jwsWith(strings.Repeat(`[`, 10000)),
		jwsWith(`{"iss":"\ud800"}`),
		"a.\xff.c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := parseSubject(raw)
		if err != nil {
			if tok != nil {
				t.Fatal("a token with an error")
			}
			return
		}
		iss := tok.iss
		if iss == "" || tok.claims["iss"] != iss || len(tok.jws.Signatures) != 1 {
			t.Fatalf("inconsistent parse: iss %q", iss)
		}
		if strings.Count(raw, ".") != 2 {
			t.Fatalf("accepted %q, which is not three parts", raw)
		}
	})
}

func TestNumericDate(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want time.Time
		ok   bool
	}{
		{"an integer", json.Number("1772366400"), time.Unix(1772366400, 0), true},
		{"zero", json.Number("0"), time.Unix(0, 0), true},
		{"a fraction", json.Number("1772366400.5"), time.Unix(1772366400, 5e8), true},
		{"an exponent", json.Number("1.7723664e9"), time.Unix(1772366400, 0), true},
		{"the largest accepted value", json.Number("1099511627776"), time.Unix(1<<40, 0), true},
		{"beyond year 36812", json.Number("1099511627777"), time.Time{}, false},
		{"a huge number", json.Number("1e300"), time.Time{}, false},
		{"an overflowing number", json.Number("1e400"), time.Time{}, false},
		{"negative", json.Number("-1"), time.Time{}, false},
		{"NaN text", json.Number("NaN"), time.Time{}, false},
		{"Inf text", json.Number("Inf"), time.Time{}, false},
		{"not a number", json.Number("soon"), time.Time{}, false},
		{"an empty json.Number", json.Number(""), time.Time{}, false},
		{"a numeric string is not a NumericDate", "1772366400", time.Time{}, false},
		{"a float64 (not decoded with UseNumber)", float64(1772366400), time.Time{}, false},
		{"an int64", int64(1772366400), time.Time{}, false},
		{"nil", nil, time.Time{}, false},
		{"a bool", true, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := numericDate(tt.in)
			require.Equal(t, tt.ok, ok)
			require.True(t, tt.want.Equal(got), "got %v, want %v", got, tt.want)
		})
	}
}

func TestDecodeClaims(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]any
		wantErr bool
	}{
		{"an object", `{"sub":"x","n":1}`, map[string]any{"sub": "x", "n": json.Number("1")}, false},
		{"numbers stay exact", `{"big":12345678901234567890,"f":0.1,"e":1e400}`,
			map[string]any{"big": json.Number("12345678901234567890"), "f": json.Number("0.1"), "e": json.Number("1e400")}, false},
		{"nested numbers stay exact", `{"o":{"a":[1,2.50]}}`,
			map[string]any{"o": map[string]any{"a": []any{json.Number("1"), json.Number("2.50")}}}, false},
		{"surrounding whitespace", " \n{\"a\":true}\t\r\n ", map[string]any{"a": true}, false},
		{"an empty object", `{}`, map[string]any{}, false},
		{"a duplicate key keeps the last value", `{"a":1,"a":2}`, map[string]any{"a": json.Number("2")}, false},
		{"null", `null`, nil, true},
		{"an array", `[]`, nil, true},
		{"a string", `"x"`, nil, true},
		{"a number", `1`, nil, true},
		{"empty", ``, nil, true},
		{"truncated", `{"a":`, nil, true},
		{"a second object", `{"a":1}{"b":2}`, nil, true},
		{"trailing garbage", `{"a":1}x`, nil, true},
		{"a trailing number", `{"a":1} 2`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeClaims([]byte(tt.in))
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

// TestDecodeClaimsTrailingDelimiter proves that a closing bracket after the
// claims is rejected like any other trailing data.
func TestDecodeClaimsTrailingDelimiter(t *testing.T) {
	for _, in := range []string{`{"a":1}}`, `{"a":1}]`, `{"a":1} ]`} {
		_, err := decodeClaims([]byte(in))
		require.Error(t, err, "%s", in)
	}
}

// TestCheckTimes pins the clock-skew rules of the subject token's exp, nbf
// and iat. An exp that passed within the skew is accepted here; Exchange
// then refuses it because the minted token would be born expired.
func TestCheckTimes(t *testing.T) {
	now := testNow
	at := func(d time.Duration) json.Number { return json.Number(strconv.FormatInt(now.Add(d).Unix(), 10)) }
	exp := at(time.Hour)
	tests := []struct {
		name    string
		claims  map[string]any
		wantErr string
	}{
		{"exp in the future", map[string]any{"exp": exp}, ""},
		// No skew for exp: an exchange from an expired subject would mint
		// a token born expired.
		{"exp passed within the skew", map[string]any{"exp": at(-testSkew / 2)}, "expired"},
		{"exp is now", map[string]any{"exp": at(0)}, "expired"},
		{"exp passed beyond the skew", map[string]any{"exp": at(-testSkew - time.Second)}, "expired"},
		{"no exp", map[string]any{}, "'exp'"},
		{"exp as a string", map[string]any{"exp": string(exp)}, "'exp'"},
		{"nbf in the past", map[string]any{"exp": exp, "nbf": at(-time.Hour)}, ""},
		{"nbf within the skew", map[string]any{"exp": exp, "nbf": at(testSkew)}, ""},
		{"nbf beyond the skew", map[string]any{"exp": exp, "nbf": at(testSkew + time.Second)}, "not valid yet"},
		{"nbf null", map[string]any{"exp": exp, "nbf": nil}, "not valid yet"},
		{"iat in the past", map[string]any{"exp": exp, "iat": at(-time.Minute)}, ""},
		{"iat within the skew", map[string]any{"exp": exp, "iat": at(testSkew)}, ""},
		{"iat beyond the skew", map[string]any{"exp": exp, "iat": at(testSkew + time.Second)}, "issued in the future"},
		{"iat as a bool", map[string]any{"exp": exp, "iat": true}, "issued in the future"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &issuerVerifier{skew: testSkew, now: func() time.Time { return now }}
			got, err := v.checkTimes(tt.claims)
			if tt.wantErr != "" {
				e := requireCode(t, err, InvalidRequest, "")
				require.Contains(t, e.Description, tt.wantErr)
				return
			}
			require.NoError(t, err)
			want, _ := numericDate(tt.claims["exp"])
			require.Equal(t, want, got)
		})
	}
}
