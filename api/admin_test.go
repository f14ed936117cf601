package api_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/admin"
	"github.com/claimbridge/claimbridge/api"
	"github.com/claimbridge/claimbridge/policy"
	"github.com/claimbridge/claimbridge/sts"
)

const (
	writeToken = "write-token-0123456789"
	readToken  = "read-token-0123456789"
)

// recordingStore remembers the precondition and actor of the last policy
// write; the stored policy is at version 4.
type recordingStore struct {
	fakeStore
	ifVersion *int64
	actor     *string
}

func (s recordingStore) PutPolicy(ctx context.Context, p policy.Policy, ifVersion int64) (policy.Policy, bool, error) {
	*s.ifVersion, *s.actor = ifVersion, admin.ActorFrom(ctx)
	if ifVersion > 0 && ifVersion != 4 {
		return policy.Policy{}, false, sts.ErrPreconditionFailed
	}
	p.Version = 5
	return p, false, nil
}

func (s recordingStore) DeletePolicy(ctx context.Context, _ string, ifVersion int64) error {
	*s.ifVersion, *s.actor = ifVersion, admin.ActorFrom(ctx)
	return nil
}

func (s recordingStore) GetPolicy(context.Context, string) (policy.Policy, error) {
	return policy.Policy{Name: "p", Version: 4}, nil
}

func newRecordingAdmin() (http.Handler, *int64, *string) {
	var (
		v     int64 = -99
		actor string
	)
	h := api.NewAdmin(api.AdminConfig{
		Store:  recordingStore{ifVersion: &v, actor: &actor},
		Tokens: []string{writeToken}, ReadTokens: []string{readToken},
		Logger: slog.New(slog.DiscardHandler),
	})
	return h, &v, &actor
}

const validPolicy = `{"audience":"a","allowed_clients":["c"],"allowed_issuers":["i"]}`

func adminRequest(h http.Handler, method, path, token string, header map[string]string) *httptest.ResponseRecorder {
	var body *bytes.Buffer
	if method == http.MethodPut {
		body = bytes.NewBufferString(validPolicy)
	} else {
		body = &bytes.Buffer{}
	}
	req := httptest.NewRequest(method, path, body)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestAdminRoles: the read role may only read (GET, dry runs, previews);
// every role needs a valid
// credential; the audit actor names the token, never contains it.
func TestAdminRoles(t *testing.T) {
	h, _, actor := newRecordingAdmin()
	cases := []struct {
		name, method, path, token string
		status                    int
	}{
		{"read role reads", http.MethodGet, "/admin/v1/policies/p", readToken, http.StatusOK},
		{"read role may not write", http.MethodPut, "/admin/v1/policies/p", readToken, http.StatusForbidden},
		{"read role may dry-run a write", http.MethodPut, "/admin/v1/policies/p?dry_run=true", readToken, http.StatusOK},
		{"read role may not delete", http.MethodDelete, "/admin/v1/policies/p", readToken, http.StatusForbidden},
		{"read role may not rotate a secret", http.MethodPost, "/admin/v1/clients/c/secret", readToken, http.StatusForbidden},
		{"read role may preview (passes the role check)", http.MethodPost, "/admin/v1/policies:preview", readToken, http.StatusNotImplemented},
		{"write role reads", http.MethodGet, "/admin/v1/policies/p", writeToken, http.StatusOK},
		{"write role writes", http.MethodPut, "/admin/v1/policies/p", writeToken, http.StatusOK},
		{"no token", http.MethodGet, "/admin/v1/policies/p", "", http.StatusUnauthorized},
		{"unknown token", http.MethodGet, "/admin/v1/policies/p", "unknown-token-0123456789", http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := adminRequest(h, tc.method, tc.path, tc.token, nil)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			if tc.status >= 400 {
				require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
			}
		})
	}
	adminRequest(h, http.MethodPut, "/admin/v1/policies/p", writeToken, nil)
	require.Regexp(t, `^token:[0-9a-f]{8}$`, *actor)
}

