package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"
)

// TestExchangeEndToEnd exchanges an IdP token for an internal token and
// verifies it the way an upstream would: discovery and our JWKS via go-oidc.
func TestExchangeEndToEnd(t *testing.T) {
	env := startEnv(t)
	secret := env.seed()

	form := exchangeForm(env.subject(nil))
	form.Set("scope", "orders:read admin")
	status, body, resp := env.exchange("gateway", secret, form)
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	require.Equal(t, "Bearer", body["token_type"])
	require.Equal(t, "urn:ietf:params:oauth:token-type:access_token", body["issued_token_type"])
	require.Equal(t, "orders:read", body["scope"], "the granted scope differs from the request, so it is returned")
	require.InDelta(t, 300, body["expires_in"], 2)
	token := body["access_token"].(string)

	ctx := oidc.ClientContext(context.Background(), env.http)
	provider, err := oidc.NewProvider(ctx, env.issuer)
	require.NoError(t, err)
	idt, err := provider.Verifier(&oidc.Config{ClientID: "https://orders.internal", SupportedSigningAlgs: []string{"ES256"}}).Verify(ctx, token)
	require.NoError(t, err)

	var claims map[string]json.RawMessage
	require.NoError(t, idt.Claims(&claims))
	perms, _ := json.Marshal(permissions20())
	require.JSONEq(t, string(perms), string(claims["permissions"]), "a 20-element array passes intact")
	require.JSONEq(t, `["admin","buyer"]`, string(claims["roles"]), "namespaced claim renamed")
	require.JSONEq(t, `"t-42"`, string(claims["tenant"]), "nested source")
	require.Equal(t, "12345678901234567890", string(claims["big"]), "numbers keep their exact value")
	require.JSONEq(t, `"auth0|alice"`, string(claims["sub"]))
	require.JSONEq(t, `"gateway"`, string(claims["client_id"]))
	require.JSONEq(t, `"orders:read"`, string(claims["scope"]))
	for _, absent := range []string{"email", "secret_claim", "org", "https://example.com/roles", "azp"} {
		require.NotContains(t, claims, absent, "claims outside the policy never pass")
	}
	hdr := tokenHeader(t, token)
	require.Equal(t, "at+jwt", hdr["typ"])
	require.NotEmpty(t, hdr["kid"])

	t.Run("requested_token_type jwt", func(t *testing.T) {
		form := exchangeForm(env.subject(nil))
		form.Set("requested_token_type", "urn:ietf:params:oauth:token-type:jwt")
		status, body, _ := env.exchange("gateway", secret, form)
		require.Equal(t, http.StatusOK, status, body)
		require.Equal(t, "N_A", body["token_type"])
		require.Equal(t, "urn:ietf:params:oauth:token-type:jwt", body["issued_token_type"])
		require.Equal(t, "orders:read orders:write", body["scope"], "no scope requested: the policy's scopes the subject holds are granted, and returned since they differ")
		require.Equal(t, "JWT", tokenHeader(t, body["access_token"].(string))["typ"])
	})
	t.Run("client_secret_post", func(t *testing.T) {
		form := exchangeForm(env.subject(nil))
		form.Set("client_id", "gateway")
		form.Set("client_secret", secret)
		status, body, _ := env.exchange("", "", form)
		require.Equal(t, http.StatusOK, status, body)
	})
	t.Run("lifetime capped by the subject token", func(t *testing.T) {
		exp := time.Now().Add(90 * time.Second).Unix()
		status, body, _ := env.exchange("gateway", secret, exchangeForm(env.subject(map[string]any{"exp": exp})))
		require.Equal(t, http.StatusOK, status, body)
		require.LessOrEqual(t, body["expires_in"].(float64), 90.0)
	})
}

func tokenHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	return decodeSegment(t, strings.SplitN(token, ".", 2)[0])
}

