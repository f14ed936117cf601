package sts

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/claimbridge/claimbridge/policy"
)

// Signer signs the minted tokens with the active key of an algorithm, or
// of the default algorithm when alg is "". typ is the JWS "typ" header:
// "at+jwt" (RFC 9068) or "JWT".
type Signer interface {
	SignWith(alg, typ string, payload []byte) (string, error)
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
	// Cache, when set, serves repeated exchanges (see ExchangeCached and
	// the policies' cache_tokens); nil disables caching.
	Cache *Cache
	// ActiveKeys tells which key signs for an algorithm, so that cached
	// tokens signed by a key that no longer signs are not served. Required
	// with Cache.
	ActiveKeys ActiveKeys
	Now        func() time.Time
	Logger     *slog.Logger
}

// ActiveKeys tells which key signs for an algorithm ("" for the default):
// its kid, or "" when none does.
type ActiveKeys interface {
	KeyIDFor(alg string) string
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
	if k, ok := signer.(ActiveKeys); ok && opts.ActiveKeys == nil {
		opts.ActiveKeys = k
	}
	if opts.Cache != nil && opts.ActiveKeys == nil {
		panic("sts: Options.Cache needs Options.ActiveKeys (or a signer that tells its key IDs)")
	}
	e := &Exchanger{opts: opts, signer: signer}
	e.snap.Store(&snapshot{})
	return e
}

// Exchange validates req, verifies its subject token, applies the policy of
// the requested audience and mints the token. When the policy says
// cache_tokens, a repeated request is served from the cache.
func (e *Exchanger) Exchange(ctx context.Context, req Request) (*Response, error) {
	return e.exchange(ctx, req, false)
}

// ExchangeCached is Exchange served from the cache whatever the policy
// says, for callers that exchange on every request of a user and hand the
// token on to an upstream (forward-auth). The client must have been
// authenticated: a cached token is served to any caller of the same key.
func (e *Exchanger) ExchangeCached(ctx context.Context, req Request) (*Response, error) {
	return e.exchange(ctx, req, true)
}

func (e *Exchanger) exchange(ctx context.Context, req Request, cached bool) (*Response, error) {
	asked := req.RequestedTokenType
	if err := req.Validate(); err != nil {
		return nil, err
	}
	snap := e.snap.Load()
	pol, targets, kind, err := snap.authorize(&req, asked, nil)
	if err != nil {
		return nil, err
	}
	if e.opts.Cache != nil && (cached || pol.Policy.CacheTokens) {
		return e.exchangeCached(ctx, snap, &req, asked, pol, targets, kind)
	}
	subj, err := snap.verifySubject(ctx, req, pol)
	if err != nil {
		return nil, err
	}
	d, err := decide(&req, pol, targets, subj, kind, nil)
	if err != nil {
		return nil, err
	}
	return e.mint(&d)
}

// authorize finds the policy for the request's targets (or checks that
// override serves them), checks that the client may ask for them and
// decides the kind of token. asked is the requested_token_type as sent.
func (s *snapshot) authorize(req *Request, asked string, override *policy.Compiled) (*policy.Compiled, []string, tokenKind, error) {
	if _, ok := s.clients[req.ClientID]; !ok {
		return nil, nil, tokenKind{}, errorf(InvalidClient, "The client is unknown.", nil)
	}
	pol, targets, err := s.policyFor(req, override)
	if err != nil {
		return nil, nil, tokenKind{}, err
	}
	if !pol.AllowsClient(req.ClientID) {
		return nil, nil, tokenKind{}, errorf(UnauthorizedClient, "This client may not request tokens for audience "+quote(targets[0])+".", nil)
	}
	kind, err := tokenKindFor(pol, asked)
	return pol, targets, kind, err
}

