package sts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/claimbridge/claimbridge/policy"
)

// PreviewRequest asks what an exchange would mint, without minting it.
type PreviewRequest struct {
	ClientID           string
	Audiences          []string
	Resources          []string
	Scopes             []string
	RequestedTokenType string
	// Exactly one of SubjectToken and SubjectClaims is set. A subject token
	// is verified as in an exchange (SubjectTokenType is then required);
	// a claims object, a JSON object, is taken as verified claims.
	SubjectToken     string
	SubjectTokenType string
	SubjectClaims    json.RawMessage
	// Issuer names the trusted issuer a claims object is taken to come
	// from; empty means the policy's first allowed issuer.
	Issuer string
	// Policy, when set, is compiled and evaluated instead of the stored
	// policy that serves the targets, so that a change can be tried before
	// it is applied. It must serve every target.
	Policy *policy.Policy
}

// Decisions of a Preview.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// Preview is the outcome of a dry run: the decision and, when allowed, the
// token that would be minted, unsigned.
type Preview struct {
	Decision string `json:"decision"`
	// Error is the answer of the token endpoint when the decision is deny.
	Error  *PreviewError `json:"error,omitempty"`
	Policy string        `json:"policy,omitempty"`
	Issuer string        `json:"issuer,omitempty"`
	// SubjectVerified is false when a claims object stood in for a token.
	SubjectVerified bool `json:"subject_verified"`
	// Header and Claims are the JWS header and the payload that would be
	// signed; jti, iat and exp are those of this run.
	Header          *PreviewHeader  `json:"header,omitempty"`
	Claims          json.RawMessage `json:"claims,omitempty"`
	TokenType       string          `json:"token_type,omitempty"`
	IssuedTokenType string          `json:"issued_token_type,omitempty"`
	ExpiresIn       int64           `json:"expires_in,omitempty"`
	Scope           string          `json:"scope,omitempty"`
	// Steps explain every condition and claim mapping of the policy.
	Steps []policy.Step `json:"steps"`
	// Cost is the CEL cost of the evaluation (limit: policy.MaxCost).
	Cost uint64 `json:"cost"`
	// UnmappedClaims are the subject's claims that no copy mapping passes
	// (an expression may still read them), sorted.
	UnmappedClaims []string `json:"unmapped_claims"`
	Notes          []string `json:"notes,omitempty"`
}

// PreviewError is the OAuth error an exchange would answer.
type PreviewError struct {
	Code        Code   `json:"error"`
	Description string `json:"error_description"`
}

// PreviewHeader is the JWS header of the token that would be minted.
type PreviewHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid,omitempty"`
	Typ string `json:"typ"`
}

// A Signer may tell a preview which key would sign: its key ID for an
// algorithm ("" for the default), and the algorithms it signs with, the
// default first.
type (
	keyIdentifier interface{ KeyIDFor(alg string) string }
	algorithmList interface{ Algorithms() []string }
)

// defaultAlgorithm is the header's alg when the signer does not say.
const defaultAlgorithm = "ES256"

// Preview runs the decision of an exchange — the same checks, the same
// policy evaluation, the same claims — and returns it explained, without
// signing anything. A denial is a Preview with decision deny; the error is
// for a request that cannot be previewed (a *policy.ValidationError for a
// bad field, the unsaved policy's problems under "policy.").
func (e *Exchanger) Preview(ctx context.Context, pr PreviewRequest) (*Preview, error) {
	req, override, err := pr.prepare()
	if err != nil {
		return nil, err
	}
	out := &Preview{Decision: DecisionDeny, Steps: []policy.Step{}, UnmappedClaims: []string{}}
	d, err := e.previewDecide(ctx, pr, req, override, out)
	if err != nil {
		se := AsError(err)
		out.Error = &PreviewError{Code: se.Code, Description: se.Description}
		return out, nil
	}
	t, payload, err := e.build(&d)
	if err != nil {
		se := AsError(err)
		out.Error = &PreviewError{Code: se.Code, Description: se.Description}
		return out, nil
	}
	out.Decision, out.Claims = DecisionAllow, payload
	alg := d.pol.Policy.SigningAlgorithm
	out.Header = &PreviewHeader{Alg: alg, Typ: d.kind.typ}
	if k, ok := e.signer.(keyIdentifier); ok {
		out.Header.Kid = k.KeyIDFor(alg)
	}
	if a, ok := e.signer.(algorithmList); ok && alg == "" && len(a.Algorithms()) > 0 {
		out.Header.Alg = a.Algorithms()[0]
	}
	if out.Header.Alg == "" {
		out.Header.Alg = defaultAlgorithm
	}
	out.TokenType, out.IssuedTokenType, out.ExpiresIn = d.kind.tokenType, d.kind.issued, t.Expiry-t.IssuedAt
	out.Scope = t.Scope
	return out, nil
}

