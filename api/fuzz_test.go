package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/claimbridge/claimbridge/api"
)

// FuzzTokenRequest: no token request body or Authorization header makes
// the token endpoint fail as a server error or panic; every answer is an
// OAuth error or success.
func FuzzTokenRequest(f *testing.F) {
	f.Add("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=a.b.c&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&audience=x", "Basic YTpi")
	f.Add("grant_type=a&grant_type=b", "")
	f.Add("%zz=1", "Bearer x")
	f.Add("client_id=a&client_secret=b&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange", "Basic !!!")
	h := newPublic("https://sts.example.com")
	f.Fuzz(func(t *testing.T, body, authorization string) {
		req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if authorization != "" {
			req.Header["Authorization"] = []string{authorization}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 || !strings.Contains(rec.Body.String(), `"error"`) && rec.Code != http.StatusOK {
			t.Fatalf("status %d body %s", rec.Code, rec.Body)
		}
	})
}

// FuzzAdminPut: no admin request body makes a PUT fail as a server error
// or panic.
func FuzzAdminPut(f *testing.F) {
	f.Add("policies", `{"audience":"a","allowed_clients":["c"],"allowed_issuers":["i"],"claims":[{"claim":"x","from":"/a/b~1c"}]}`)
	f.Add("issuers", `{"issuer":"https://idp.example","audiences":["a"],"algorithms":["RS256"]}`)
	f.Add("clients", `{"description":"x","version":3}`)
	f.Add("policies", `{"claims":[{"claim":1}]}`)
	f.Add("issuers", `[]`)
	h := api.NewAdmin(api.AdminConfig{Store: fakeStore{}, Tokens: []string{"token-0123456789abcdef"}, Logger: slog.New(slog.DiscardHandler)})
	f.Fuzz(func(t *testing.T, kind, body string) {
		switch kind {
		case "policies", "issuers", "clients":
		default:
			return
		}
		req := httptest.NewRequest(http.MethodPut, "/admin/v1/"+kind+"/name", bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer token-0123456789abcdef")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d body %s", rec.Code, rec.Body)
		}
	})
}