// policyFor finds the one policy serving every audience and resource of the
// request and returns the distinct targets, audiences first, in request
// order. Targets served by different policies are refused: one policy
// decides the content of one token. With override, every target must be
// one of its own.
func (s *snapshot) policyFor(req *Request, override *policy.Compiled) (*policy.Compiled, []string, error) {
	var pol *policy.Compiled
	targets := make([]string, 0, 1)
	for _, list := range [2][]string{req.Audiences, req.Resources} {
		for _, t := range list {
			if slices.Contains(targets, t) {
				continue
			}
			p, ok := s.byAudience[t]
			if override != nil {
				p, ok = override, override.Serves(t)
			}
			switch {
			case !ok:
				return nil, nil, errorf(InvalidTarget, "No policy serves the audience "+quote(t)+".", nil)
			case pol != nil && p != pol:
				return nil, nil, errorf(InvalidTarget, "The targets "+quote(targets[0])+" and "+quote(t)+" are served by different policies; one token is minted under one policy.", nil)
			}
			pol = p
			targets = append(targets, t)
		}
	}
	return pol, targets, nil
}

// verifySubject verifies the subject token against the trusted issuer it
// names, after checking that the issuer, its token type and the policy
// accept it.
func (s *snapshot) verifySubject(ctx context.Context, req Request, pol *policy.Compiled) (*Subject, error) {
	tok, err := parseSubject(req.SubjectToken)
	if err != nil {
		return nil, subjectErrorf("The subject token is not a JWT signed with an allowed signature algorithm (never none or HMAC).", err)
	}
	v, ok := s.issuers[tok.iss]
	if !ok {
		return nil, subjectErrorf("The subject token's issuer is not trusted.", nil)
	}
	if !slices.Contains(v.issuer.TokenTypes, req.SubjectTokenType) {
		// The gateway's or the issuer's configuration, not the user's
		// token: forward-auth answers 403, not a re-login.
		return nil, errorf(InvalidRequest, "Issuer "+quote(v.issuer.Name)+" does not accept subject_token_type "+req.SubjectTokenType+".", nil)
	}
	if !pol.AllowsIssuer(v.issuer.Name) {
		return nil, issuerRefused(pol, v.issuer.Name)
	}
	subj, err := v.verify(ctx, tok)
	if e := (*Error)(nil); errors.As(err, &e) && e.Code == InvalidRequest {
		e.Err = markSubject(e.Err) // a fresh error: ours to change
	}
	return subj, err
}

func issuerRefused(pol *policy.Compiled, issuer string) error {
	return errorf(InvalidRequest, "Policy "+quote(pol.Policy.Name)+" does not accept subject tokens from issuer "+quote(issuer)+".", nil)
}

// decision is what a policy decided for one request: everything mint needs.
type decision struct {
	req     *Request
	pol     *policy.Compiled
	targets []string
	subj    *Subject
	kind    tokenKind
	scope   []string
	claims  []policy.Claim
}

// decide grants the scope and evaluates the policy's conditions and claims
// for a verified subject. With a trace, every step is explained.
func decide(req *Request, pol *policy.Compiled, targets []string, subj *Subject, kind tokenKind, tr *policy.Trace) (decision, error) {
	granted := pol.GrantScopes(req.Scopes, policy.SubjectScopes(subj.Claims))
	if len(req.Scopes) > 0 && len(granted) == 0 {
		return decision{}, errorf(InvalidScope, "None of the requested scopes may be granted for audience "+quote(targets[0])+": the policy does not allow them or the subject token does not hold them.", nil)
	}
	in := &policy.Input{Subject: subj.Claims, Issuer: subj.Issuer.Name, Request: policy.Request{
		ClientID: req.ClientID, Audiences: targets, Scopes: req.Scopes, GrantedScopes: granted,
		SubjectTokenType: req.SubjectTokenType, RequestedTokenType: kind.issued,
	}}
	claims, err := pol.Evaluate(in, make([]policy.Claim, 0, 8), tr)
	if err != nil {
		var denied *policy.Denied
		if errors.As(err, &denied) {
			return decision{}, errorf(InvalidRequest, "Policy "+quote(pol.Policy.Name)+": "+denied.Reason+".", err)
		}
		return decision{}, errorf(ServerError, "The policy could not be evaluated.", err)
	}
	return decision{req: req, pol: pol, targets: targets, subj: subj, kind: kind, scope: granted, claims: claims}, nil
}

