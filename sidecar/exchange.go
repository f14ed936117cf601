package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/claimbridge/claimbridge/sts"
)

// maxTokenResponse bounds a token endpoint's answer.
const maxTokenResponse = 64 << 10

// tokenClient exchanges subject tokens at a remote token endpoint.
type tokenClient struct {
	url          string
	clientID     string
	clientSecret string
	http         *http.Client
}

// tokenResponse is RFC 8693 §2.2.1's answer, or RFC 6749 §5.2's error.
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	IssuedTokenType  string `json:"issued_token_type"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	Scope            string `json:"scope"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// refusal is a token endpoint's refusal, or a failure to reach it.
type refusal struct {
	status int    // what the sidecar answers
	reason string // X-Claimbridge-Reason
	desc   string // safe for the client: never a token
	err    error  // for the log
}

func (r *refusal) Error() string {
	msg := fmt.Sprintf("%d %s: %s", r.status, r.reason, r.desc)
	if r.err != nil {
		msg += ": " + r.err.Error()
	}
	return msg
}

func (r *refusal) Unwrap() error { return r.err }

// unreachable is a failure to get an answer from the token endpoint.
func unreachable(err error) *refusal {
	return &refusal{status: http.StatusBadGateway, reason: "temporarily_unavailable",
		desc: "The token service cannot be reached.", err: err}
}

// exchange posts the token exchange request for req.
func (c *tokenClient) exchange(ctx context.Context, req sts.Request) (*sts.Response, error) {
	form := url.Values{
		"grant_type":         {sts.GrantTypeTokenExchange},
		"subject_token":      {req.SubjectToken},
		"subject_token_type": {req.SubjectTokenType},
		"audience":           req.Audiences,
	}
	if len(req.Scopes) > 0 {
		form.Set("scope", strings.Join(req.Scopes, " "))
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, unreachable(err)
	}
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hr.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: each part form-urlencoded before base64.
	hr.SetBasicAuth(url.QueryEscape(c.clientID), url.QueryEscape(c.clientSecret))
	resp, err := c.http.Do(hr)
	if err != nil {
		return nil, unreachable(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/json" {
		return nil, unreachable(fmt.Errorf("token endpoint answered %d with %q", resp.StatusCode, mt))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxTokenResponse)).Decode(&tr); err != nil {
		return nil, unreachable(fmt.Errorf("token endpoint answered %d with an unreadable body: %w", resp.StatusCode, err))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, refused(resp, tr)
	}
	if tr.AccessToken == "" || tr.ExpiresIn <= 0 {
		return nil, unreachable(errors.New("token endpoint answered 200 without access_token or expires_in"))
	}
	return &sts.Response{AccessToken: tr.AccessToken, IssuedTokenType: tr.IssuedTokenType, TokenType: tr.TokenType,
		ExpiresIn: tr.ExpiresIn, Scope: strings.Fields(tr.Scope), Audience: strings.Join(req.Audiences, " ")}, nil
}

// refused maps a token endpoint's error to the sidecar's answer: 401 when
// the subject token is at fault, 403 when a policy refuses it, 502 when
// the sidecar's own credentials or the service fail. Claimbridge tells
// the subject token's faults apart in X-Claimbridge-Reason; another token
// service's invalid_request is taken as one (RFC 8693 §2.2.2).
func refused(resp *http.Response, tr tokenResponse) *refusal {
	r := &refusal{reason: tr.Error, desc: tr.ErrorDescription,
		err: fmt.Errorf("token endpoint answered %d %s", resp.StatusCode, tr.Error)}
	switch reason := resp.Header.Get("X-Claimbridge-Reason"); {
	case reason == "invalid_token" || (reason == "" && tr.Error == string(sts.InvalidRequest)):
		r.status, r.reason = http.StatusUnauthorized, "invalid_token"
	case tr.Error == string(sts.InvalidRequest), tr.Error == string(sts.UnauthorizedClient),
		tr.Error == string(sts.InvalidTarget), tr.Error == string(sts.InvalidScope):
		r.status = http.StatusForbidden
	default: // invalid_client (our credentials), server_error, anything else
		r.status, r.reason = http.StatusBadGateway, "temporarily_unavailable"
		r.desc = "The token service refused the sidecar's request."
	}
	return r
}
