package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/ory/fosite"

	"github.com/claimbridge/claimbridge/sts"
)

// Exchanger performs token exchanges.
type Exchanger interface {
	Exchange(ctx context.Context, req sts.Request) (*sts.Response, error)
	// ExchangeCached is Exchange served from the exchange cache whatever
	// the policy says (forward-auth); the client is authenticated.
	ExchangeCached(ctx context.Context, req sts.Request) (*sts.Response, error)
	Client(id string) (*sts.Client, bool)
}

// maxTokenRequestBytes bounds a token request body.
const maxTokenRequestBytes = 64 << 10

// singleParams may appear at most once in a token request (RFC 6749 §3.2,
// RFC 8693 §2.1); audience and resource may repeat.
var singleParams = []string{
	"grant_type", "subject_token", "subject_token_type", "actor_token", "actor_token_type",
	"requested_token_type", "scope", "client_id", "client_secret", "client_assertion", "client_assertion_type",
}

// tokenEndpoint serves POST /oauth2/token: fosite parses the request and
// authenticates the client, exchangeHandler runs the exchange.
type tokenEndpoint struct {
	provider *fosite.Fosite
}

func newTokenEndpoint(ex Exchanger, tokenURL string) *tokenEndpoint {
	cfg := &fosite.Config{
		ClientSecretsHasher:   secretHasher{},
		TokenURL:              tokenURL,
		TokenEndpointHandlers: fosite.TokenEndpointHandlers{&exchangeHandler{ex: ex}},
	}
	return &tokenEndpoint{provider: &fosite.Fosite{Store: clientStore{ex: ex}, Config: cfg}}
}

func (t *tokenEndpoint) handle(c echo.Context) error {
	r, w := c.Request(), c.Response()
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequestBytes)
	if err := precheck(r); err != nil {
		return err
	}
	ctx := r.Context()
	sess := &exchangeSession{}
	ar, err := t.provider.NewAccessRequest(ctx, r, sess)
	if ar != nil && ar.GetClient() != nil {
		c.Set(clientIDKey, ar.GetClient().GetID())
	}
	if err != nil {
		return fromFosite(err)
	}
	resp, err := t.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		return fromFosite(err)
	}
	setExchangeLog(c, sess.result)
	t.provider.WriteAccessResponse(ctx, w, ar, resp)
	return nil
}

// precheck rejects what fosite would let through or misreport: a body that
// cannot be parsed, a parameter given twice, a grant type other than token
// exchange and a request without client authentication (fosite would answer
// invalid_request to both).
func precheck(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return &sts.Error{Code: sts.InvalidRequest, Description: "The request body is not a valid application/x-www-form-urlencoded form.", Err: err}
	}
	for _, p := range singleParams {
		if len(r.PostForm[p]) > 1 {
			return &sts.Error{Code: sts.InvalidRequest, Description: "The '" + p + "' parameter is included more than once."}
		}
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "":
		return &sts.Error{Code: sts.InvalidRequest, Description: "The 'grant_type' parameter is required."}
	case sts.GrantTypeTokenExchange:
	default:
		return &sts.Error{Code: sts.UnsupportedGrantType, Description: "Only the token exchange grant (" + sts.GrantTypeTokenExchange + ") is supported."}
	}
	// RFC 6749 §5.2: no client authentication at all is invalid_client;
	// §2.3: a client uses one authentication method per request.
	basic := r.Header.Get("Authorization") != ""
	switch {
	case !basic && r.PostForm.Get("client_id") == "":
		return &sts.Error{Code: sts.InvalidClient, Description: "Client authentication is required (client_secret_basic or client_secret_post)."}
	case basic && (r.PostForm.Has("client_secret") || r.PostForm.Has("client_assertion")):
		return &sts.Error{Code: sts.InvalidRequest, Description: "Use one client authentication method: the Authorization header or the form, not both."}
	}
	return nil
}

// fromFosite turns a fosite error into an sts.Error with its code and a
// description that names no secret.
func fromFosite(err error) error {
	var se *sts.Error
	if errors.As(err, &se) {
		return se
	}
	fe := fosite.ErrorToRFC6749Error(err)
	desc := fe.DescriptionField
	if fe.HintField != "" {
		desc += " " + fe.HintField
	}
	code := sts.Code(fe.ErrorField)
	if fe.CodeField >= 500 {
		code = sts.ServerError
	}
	return &sts.Error{Code: code, Description: desc, Err: err}
}

// exchangeSession carries the exchange result from HandleTokenEndpointRequest
// to PopulateTokenEndpointResponse.
type exchangeSession struct {
	fosite.DefaultSession
	result *sts.Response
}

// exchangeHandler is the RFC 8693 grant as a fosite.TokenEndpointHandler.
type exchangeHandler struct {
	ex Exchanger
}

var _ fosite.TokenEndpointHandler = (*exchangeHandler)(nil)

func (h *exchangeHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false // a gateway must always authenticate
}

func (h *exchangeHandler) CanHandleTokenEndpointRequest(_ context.Context, ar fosite.AccessRequester) bool {
	return ar.GetGrantTypes().ExactOne(sts.GrantTypeTokenExchange)
}

func (h *exchangeHandler) HandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	sess, ok := ar.GetSession().(*exchangeSession)
	if !ok || ar.GetClient() == nil {
		return errors.New("token exchange without an authenticated client")
	}
	res, err := h.ex.Exchange(ctx, requestFromForm(ar.GetClient().GetID(), ar.GetRequestForm()))
	if err != nil {
		return err
	}
	sess.result = res
	return nil
}

func (h *exchangeHandler) PopulateTokenEndpointResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	sess, ok := ar.GetSession().(*exchangeSession)
	if !ok || sess.result == nil {
		return errors.New("token exchange response without a result")
	}
	res := sess.result
	resp.SetAccessToken(res.AccessToken)
	resp.SetTokenType(res.TokenType)
	resp.SetExpiresIn(time.Duration(res.ExpiresIn) * time.Second)
	resp.SetExtra("issued_token_type", res.IssuedTokenType)
	if res.ScopeChanged && len(res.Scope) > 0 {
		resp.SetScopes(res.Scope)
	}
	return nil
}

// requestFromForm reads the RFC 8693 §2.1 parameters.
func requestFromForm(clientID string, f url.Values) sts.Request {
	return sts.Request{
		ClientID:           clientID,
		SubjectToken:       f.Get("subject_token"),
		SubjectTokenType:   f.Get("subject_token_type"),
		ActorToken:         f.Get("actor_token"),
		ActorTokenType:     f.Get("actor_token_type"),
		Audiences:          f["audience"],
		Resources:          f["resource"],
		Scopes:             fosite.RemoveEmpty(strings.Split(f.Get("scope"), " ")), // RFC 6749 §3.3: space-delimited
		RequestedTokenType: f.Get("requested_token_type"),
	}
}
