package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/api"
	"github.com/claimbridge/claimbridge/sts"
)

const (
	faSecret  = "s3cret-s3cret-s3cret"
	faSubject = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
	faMinted  = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.bWludGVk"
)

// faExchanger records the cached exchanges it is asked for and answers
// err, or a minted token.
type faExchanger struct {
	fakeExchanger
	hash []byte
	err  error
	mu   sync.Mutex
	got  []sts.Request
}

func (f *faExchanger) ExchangeCached(_ context.Context, req sts.Request) (*sts.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, req)
	if f.err != nil {
		return nil, f.err
	}
	return &sts.Response{AccessToken: faMinted, Policy: "orders", Subject: "alice"}, nil
}

func (f *faExchanger) Client(id string) (*sts.Client, bool) {
	if id != "gateway" {
		return nil, false
	}
	return &sts.Client{ID: id, SecretHash: f.hash}, true
}

func newForwardAuthServer(ex *faExchanger, cfg api.ForwardAuthConfig) http.Handler {
	ex.hash = sts.HashSecret(faSecret)
	return api.NewPublic(api.PublicConfig{Issuer: "https://sts.example.com", Exchanger: ex, Keys: fakeKeys{},
		ForwardAuth: cfg, Logger: slog.New(slog.DiscardHandler)})
}

type faCase struct {
	name    string
	method  string
	target  string
	headers map[string]string
	err     error // the exchanger's answer
	status  int
	reason  string
	want    sts.Request // the exchange asked for, on success
}

