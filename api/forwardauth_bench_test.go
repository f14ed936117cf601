package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/claimbridge/claimbridge/api"
)

// BenchmarkForwardAuthHandler is /forward-auth's share of a cache hit:
// echo, the access log, client authentication and the response, around an
// exchanger that answers at once.
func BenchmarkForwardAuthHandler(b *testing.B) {
	h := newForwardAuthServer(&faExchanger{}, api.ForwardAuthConfig{})
	subject := "Bearer " + strings.Repeat("x", 900)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/forward-auth?audience=https://orders.internal", nil)
		req.Header.Set(api.ClientHeader, "gateway:"+faSecret)
		req.Header.Set("Authorization", subject)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
