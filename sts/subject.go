package sts

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
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
	issuer   Issuer
	keys     *keySet
	verifier *oidc.IDTokenVerifier
	skew     time.Duration
	now      func() time.Time
}

func newIssuerVerifier(iss Issuer, cfg verifierConfig) *issuerVerifier {
	ks := &keySet{
		issuerURL:  iss.URL,
		jwksURI:    iss.JWKSURI,
		algs:       signatureAlgorithms(iss.Algorithms),
		client:     cfg.client,
		minRefresh: cfg.minRefresh,
		maxAge:     cfg.maxAge,
		now:        cfg.now,
	}
	return &issuerVerifier{
		issuer: iss,
		keys:   ks,
		verifier: oidc.NewVerifier(iss.URL, ks, &oidc.Config{
			SupportedSigningAlgs: iss.Algorithms,
			// We check every audience the issuer lists and the times with
			// our own bounded skew below.
			SkipClientIDCheck: true,
			SkipExpiryCheck:   true,
		}),
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

// verify checks the token's signature, issuer, audience and times.
func (v *issuerVerifier) verify(ctx context.Context, raw string) (*Subject, error) {
	tok, err := v.verifier.Verify(ctx, raw)
	if err != nil {
		// go-oidc formats the key set's errors with %v, so match their text.
		switch msg := err.Error(); {
		case strings.Contains(msg, errKeysUnavailable.Error()):
			return nil, errorf(ServerError, "The keys of the subject token's issuer cannot be fetched right now; try again later.", err)
		case strings.Contains(msg, errUnknownKey.Error()):
			return nil, errorf(InvalidRequest, "The subject token is signed with a key the issuer does not publish.", err)
		}
		return nil, errorf(InvalidRequest, "The subject token's signature could not be verified.", err)
	}
	var payload json.RawMessage
	if err := tok.Claims(&payload); err != nil {
		return nil, errorf(InvalidRequest, "The subject token's claims are not a JSON object.", err)
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, errorf(InvalidRequest, "The subject token's claims are not a JSON object.", err)
	}
	exp, err := v.checkTimes(claims)
	if err != nil {
		return nil, err
	}
	if !v.audienceAccepted(tok.Audience, claims["azp"]) {
		return nil, errorf(InvalidRequest, "The subject token was not issued for an audience this issuer is trusted for.", nil)
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return nil, errorf(InvalidRequest, "The subject token has no 'sub' claim.", nil)
	}
	return &Subject{Issuer: &v.issuer, Claims: claims, Subject: sub, Expiry: exp}, nil
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

// PeekIssuer reads the unverified "iss" of a compact JWS, only to choose the
// trusted issuer whose keys then verify it. It rejects anything that is not
// a three-part compact JWS with a JSON object payload.
func PeekIssuer(raw string) (string, error) {
	parts := strings.SplitN(raw, ".", 4)
	if len(parts) != 3 {
		return "", errors.New("not a compact JWS: want three dot-separated parts")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("payload is not base64url: %w", err)
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", fmt.Errorf("payload is not a JSON object: %w", err)
	}
	if c.Iss == "" {
		return "", errors.New("payload has no 'iss' claim")
	}
	return c.Iss, nil
}
