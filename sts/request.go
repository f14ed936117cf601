package sts

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Grant type and token type identifiers of RFC 8693 §3.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
)

// SubjectTokenTypes are the subject token types the exchange understands.
var SubjectTokenTypes = []string{TokenTypeJWT, TokenTypeIDToken, TokenTypeAccessToken}

// MaxTokenLength bounds a subject or actor token; IdP tokens with large
// claims stay far below it.
const MaxTokenLength = 16 << 10

// Request is one token exchange request (RFC 8693 §2.1) by an authenticated
// client.
type Request struct {
	ClientID           string
	SubjectToken       string
	SubjectTokenType   string
	ActorToken         string
	ActorTokenType     string
	Audiences          []string
	Resources          []string
	Scopes             []string
	RequestedTokenType string
}

// MaxTargets bounds the audience and resource values of one request.
const MaxTargets = 16

// Validate checks the request's parameters before any token is looked at.
func (r *Request) Validate() error {
	switch {
	case r.ClientID == "":
		return errorf(InvalidClient, "The client is not authenticated.", nil)
	case r.SubjectToken == "":
		return subjectErrorf("The 'subject_token' parameter is required.", nil)
	case len(r.SubjectToken) > MaxTokenLength:
		return subjectErrorf("The 'subject_token' parameter is too long.", nil)
	case r.SubjectTokenType == "":
		return errorf(InvalidRequest, "The 'subject_token_type' parameter is required.", nil)
	}
	return r.validateRest()
}

// validateRest checks everything but the client and the subject token.
func (r *Request) validateRest() error {
	switch {
	case r.SubjectTokenType != "" && !slices.Contains(SubjectTokenTypes, r.SubjectTokenType):
		return errorf(InvalidRequest, "The 'subject_token_type' must be one of "+strings.Join(SubjectTokenTypes, ", ")+".", nil)
	case r.ActorToken != "" || r.ActorTokenType != "":
		return errorf(InvalidRequest, "Delegation is not supported yet: send no 'actor_token' or 'actor_token_type'.", nil)
	case len(r.Audiences)+len(r.Resources) == 0:
		return errorf(InvalidRequest, "At least one 'audience' or 'resource' parameter is required.", nil)
	case len(r.Audiences)+len(r.Resources) > MaxTargets:
		return errorf(InvalidTarget, "At most "+strconv.Itoa(MaxTargets)+" 'audience' and 'resource' values are accepted.", nil)
	}
	switch r.RequestedTokenType {
	case "":
		r.RequestedTokenType = TokenTypeAccessToken
	case TokenTypeAccessToken, TokenTypeJWT:
	default:
		return errorf(InvalidRequest, "The 'requested_token_type' must be "+TokenTypeAccessToken+" or "+TokenTypeJWT+".", nil)
	}
	for _, t := range append(slices.Clip(r.Audiences), r.Resources...) {
		if t == "" {
			return errorf(InvalidTarget, "An 'audience' or 'resource' parameter is empty.", nil)
		}
	}
	for _, res := range r.Resources {
		// RFC 8707 §2: an absolute URI without a fragment.
		if u, err := url.Parse(res); err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(res, "#") {
			return errorf(InvalidTarget, "A 'resource' parameter must be an absolute URI without a fragment.", err)
		}
	}
	return nil
}

// Response is the outcome of a successful exchange (RFC 8693 §2.2.1).
type Response struct {
	AccessToken     string
	IssuedTokenType string
	// TokenType is "Bearer" for an access token and "N_A" otherwise.
	TokenType string
	ExpiresIn int64
	// Scope is the granted scope; ScopeChanged says whether it differs from
	// the requested one, in which case it must be returned.
	Scope        []string
	ScopeChanged bool
	// Subject, Audience, Policy, Issuer and JTI describe the exchange for
	// logs (log a hash of Subject, never the value). Audience holds the
	// targets, separated by spaces when there are several.
	Subject  string
	Audience string
	Policy   string
	Issuer   string
	JTI      string
	// Cached says that the token was served from the exchange cache (or
	// minted once for several concurrent callers), not minted for this
	// request alone.
	Cached bool
}
