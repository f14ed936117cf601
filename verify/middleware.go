package verify

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// Middleware verifies the token of every request before next sees it and
// puts the Token in the request's context (read it with FromContext).
//
// The token comes from the Authorization header with the Bearer scheme, or
// from Config.Header. A request without one gets 401 with
// "WWW-Authenticate: Bearer"; a token that fails verification gets 401 with
// `WWW-Authenticate: Bearer error="invalid_token", error_description="…"`
// (RFC 6750 §3), whose description names the check that failed and never
// repeats the token; a request carrying several tokens gets 400
// (invalid_request).
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values := r.Header.Values(v.header)
		if len(values) > 1 {
			challenge(w, http.StatusBadRequest, "invalid_request", "the request carries more than one token")
			return
		}
		var raw string
		if len(values) == 1 {
			raw = BearerToken(values[0], v.header)
		}
		if raw == "" {
			challenge(w, http.StatusUnauthorized, "", "a bearer token is required")
			return
		}
		tok, err := v.Verify(r.Context(), raw)
		if err != nil {
			challenge(w, http.StatusUnauthorized, "invalid_token", describe(err))
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), tok)))
	})
}

// BearerToken takes the token from value, the value of header: "Bearer
// TOKEN" (the scheme in any case), or a bare TOKEN in a header other than
// Authorization. Anything else — another scheme, several words, nothing —
// is "".
func BearerToken(value, header string) string {
	scheme, tok, found := strings.Cut(strings.TrimSpace(value), " ")
	switch {
	case found && strings.EqualFold(scheme, "Bearer"):
		return strings.TrimSpace(tok)
	case !found && http.CanonicalHeaderKey(header) != "Authorization":
		return scheme
	}
	return ""
}

// challenge answers status with an RFC 6750 §3 WWW-Authenticate header: the
// error code (none when the request had no token) and the description.
func challenge(w http.ResponseWriter, status int, code, description string) {
	value := "Bearer"
	if code != "" {
		value += ` error="` + code + `", error_description="` + quotable(description) + `"`
	}
	w.Header().Set("WWW-Authenticate", value)
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, description, status)
}

// describe is the safe description of a verification error: the message of
// the sentinel it matches, never the detail (which may quote the token's
// header or claims).
func describe(err error) string {
	for _, s := range []error{ErrMalformed, ErrAlgorithm, ErrType, ErrUnknownKey, ErrBadSignature,
		ErrWrongIssuer, ErrWrongAudience, ErrExpired, ErrNotYetValid} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return "the token is invalid"
}

// quotable keeps the characters RFC 6750 §3 allows in error_description.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

type contextKey struct{}

// NewContext returns a copy of ctx that carries tok; the middleware uses it,
// and tests of handlers behind the middleware can too.
func NewContext(ctx context.Context, tok *Token) context.Context {
	return context.WithValue(ctx, contextKey{}, tok)
}

// FromContext returns the Token the middleware verified for this request.
func FromContext(ctx context.Context) (*Token, bool) {
	tok, ok := ctx.Value(contextKey{}).(*Token)
	return tok, ok && tok != nil
}
