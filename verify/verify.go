package verify

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Errors returned by Verify, told apart with errors.Is. Their messages are
// safe to show to a client (the middleware sends them as the
// error_description); the wrapped error Verify returns adds detail for logs
// but never the token itself.
var (
	ErrMalformed     = errors.New("the token is not a well-formed signed JWT")
	ErrAlgorithm     = errors.New("the token's signing algorithm is not allowed")
	ErrType          = errors.New("the token's type (typ) is not accepted")
	ErrUnknownKey    = errors.New("no key of the issuer matches the token's key ID")
	ErrBadSignature  = errors.New("the token's signature is invalid")
	ErrWrongIssuer   = errors.New("the token was issued by another issuer")
	ErrWrongAudience = errors.New("the token is not meant for this audience")
	ErrExpired       = errors.New("the token has expired")
	ErrNotYetValid   = errors.New("the token is not valid yet")
	// ErrKeysUnavailable is returned by New when the issuer's keys cannot
	// be fetched. Later, a failed refetch leaves the keys fetched before in
	// use, and a token whose key is not among them fails with ErrUnknownKey.
	ErrKeysUnavailable = errors.New("the issuer's keys are unavailable")
)

// DefaultAlgorithms are the signing algorithms accepted when
// Config.Algorithms is empty: every algorithm Claimbridge signs with.
var DefaultAlgorithms = []string{"ES256", "RS256", "PS256", "EdDSA"}

// asymmetric are the algorithms Config.Algorithms may name: never "none",
// never an HMAC algorithm (whose key would be the published public key).
var asymmetric = []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}

// Defaults and bounds of Config.
const (
	DefaultSkew            = 30 * time.Second
	MaxSkew                = 5 * time.Minute
	DefaultRefreshInterval = 30 * time.Second
	// MinCacheAge and MaxCacheAge bound how long a fetched JWKS is used
	// before it is fetched again, whatever its Cache-Control max-age says.
	MinCacheAge = time.Minute
	MaxCacheAge = 24 * time.Hour
	// MaxTokenBytes bounds the size of a token Verify parses.
	MaxTokenBytes = 32 << 10
)

// Config configures a Verifier. Issuer and Audience are required.
type Config struct {
	// Issuer is Claimbridge's issuer URL, compared exactly with the
	// token's iss (e.g. "https://sts.example.com").
	Issuer string
	// Audience is this upstream's audience; the token's aud must contain it.
	Audience string
	// JWKSURL is where the keys are; when empty it is read from
	// Issuer + "/.well-known/openid-configuration".
	JWKSURL string
	// Algorithms is the allow-list of signing algorithms; empty means
	// DefaultAlgorithms. "none" and HMAC algorithms are refused.
	Algorithms []string
	// Skew is the clock skew tolerated on exp, nbf and iat: 0 means
	// DefaultSkew; at most MaxSkew.
	Skew time.Duration
	// AcceptJWT also accepts tokens of typ "JWT" (minted for
	// requested_token_type urn:ietf:params:oauth:token-type:jwt); by
	// default only RFC 9068 access tokens (typ "at+jwt") pass.
	AcceptJWT bool
	// RefreshInterval is the least time between two fetches of the JWKS
	// (a token with an unknown key ID triggers one): 0 means
	// DefaultRefreshInterval.
	RefreshInterval time.Duration
	// Header is the request header the middleware reads the token from:
	// empty means "Authorization" (with the Bearer scheme). Another header
	// may carry the token bare or with the Bearer scheme.
	Header string
	// HTTPClient fetches the discovery document and the JWKS; nil means a
	// client with a 10-second timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier verifies Claimbridge tokens for one issuer and audience. It is
// safe for concurrent use.
type Verifier struct {
	issuer    string
	audience  string
	algs      []jose.SignatureAlgorithm
	skew      time.Duration
	acceptJWT bool
	header    string
	now       func() time.Time
	keys      *keySet
}

// New checks cfg, discovers the JWKS URL when cfg.JWKSURL is empty, and
// fetches the keys once, so that a wrong issuer or URL fails at start.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	v := &Verifier{
		issuer: cfg.Issuer, audience: cfg.Audience, skew: cfg.Skew, acceptJWT: cfg.AcceptJWT,
		header: cfg.Header, now: cfg.Now,
	}
	for _, a := range cfg.Algorithms {
		v.algs = append(v.algs, jose.SignatureAlgorithm(a))
	}
	ks := &keySet{url: cfg.JWKSURL, client: cfg.HTTPClient, now: cfg.Now, interval: cfg.RefreshInterval}
	if ks.url == "" {
		u, err := discover(ctx, cfg.HTTPClient, cfg.Issuer)
		if err != nil {
			return nil, err
		}
		ks.url = u
	}
	if _, err := ks.refresh(ctx, nil); err != nil {
		return nil, err
	}
	v.keys = ks
	return v, nil
}