// TestAdminPreconditions: the conditional headers become the store's
// ifVersion, and the ETag of a write is the stored version.
func TestAdminPreconditions(t *testing.T) {
	h, got, _ := newRecordingAdmin()
	cases := []struct {
		name      string
		method    string
		header    map[string]string
		status    int
		ifVersion int64
	}{
		{"unconditional", http.MethodPut, nil, http.StatusOK, 0},
		{"If-Match version", http.MethodPut, map[string]string{"If-Match": `"4"`}, http.StatusOK, 4},
		{"If-Match stale", http.MethodPut, map[string]string{"If-Match": `"3"`}, http.StatusPreconditionFailed, 3},
		{"If-Match star", http.MethodPut, map[string]string{"If-Match": "*"}, http.StatusOK, admin.IfExists},
		{"If-None-Match star", http.MethodPut, map[string]string{"If-None-Match": "*"}, http.StatusOK, admin.IfAbsent},
		{"delete If-Match", http.MethodDelete, map[string]string{"If-Match": `"4"`}, http.StatusNoContent, 4},
		{"weak tag never matches", http.MethodPut, map[string]string{"If-Match": `W/"4"`}, http.StatusPreconditionFailed, -99},
		{"a tag that is not a version never matches", http.MethodPut, map[string]string{"If-Match": `"abc"`}, http.StatusPreconditionFailed, -99},
		{"unquoted", http.MethodPut, map[string]string{"If-Match": "4"}, http.StatusBadRequest, -99},
		{"a list", http.MethodPut, map[string]string{"If-Match": `"3", "4"`}, http.StatusBadRequest, -99},
		{"both headers", http.MethodPut, map[string]string{"If-Match": `"4"`, "If-None-Match": "*"}, http.StatusBadRequest, -99},
		{"If-None-Match on delete", http.MethodDelete, map[string]string{"If-None-Match": "*"}, http.StatusBadRequest, -99},
		{"If-None-Match with a tag", http.MethodPut, map[string]string{"If-None-Match": `"4"`}, http.StatusBadRequest, -99},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			*got = -99
			rec := adminRequest(h, tc.method, "/admin/v1/policies/p", writeToken, tc.header)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			require.Equal(t, tc.ifVersion, *got, "the store's ifVersion")
			if rec.Code == http.StatusOK {
				require.Equal(t, `"5"`, rec.Header().Get("ETag"))
			}
		})
	}
	rec := adminRequest(h, http.MethodGet, "/admin/v1/policies/p", readToken, nil)
	require.Equal(t, `"4"`, rec.Header().Get("ETag"))
}

// TestAdminDryRun: a dry run validates, writes nothing and answers the
// resource without the fields the store sets.
func TestAdminDryRun(t *testing.T) {
	h, got, _ := newRecordingAdmin()
	rec := adminRequest(h, http.MethodPut, "/admin/v1/policies/p?dry_run=true", writeToken, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, int64(-99), *got, "the store was not called")
	require.Empty(t, rec.Header().Get("ETag"))
	require.JSONEq(t, `{"name":"p","audience":"a","allowed_clients":["c"],"allowed_issuers":["i"]}`, rec.Body.String())
	rec = adminRequest(h, http.MethodPut, "/admin/v1/policies/p?dry_run=maybe", writeToken, nil)
	require.Equal(t, http.StatusBadRequest, rec.Code)
}

// TestAuditQueryValidation: paging and filter parameters are checked and
// every problem is named at once.
func TestAuditQueryValidation(t *testing.T) {
	h, _, _ := newRecordingAdmin()
	rec := adminRequest(h, http.MethodGet, "/admin/v1/audit?limit=0&cursor=x&kind=widget", readToken, nil)
	require.Equal(t, http.StatusBadRequest, rec.Code)
	for _, field := range []string{`"limit"`, `"cursor"`, `"kind"`} {
		require.Contains(t, rec.Body.String(), field)
	}
	rec = adminRequest(h, http.MethodGet, "/admin/v1/audit?limit=10&kind=policy", readToken, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.JSONEq(t, `{"items":[]}`, rec.Body.String())
}
