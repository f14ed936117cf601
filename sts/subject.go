package sts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Subject is a verified subject token.
type Subject struct {
	Issuer *Issuer
	// Claims are the token's claims; numbers are json.Number so that they
	// pass through unchanged.
	Claims  map[string]any
	Subject string
	Expiry  time.Time
}

// verifierConfig holds what every issuer verifier shares.
type verifierConfig struct {
	client     *http.Client
	skew       time.Duration
	minRefresh time.Duration
	maxAge     time.Duration
	now        func() time.Time
}

// issuerVerifier verifies the subject tokens of one trusted issuer.
type issuerVerifier struct {
	issuer Issuer
	keys   *keySet
	skew   time.Duration
	now    func() time.Time
}

func newIssuerVerifier(iss Issuer, cfg verifierConfig) *issuerVerifier {
	return &issuerVerifier{
		issuer: iss,
		keys: &keySet{
			issuerURL:  iss.URL,
			jwksURI:    iss.JWKSURI,
			client:     cfg.client,
			minRefresh: cfg.minRefresh,
			maxAge:     cfg.maxAge,
			now:        cfg.now,
		},
		skew: cfg.skew,
		now:  cfg.now,
	}
}

// sameConfig reports whether v was built for an identical issuer definition,
// so that its JWKS cache can be kept across snapshots.
func (v *issuerVerifier) sameConfig(iss Issuer) bool {
	a, b := v.issuer, iss
	return a.URL == b.URL && a.JWKSURI == b.JWKSURI && slices.Equal(a.Algorithms, b.Algorithms) &&
		slices.Equal(a.Audiences, b.Audiences) && slices.Equal(a.TokenTypes, b.TokenTypes)
}

// warm fetches the issuer's keys ahead of the first exchange.
func (v *issuerVerifier) warm() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = v.keys.refresh(ctx, nil)
}

// verify checks the token's algorithm, signature, issuer, audience and
// times. Its claims were decoded by parseSubject; they are trusted from here
// on only because the signature over those very bytes verifies.
func (v *issuerVerifier) verify(ctx context.Context, tok *subjectToken) (*Subject, error) {
	alg := tok.jws.Signatures[0].Header.Algorithm
	if !slices.Contains(v.issuer.Algorithms, alg) {
		return nil, errorf(InvalidRequest, "The subject token is signed with "+quote(alg)+", a signature algorithm issuer "+quote(v.issuer.Name)+" does not allow.", nil)
	}
	if err := v.keys.verify(ctx, tok.jws); err != nil {
		switch {
		case errors.Is(err, errKeysUnavailable):
			return nil, errorf(ServerError, "The keys of the subject token's issuer cannot be fetched right now; try again later.", err)
		case errors.Is(err, errUnknownKey):
			return nil, errorf(InvalidRequest, "The subject token is signed with a key the issuer does not publish.", err)
		}
		return nil, errorf(InvalidRequest, "The subject token's signature could not be verified.", err)
	}
	if tok.iss != v.issuer.URL {
		return nil, errorf(InvalidRequest, "The subject token's issuer is not trusted.", nil)
	}
	exp, err := v.checkTimes(tok.claims)
	if err != nil {
		return nil, err
	}
	if !v.audienceAccepted(audiences(tok.claims["aud"]), tok.claims["azp"]) {
		return nil, errorf(InvalidRequest, "The subject token was not issued for an audience this issuer is trusted for.", nil)
	}
	sub, _ := tok.claims["sub"].(string)
	if sub == "" {
		return nil, errorf(InvalidRequest, "The subject token has no 'sub' claim.", nil)
	}
	return &Subject{Issuer: &v.issuer, Claims: tok.claims, Subject: sub, Expiry: exp}, nil
}

// audiences reads an "aud" claim: one string or an array of strings
// (RFC 7519 §4.1.3); anything else names no audience.
func audiences(aud any) []string {
	switch a := aud.(type) {
	case string:
		return []string{a}
	case []any:
		out := make([]string, 0, len(a))
		for _, v := range a {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func (v *issuerVerifier) checkTimes(claims map[string]any) (time.Time, error) {
	now := v.now()
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return time.Time{}, errorf(InvalidRequest, "The subject token has no valid 'exp' claim.", nil)
	}
	// No skew for exp: a token we minted from an expired subject would be
	// born expired.
	if !now.Before(exp) {
		return time.Time{}, errorf(InvalidRequest, "The subject token has expired.", nil)
	}
	if nbf, present := claims["nbf"]; present {
		t, ok := numericDate(nbf)
		if !ok || now.Add(v.skew).Before(t) {
			return time.Time{}, errorf(InvalidRequest, "The subject token is not valid yet.", nil)
		}
	}
	if iat, present := claims["iat"]; present {
		t, ok := numericDate(iat)
		if !ok || now.Add(v.skew).Before(t) {
			return time.Time{}, errorf(InvalidRequest, "The subject token was issued in the future.", nil)
		}
	}
	return exp, nil
}

// audienceAccepted reports whether the token's aud or azp names one of the
// issuer's accepted audiences.
func (v *issuerVerifier) audienceAccepted(aud []string, azp any) bool {
	for _, a := range v.issuer.Audiences {
		if slices.Contains(aud, a) {
			return true
		}
		if s, ok := azp.(string); ok && s == a {
			return true
		}
	}
	return false
}

// numericDate reads a JWT NumericDate (RFC 7519 §2).
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// decodeClaims decodes a JWT payload keeping numbers exact.
func decodeClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, err
	}
	if claims == nil {
		return nil, errors.New("claims are null")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the claims")
	}
	return claims, nil
}

// subjectToken is a parsed subject token, not verified yet.
type subjectToken struct {
	jws *jose.JSONWebSignature
	// claims are decoded from the signed payload; they may be trusted only
	// once the signature verifies.
	claims map[string]any
	iss    string
}

// parseSubject parses a compact JWS once — with an algorithm allow-list
// that never admits "none" or HMAC — and decodes its payload, whose "iss"
// chooses the trusted issuer whose keys then verify it. Everything else
// reads the result: the token is parsed and decoded exactly once.
func parseSubject(raw string) (*subjectToken, error) {
	jws, err := jose.ParseSignedCompact(raw, subjectAlgorithms)
	if err != nil {
		return nil, fmt.Errorf("not a compact JWS with an allowed algorithm: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("a token must carry exactly one signature")
	}
	claims, err := decodeClaims(jws.UnsafePayloadWithoutVerification())
	if err != nil {
		return nil, fmt.Errorf("payload is not a JSON object: %w", err)
	}
	iss, _ := claims["iss"].(string)
	if iss == "" {
		return nil, errors.New("payload has no 'iss' claim")
	}
	return &subjectToken{jws: jws, claims: claims, iss: iss}, nil
}

// subjectAlgorithms are every algorithm a trusted issuer may allow.
var subjectAlgorithms = signatureAlgorithms(Algorithms)
