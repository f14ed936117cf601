package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/api"
	"github.com/claimbridge/claimbridge/sts"
)

func newPublic(issuer string) http.Handler {
	return api.NewPublic(api.PublicConfig{
		Issuer: issuer, Exchanger: fakeExchanger{}, Keys: fakeKeys{}, Logger: slog.New(slog.DiscardHandler),
	})
}

// TestIssuerWithPath: an issuer URL with a path serves its endpoints under
// that path, where its metadata says they are.
func TestIssuerWithPath(t *testing.T) {
	h := newPublic("https://sts.example.com/tenant-a")
	cases := []struct {
		method, path string
		status       int
	}{
		{"GET", "/tenant-a/.well-known/openid-configuration", 200},
		{"GET", "/.well-known/oauth-authorization-server/tenant-a", 200},
		{"GET", "/tenant-a/.well-known/jwks.json", 200},
		{"POST", "/tenant-a/oauth2/token", 400},
		{"GET", "/.well-known/openid-configuration", 404},
		{"POST", "/oauth2/token", 404},
	}
	for _, tc := range cases {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader("grant_type=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		h.ServeHTTP(rec, req)
		require.Equal(t, tc.status, rec.Code, "%s %s", tc.method, tc.path)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/tenant-a/.well-known/openid-configuration", nil))
	var md map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &md))
	require.Equal(t, "https://sts.example.com/tenant-a", md["issuer"])
	require.Equal(t, "https://sts.example.com/tenant-a/oauth2/token", md["token_endpoint"])
	require.Equal(t, "https://sts.example.com/tenant-a/.well-known/jwks.json", md["jwks_uri"])
}

// TestTokenPrecheck covers what is rejected before fosite runs.
func TestTokenPrecheck(t *testing.T) {
	h := newPublic("https://sts.example.com")
	te := "urn:ietf:params:oauth:grant-type:token-exchange"
	cases := []struct {
		name   string
		form   url.Values
		basic  bool
		status int
		code   string
	}{
		{"basic and form secret", url.Values{"grant_type": {te}, "client_id": {"a"}, "client_secret": {"b"}}, true, 400, "invalid_request"},
		{"no credentials", url.Values{"grant_type": {te}}, false, 401, "invalid_client"},
		{"repeated scope", url.Values{"grant_type": {te}, "scope": {"a", "b"}}, true, 400, "invalid_request"},
		{"other grant", url.Values{"grant_type": {"password"}}, true, 400, "unsupported_grant_type"},
		{"no grant", url.Values{"scope": {"a"}}, true, 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/oauth2/token", strings.NewReader(tc.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.basic {
				req.SetBasicAuth("a", "b")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			var body map[string]string
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			require.Equal(t, tc.code, body["error"])
			require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
		})
	}
}

// failingStore fails every list with err.
type failingStore struct {
	fakeStore
	err error
}

func (s failingStore) ListIssuers(_ context.Context) ([]sts.Issuer, error) { return nil, s.err }

// TestAdminStoreFailures: an outage is 503, anything else 500, and neither
// shows internal error text.
func TestAdminStoreFailures(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status int
	}{
		{"unreachable", fmt.Errorf("list issuers: %w: dial tcp: refused", sts.ErrUnavailable), http.StatusServiceUnavailable},
		{"bug", errors.New("cannot decode stored row"), http.StatusInternalServerError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := api.NewAdmin(api.AdminConfig{Store: failingStore{err: tc.err}, Tokens: []string{"token-0123456789abcdef"}, Logger: slog.New(slog.DiscardHandler)})
			req := httptest.NewRequest("GET", "/admin/v1/issuers", nil)
			req.Header.Set("Authorization", "Bearer token-0123456789abcdef")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.status, rec.Code)
			require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
			require.NotContains(t, rec.Body.String(), "refused")
			require.NotContains(t, rec.Body.String(), "decode")
		})
	}
}
