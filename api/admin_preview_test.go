package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/api"
	"github.com/claimbridge/claimbridge/policy"
	"github.com/claimbridge/claimbridge/sts"
)

const previewToken = "preview-token-0123456789"

// fakePreviewer records the request and answers what it is told.
type fakePreviewer struct {
	got *sts.PreviewRequest
	res *sts.Preview
	err error
}

func (f *fakePreviewer) Preview(_ context.Context, req sts.PreviewRequest) (*sts.Preview, error) {
	*f.got = req
	return f.res, f.err
}

func previewAdmin(p api.Previewer) http.Handler {
	return api.NewAdmin(api.AdminConfig{Store: fakeStore{}, Tokens: []string{previewToken}, Preview: p, Logger: slog.New(slog.DiscardHandler)})
}

func postPreview(h http.Handler, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+previewToken)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestPreviewRoute(t *testing.T) {
	var got sts.PreviewRequest
	fake := &fakePreviewer{got: &got, res: &sts.Preview{Decision: sts.DecisionAllow, Claims: json.RawMessage(`{"sub":"x"}`)}}
	h := previewAdmin(fake)

	body := `{"client_id": "gateway", "audience": ["https://a.test"], "resource": ["https://b.test/"], "scope": " orders:read  orders:write ",
		"requested_token_type": "urn:ietf:params:oauth:token-type:jwt", "subject_claims": {"sub": "x", "n": 12345678901234567890},
		"issuer": "auth0", "policy": {"audience": "https://a.test", "allowed_clients": ["gateway"], "allowed_issuers": ["auth0"],
		"conditions": ["true"], "version": 3, "created_at": "2026-01-01T00:00:00Z"}}`
	rec := postPreview(h, "/admin/v1/policies:preview", body)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	require.JSONEq(t, `{"decision":"allow","subject_verified":false,"claims":{"sub":"x"},"steps":null,"cost":0,"unmapped_claims":null}`, rec.Body.String())

	require.Equal(t, "gateway", got.ClientID)
	require.Equal(t, []string{"https://a.test"}, got.Audiences)
	require.Equal(t, []string{"https://b.test/"}, got.Resources)
	require.Equal(t, []string{"orders:read", "orders:write"}, got.Scopes)
	require.Equal(t, sts.TokenTypeJWT, got.RequestedTokenType)
	require.JSONEq(t, `{"sub": "x", "n": 12345678901234567890}`, string(got.SubjectClaims), "the claims object is passed as sent")
	require.Equal(t, "auth0", got.Issuer)
	require.Equal(t, []string{"true"}, got.Policy.Conditions)
	require.Equal(t, "https://a.test", got.Policy.Audience)
}

func TestPreviewRouteErrors(t *testing.T) {
	var got sts.PreviewRequest
	invalid := &policy.ValidationError{}
	invalid.Fields = append(invalid.Fields, policy.FieldError{Field: "policy.claims[0].expression", Reason: "at 1:1: undeclared reference to 'subjct'", Line: 1, Column: 1})
	tests := []struct {
		name   string
		h      http.Handler
		path   string
		body   string
		status int
		want   string // a substring of the body
	}{
		{"a problem of the previewed policy, with its position", previewAdmin(&fakePreviewer{got: &got, err: invalid}), "/admin/v1/policies:preview", `{}`,
			http.StatusBadRequest, `"errors":[{"field":"policy.claims[0].expression","reason":"at 1:1: undeclared reference to 'subjct'","line":1,"column":1}]`},
		{"an unknown field", previewAdmin(&fakePreviewer{got: &got}), "/admin/v1/policies:preview", `{"subject": {}}`,
			http.StatusBadRequest, `"field":"subject"`},
		{"an unknown policy field", previewAdmin(&fakePreviewer{got: &got}), "/admin/v1/policies:preview", `{"policy": {"condition": "true"}}`,
			http.StatusBadRequest, `"field":"condition"`},
		{"a policy field of the wrong type names its path", previewAdmin(&fakePreviewer{got: &got}), "/admin/v1/policies:preview", `{"policy": {"audience": 42}}`,
			http.StatusBadRequest, `"field":"policy.audience"`},
		{"audience must be an array", previewAdmin(&fakePreviewer{got: &got}), "/admin/v1/policies:preview", `{"audience": "x"}`,
			http.StatusBadRequest, `"field":"audience"`},
		{"no previewer", previewAdmin(nil), "/admin/v1/policies:preview", `{}`, http.StatusNotImplemented, "not available"},
		{"the colon is literal", previewAdmin(&fakePreviewer{got: &got}), "/admin/v1/policiesXpreview", `{}`, http.StatusNotFound, ""},
		{"another verb after the colon", previewAdmin(&fakePreviewer{got: &got}), "/admin/v1/policies:apply", `{}`, http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := postPreview(tt.h, tt.path, tt.body)
			require.Equal(t, tt.status, rec.Code, rec.Body.String())
			require.Contains(t, rec.Body.String(), tt.want)
		})
	}
}

func TestPreviewRouteNeedsAuthentication(t *testing.T) {
	var got sts.PreviewRequest
	req := httptest.NewRequest(http.MethodPost, "/admin/v1/policies:preview", bytes.NewBufferString(`{}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	previewAdmin(&fakePreviewer{got: &got}).ServeHTTP(rec, req)
	require.Equal(t, http.StatusUnauthorized, rec.Code)
}
