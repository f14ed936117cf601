package sts

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSubjectTokenErrorsAreMarked: failures of the subject token itself
// carry ErrSubjectToken (forward-auth answers them 401), refusals of a
// valid one by the policy do not (403); both stay invalid_request.
func TestSubjectTokenErrorsAreMarked(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	valid := f.idp.claims(now)
	cases := []struct {
		name    string
		token   func() string
		change  func(r *Request)
		subject bool
	}{
		{"missing", func() string { return "" }, nil, true},
		{"not a JWT", func() string { return "not-a-jwt" }, nil, true},
		{"expired", func() string { return f.idp.mint(t, with(valid, "exp", now.Add(-time.Minute).Unix())) }, nil, true},
		{"untrusted issuer", func() string { return f.idp.mint(t, with(valid, "iss", "https://elsewhere.test")) }, nil, true},
		{"wrong audience", func() string { return f.idp.mint(t, with(valid, "aud", "other", "azp", "other")) }, nil, true},
		// A configuration problem (gateway or issuer), not the user's token.
		{"a type the issuer does not accept", func() string { return f.idp.mint(t, valid) },
			func(r *Request) { r.SubjectTokenType = TokenTypeIDToken }, false},
		{"an issuer the policy does not accept", func() string { return f.idp.mint(t, valid) },
			func(r *Request) { r.Audiences = []string{"https://billing.example.test"}; r.Scopes = nil }, false},
		{"a scope not granted", func() string { return f.idp.mint(t, valid) },
			func(r *Request) { r.Scopes = []string{"admin"} }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := f.request(tc.token())
			if tc.change != nil {
				tc.change(&req)
			}
			_, err := f.ex.Exchange(context.Background(), req)
			require.Error(t, err)
			require.Equal(t, tc.subject, errors.Is(err, ErrSubjectToken), "%v", err)
		})
	}
}
