package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/verify"
)

// signingAlgorithms are the algorithms Claimbridge signs with; the tests of
// upstream verification run one token of each.
var signingAlgorithms = []string{"ES256", "RS256", "PS256", "EdDSA"}

// startSigningEnv starts Claimbridge with an active key of every signing
// algorithm and the seeded policy; it returns the client's secret.
func startSigningEnv(t *testing.T) (*testEnv, string) {
	t.Helper()
	env := newEnv(t)
	env.start([]string{"--signing-algorithms", "RS256,PS256,EdDSA"})
	return env, env.seed()
}

// mintWith switches the orders policy to alg (and requestedType, when set)
// and returns a token minted with it.
func (env *testEnv) mintWith(secret, alg, requestedType string) string {
	env.t.Helper()
	pol := ordersPolicy()
	pol["signing_algorithm"] = alg
	env.mustAdmin(http.StatusOK, http.MethodPut, "/policies/orders", pol, nil)
	var token string
	env.eventually("the policy signs with "+alg, func() bool {
		form := exchangeForm(env.subject(nil))
		if requestedType != "" {
			form.Set("requested_token_type", requestedType)
		}
		status, body, _ := env.exchange("gateway", secret, form)
		token, _ = body["access_token"].(string)
		return status == http.StatusOK && tokenHeader(env.t, token)["alg"] == alg
	})
	return token
}

// TestVerifyE2E: tokens minted by the real server verify with the verify
// package against the server's issuer (discovery, JWKS), with every
// signing algorithm, and the checks an upstream relies on hold.
func TestVerifyE2E(t *testing.T) {
	env, secret := startSigningEnv(t)
	ctx := context.Background()
	cfg := verify.Config{Issuer: env.issuer, Audience: "https://orders.internal", HTTPClient: env.http}
	v, err := verify.New(ctx, cfg)
	require.NoError(t, err)

	for _, alg := range signingAlgorithms {
		t.Run(alg, func(t *testing.T) {
			tok, err := v.Verify(ctx, env.mintWith(secret, alg, ""))
			require.NoError(t, err)
			require.Equal(t, alg, tok.Algorithm)
			require.Equal(t, "at+jwt", tok.Type)
			require.NotEmpty(t, tok.KeyID)
			require.Equal(t, env.issuer, tok.Issuer)
			require.Equal(t, "auth0|alice", tok.Subject)
			require.Equal(t, []string{"https://orders.internal"}, tok.Audience)
			require.Equal(t, "gateway", tok.ClientID)
			require.Equal(t, []string{"orders:read", "orders:write"}, tok.Scope)
			require.Equal(t, permissions20(), tok.Strings("permissions"))
			require.Equal(t, json.Number("12345678901234567890"), tok.Claims["big"])
		})
	}

	t.Run("typ JWT only with AcceptJWT", func(t *testing.T) {
		raw := env.mintWith(secret, "ES256", "urn:ietf:params:oauth:token-type:jwt")
		_, err := v.Verify(ctx, raw)
		require.ErrorIs(t, err, verify.ErrType)
		jwtCfg := cfg
		jwtCfg.AcceptJWT = true
		vj, err := verify.New(ctx, jwtCfg)
		require.NoError(t, err)
		tok, err := vj.Verify(ctx, raw)
		require.NoError(t, err)
		require.Equal(t, "JWT", tok.Type)
	})

	t.Run("another upstream's verifier refuses it", func(t *testing.T) {
		other := cfg
		other.Audience = "https://billing.internal"
		vo, err := verify.New(ctx, other)
		require.NoError(t, err)
		_, err = vo.Verify(ctx, env.mintWith(secret, "ES256", ""))
		require.ErrorIs(t, err, verify.ErrWrongAudience)
	})

	t.Run("middleware", func(t *testing.T) { verifyMiddlewareE2E(t, env, secret, v) })
}

// verifyMiddlewareE2E: an upstream behind the middleware serves a minted
// token's claims and refuses the IdP's own token.
func verifyMiddlewareE2E(t *testing.T, env *testEnv, secret string, v *verify.Verifier) {
	upstream := httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := verify.FromContext(r.Context())
		json.NewEncoder(w).Encode(map[string]any{"sub": tok.Subject, "permissions": tok.Claims["permissions"]})
	})))
	defer upstream.Close()
	get := func(token string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, upstream.URL, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}
	resp, body := get(env.mintWith(secret, "ES256", ""))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "auth0|alice", body["sub"])
	require.Len(t, body["permissions"], 20)

	resp, _ = get(env.subject(nil))
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the IdP's own token is not for this upstream")
	require.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
}
