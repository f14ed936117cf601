package api

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/claimbridge/claimbridge/sts"
	"github.com/claimbridge/claimbridge/verify"
)

// The headers of the forward-auth contract (see docs/gateways.md).
const (
	// ClientHeader carries the gateway's client credentials,
	// "<client_id>:<client_secret>".
	ClientHeader = "X-Claimbridge-Client"
	// AudienceHeader names the audience when the query has none.
	AudienceHeader = "X-Claimbridge-Audience"
	// ScopeHeader holds the requested scope (space-separated) when the
	// query has none.
	ScopeHeader = "X-Claimbridge-Scope"
	// SubjectTokenTypeHeader holds the subject_token_type when the query
	// has none; access_token by default.
	SubjectTokenTypeHeader = "X-Claimbridge-Subject-Token-Type"
	// ReasonHeader carries the OAuth error code of a refusal, or
	// invalid_token for a missing or invalid subject token.
	ReasonHeader = "X-Claimbridge-Reason"
)

// ForwardAuthConfig configures /forward-auth. Zero fields take their
// defaults.
type ForwardAuthConfig struct {
	// TokenHeader is the request header holding the subject token:
	// Authorization (the default), where it must be a Bearer credential,
	// or another header such as X-Forwarded-Access-Token, holding the token
	// itself (an optional "Bearer " prefix is removed).
	TokenHeader string
	// ResponseHeader is the response header that receives the minted
	// token: Authorization (the default), as "Bearer <token>", or another
	// header, holding the token itself.
	ResponseHeader string
}

// forwardAuth serves /forward-auth for gateways that ask an endpoint
// before proxying (nginx auth_request, Traefik ForwardAuth, Caddy
// forward_auth, Envoy ext_authz): the subject token comes in a request
// header, the minted token goes back in a response header, and repeated
// requests are served from the exchange cache.
type forwardAuth struct {
	ex          Exchanger
	tokenHeader string
	respHeader  string
	respPrefix  string // "Bearer " for Authorization
}

func newForwardAuth(ex Exchanger, cfg ForwardAuthConfig) *forwardAuth {
	f := &forwardAuth{ex: ex, tokenHeader: http.CanonicalHeaderKey(cfg.TokenHeader), respHeader: http.CanonicalHeaderKey(cfg.ResponseHeader)}
	if f.tokenHeader == "" {
		f.tokenHeader = "Authorization"
	}
	if f.respHeader == "" {
		f.respHeader = "Authorization"
	}
	if f.respHeader == "Authorization" {
		f.respPrefix = "Bearer "
	}
	return f
}

// handle authenticates the gateway, reads the subject token and the
// targets, and answers 200 with the minted token in the response header.
// Errors go through writeForwardAuthError.
func (f *forwardAuth) handle(c echo.Context) error {
	r := c.Request()
	c.Response().Header().Set("Cache-Control", "no-store")
	clientID, err := f.authenticate(r.Header.Get(ClientHeader))
	if err != nil {
		return err
	}
	c.Set(clientIDKey, clientID)
	token, err := f.subjectToken(r.Header)
	if err != nil {
		return err
	}
	req := forwardAuthRequest(r, clientID, token)
	resp, err := f.ex.ExchangeCached(r.Context(), req)
	if err != nil {
		return err
	}
	setExchangeLog(c, resp)
	c.Response().Header().Set(f.respHeader, f.respPrefix+resp.AccessToken)
	return c.NoContent(http.StatusOK)
}

// unknownClientHash is checked for unknown client IDs, so that the answer
// takes as long as for a known one and does not tell which IDs exist.
var unknownClientHash = sts.HashSecret("no client has this secret")

// authenticate checks "<client_id>:<client_secret>" against the snapshot's
// client with the keyed secret hash.
func (f *forwardAuth) authenticate(v string) (string, error) {
	id, secret, ok := strings.Cut(v, ":")
	if ok && id != "" && secret != "" {
		hash := unknownClientHash // an unknown client costs the same check
		c, found := f.ex.Client(id)
		if found {
			hash = c.SecretHash
		}
		if sts.CheckSecret(hash, secret) && found {
			return id, nil
		}
	}
	return "", &sts.Error{Code: sts.InvalidClient, Description: "The gateway's client credentials (" + ClientHeader + ": <client_id>:<client_secret>) are missing or wrong."}
}

// subjectToken reads the subject token from the configured header.
func (f *forwardAuth) subjectToken(h http.Header) (string, error) {
	v := verify.BearerToken(h.Get(f.tokenHeader), f.tokenHeader)
	if v == "" {
		return "", &sts.Error{Code: sts.InvalidRequest, Description: "No subject token in the " + f.tokenHeader + " header.", Err: sts.ErrSubjectToken}
	}
	return v, nil
}

// forwardAuthRequest reads the exchange parameters: from the query when it
// names an audience or resource (audience, resource, scope,
// subject_token_type), else from the X-Claimbridge-* headers; never a mix,
// so that headers a client sends through a gateway that passes them on
// cannot add to what the gateway's configured query asks for.
func forwardAuthRequest(r *http.Request, clientID, token string) sts.Request {
	req := sts.Request{ClientID: clientID, SubjectToken: token}
	q := r.URL.Query()
	var scope string
	if q.Has("audience") || q.Has("resource") {
		req.Audiences, req.Resources = q["audience"], q["resource"]
		scope, req.SubjectTokenType = q.Get("scope"), q.Get("subject_token_type")
	} else {
		req.Audiences = r.Header.Values(AudienceHeader)
		scope, req.SubjectTokenType = r.Header.Get(ScopeHeader), r.Header.Get(SubjectTokenTypeHeader)
	}
	if scope != "" {
		req.Scopes = strings.Fields(scope)
	}
	if req.SubjectTokenType == "" {
		req.SubjectTokenType = sts.TokenTypeAccessToken
	}
	return req
}

// rewriteForwardAuth makes every request to path, or below it, a GET of
// path: Envoy's ext_authz forwards the original method and appends the
// original path and query to its path_prefix; the endpoint reads headers
// and its own query only. Below path, the query is the user's and is
// dropped.
func rewriteForwardAuth(path string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			switch p := r.URL.Path; {
			case p == path:
				r.Method = http.MethodGet
			case strings.HasPrefix(p, path+"/"):
				r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery = http.MethodGet, path, "", ""
			}
			return next(c)
		}
	}
}
