package verify_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/verify"
)

// compact builds a compact JWS from a header and claims with sign over the
// signing input: for tokens go-jose refuses to make.
func compact(t *testing.T, header, claims map[string]any, sign func([]byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	require.NoError(t, err)
	p, err := json.Marshal(claims)
	require.NoError(t, err)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(input)))
}

// TestVerify runs every check on tokens of one issuer with four keys.
func TestVerify(t *testing.T) {
	es, rs, ps, ed := newKey(t, "ES256", "es"), newKey(t, "RS256", "rs"), newKey(t, "PS256", "ps"), newKey(t, "EdDSA", "ed")
	ti := newTestIssuer(t, es, rs, ps, ed)
	clk := newClock()
	now := clk.Now()
	v := newVerifier(t, ti, clk, verify.Config{})
	base := claimsAt(ti.URL(), now)
	rsPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(rs.public().Key))})
	hs256 := func(key []byte) func([]byte) []byte {
		return func(in []byte) []byte { m := hmac.New(sha256.New, key); m.Write(in); return m.Sum(nil) }
	}
	tampered := strings.Split(es.sign(t, "at+jwt", base), ".")
	tampered[1] = base64.RawURLEncoding.EncodeToString(must(json.Marshal(with(base, map[string]any{"sub": "mallory"}))))

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"ES256 access token", es.sign(t, "at+jwt", base), nil},
		{"RS256 access token", rs.sign(t, "at+jwt", base), nil},
		{"PS256 access token", ps.sign(t, "at+jwt", base), nil},
		{"EdDSA access token", ed.sign(t, "at+jwt", base), nil},
		{"typ application/at+jwt (RFC 9068 §4)", es.sign(t, "application/at+jwt", base), nil},
		{"typ compared case-insensitively", es.sign(t, "AT+JWT", base), nil},
		{"typ JWT refused unless AcceptJWT", es.sign(t, "JWT", base), verify.ErrType},
		{"no typ", es.sign(t, "", base), verify.ErrType},
		{"typ of an ID token's peer", es.sign(t, "JOSE", base), verify.ErrType},
		{"alg none", compact(t, map[string]any{"alg": "none", "typ": "at+jwt"}, base, func([]byte) []byte { return nil }), verify.ErrAlgorithm},
		{"HS256 keyed with the published public key", compact(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": "rs"}, base, hs256(rsPEM)), verify.ErrAlgorithm},
		{"ES384 is not in the default allow-list", newKey(t, "ES384", "es").sign(t, "at+jwt", base), verify.ErrAlgorithm},
		{"payload changed after signing", strings.Join(tampered, "."), verify.ErrBadSignature},
		{"known kid, another key", newKey(t, "ES256", "es").sign(t, "at+jwt", base), verify.ErrBadSignature},
		{"unknown kid", newKey(t, "ES256", "other").sign(t, "at+jwt", base), verify.ErrUnknownKey},
		{"issuer differs", es.sign(t, "at+jwt", with(base, map[string]any{"iss": "https://evil.example"})), verify.ErrWrongIssuer},
		{"issuer with a trailing slash", es.sign(t, "at+jwt", with(base, map[string]any{"iss": ti.URL() + "/"})), verify.ErrWrongIssuer},
		{"no issuer", es.sign(t, "at+jwt", with(base, map[string]any{"iss": nil})), verify.ErrWrongIssuer},
		{"audience array containing ours", es.sign(t, "at+jwt", with(base, map[string]any{"aud": []string{"https://x", testAudience}})), nil},
		{"audience of another upstream", es.sign(t, "at+jwt", with(base, map[string]any{"aud": "https://billing.internal"})), verify.ErrWrongAudience},
		{"no audience", es.sign(t, "at+jwt", with(base, map[string]any{"aud": nil})), verify.ErrWrongAudience},
		{"expired beyond the skew", es.sign(t, "at+jwt", with(base, map[string]any{"exp": now.Add(-31 * time.Second).Unix()})), verify.ErrExpired},
		{"expired exactly at exp+skew", es.sign(t, "at+jwt", with(base, map[string]any{"exp": now.Add(-30 * time.Second).Unix()})), verify.ErrExpired},
		{"expired within the skew", es.sign(t, "at+jwt", with(base, map[string]any{"exp": now.Add(-29 * time.Second).Unix()})), nil},
		{"nbf beyond the skew", es.sign(t, "at+jwt", with(base, map[string]any{"nbf": now.Add(31 * time.Second).Unix()})), verify.ErrNotYetValid},
		{"nbf within the skew", es.sign(t, "at+jwt", with(base, map[string]any{"nbf": now.Add(29 * time.Second).Unix()})), nil},
		{"iat in the future beyond the skew", es.sign(t, "at+jwt", with(base, map[string]any{"iat": now.Add(31 * time.Second).Unix()})), verify.ErrNotYetValid},
		{"fractional exp", es.sign(t, "at+jwt", with(base, map[string]any{"exp": float64(now.Unix()) + 60.5})), nil},
		{"no exp", es.sign(t, "at+jwt", with(base, map[string]any{"exp": nil})), verify.ErrMalformed},
		{"exp is a string", es.sign(t, "at+jwt", with(base, map[string]any{"exp": "tomorrow"})), verify.ErrMalformed},
		{"aud is a number", es.sign(t, "at+jwt", with(base, map[string]any{"aud": 7})), verify.ErrMalformed},
		{"empty", "", verify.ErrMalformed},
		{"not a JWS", "hello", verify.ErrMalformed},
		{"three garbage parts", "a.b.c", verify.ErrMalformed},
		{"JWE (five parts)", "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", verify.ErrMalformed},
		{"longer than MaxTokenBytes", strings.Repeat("a", verify.MaxTokenBytes+1), verify.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := v.Verify(context.Background(), tt.token)
			if tt.want == nil {
				require.NoError(t, err)
				require.Equal(t, "auth0|alice", tok.Subject)
				return
			}
			require.ErrorIs(t, err, tt.want)
			require.Nil(t, tok)
			if len(tt.token) > 20 {
				require.NotContains(t, err.Error(), tt.token, "an error never quotes the token")
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestVerifyPayloadNotAnObject: a signed payload that is not a JSON object.
func TestVerifyPayloadNotAnObject(t *testing.T) {
	es := newKey(t, "ES256", "es")
	ti := newTestIssuer(t, es)
	v := newVerifier(t, ti, newClock(), verify.Config{})
	for _, payload := range []string{`["a"]`, `null`, `"x"`, `{"exp":1} {}`} {
		raw := es.signBytes(t, "at+jwt", []byte(payload))
		_, err := v.Verify(context.Background(), raw)
		require.ErrorIs(t, err, verify.ErrMalformed, payload)
	}
}

// TestVerifyToken checks what a verified Token holds.
func TestVerifyToken(t *testing.T) {
	es := newKey(t, "ES256", "es")
	ti := newTestIssuer(t, es)
	clk := newClock()
	v := newVerifier(t, ti, clk, verify.Config{})
	tok, err := v.Verify(context.Background(), es.sign(t, "at+jwt", claimsAt(ti.URL(), clk.Now())))
	require.NoError(t, err)
	require.Equal(t, ti.URL(), tok.Issuer)
	require.Equal(t, "auth0|alice", tok.Subject)
	require.Equal(t, []string{testAudience}, tok.Audience)
	require.Equal(t, clk.Now().Add(5*time.Minute), tok.Expiry)
	require.Equal(t, clk.Now(), tok.IssuedAt)
	require.True(t, tok.NotBefore.IsZero())
	require.Equal(t, "jti-1", tok.ID)
	require.Equal(t, "gateway", tok.ClientID)
	require.Equal(t, []string{"orders:read", "orders:write"}, tok.Scope)
	require.Equal(t, "at+jwt", tok.Type)
	require.Equal(t, "es", tok.KeyID)
	require.Equal(t, "ES256", tok.Algorithm)
	require.Equal(t, []any{"orders:read", "orders:write"}, tok.Claims["permissions"])
	require.Equal(t, json.Number("12345678901234567890"), tok.Claims["big"], "numbers keep their exact value")
	require.Equal(t, []string{"orders:read", "orders:write"}, tok.Strings("permissions"))
	require.Equal(t, []string{"gateway"}, tok.Strings("client_id"))
	require.Nil(t, tok.Strings("big"))
	require.Nil(t, tok.Strings("absent"))

	var claims struct {
		Permissions []string `json:"permissions"`
		Big         json.Number
	}
	require.NoError(t, tok.DecodeClaims(&claims))
	require.Equal(t, []string{"orders:read", "orders:write"}, claims.Permissions)
	require.Equal(t, json.Number("12345678901234567890"), claims.Big)
}

// TestVerifyAcceptJWT: with AcceptJWT, tokens of typ JWT pass too.
func TestVerifyAcceptJWT(t *testing.T) {
	es := newKey(t, "ES256", "es")
	ti := newTestIssuer(t, es)
	clk := newClock()
	v := newVerifier(t, ti, clk, verify.Config{AcceptJWT: true})
	for typ, want := range map[string]error{"JWT": nil, "jwt": nil, "at+jwt": nil, "": verify.ErrType, "JOSE": verify.ErrType} {
		_, err := v.Verify(context.Background(), es.sign(t, typ, claimsAt(ti.URL(), clk.Now())))
		if want == nil {
			require.NoError(t, err, typ)
		} else {
			require.ErrorIs(t, err, want, typ)
		}
	}
}

// TestVerifyConfiguredAlgorithmsAndSkew: a narrower allow-list and a
// larger skew take effect.
func TestVerifyConfiguredAlgorithmsAndSkew(t *testing.T) {
	es, rs := newKey(t, "ES256", "es"), newKey(t, "RS256", "rs")
	ti := newTestIssuer(t, es, rs)
	clk := newClock()
	v := newVerifier(t, ti, clk, verify.Config{Algorithms: []string{"RS256"}, Skew: 2 * time.Minute})
	claims := with(claimsAt(ti.URL(), clk.Now()), map[string]any{"exp": clk.Now().Add(-time.Minute).Unix()})
	_, err := v.Verify(context.Background(), rs.sign(t, "at+jwt", claims))
	require.NoError(t, err, "expired a minute ago, within a two-minute skew")
	_, err = v.Verify(context.Background(), es.sign(t, "at+jwt", claims))
	require.ErrorIs(t, err, verify.ErrAlgorithm)
}

// TestNewConfig: every problem of a Config is reported at once, and the
// dangerous algorithms are refused.
func TestNewConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  verify.Config
		want []string
	}{
		{"issuer and audience required", verify.Config{}, []string{"Issuer is required", "Audience is required"}},
		{"none refused", verify.Config{Issuer: "x", Audience: "y", Algorithms: []string{"none"}}, []string{`"none" is not allowed`}},
		{"HMAC refused", verify.Config{Issuer: "x", Audience: "y", Algorithms: []string{"ES256", "HS256"}}, []string{`"HS256" is not allowed`}},
		{"skew bounded", verify.Config{Issuer: "x", Audience: "y", Skew: time.Hour}, []string{"Skew 1h0m0s"}},
		{"negative skew", verify.Config{Issuer: "x", Audience: "y", Skew: -time.Second}, []string{"Skew -1s"}},
		{"refresh interval bounded", verify.Config{Issuer: "x", Audience: "y", RefreshInterval: time.Millisecond}, []string{"RefreshInterval 1ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := verify.New(context.Background(), tt.cfg)
			require.Error(t, err)
			for _, w := range tt.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestNewDiscovery: the JWKS URL comes from the discovery document unless
// configured, and the document must name our issuer.
func TestNewDiscovery(t *testing.T) {
	es := newKey(t, "ES256", "es")
	ti := newTestIssuer(t, es)
	ctx := context.Background()

	_, err := verify.New(ctx, verify.Config{Issuer: ti.URL(), Audience: testAudience})
	require.NoError(t, err)
	require.EqualValues(t, 1, ti.discHits.Load())
	require.EqualValues(t, 1, ti.jwksHits.Load())

	_, err = verify.New(ctx, verify.Config{Issuer: ti.URL(), Audience: testAudience, JWKSURL: ti.URL() + "/.well-known/jwks.json"})
	require.NoError(t, err)
	require.EqualValues(t, 1, ti.discHits.Load(), "a configured JWKS URL needs no discovery")

	ti.set(func(ti *testIssuer) { ti.discIssue = "https://evil.example" })
	_, err = verify.New(ctx, verify.Config{Issuer: ti.URL(), Audience: testAudience})
	require.ErrorContains(t, err, `names issuer "https://evil.example"`)

	ti.set(func(ti *testIssuer) { ti.discIssue = ""; ti.status = 500 })
	_, err = verify.New(ctx, verify.Config{Issuer: ti.URL(), Audience: testAudience})
	require.ErrorIs(t, err, verify.ErrKeysUnavailable, "the keys must be there at start")

	_, err = verify.New(ctx, verify.Config{Issuer: "http://127.0.0.1:1", Audience: testAudience})
	require.ErrorIs(t, err, verify.ErrKeysUnavailable)
	require.False(t, errors.Is(err, verify.ErrMalformed))
}