// mint builds, signs and describes the new token.
func (e *Exchanger) mint(d *decision) (*Response, error) {
	t, payload, err := e.build(d)
	if err != nil {
		return nil, err
	}
	token, err := e.signer.SignWith(d.pol.Policy.SigningAlgorithm, d.kind.typ, payload)
	if err != nil {
		return nil, errorf(ServerError, "The token could not be signed.", err)
	}
	return &Response{
		AccessToken:     token,
		IssuedTokenType: d.kind.issued,
		TokenType:       d.kind.tokenType,
		ExpiresIn:       t.Expiry - t.IssuedAt,
		Scope:           d.scope,
		ScopeChanged:    !slices.Equal(d.scope, d.req.Scopes),
		Subject:         d.subj.Subject,
		Audience:        strings.Join(d.targets, " "),
		Policy:          d.pol.Policy.Name,
		Issuer:          d.subj.Issuer.Name,
		JTI:             t.JTI,
	}, nil
}

// build sets the registered claims of the token d describes and encodes
// them, followed by the policy's claims. The lifetime is the policy's,
// capped at the subject's expiry when it has one.
func (e *Exchanger) build(d *decision) (tokenClaims, []byte, error) {
	now := e.opts.Now().Truncate(time.Second)
	exp := now.Add(d.pol.Lifetime(e.opts.DefaultLifetime))
	if !d.subj.Expiry.IsZero() && d.subj.Expiry.Before(exp) {
		exp = d.subj.Expiry.Truncate(time.Second)
	}
	if !exp.After(now) {
		return tokenClaims{}, nil, subjectErrorf("The subject token expires too soon to be exchanged.", nil)
	}
	t := tokenClaims{
		Issuer: e.opts.Issuer, Subject: d.subj.Subject, Audience: d.targets,
		Expiry: exp.Unix(), IssuedAt: now.Unix(), JTI: newJTI(), ClientID: d.req.ClientID,
		Scope: strings.Join(d.scope, " "),
	}
	payload, err := t.marshal(d.claims)
	if err != nil {
		return tokenClaims{}, nil, errorf(ServerError, "The token could not be built.", err)
	}
	return t, payload, nil
}

// tokenKind is what a minted token is: its JWS "typ", its token_type and
// its issued_token_type.
type tokenKind struct {
	typ       string
	tokenType string
	issued    string
}

var (
	accessTokenKind = tokenKind{typ: "at+jwt", tokenType: "Bearer", issued: TokenTypeAccessToken}
	jwtKind         = tokenKind{typ: "JWT", tokenType: "N_A", issued: TokenTypeJWT}
)

// tokenKindFor applies the token type rule. A policy's token_type fixes
// the kind of token; a request that asks for the other kind is refused.
// A policy without one lets the request choose, an access token by
// default. asked is a valid requested_token_type or "".
func tokenKindFor(pol *policy.Compiled, asked string) (tokenKind, error) {
	fixed := ""
	switch pol.Policy.TokenType {
	case policy.TokenTypeAccessToken:
		fixed = TokenTypeAccessToken
	case policy.TokenTypeJWT:
		fixed = TokenTypeJWT
	}
	want := cmp.Or(asked, fixed, TokenTypeAccessToken)
	if fixed != "" && want != fixed {
		return tokenKind{}, errorf(InvalidRequest, "Policy "+quote(pol.Policy.Name)+" issues only "+fixed+" tokens; ask for that 'requested_token_type' or none.", nil)
	}
	if want == TokenTypeJWT {
		return jwtKind, nil
	}
	return accessTokenKind, nil
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
