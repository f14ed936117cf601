package verify_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/verify"
)

// TestMiddleware: requests without a valid token never reach the handler
// and get RFC 6750 challenges; valid ones carry the Token in the context.
func TestMiddleware(t *testing.T) {
	es := newKey(t, "ES256", "es")
	ti := newTestIssuer(t, es)
	clk := newClock()
	v := newVerifier(t, ti, clk, verify.Config{})
	valid := es.sign(t, "at+jwt", claimsAt(ti.URL(), clk.Now()))
	expired := es.sign(t, "at+jwt", with(claimsAt(ti.URL(), clk.Now()), map[string]any{"exp": clk.Now().Add(-time.Hour).Unix()}))
	otherAud := es.sign(t, "at+jwt", with(claimsAt(ti.URL(), clk.Now()), map[string]any{"aud": "https://billing.internal"}))

	tests := []struct {
		name      string
		header    []string // Authorization values
		status    int
		challenge string
	}{
		{"valid bearer token", []string{"Bearer " + valid}, http.StatusOK, ""},
		{"scheme is case-insensitive", []string{"bearer " + valid}, http.StatusOK, ""},
		{"no token", nil, http.StatusUnauthorized, `Bearer`},
		{"empty bearer", []string{"Bearer "}, http.StatusUnauthorized, `Bearer`},
		{"another scheme", []string{"Basic Z2F0ZXdheTpzZWNyZXQ="}, http.StatusUnauthorized, `Bearer`},
		{"bare token in Authorization", []string{valid}, http.StatusUnauthorized, `Bearer`},
		{"expired", []string{"Bearer " + expired}, http.StatusUnauthorized,
			`Bearer error="invalid_token", error_description="the token has expired"`},
		{"another audience", []string{"Bearer " + otherAud}, http.StatusUnauthorized,
			`Bearer error="invalid_token", error_description="the token is not meant for this audience"`},
		{"garbage", []string{"Bearer not-a-jwt"}, http.StatusUnauthorized,
			`Bearer error="invalid_token", error_description="the token is not a well-formed signed JWT"`},
		{"two tokens", []string{"Bearer " + valid, "Bearer " + valid}, http.StatusBadRequest,
			`Bearer error="invalid_request", error_description="the request carries more than one token"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen *verify.Token
			h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen, _ = verify.FromContext(r.Context())
				w.WriteHeader(http.StatusOK)
			}))
			req := httptest.NewRequest(http.MethodGet, "/orders", nil)
			for _, h := range tt.header {
				req.Header.Add("Authorization", h)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tt.status, rec.Code)
			require.Equal(t, tt.challenge, rec.Header().Get("WWW-Authenticate"))
			if tt.status != http.StatusOK {
				require.Nil(t, seen, "the handler is not called")
				body, _ := io.ReadAll(rec.Body)
				for _, tok := range []string{valid, expired, otherAud} {
					require.NotContains(t, string(body), tok, "never echo the token")
					require.NotContains(t, rec.Header().Get("WWW-Authenticate"), tok)
				}
				return
			}
			require.NotNil(t, seen)
			require.Equal(t, "auth0|alice", seen.Subject)
		})
	}
}

// TestMiddlewareHeader: a configured header carries the token bare or with
// the Bearer scheme, and Authorization is then ignored.
func TestMiddlewareHeader(t *testing.T) {
	es := newKey(t, "ES256", "es")
	ti := newTestIssuer(t, es)
	clk := newClock()
	v := newVerifier(t, ti, clk, verify.Config{Header: "X-Claimbridge-Token"})
	valid := es.sign(t, "at+jwt", claimsAt(ti.URL(), clk.Now()))
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for value, want := range map[string]int{valid: 200, "Bearer " + valid: 200, "": 401} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if value != "" {
			req.Header.Set("x-claimbridge-token", value)
		}
		req.Header.Set("Authorization", "Bearer "+valid)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, want, rec.Code, value)
	}
}

func TestFromContext(t *testing.T) {
	_, ok := verify.FromContext(context.Background())
	require.False(t, ok)
	_, ok = verify.FromContext(verify.NewContext(context.Background(), nil))
	require.False(t, ok)
	tok := &verify.Token{Subject: "alice"}
	got, ok := verify.FromContext(verify.NewContext(context.Background(), tok))
	require.True(t, ok)
	require.Same(t, tok, got)
}