// defaults fills in the zero values of cfg and reports every problem at once.
func (cfg *Config) defaults() error {
	var errs []error
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("verify: Issuer is required"))
	}
	if cfg.Audience == "" {
		errs = append(errs, errors.New("verify: Audience is required"))
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = DefaultAlgorithms
	}
	for _, a := range cfg.Algorithms {
		if !slices.Contains(asymmetric, a) {
			errs = append(errs, fmt.Errorf("verify: algorithm %q is not allowed (only %s)", a, strings.Join(asymmetric, ", ")))
		}
	}
	if cfg.Skew == 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.Skew < 0 || cfg.Skew > MaxSkew {
		errs = append(errs, fmt.Errorf("verify: Skew %s is not within 0 and %s", cfg.Skew, MaxSkew))
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.RefreshInterval < time.Second {
		errs = append(errs, fmt.Errorf("verify: RefreshInterval %s is shorter than a second", cfg.RefreshInterval))
	}
	if cfg.Header == "" {
		cfg.Header = "Authorization"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return errors.Join(errs...)
}

// Verify checks raw, a compact JWS, and returns its claims. The error
// matches one of the package's Err… sentinels with errors.Is.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Token, error) {
	if len(raw) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenBytes)
	}
	jws, err := jose.ParseSignedCompact(raw, v.algs)
	if err != nil {
		if alg, ok := headerAlg(raw); ok && !slices.Contains(v.algs, jose.SignatureAlgorithm(alg)) {
			return nil, fmt.Errorf("%w: %.20q", ErrAlgorithm, alg)
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	hdr := jws.Signatures[0].Header
	typ, _ := hdr.ExtraHeaders[jose.HeaderType].(string)
	if !v.typeAccepted(typ) {
		return nil, fmt.Errorf("%w: %.20q", ErrType, typ)
	}
	payload, err := v.keys.verify(ctx, jws)
	if err != nil {
		return nil, err
	}
	tok, err := parseToken(payload)
	if err != nil {
		return nil, err
	}
	tok.Type, tok.KeyID, tok.Algorithm = typ, hdr.KeyID, hdr.Algorithm
	if err := v.checkClaims(tok); err != nil {
		return nil, err
	}
	return tok, nil
}

// typeAccepted reports whether the header's typ is "at+jwt" (RFC 9068 §4:
// also "application/at+jwt"; media types are case-insensitive) or, with
// AcceptJWT, "JWT".
func (v *Verifier) typeAccepted(typ string) bool {
	t := strings.TrimPrefix(strings.ToLower(typ), "application/")
	return t == "at+jwt" || (v.acceptJWT && t == "jwt")
}

// checkClaims checks iss, aud and the validity period.
func (v *Verifier) checkClaims(tok *Token) error {
	now := v.now()
	switch {
	case tok.Issuer != v.issuer:
		return fmt.Errorf("%w: want %q", ErrWrongIssuer, v.issuer)
	case !slices.Contains(tok.Audience, v.audience):
		return fmt.Errorf("%w: want %q", ErrWrongAudience, v.audience)
	case !now.Before(tok.Expiry.Add(v.skew)):
		return fmt.Errorf("%w: at %s (now %s, skew %s)", ErrExpired, tok.Expiry.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), v.skew)
	case now.Add(v.skew).Before(tok.NotBefore):
		return fmt.Errorf("%w: not before %s (now %s, skew %s)", ErrNotYetValid, tok.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), v.skew)
	case now.Add(v.skew).Before(tok.IssuedAt):
		return fmt.Errorf("%w: issued in the future at %s (now %s, skew %s)", ErrNotYetValid, tok.IssuedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), v.skew)
	}
	return nil
}

// headerAlg reads the alg of a compact JWS's header without verifying
// anything, to tell a refused algorithm from a malformed token.
func headerAlg(raw string) (string, bool) {
	b64, _, _ := strings.Cut(raw, ".")
	if strings.Count(raw, ".") != 2 || len(b64) > 4096 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		return "", false
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &hdr) != nil || hdr.Alg == "" {
		return "", false
	}
	return hdr.Alg, true
}
