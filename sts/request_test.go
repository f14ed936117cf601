package sts

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func validRequest() Request {
	return Request{
		ClientID:         "gateway",
		SubjectToken:     "header.payload.signature",
		SubjectTokenType: TokenTypeAccessToken,
		Audiences:        []string{"https://orders.example.test"},
	}
}

func TestRequestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *Request)
		code   Code   // "" means valid
		desc   string // a substring of the description
		// wantType is RequestedTokenType after a successful Validate.
		wantType string
	}{
		{name: "a minimal request is valid and asks for an access token by default",
			change: func(*Request) {}, wantType: TokenTypeAccessToken},
		{name: "requested_token_type access_token is kept",
			change: func(r *Request) { r.RequestedTokenType = TokenTypeAccessToken }, wantType: TokenTypeAccessToken},
		{name: "requested_token_type jwt is kept",
			change: func(r *Request) { r.RequestedTokenType = TokenTypeJWT }, wantType: TokenTypeJWT},
		{name: "subject_token_type jwt is understood",
			change: func(r *Request) { r.SubjectTokenType = TokenTypeJWT }, wantType: TokenTypeAccessToken},
		{name: "subject_token_type id_token is understood",
			change: func(r *Request) { r.SubjectTokenType = TokenTypeIDToken }, wantType: TokenTypeAccessToken},
		{name: "a resource alone names the target",
			change: func(r *Request) { r.Audiences, r.Resources = nil, []string{"https://orders.example.test/"} }, wantType: TokenTypeAccessToken},
		{name: "a subject token of exactly the maximum length is accepted",
			change: func(r *Request) { r.SubjectToken = strings.Repeat("a", MaxTokenLength) }, wantType: TokenTypeAccessToken},
		{name: "scopes are not checked here",
			change: func(r *Request) { r.Scopes = []string{"anything", ""} }, wantType: TokenTypeAccessToken},

		{name: "no client", change: func(r *Request) { r.ClientID = "" }, code: InvalidClient, desc: "not authenticated"},
		{name: "no client is reported before anything else", change: func(r *Request) { *r = Request{} }, code: InvalidClient},
		{name: "no subject_token", change: func(r *Request) { r.SubjectToken = "" }, code: InvalidRequest, desc: "'subject_token' parameter is required"},
		{name: "a subject_token one byte too long",
			change: func(r *Request) { r.SubjectToken = strings.Repeat("a", MaxTokenLength+1) }, code: InvalidRequest, desc: "too long"},
		{name: "no subject_token_type", change: func(r *Request) { r.SubjectTokenType = "" }, code: InvalidRequest, desc: "'subject_token_type' parameter is required"},
		{name: "an unknown subject_token_type",
			change: func(r *Request) { r.SubjectTokenType = "urn:ietf:params:oauth:token-type:saml2" }, code: InvalidRequest, desc: "must be one of"},
		{name: "a refresh token is not a subject token type",
			change: func(r *Request) { r.SubjectTokenType = "urn:ietf:params:oauth:token-type:refresh_token" }, code: InvalidRequest, desc: "must be one of"},
		{name: "subject_token_type matching is exact",
			change: func(r *Request) { r.SubjectTokenType = strings.ToUpper(TokenTypeJWT) }, code: InvalidRequest, desc: "must be one of"},
		{name: "an actor_token is not supported yet",
			change: func(r *Request) { r.ActorToken, r.ActorTokenType = "a.b.c", TokenTypeJWT }, code: InvalidRequest, desc: "Delegation"},
		{name: "an actor_token without its type is not supported either",
			change: func(r *Request) { r.ActorToken = "a.b.c" }, code: InvalidRequest, desc: "Delegation"},
		{name: "an actor_token_type alone is not supported either",
			change: func(r *Request) { r.ActorTokenType = TokenTypeJWT }, code: InvalidRequest, desc: "Delegation"},
		{name: "no audience and no resource",
			change: func(r *Request) { r.Audiences, r.Resources = nil, nil }, code: InvalidRequest, desc: "At least one 'audience' or 'resource'"},
		{name: "requested_token_type id_token is refused",
			change: func(r *Request) { r.RequestedTokenType = TokenTypeIDToken }, code: InvalidRequest, desc: "'requested_token_type'"},
		{name: "requested_token_type refresh_token is refused",
			change: func(r *Request) { r.RequestedTokenType = "urn:ietf:params:oauth:token-type:refresh_token" }, code: InvalidRequest, desc: "'requested_token_type'"},
		{name: "an empty audience",
			change: func(r *Request) { r.Audiences = []string{"https://orders.example.test", ""} }, code: InvalidTarget, desc: "empty"},
		{name: "an empty resource",
			change: func(r *Request) { r.Resources = []string{""} }, code: InvalidTarget, desc: "empty"},
		{name: "a resource may be a URN",
			change: func(r *Request) { r.Resources = []string{"urn:example:orders"} }, wantType: TokenTypeAccessToken},
		{name: "an audience need not be a URI",
			change: func(r *Request) { r.Audiences = []string{"orders-api"} }, wantType: TokenTypeAccessToken},
		{name: "a relative resource",
			change: func(r *Request) { r.Resources = []string{"orders"} }, code: InvalidTarget, desc: "absolute URI"},
		{name: "a scheme-relative resource",
			change: func(r *Request) { r.Resources = []string{"//orders.example.test/"} }, code: InvalidTarget, desc: "absolute URI"},
		{name: "a resource with a fragment",
			change: func(r *Request) { r.Resources = []string{"https://orders.example.test/#x"} }, code: InvalidTarget, desc: "without a fragment"},
		{name: "a resource with an empty fragment",
			change: func(r *Request) { r.Resources = []string{"https://orders.example.test/#"} }, code: InvalidTarget, desc: "without a fragment"},
		{name: "a resource that does not parse",
			change: func(r *Request) { r.Resources = []string{"https://orders.example.test/%zz"} }, code: InvalidTarget, desc: "absolute URI"},
		{name: "an empty audience with a bad requested_token_type reports the token type first",
			change: func(r *Request) { r.Audiences, r.RequestedTokenType = []string{""}, "x" }, code: InvalidRequest, desc: "'requested_token_type'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRequest()
			tt.change(&r)
			err := r.Validate()
			if tt.code == "" {
				require.NoError(t, err)
				require.Equal(t, tt.wantType, r.RequestedTokenType)
				return
			}
			e := requireCode(t, err, tt.code, r.SubjectToken)
			require.Contains(t, e.Description, tt.desc)
		})
	}
}

// TestRequestValidateDoesNotAlias proves that checking audiences and
// resources together never writes into the caller's Audiences array.
func TestRequestValidateDoesNotAlias(t *testing.T) {
	aud := make([]string, 1, 4)
	aud[0] = "https://orders.example.test"
	r := validRequest()
	r.Audiences, r.Resources = aud, []string{"https://orders.example.test/r1", "https://orders.example.test/r2"}
	require.NoError(t, r.Validate())
	require.Equal(t, []string{"https://orders.example.test", "", "", ""}, aud[:4])
}