func TestForwardAuth(t *testing.T) {
	client := map[string]string{api.ClientHeader: "gateway:" + faSecret, "Authorization": "Bearer " + faSubject}
	with := func(kv ...string) map[string]string {
		h := map[string]string{}
		for k, v := range client {
			h[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	orders := sts.Request{ClientID: "gateway", SubjectToken: faSubject, SubjectTokenType: sts.TokenTypeAccessToken, Audiences: []string{"https://orders.internal"}}
	cases := []faCase{
		{name: "audience in the query", target: "/forward-auth?audience=https://orders.internal", headers: client, status: 200, want: orders},
		{name: "audience in a header", target: "/forward-auth", headers: with(api.AudienceHeader, "https://orders.internal"), status: 200, want: orders},
		{name: "scope and token type in the query", target: "/forward-auth?audience=https://orders.internal&scope=orders:read+orders:write&subject_token_type=urn:ietf:params:oauth:token-type:id_token",
			headers: with(api.ScopeHeader, "admin"), status: 200,
			want: sts.Request{ClientID: "gateway", SubjectToken: faSubject, SubjectTokenType: sts.TokenTypeIDToken, Audiences: []string{"https://orders.internal"}, Scopes: []string{"orders:read", "orders:write"}}},
		{name: "headers never add to the query", target: "/forward-auth?audience=https://orders.internal",
			headers: with(api.ScopeHeader, "admin", api.AudienceHeader, "https://admin.internal"), status: 200, want: orders},
		{name: "any method, any path below (Envoy path_prefix); the user's query is dropped", method: "DELETE",
			target: "/forward-auth/orders/42?audience=https://admin.internal", headers: with(api.AudienceHeader, "https://orders.internal"), status: 200, want: orders},
		{name: "lower-case bearer", target: "/forward-auth?audience=https://orders.internal", headers: with("Authorization", "bearer "+faSubject), status: 200, want: orders},
		{name: "no client credentials", target: "/forward-auth?audience=a", headers: map[string]string{"Authorization": "Bearer " + faSubject}, status: 401, reason: "invalid_client"},
		{name: "wrong client secret", target: "/forward-auth?audience=a", headers: with(api.ClientHeader, "gateway:nope"), status: 401, reason: "invalid_client"},
		{name: "unknown client", target: "/forward-auth?audience=a", headers: with(api.ClientHeader, "other:"+faSecret), status: 401, reason: "invalid_client"},
		{name: "no subject token", target: "/forward-auth?audience=a", headers: map[string]string{api.ClientHeader: "gateway:" + faSecret}, status: 401, reason: "invalid_token"},
		{name: "Basic is no subject token", target: "/forward-auth?audience=a", headers: with("Authorization", "Basic Z2F0ZXdheTp4"), status: 401, reason: "invalid_token"},
		{name: "invalid subject token", target: "/forward-auth?audience=a", headers: client, status: 401, reason: "invalid_token",
			err: &sts.Error{Code: sts.InvalidRequest, Description: "The subject token has expired.", Err: sts.ErrSubjectToken}},
		{name: "a condition fails", target: "/forward-auth?audience=a", headers: client, status: 403, reason: "invalid_request",
			err: &sts.Error{Code: sts.InvalidRequest, Description: `Policy "orders": conditions[0] is not satisfied.`}},
		{name: "client not allowed", target: "/forward-auth?audience=a", headers: client, status: 403, reason: "unauthorized_client",
			err: &sts.Error{Code: sts.UnauthorizedClient, Description: "no"}},
		{name: "no policy", target: "/forward-auth?audience=a", headers: client, status: 403, reason: "invalid_target",
			err: &sts.Error{Code: sts.InvalidTarget, Description: "no"}},
		{name: "scope", target: "/forward-auth?audience=a", headers: client, status: 403, reason: "invalid_scope",
			err: &sts.Error{Code: sts.InvalidScope, Description: "no"}},
		{name: "IdP down", target: "/forward-auth?audience=a", headers: client, status: 500, reason: "server_error",
			err: &sts.Error{Code: sts.ServerError, Description: "keys"}},
		{name: "an unexpected error", target: "/forward-auth?audience=a", headers: client, status: 500, reason: "server_error",
			err: fmt.Errorf("boom")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runForwardAuthCase(t, tc, api.ForwardAuthConfig{}) })
	}
}

func runForwardAuthCase(t *testing.T, tc faCase, cfg api.ForwardAuthConfig) {
	t.Helper()
	ex := &faExchanger{err: tc.err}
	h := newForwardAuthServer(ex, cfg)
	req := httptest.NewRequest(cmpOr(tc.method, "GET"), tc.target, strings.NewReader("a body the endpoint never reads"))
	for k, v := range tc.headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, tc.status, rec.Code, rec.Body.String())
	require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	require.NotContains(t, rec.Body.String(), faSubject)
	require.NotContains(t, rec.Body.String(), faSecret)
	if tc.status == 200 {
		require.Len(t, ex.got, 1)
		require.Equal(t, tc.want, ex.got[0])
		require.Empty(t, rec.Body.String())
		require.Empty(t, rec.Header().Get(api.ReasonHeader))
		out := "Authorization"
		if cfg.ResponseHeader != "" {
			out = cfg.ResponseHeader
		}
		want := faMinted
		if out == "Authorization" {
			want = "Bearer " + faMinted
		}
		require.Equal(t, want, rec.Header().Get(out))
		return
	}
	require.Equal(t, tc.reason, rec.Header().Get(api.ReasonHeader))
	require.Empty(t, rec.Header().Get("Authorization"))
	var body map[string]string
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, tc.reason, body["error"])
	switch tc.reason {
	case "invalid_token":
		require.Equal(t, `Bearer realm="claimbridge", error="invalid_token"`, rec.Header().Get("WWW-Authenticate"))
	case "invalid_client":
		require.NotEmpty(t, rec.Header().Get("WWW-Authenticate"))
		require.Empty(t, ex.got, "no exchange without an authenticated client")
	}
}

// TestForwardAuthHeaders: the subject token from another header (as
// oauth2-proxy sends it) and the minted token in another header.
func TestForwardAuthHeaders(t *testing.T) {
	cfg := api.ForwardAuthConfig{TokenHeader: "x-forwarded-access-token", ResponseHeader: "X-Internal-Token"}
	orders := sts.Request{ClientID: "gateway", SubjectToken: faSubject, SubjectTokenType: sts.TokenTypeAccessToken, Audiences: []string{"https://orders.internal"}}
	cases := []faCase{
		{name: "the raw token", headers: map[string]string{"X-Forwarded-Access-Token": faSubject}, status: 200, want: orders},
		{name: "a Bearer prefix is removed", headers: map[string]string{"X-Forwarded-Access-Token": "Bearer " + faSubject}, status: 200, want: orders},
		{name: "Authorization is not read", headers: map[string]string{"Authorization": "Bearer " + faSubject}, status: 401, reason: "invalid_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.target = "/forward-auth?audience=https://orders.internal"
			tc.headers[api.ClientHeader] = "gateway:" + faSecret
			runForwardAuthCase(t, tc, cfg)
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
