package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/claimbridge/claimbridge/policy"
	"github.com/claimbridge/claimbridge/sts"
)

// oauthStatus is the one table from OAuth error code to HTTP status
// (RFC 6749 §5.2, RFC 8693 §2.2.2, RFC 8707 §2).
var oauthStatus = map[sts.Code]int{
	sts.InvalidRequest:       http.StatusBadRequest,
	sts.InvalidClient:        http.StatusUnauthorized,
	sts.InvalidTarget:        http.StatusBadRequest,
	sts.InvalidScope:         http.StatusBadRequest,
	sts.UnauthorizedClient:   http.StatusBadRequest,
	sts.UnsupportedGrantType: http.StatusBadRequest,
	sts.ServerError:          http.StatusInternalServerError,
}

// oauthError is the RFC 6749 §5.2 error body.
type oauthError struct {
	Error       sts.Code `json:"error"`
	Description string   `json:"error_description,omitempty"`
}

// writeOAuthError is the public listener's error chokepoint: it renders err
// as an OAuth error, logging the full error for the access line.
func writeOAuthError(c echo.Context, err error) {
	e := sts.AsError(err)
	status, ok := oauthStatus[e.Code]
	if !ok { // a code fosite knows but our table does not
		e = &sts.Error{Code: sts.InvalidRequest, Description: e.Description, Err: e}
		status = http.StatusBadRequest
	}
	h := c.Response().Header()
	if e.Code == sts.InvalidClient {
		h.Set("WWW-Authenticate", `Basic realm="claimbridge", charset="UTF-8"`)
	}
	h.Set(ReasonHeader, reason(e))
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	setLogError(c, e)
	_ = c.JSON(status, oauthError{Error: e.Code, Description: e.Description})
}

// reasonInvalidToken is the forward-auth reason for a missing or invalid
// subject token (RFC 6750 §3.1).
const reasonInvalidToken = "invalid_token"

// forwardAuthStatus is the one table from forward-auth reason to HTTP
// status. Gateways pass 401 and 403 on to the user and treat any other
// status as their own failure (nginx answers 500): 401 when a credential
// is missing or wrong, 403 when a policy refuses a valid subject token.
var forwardAuthStatus = map[string]int{
	reasonInvalidToken:             http.StatusUnauthorized,
	string(sts.InvalidClient):      http.StatusUnauthorized,
	string(sts.InvalidRequest):     http.StatusForbidden,
	string(sts.UnauthorizedClient): http.StatusForbidden,
	string(sts.InvalidTarget):      http.StatusForbidden,
	string(sts.InvalidScope):       http.StatusForbidden,
	string(sts.ServerError):        http.StatusInternalServerError,
}

// reason is the X-Claimbridge-Reason of an error: invalid_token when the
// subject token is at fault (the OAuth code is invalid_request then, as
// RFC 8693 §2.2.2 requires), else the OAuth code.
func reason(e *sts.Error) string {
	if errors.Is(e, sts.ErrSubjectToken) {
		return reasonInvalidToken
	}
	return string(e.Code)
}

// writeForwardAuthError is /forward-auth's error chokepoint: the status
// from the table, the reason in X-Claimbridge-Reason, a WWW-Authenticate
// challenge on 401 and the OAuth error body; never a token.
func writeForwardAuthError(c echo.Context, err error) {
	e := sts.AsError(err)
	why := reason(e)
	status, ok := forwardAuthStatus[why]
	if !ok { // a code the table does not know: never guess a client error
		why, status = string(sts.ServerError), http.StatusInternalServerError
	}
	h := c.Response().Header()
	switch why {
	case reasonInvalidToken:
		h.Set("WWW-Authenticate", `Bearer realm="claimbridge", error="invalid_token"`)
	case string(sts.InvalidClient):
		h.Set("WWW-Authenticate", `Claimbridge-Client realm="claimbridge"`)
	}
	h.Set(ReasonHeader, why)
	h.Set("Cache-Control", "no-store")
	setLogError(c, e)
	_ = c.JSON(status, oauthError{Error: sts.Code(why), Description: e.Description})
}

// problem is an RFC 9457 problem details body.
type problem struct {
	Type   string              `json:"type"`
	Title  string              `json:"title"`
	Status int                 `json:"status"`
	Detail string              `json:"detail,omitempty"`
	Errors []policy.FieldError `json:"errors,omitempty"`
}

// httpError is an admin error with a status chosen by the handler.
type httpError struct {
	status int
	detail string
	err    error
}

func (e *httpError) Error() string {
	if e.err != nil {
		return e.detail + ": " + e.err.Error()
	}
	return e.detail
}

func (e *httpError) Unwrap() error { return e.err }

func newHTTPError(status int, detail string, err error) error {
	return &httpError{status: status, detail: detail, err: err}
}

// writeProblem is the admin listener's error chokepoint: one place decides
// the status and body of every error.
func writeProblem(c echo.Context, err error) {
	p := problem{Type: "about:blank", Status: http.StatusInternalServerError, Title: "Internal Server Error"}
	var (
		ve *policy.ValidationError
		he *httpError
		ee *echo.HTTPError
	)
	switch {
	case errors.As(err, &ve):
		p.Status, p.Detail, p.Errors = http.StatusBadRequest, "The request body is invalid; see errors.", ve.Fields
	case errors.As(err, &he):
		p.Status, p.Detail = he.status, he.detail
	case errors.Is(err, sts.ErrNotFound):
		p.Status, p.Detail = http.StatusNotFound, err.Error()
	case errors.Is(err, sts.ErrConflict):
		p.Status, p.Detail = http.StatusConflict, err.Error()
	case errors.Is(err, sts.ErrPreconditionFailed):
		p.Status, p.Detail = http.StatusPreconditionFailed, err.Error()
	case errors.As(err, &ee):
		p.Status = ee.Code
		if m, ok := ee.Message.(string); ok {
			p.Detail = m
		}
	case errors.Is(err, sts.ErrUnavailable):
		// Exchanges go on from the snapshot; admin reads and writes wait.
		p.Status, p.Detail = http.StatusServiceUnavailable, "The configuration store is unavailable; try again later."
	default:
		p.Detail = "The request could not be completed; the server log has the details."
	}
	p.Title = http.StatusText(p.Status)
	setLogError(c, err)
	body, _ := json.Marshal(p)
	_ = c.Blob(p.Status, "application/problem+json", body)
}
