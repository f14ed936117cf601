package sts

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/claimbridge/claimbridge/policy"
)

// Signer signs the minted tokens with the active key. typ is the JWS "typ"
// header: "at+jwt" (RFC 9068) or "JWT".
type Signer interface {
	Sign(typ string, payload []byte) (string, error)
}

// Options configure an Exchanger.
type Options struct {
	// Issuer is our own issuer URL, the "iss" of minted tokens.
	Issuer string
	// DefaultLifetime applies to policies that set no lifetime.
	DefaultLifetime time.Duration
	// ClockSkew is the tolerance for subject exp/nbf/iat.
	ClockSkew time.Duration
	// HTTPClient fetches IdP discovery documents and JWKS.
	HTTPClient *http.Client
	// JWKSMinRefresh is the least time between two fetches of one IdP's JWKS
	// triggered by unknown key IDs.
	JWKSMinRefresh time.Duration
	// JWKSMaxAge is how long an IdP's JWKS is used before it is refreshed in
	// the background.
	JWKSMaxAge time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
}

// Exchanger performs token exchanges from an in-memory snapshot.
type Exchanger struct {
	opts   Options
	signer Signer
	snap   atomic.Pointer[snapshot]
	loadMu sync.Mutex // serializes Load
}

// NewExchanger returns an Exchanger with an empty snapshot; call Load or
// Reload before serving.
func NewExchanger(signer Signer, opts Options) *Exchanger {
	if opts.DefaultLifetime == 0 {
		opts.DefaultLifetime = 5 * time.Minute
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.JWKSMinRefresh == 0 {
		opts.JWKSMinRefresh = 10 * time.Second
	}
	if opts.JWKSMaxAge == 0 {
		opts.JWKSMaxAge = time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Exchanger{opts: opts, signer: signer}
	e.snap.Store(&snapshot{})
	return e
}

// Exchange validates req, verifies its subject token, applies the policy of
// the requested audience and mints the token.
func (e *Exchanger) Exchange(ctx context.Context, req Request) (*Response, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	snap := e.snap.Load()
	if _, ok := snap.clients[req.ClientID]; !ok {
		return nil, errorf(InvalidClient, "The client is unknown.", nil)
	}
	pol, aud, err := snap.policyFor(req)
	if err != nil {
		return nil, err
	}
	if !pol.AllowsClient(req.ClientID) {
		return nil, errorf(UnauthorizedClient, "This client may not request tokens for audience "+quote(aud)+".", nil)
	}
	granted := pol.GrantScopes(req.Scopes)
	if len(req.Scopes) > 0 && len(granted) == 0 {
		return nil, errorf(InvalidScope, "None of the requested scopes may be granted for audience "+quote(aud)+".", nil)
	}
	subj, err := snap.verifySubject(ctx, req, pol)
	if err != nil {
		return nil, err
	}
	return e.mint(req, pol, aud, subj, granted)
}

// policyFor finds the one policy serving every audience and resource of the
// request. Several targets are accepted only when they all name the same
// audience: a token has one audience and one policy decides its content.
func (s *snapshot) policyFor(req Request) (*policy.Compiled, string, error) {
	var aud string
	for _, t := range slices.Concat(req.Audiences, req.Resources) {
		if aud != "" && t != aud {
			return nil, "", errorf(InvalidTarget, "All 'audience' and 'resource' values must name the same target; one token serves one audience.", nil)
		}
		aud = t
	}
	pol, ok := s.byAudience[aud]
	if !ok {
		return nil, "", errorf(InvalidTarget, "No policy serves the audience "+quote(aud)+".", nil)
	}
	return pol, aud, nil
}

// verifySubject verifies the subject token against the trusted issuer it
// names, after checking that the issuer, its token type and the policy
// accept it.
func (s *snapshot) verifySubject(ctx context.Context, req Request, pol *policy.Compiled) (*Subject, error) {
	iss, err := PeekIssuer(req.SubjectToken)
	if err != nil {
		return nil, errorf(InvalidRequest, "The subject token is not a JWT.", err)
	}
	v, ok := s.issuers[iss]
	if !ok {
		return nil, errorf(InvalidRequest, "The subject token's issuer is not trusted.", nil)
	}
	if !slices.Contains(v.issuer.TokenTypes, req.SubjectTokenType) {
		return nil, errorf(InvalidRequest, "Issuer "+quote(v.issuer.Name)+" does not accept subject_token_type "+req.SubjectTokenType+".", nil)
	}
	if !pol.AllowsIssuer(v.issuer.Name) {
		return nil, errorf(InvalidRequest, "Policy "+quote(pol.Policy.Name)+" does not accept subject tokens from issuer "+quote(v.issuer.Name)+".", nil)
	}
	return v.verify(ctx, req.SubjectToken)
}

// mint builds, signs and describes the new token.
func (e *Exchanger) mint(req Request, pol *policy.Compiled, aud string, subj *Subject, scope []string) (*Response, error) {
	now := e.opts.Now().Truncate(time.Second)
	exp := now.Add(pol.Lifetime(e.opts.DefaultLifetime))
	if subj.Expiry.Before(exp) {
		exp = subj.Expiry.Truncate(time.Second)
	}
	if !exp.After(now) {
		return nil, errorf(InvalidRequest, "The subject token expires too soon to be exchanged.", nil)
	}
	jti := newJTI()
	t := tokenClaims{
		Issuer: e.opts.Issuer, Subject: subj.Subject, Audience: aud,
		Expiry: exp.Unix(), IssuedAt: now.Unix(), JTI: jti, ClientID: req.ClientID,
		Scope: strings.Join(scope, " "),
	}
	payload, err := t.marshal(pol.Apply(subj.Claims, make([]policy.Claim, 0, 8)))
	if err != nil {
		return nil, errorf(ServerError, "The token could not be built.", err)
	}
	typ, tokenType := "at+jwt", "Bearer"
	if req.RequestedTokenType == TokenTypeJWT {
		typ, tokenType = "JWT", "N_A"
	}
	token, err := e.signer.Sign(typ, payload)
	if err != nil {
		return nil, errorf(ServerError, "The token could not be signed.", err)
	}
	return &Response{
		AccessToken:     token,
		IssuedTokenType: req.RequestedTokenType,
		TokenType:       tokenType,
		ExpiresIn:       int64(exp.Sub(now) / time.Second),
		Scope:           scope,
		ScopeChanged:    !slices.Equal(scope, req.Scopes),
		Subject:         subj.Subject,
		Audience:        aud,
		Policy:          pol.Policy.Name,
		Issuer:          subj.Issuer.Name,
		JTI:             jti,
	}, nil
}

func newJTI() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// quote renders a client-supplied value for an error description, bounded
// in length.
func quote(s string) string {
	const max = 128
	if len(s) > max {
		s = s[:max] + "…"
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r == '\\' || r == 0x7f {
			return '?'
		}
		return r
	}, s) + `"`
}
