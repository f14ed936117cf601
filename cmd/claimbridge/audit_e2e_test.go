package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/postgres/pgtest"
)

// newEnv prepares, without starting, a Claimbridge on a fresh database.
func newEnv(t *testing.T) *testEnv {
	t.Helper()
	return &testEnv{t: t, databaseURL: pgtest.NewDatabase(t), kek: randomSecret(), adminToken: randomSecret(), idp: newIdP(t)}
}

// adminDo sends an admin request with extra headers and returns the
// response (body read into raw).
func (env *testEnv) adminDo(token, method, path string, body any, header map[string]string) (*http.Response, []byte) {
	env.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(env.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, env.adminURL+path, rd)
	require.NoError(env.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := env.http.Do(req)
	require.NoError(env.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(env.t, err)
	return resp, raw
}

// tokenActor is the audit actor of an admin token.
func tokenActor(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "token:" + hex.EncodeToString(sum[:4])
}

type auditEntry struct {
	ID      int64           `json:"id"`
	Actor   string          `json:"actor"`
	Action  string          `json:"action"`
	Kind    string          `json:"kind"`
	Name    string          `json:"name"`
	Version int64           `json:"version"`
	Detail  json.RawMessage `json:"detail"`
}

type auditPage struct {
	Items      []auditEntry `json:"items"`
	NextCursor string       `json:"next_cursor"`
}

// TestConcurrentEditsETag: GET gives an ETag, a PUT or DELETE with a stale
// If-Match is 412 and changes nothing, If-None-Match: * creates only; the
// revisions and the audit log tell who did what.
func TestConcurrentEditsETag(t *testing.T) {
	env := startEnv(t)
	tok := env.adminToken
	pol := ordersPolicy()

	resp, raw := env.adminDo(tok, http.MethodPut, "/policies/orders?dry_run=true", pol, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	require.Empty(t, resp.Header.Get("ETag"))
	require.NotContains(t, string(raw), "version")
	env.mustAdmin(http.StatusNotFound, http.MethodGet, "/policies/orders", nil, nil)
	resp, raw = env.adminDo(tok, http.MethodPut, "/clients/gw?dry_run=true", map[string]any{"description": "d"}, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	require.JSONEq(t, `{"id":"gw","description":"d"}`, string(raw), "a dry run makes no secret")

	resp, raw = env.adminDo(tok, http.MethodPut, "/policies/orders", pol, map[string]string{"If-None-Match": "*"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", raw)
	require.Equal(t, `"1"`, resp.Header.Get("ETag"))
	resp, _ = env.adminDo(tok, http.MethodGet, "/policies/orders", nil, nil)
	require.Equal(t, `"1"`, resp.Header.Get("ETag"))

	// Alice and Bob both read version 1; Alice writes first.
	pol["scopes"] = []string{"orders:read"}
	resp, raw = env.adminDo(tok, http.MethodPut, "/policies/orders", pol, map[string]string{"If-Match": `"1"`})
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	require.Equal(t, `"2"`, resp.Header.Get("ETag"))
	pol["scopes"] = []string{"orders:write"}
	resp, raw = env.adminDo(tok, http.MethodPut, "/policies/orders", pol, map[string]string{"If-Match": `"1"`})
	require.Equal(t, http.StatusPreconditionFailed, resp.StatusCode, "Bob's stale write")
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	require.Contains(t, string(raw), "is at version 2, not 1")
	var stored map[string]any
	env.mustAdmin(http.StatusOK, http.MethodGet, "/policies/orders", nil, &stored)
	require.Equal(t, []any{"orders:read"}, stored["scopes"], "Alice's write stands")

	resp, _ = env.adminDo(tok, http.MethodPut, "/policies/orders", pol, map[string]string{"If-None-Match": "*"})
	require.Equal(t, http.StatusPreconditionFailed, resp.StatusCode, "create only, but it exists")
	resp, _ = env.adminDo(tok, http.MethodDelete, "/policies/orders", nil, map[string]string{"If-Match": `"1"`})
	require.Equal(t, http.StatusPreconditionFailed, resp.StatusCode)
	resp, _ = env.adminDo(tok, http.MethodDelete, "/policies/orders", nil, map[string]string{"If-Match": `"2"`})
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	var revs struct {
		Items []struct {
			Version int64          `json:"version"`
			Action  string         `json:"action"`
			Actor   string         `json:"actor"`
			Policy  map[string]any `json:"policy"`
		} `json:"items"`
	}
	env.mustAdmin(http.StatusOK, http.MethodGet, "/policies/orders/revisions", nil, &revs)
	require.Len(t, revs.Items, 3, "create, update, delete; the failed writes left nothing")
	require.Equal(t, "delete", revs.Items[0].Action)
	require.Equal(t, "update", revs.Items[1].Action)
	require.Equal(t, []any{"orders:read"}, revs.Items[1].Policy["scopes"])
	require.Equal(t, "create", revs.Items[2].Action)
	require.Equal(t, tokenActor(tok), revs.Items[2].Actor)
	require.Equal(t, "https://orders.internal", revs.Items[2].Policy["audience"])
	env.mustAdmin(http.StatusNotFound, http.MethodGet, "/policies/never/revisions", nil, nil)
}

// TestAuditLogE2E: every kind of change is in the audit log, newest first,
// paged, filtered, without secrets.
func TestAuditLogE2E(t *testing.T) {
	env := startEnv(t)
	secret := env.seed()
	env.mustAdmin(http.StatusOK, http.MethodPost, "/clients/gateway/secret", nil, nil)

	var all auditPage
	env.mustAdmin(http.StatusOK, http.MethodGet, "/audit", nil, &all)
	var got []string
	for _, e := range all.Items {
		require.NotContains(t, string(e.Detail), "secret")
		require.NotContains(t, string(e.Detail), secret)
		if e.Kind == "key" { // the first signing key, made by the system
			require.Equal(t, "system", e.Actor)
			continue
		}
		got = append(got, e.Action+" "+e.Kind+"/"+e.Name)
		require.Equal(t, tokenActor(env.adminToken), e.Actor)
	}
	require.Equal(t, []string{"rotate_secret client/gateway", "create policy/orders", "create client/gateway", "create issuer/test-idp"}, got)
	require.Empty(t, all.NextCursor)

	var page auditPage
	env.mustAdmin(http.StatusOK, http.MethodGet, "/audit?limit=2", nil, &page)
	require.Len(t, page.Items, 2)
	require.Equal(t, all.Items[:2], page.Items)
	require.NotEmpty(t, page.NextCursor)
	var last auditPage
	env.mustAdmin(http.StatusOK, http.MethodGet, "/audit?limit=500&cursor="+page.NextCursor, nil, &last)
	require.Equal(t, all.Items[2:], last.Items, "the next page goes on where the first ended")
	require.Empty(t, last.NextCursor)

	var clients auditPage
	env.mustAdmin(http.StatusOK, http.MethodGet, "/audit?kind=client&name=gateway", nil, &clients)
	require.Len(t, clients.Items, 2)
	require.EqualValues(t, 2, clients.Items[0].Version, "the rotation made version 2")
	env.mustAdmin(http.StatusBadRequest, http.MethodGet, "/audit?kind=widget", nil, nil)
}

// TestAdminRolesE2E: read tokens only read; JWT admins from a trusted
// issuer get the role their role claim names and appear by sub.
func TestAdminRolesE2E(t *testing.T) {
	env := newEnv(t)
	reader := randomSecret()
	env.start([]string{"--admin-read-tokens", reader,
		"--admin-jwt-issuer", env.idp.Issuer(), "--admin-jwt-audience", "claimbridge-admin"})
	body := map[string]any{"issuer": "https://idp.example.com", "audiences": []string{"api"}}

	resp, _ := env.adminDo(reader, http.MethodGet, "/issuers", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, raw := env.adminDo(reader, http.MethodPut, "/issuers/idp", body, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "%s", raw)

	jwt := func(claims map[string]any) string {
		claims["aud"] = "claimbridge-admin"
		tok, err := env.idp.Mint(claims)
		require.NoError(t, err)
		return tok
	}
	writer := jwt(map[string]any{"sub": "alice", "roles": []string{"claimbridge:write"}})
	resp, raw = env.adminDo(writer, http.MethodPut, "/issuers/idp", body, nil)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", raw)
	viewer := jwt(map[string]any{"sub": "bob", "roles": "claimbridge:read other"})
	resp, _ = env.adminDo(viewer, http.MethodGet, "/issuers/idp", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = env.adminDo(viewer, http.MethodDelete, "/issuers/idp", nil, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = env.adminDo(jwt(map[string]any{"sub": "eve", "roles": []string{"user"}}), http.MethodGet, "/issuers", nil, nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "a valid JWT without an admin role")
	other, err := env.idp.Mint(map[string]any{"sub": "mallory", "aud": "another-app", "roles": []string{"claimbridge:write"}})
	require.NoError(t, err)
	resp, _ = env.adminDo(other, http.MethodGet, "/issuers", nil, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a JWT for another audience")

	var page auditPage
	env.mustAdmin(http.StatusOK, http.MethodGet, "/audit?kind=issuer", nil, &page)
	require.Len(t, page.Items, 1)
	require.Equal(t, "jwt:alice", page.Items[0].Actor)
}