// previewDecide follows Exchange up to the signature, filling out as it
// learns.
func (e *Exchanger) previewDecide(ctx context.Context, pr PreviewRequest, req *Request, override *policy.Compiled, out *Preview) (decision, error) {
	snap := e.snap.Load()
	pol, targets, kind, err := snap.authorize(req, pr.RequestedTokenType, override)
	if err != nil {
		return decision{}, err
	}
	out.Policy = pol.Policy.Name
	var subj *Subject
	if pr.SubjectClaims != nil {
		subj, err = snap.claimsSubject(pr, pol, out)
	} else {
		subj, err = snap.verifySubject(ctx, *req, pol)
		out.SubjectVerified = err == nil
	}
	if err != nil {
		return decision{}, err
	}
	out.Issuer = subj.Issuer.Name
	out.UnmappedClaims = unmapped(pol, subj)
	tr := &policy.Trace{}
	d, err := decide(req, pol, targets, subj, kind, tr)
	out.Steps, out.Cost = append(out.Steps, tr.Steps...), tr.Cost
	return d, err
}

// prepare checks the preview request and compiles its unsaved policy.
func (pr *PreviewRequest) prepare() (*Request, *policy.Compiled, error) {
	if bytes.Equal(bytes.TrimSpace(pr.SubjectClaims), []byte("null")) {
		pr.SubjectClaims = nil
	}
	var v policy.ValidationError
	switch {
	case pr.ClientID == "":
		v.Add("client_id", "is required")
	case (pr.SubjectToken == "") == (pr.SubjectClaims == nil):
		v.Add("subject_token", "give exactly one of subject_token and subject_claims")
	case pr.SubjectToken != "" && pr.SubjectTokenType == "":
		v.Add("subject_token_type", "is required with subject_token")
	case len(pr.SubjectToken) > MaxTokenLength:
		v.Add("subject_token", "must be at most %d bytes", MaxTokenLength)
	case len(pr.SubjectClaims) > MaxTokenLength:
		v.Add("subject_claims", "must be at most %d bytes of JSON", MaxTokenLength)
	}
	if err := v.Err(); err != nil {
		return nil, nil, err
	}
	req := &Request{
		ClientID: pr.ClientID, SubjectToken: pr.SubjectToken, SubjectTokenType: pr.SubjectTokenType,
		Audiences: pr.Audiences, Resources: pr.Resources, Scopes: pr.Scopes, RequestedTokenType: pr.RequestedTokenType,
	}
	if err := req.validateRest(); err != nil {
		v.Add("request", "%s", AsError(err).Description)
		return nil, nil, &v
	}
	if pr.Policy == nil {
		return req, nil, nil
	}
	p := *pr.Policy
	if p.Name == "" {
		p.Name = "preview"
	}
	c, err := policy.Compile(p)
	if err != nil {
		return nil, nil, prefixFields("policy.", err)
	}
	return req, c, nil
}

// claimsSubject makes a Subject of a preview's claims object: unverified,
// from the named issuer (or the policy's first), which the policy must
// accept as for a token.
func (s *snapshot) claimsSubject(pr PreviewRequest, pol *policy.Compiled, out *Preview) (*Subject, error) {
	claims, err := decodeClaims(pr.SubjectClaims)
	if err != nil {
		return nil, errorf(InvalidRequest, "The subject claims are not a JSON object.", err)
	}
	name := pr.Issuer
	if name == "" {
		name = pol.Policy.AllowedIssuers[0]
	}
	if !pol.AllowsIssuer(name) {
		return nil, issuerRefused(pol, name)
	}
	iss := &Issuer{Name: name}
	for _, v := range s.issuers {
		if v.issuer.Name == name {
			iss = &v.issuer
		}
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return nil, errorf(InvalidRequest, "The subject claims have no 'sub' claim.", nil)
	}
	subj := &Subject{Issuer: iss, Claims: claims, Subject: sub}
	out.Notes = append(out.Notes, "The subject claims were given as an object: no token was verified, and the issuer "+quote(name)+" was assumed.")
	if exp, ok := numericDate(claims["exp"]); ok {
		subj.Expiry = exp
	} else {
		out.Notes = append(out.Notes, "The subject claims have no valid 'exp': the lifetime is not capped by the subject's expiry.")
	}
	return subj, nil
}

// unmapped lists the subject's claims that no copy mapping of pol passes
// and the token service does not set itself.
func unmapped(pol *policy.Compiled, subj *Subject) []string {
	copied := pol.CopiedClaims(subj.Issuer.Name)
	out := []string{}
	for name := range subj.Claims {
		if !slices.Contains(copied, name) && !slices.Contains(policy.Reserved, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// prefixFields puts prefix before every field of a *policy.ValidationError.
func prefixFields(prefix string, err error) error {
	v, ok := err.(*policy.ValidationError)
	if !ok {
		return fmt.Errorf("compiling the previewed policy: %w", err)
	}
	out := &policy.ValidationError{Fields: slices.Clone(v.Fields)}
	for i := range out.Fields {
		out.Fields[i].Field = prefix + out.Fields[i].Field
	}
	return out
}