func decodeSegment(t *testing.T, seg string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

// TestExchangeErrors sends one bad request per case and checks the OAuth
// error code, the status, and that nothing secret is echoed.
func TestExchangeErrors(t *testing.T) {
	env := startEnv(t)
	secret := env.seed()
	otherSecret := env.createClient("other-gateway")
	stranger := newIdP(t) // a real IdP we do not trust
	now := time.Now().Unix()
	rogue, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pubDER, err := x509.MarshalPKIXPublicKey(&env.idp.Key().PublicKey)
	require.NoError(t, err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	strangerToken, err := stranger.Mint(map[string]any{"sub": "x", "aud": idpAudience})
	require.NoError(t, err)
	baseClaims := map[string]any{"sub": "auth0|alice", "aud": idpAudience, "iss": env.idp.Issuer(), "exp": now + 600, "iat": now}

	with := func(mut func(url.Values)) url.Values {
		f := exchangeForm(env.subject(nil))
		mut(f)
		return f
	}
	subjectWith := func(extra map[string]any) url.Values { return exchangeForm(env.subject(extra)) }
	cases := []struct {
		name   string
		client string
		secret string
		form   url.Values
		status int
		code   string
	}{
		{"expired", "gateway", secret, subjectWith(map[string]any{"exp": now - 3600, "iat": now - 7200}), 400, "invalid_request"},
		{"not yet valid", "gateway", secret, subjectWith(map[string]any{"nbf": now + 3600}), 400, "invalid_request"},
		{"issued in the future", "gateway", secret, subjectWith(map[string]any{"iat": now + 3600}), 400, "invalid_request"},
		{"wrong issuer", "gateway", secret, exchangeForm(strangerToken), 400, "invalid_request"},
		{"wrong audience", "gateway", secret, subjectWith(map[string]any{"aud": "https://another-app", "azp": "another-app"}), 400, "invalid_request"},
		{"no sub", "gateway", secret, subjectWith(map[string]any{"sub": nil}), 400, "invalid_request"},
		{"unknown kid", "gateway", secret, exchangeForm(signRS256(t, rogue, "rogue-kid", baseClaims)), 400, "invalid_request"},
		{"alg none", "gateway", secret, exchangeForm(unsigned(t, baseClaims)), 400, "invalid_request"},
		{"HS256 with the RSA public key", "gateway", secret, exchangeForm(signHS256(t, pubPEM, env.idp.KeyID(), baseClaims)), 400, "invalid_request"},
		{"HS256 with the RSA public key DER", "gateway", secret, exchangeForm(signHS256(t, pubDER, env.idp.KeyID(), baseClaims)), 400, "invalid_request"},
		{"garbage subject", "gateway", secret, exchangeForm("not-a-jwt"), 400, "invalid_request"},
		{"tampered signature", "gateway", secret, exchangeForm(env.subject(nil) + "x"), 400, "invalid_request"},
		{"missing subject_token", "gateway", secret, with(func(f url.Values) { f.Del("subject_token") }), 400, "invalid_request"},
		{"missing subject_token_type", "gateway", secret, with(func(f url.Values) { f.Del("subject_token_type") }), 400, "invalid_request"},
		{"unknown subject_token_type", "gateway", secret, with(func(f url.Values) { f.Set("subject_token_type", "urn:x") }), 400, "invalid_request"},
		{"missing audience", "gateway", secret, with(func(f url.Values) { f.Del("audience") }), 400, "invalid_request"},
		{"missing grant_type", "gateway", secret, with(func(f url.Values) { f.Del("grant_type") }), 400, "invalid_request"},
		{"duplicate grant_type", "gateway", secret, with(func(f url.Values) { f.Add("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange") }), 400, "invalid_request"},
		{"duplicate subject_token", "gateway", secret, with(func(f url.Values) { f.Add("subject_token", "x") }), 400, "invalid_request"},
		{"unsupported grant_type", "gateway", secret, with(func(f url.Values) { f.Set("grant_type", "client_credentials") }), 400, "unsupported_grant_type"},
		{"bad requested_token_type", "gateway", secret, with(func(f url.Values) { f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token") }), 400, "invalid_request"},
		{"actor token", "gateway", secret, with(func(f url.Values) {
			f.Set("actor_token", env.subject(nil))
			f.Set("actor_token_type", "urn:ietf:params:oauth:token-type:access_token")
		}), 400, "invalid_request"},
		{"wrong client secret", "gateway", "wrong-" + secret, exchangeForm(env.subject(nil)), 401, "invalid_client"},
		{"unknown client", "nobody", secret, exchangeForm(env.subject(nil)), 401, "invalid_client"},
		{"no client authentication", "", "", exchangeForm(env.subject(nil)), 401, "invalid_client"},
		{"audience without policy", "gateway", secret, with(func(f url.Values) { f.Set("audience", "https://unknown.internal") }), 400, "invalid_target"},
		{"resource without policy", "gateway", secret, with(func(f url.Values) { f.Add("resource", "https://unknown.internal") }), 400, "invalid_target"},
		{"two different audiences", "gateway", secret, with(func(f url.Values) { f.Add("audience", "https://billing.internal") }), 400, "invalid_target"},
		{"client not allowed", "other-gateway", otherSecret, exchangeForm(env.subject(nil)), 400, "unauthorized_client"},
		{"scope not allowed", "gateway", secret, with(func(f url.Values) { f.Set("scope", "admin") }), 400, "invalid_scope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, resp := env.exchange(tc.client, tc.secret, tc.form)
			require.Equal(t, tc.status, status, body)
			require.Equal(t, tc.code, body["error"], body)
			desc, _ := body["error_description"].(string)
			require.NotEmpty(t, desc)
			require.NotContains(t, desc, secret)
			if st := tc.form.Get("subject_token"); len(st) > 20 {
				require.NotContains(t, desc, st[:20], "the description never echoes the token")
			}
			require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			if status == http.StatusUnauthorized {
				require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Basic")
			}
		})
	}
	require.NotContains(t, env.logs.String(), secret, "client secrets are never logged")
	require.NotContains(t, env.logs.String(), env.subject(nil)[:40], "subject tokens are never logged")
}

func signRS256(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	require.NoError(t, err)
	return sign(t, s, claims)
}

func signHS256(t *testing.T, secret []byte, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: secret}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	require.NoError(t, err)
	return sign(t, s, claims)
}

func sign(t *testing.T, s jose.Signer, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	obj, err := s.Sign(payload)
	require.NoError(t, err)
	tok, err := obj.CompactSerialize()
	require.NoError(t, err)
	return tok
}

// unsigned builds an "alg":"none" token.
func unsigned(t *testing.T, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + "."
}
