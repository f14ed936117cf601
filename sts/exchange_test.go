package sts

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/claimbridge/claimbridge/keys"
	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/internal/devidp"
)

func TestExchangeSuccess(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	subjectClaims := f.idp.claims(now)
	wantPerms := make([]any, 20)
	for i, p := range subjectClaims["permissions"].([]string) {
		wantPerms[i] = p
	}

	tests := []struct {
		name       string
		claims     map[string]any
		req        func(r *Request)
		typ        string // JWS typ header of the minted token
		tokenType  string
		issuedType string
		exp        time.Time
		scope      []string
		changed    bool
	}{
		{
			name:   "access token by default, lifetime from the policy",
			claims: subjectClaims,
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp:   now.Add(testLifetime),
			scope: []string{"orders:read"},
		},
		{
			name:   "requested_token_type jwt mints a JWT that is not a bearer access token",
			claims: subjectClaims,
			req:    func(r *Request) { r.RequestedTokenType = TokenTypeJWT },
			typ:    "JWT", tokenType: "N_A", issuedType: TokenTypeJWT,
			exp:   now.Add(testLifetime),
			scope: []string{"orders:read"},
		},
		{
			name:   "requested_token_type access_token explicitly",
			claims: subjectClaims,
			req:    func(r *Request) { r.RequestedTokenType = TokenTypeAccessToken },
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp:   now.Add(testLifetime),
			scope: []string{"orders:read"},
		},
		{
			name:   "exp is capped by a subject token that expires sooner",
			claims: with(subjectClaims, "exp", now.Add(2*time.Minute).Unix()),
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp:   now.Add(2 * time.Minute),
			scope: []string{"orders:read"},
		},
		{
			name:   "the same audience twice is one target",
			claims: subjectClaims,
			req:    func(r *Request) { r.Audiences = []string{testAudience, testAudience} },
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp:   now.Add(testLifetime),
			scope: []string{"orders:read"},
		},
		{
			name:   "audience and resource naming the same target",
			claims: subjectClaims,
			req:    func(r *Request) { r.Resources = []string{testAudience} },
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp:   now.Add(testLifetime),
			scope: []string{"orders:read"},
		},
		{
			name:   "resource alone names the target",
			claims: subjectClaims,
			req:    func(r *Request) { r.Audiences, r.Resources = nil, []string{testAudience} },
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp:   now.Add(testLifetime),
			scope: []string{"orders:read"},
		},
		{
			name:   "a partially grantable scope is narrowed and flagged as changed",
			claims: subjectClaims,
			req:    func(r *Request) { r.Scopes = []string{"orders:write", "orders:delete", "orders:read"} },
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp:     now.Add(testLifetime),
			scope:   []string{"orders:write", "orders:read"},
			changed: true,
		},
		{
			name:   "no scope requested: what the policy allows and the subject holds is granted and returned",
			claims: subjectClaims,
			req:    func(r *Request) { r.Scopes = nil },
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp:     now.Add(testLifetime),
			scope:   []string{"orders:read", "orders:write"},
			changed: true,
		},
		{
			name:   "no scope requested, a subject without scope: no scope claim, nothing changed",
			claims: without(subjectClaims, "scope"),
			req:    func(r *Request) { r.Scopes = nil },
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp: now.Add(testLifetime),
		},
		{
			name:   "the subject's scp array bounds the grant when it has no scope",
			claims: with(without(subjectClaims, "scope"), "scp", []string{"orders:write"}),
			req:    func(r *Request) { r.Scopes = []string{"orders:read", "orders:write"} },
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp:     now.Add(testLifetime),
			scope:   []string{"orders:write"},
			changed: true,
		},
		{
			name:   "the subject token type jwt is accepted when the issuer lists it",
			claims: subjectClaims,
			req:    func(r *Request) { r.SubjectTokenType = TokenTypeJWT },
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp:   now.Add(testLifetime),
			scope: []string{"orders:read"},
		},
		{
			name:   "azp names the accepted audience when aud does not",
			claims: with(subjectClaims, "aud", "someone-else", "azp", testIdPAud),
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp:   now.Add(testLifetime),
			scope: []string{"orders:read"},
		},
		{
			name:   "a single string aud is accepted",
			claims: with(subjectClaims, "aud", testIdPAud),
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp:   now.Add(testLifetime),
			scope: []string{"orders:read"},
		},
		{
			name:   "iat and nbf in the future but within the skew",
			claims: with(subjectClaims, "iat", now.Add(testSkew/2).Unix(), "nbf", now.Add(testSkew/2).Unix()),
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp:   now.Add(testLifetime),
			scope: []string{"orders:read"},
		},
		{
			name:   "nbf in the past",
			claims: with(subjectClaims, "nbf", now.Add(-time.Hour).Unix()),
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp:   now.Add(testLifetime),
			scope: []string{"orders:read"},
		},
		{
			name:   "no iat is accepted",
			claims: without(subjectClaims, "iat"),
			typ:    "at+jwt", tokenType: "Bearer", issuedType: TokenTypeAccessToken,
			exp:   now.Add(testLifetime),
			scope: []string{"orders:read"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var token string
			if _, hasIat := tt.claims["iat"]; hasIat {
				token = f.idp.mint(t, tt.claims)
			} else {
				token = forge(t, jose.RS256, f.idp.idp.Load().Key(), f.idp.idp.Load().KeyID(), tt.claims)
			}
			req := f.request(token)
			if tt.req != nil {
				tt.req(&req)
			}
			resp, err := f.ex.Exchange(context.Background(), req)
			require.NoError(t, err)

			require.Equal(t, tt.issuedType, resp.IssuedTokenType)
			require.Equal(t, tt.tokenType, resp.TokenType)
			require.Equal(t, int64(tt.exp.Sub(now)/time.Second), resp.ExpiresIn)
			require.Equal(t, tt.scope, resp.Scope)
			require.Equal(t, tt.changed, resp.ScopeChanged)
			require.Equal(t, testSubject, resp.Subject)
			require.Equal(t, testAudience, resp.Audience)
			require.Equal(t, testPolicy, resp.Policy)
			require.Equal(t, testIssuerName, resp.Issuer)
			require.NotEmpty(t, resp.JTI)

			typ, got := f.minted(t, resp.AccessToken)
			require.Equal(t, tt.typ, typ)
			want := map[string]any{
				"iss":         testSTS,
				"sub":         testSubject,
				"aud":         testAudience,
				"exp":         json.Number(itoa(tt.exp.Unix())),
				"iat":         json.Number(itoa(now.Unix())),
				"jti":         resp.JTI,
				"client_id":   testClient,
				"permissions": wantPerms,
				"roles":       []any{"admin", "billing"},
				"tenant":      json.Number("12345678901234567890"),
			}
			if len(tt.scope) > 0 {
				want["scope"] = strings.Join(tt.scope, " ")
			}
			// Exact equality also proves that the claims outside the policy
			// (email, azp, secret_internal_id, the IdP's scope) are absent.
			require.Equal(t, want, got)
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestExchangeUniqueJTI proves two exchanges of one subject token mint two
// distinct tokens.
func TestExchangeUniqueJTI(t *testing.T) {
	f := newFixture(t)
	req := f.request(f.validToken(t))
	a, err := f.ex.Exchange(context.Background(), req)
	require.NoError(t, err)
	b, err := f.ex.Exchange(context.Background(), req)
	require.NoError(t, err)
	require.NotEqual(t, a.JTI, b.JTI)
	require.NotEqual(t, a.AccessToken, b.AccessToken)
}

func TestExchangeErrors(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	idp := f.idp.idp.Load()
	base := f.idp.claims(now)

	otherIdP, err := devidp.New("https://untrusted.example.test", testIdPAud)
	require.NoError(t, err)
	sameURLOtherKey, err := devidp.New(f.idp.URL(), testIdPAud)
	require.NoError(t, err)

	pubDER, err := x509.MarshalPKIXPublicKey(&idp.Key().PublicKey)
	require.NoError(t, err)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pkcs1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&idp.Key().PublicKey)})

	mintWith := func(c map[string]any) func(t *testing.T) string {
		return func(t *testing.T) string { return f.idp.mint(t, c) }
	}
	forgeWith := func(c map[string]any) func(t *testing.T) string {
		return func(t *testing.T) string { return forge(t, jose.RS256, idp.Key(), idp.KeyID(), c) }
	}
	hmacWith := func(secret []byte) func(t *testing.T) string {
		return func(t *testing.T) string { return forge(t, jose.HS256, secret, idp.KeyID(), base) }
	}
	literal := func(s string) func(t *testing.T) string { return func(*testing.T) string { return s } }
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	basePayload, err := json.Marshal(base)
	require.NoError(t, err)

	tests := []struct {
		name  string
		token func(t *testing.T) string
		req   func(r *Request)
		code  Code
		desc  string // a substring of the description, proving which check failed
	}{
		{name: "invalid request: no subject token type", token: mintWith(base),
			req: func(r *Request) { r.SubjectTokenType = "" }, code: InvalidRequest, desc: "subject_token_type"},
		{name: "unknown client", token: mintWith(base),
			req: func(r *Request) { r.ClientID = "stranger" }, code: InvalidClient, desc: "unknown"},
		{name: "an audience without a policy", token: mintWith(base),
			req: func(r *Request) { r.Audiences = []string{"https://nobody.example.test"} }, code: InvalidTarget, desc: "No policy"},
		{name: "two different audiences", token: mintWith(base),
			req:  func(r *Request) { r.Audiences = []string{testAudience, "https://billing.example.test"} },
			code: InvalidTarget, desc: "served by different policies"},
		{name: "an audience and a different resource", token: mintWith(base),
			req:  func(r *Request) { r.Resources = []string{"https://billing.example.test"} },
			code: InvalidTarget, desc: "served by different policies"},
		{name: "a served audience and an unserved one", token: mintWith(base),
			req:  func(r *Request) { r.Audiences = []string{testAudience, "https://nobody.example.test"} },
			code: InvalidTarget, desc: "No policy serves the audience \"https://nobody.example.test\""},
		{name: "a client the policy does not allow", token: mintWith(base),
			req: func(r *Request) { r.Audiences = []string{"https://admin.example.test"} }, code: UnauthorizedClient, desc: "may not request"},
		{name: "no requested scope may be granted", token: mintWith(base),
			req: func(r *Request) { r.Scopes = []string{"orders:delete", "admin"} }, code: InvalidScope, desc: "None of the requested scopes"},
		{name: "an allowed scope the subject does not hold", token: mintWith(with(base, "scope", "openid orders:write")),
			req: func(r *Request) { r.Scopes = []string{"orders:read"} }, code: InvalidScope, desc: "None of the requested scopes"},
		{name: "an allowed scope, a subject without scope", token: mintWith(without(base, "scope")),
			req: func(r *Request) { r.Scopes = []string{"orders:read"} }, code: InvalidScope, desc: "does not hold them"},
		{name: "an untrusted issuer", token: func(t *testing.T) string {
			tok, err := otherIdP.Mint(without(base, "iss"))
			require.NoError(t, err)
			return tok
		}, code: InvalidRequest, desc: "not trusted"},
		{name: "an iss differing from a trusted issuer by a trailing slash",
			token: mintWith(with(base, "iss", f.idp.URL()+"/")), code: InvalidRequest, desc: "not trusted"},
		{name: "an issuer the policy does not accept", token: mintWith(base),
			req:  func(r *Request) { r.Audiences, r.Scopes = []string{"https://billing.example.test"}, nil },
			code: InvalidRequest, desc: "does not accept subject tokens from issuer"},
		{name: "a token type the issuer does not accept", token: mintWith(base),
			req: func(r *Request) { r.SubjectTokenType = TokenTypeIDToken }, code: InvalidRequest, desc: "does not accept subject_token_type"},
		{name: "expired beyond the skew", token: mintWith(with(base, "exp", now.Add(-testSkew-time.Second).Unix())),
			code: InvalidRequest, desc: "expired"},
		{name: "expired within the skew: no skew for exp, the new token would be born expired",
			token: mintWith(with(base, "exp", now.Add(-testSkew/2).Unix())), code: InvalidRequest, desc: "has expired"},
		{name: "expiring this very second", token: mintWith(with(base, "exp", now.Unix())),
			code: InvalidRequest, desc: "has expired"},
		{name: "expiring within the second", token: mintWith(with(base, "exp", json.Number(fmt.Sprintf("%d.5", now.Unix())))),
			code: InvalidRequest, desc: "expires too soon"},
		{name: "nbf in the future beyond the skew", token: mintWith(with(base, "nbf", now.Add(testSkew+time.Second).Unix())),
			code: InvalidRequest, desc: "not valid yet"},
		{name: "nbf that is not a number", token: mintWith(with(base, "nbf", "yesterday")), code: InvalidRequest},
		{name: "nbf given as a numeric string", token: mintWith(with(base, "nbf", itoa(now.Unix()))),
			code: InvalidRequest, desc: "not valid yet"},
		{name: "iat given as a numeric string", token: mintWith(with(base, "iat", itoa(now.Unix()))),
			code: InvalidRequest, desc: "issued in the future"},
		{name: "exp given as a numeric string", token: mintWith(with(base, "exp", itoa(now.Add(time.Hour).Unix()))),
			code: InvalidRequest, desc: "'exp'"},
		{name: "iat in the future beyond the skew", token: mintWith(with(base, "iat", now.Add(testSkew+time.Second).Unix())),
			code: InvalidRequest, desc: "issued in the future"},
		{name: "a wrong audience, no azp", token: mintWith(with(without(base, "azp"), "aud", []string{"someone-else"})),
			code: InvalidRequest, desc: "audience"},
		{name: "a wrong audience and a wrong azp", token: mintWith(with(base, "aud", "someone-else", "azp", "another")),
			code: InvalidRequest, desc: "audience"},
		{name: "no aud at all", token: mintWith(without(base, "aud", "azp")),
			code: InvalidRequest, desc: "audience"},
		{name: "no sub", token: mintWith(without(base, "sub")), code: InvalidRequest, desc: "'sub'"},
		{name: "an empty sub", token: mintWith(with(base, "sub", "")), code: InvalidRequest, desc: "'sub'"},
		{name: "a sub that is not a string", token: mintWith(with(base, "sub", 42)), code: InvalidRequest},
		{name: "no exp", token: forgeWith(without(base, "exp")), code: InvalidRequest, desc: "'exp'"},
		{name: "an exp that is not a number", token: mintWith(with(base, "exp", "tomorrow")), code: InvalidRequest},
		{name: "an exp too far in the future to be a date", token: mintWith(with(base, "exp", 1e15)), code: InvalidRequest, desc: "'exp'"},
		{name: "alg none", token: literal(b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(string(basePayload)) + "."),
			code: InvalidRequest, desc: "signature"},
		{name: "alg none with a kid", token: literal(b64(`{"alg":"none","kid":"`+idp.KeyID()+`"}`) + "." + b64(string(basePayload)) + "."),
			code: InvalidRequest, desc: "signature"},
		{name: "HS256 keyed with the RSA public key's PEM", token: hmacWith(pubPEM), code: InvalidRequest, desc: "signature"},
		{name: "HS256 keyed with the RSA public key's PKCS#1 PEM", token: hmacWith(pkcs1PEM), code: InvalidRequest, desc: "signature"},
		{name: "HS256 keyed with the RSA public key's DER", token: hmacWith(pubDER), code: InvalidRequest, desc: "signature"},
		{name: "an unknown kid: signed by another RSA key", token: func(t *testing.T) string {
			tok, err := sameURLOtherKey.Mint(base)
			require.NoError(t, err)
			return tok
		}, code: InvalidRequest, desc: "key the issuer does not publish"},
		{name: "the IdP's kid but another key's signature", token: func(t *testing.T) string {
			return forge(t, jose.RS256, sameURLOtherKey.Key(), idp.KeyID(), base)
		}, code: InvalidRequest},
		{name: "no kid, another key's signature", token: func(t *testing.T) string {
			return forge(t, jose.RS256, sameURLOtherKey.Key(), "", base)
		}, code: InvalidRequest},
		{name: "RS384 is not on the issuer's algorithm list", token: func(t *testing.T) string {
			return forge(t, jose.RS384, idp.Key(), idp.KeyID(), base)
		}, code: InvalidRequest, desc: "signature"},
		{name: "a tampered payload", token: func(t *testing.T) string {
			parts := strings.Split(f.idp.mint(t, base), ".")
			evil, err := json.Marshal(with(base, "sub", "admin"))
			require.NoError(t, err)
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(evil) + "." + parts[2]
		}, code: InvalidRequest},
		{name: "garbage", token: literal("this is not a token at all"), code: InvalidRequest, desc: "not a JWT"},
		{name: "two parts", token: literal(b64(`{"alg":"RS256"}`) + "." + b64(string(basePayload))), code: InvalidRequest, desc: "not a JWT"},
		{name: "a payload that is not base64url", token: literal("a.!!!.c"), code: InvalidRequest, desc: "not a JWT"},
		{name: "JSON serialization instead of compact", token: literal(`{"payload":"` + b64(string(basePayload)) + `","signatures":[]}`),
			code: InvalidRequest, desc: "not a JWT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := tt.token(t)
			req := f.request(token)
			if tt.req != nil {
				tt.req(&req)
			}
			resp, err := f.ex.Exchange(context.Background(), req)
			require.Nil(t, resp)
			e := requireCode(t, err, tt.code, token)
			if tt.desc != "" {
				require.Contains(t, e.Description, tt.desc)
			}
		})
	}
}

// TestExchangeBeforeLoad proves an Exchanger without configuration refuses
// every client rather than panicking.
func TestExchangeBeforeLoad(t *testing.T) {
	ex := NewExchanger(newRing(t), Options{Issuer: testSTS})
	_, err := ex.Exchange(context.Background(), Request{
		ClientID: testClient, SubjectToken: "a.b.c", SubjectTokenType: TokenTypeAccessToken, Audiences: []string{testAudience},
	})
	requireCode(t, err, InvalidClient, "")
}

// failingSigner makes the signer fail.
type failingSigner struct{}

func (failingSigner) SignWith(string, string, []byte) (string, error) {
	return "", context.DeadlineExceeded
}

func TestExchangeSignerFailure(t *testing.T) {
	f := newFixture(t)
	ex := NewExchanger(failingSigner{}, f.ex.opts)
	ex.Load(f.state)
	token := f.validToken(t)
	_, err := ex.Exchange(context.Background(), f.request(token))
	e := requireCode(t, err, ServerError, token)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the cause is kept for logs")
	require.NotContains(t, e.Description, "deadline", "the cause stays out of the description")
}

func TestQuote(t *testing.T) {
	require.Equal(t, `"a?b?c?"`, quote("a\"b\\c\n"))
	long := quote(strings.Repeat("x", 500))
	require.Equal(t, `"`+strings.Repeat("x", 128)+`…"`, long)
}

func TestAsError(t *testing.T) {
	e := errorf(InvalidScope, "nope", nil)
	require.Same(t, e, AsError(e))
	other := AsError(context.Canceled)
	require.Equal(t, ServerError, other.Code)
	require.ErrorIs(t, other, context.Canceled)
	require.Equal(t, "invalid_scope: nope", e.Error())
	require.Equal(t, "server_error: The token service could not complete the request.: context canceled", other.Error())
}

// TestPolicySigningAlgorithm: a policy may name another configured signing
// algorithm; a policy naming one without an active key fails as a server
// error, never by signing with another key.
func TestPolicySigningAlgorithm(t *testing.T) {
	f := newFixture(t)
	raw := make([]byte, 32)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	kek, err := keys.ParseKEK(base64.StdEncoding.EncodeToString(raw))
	require.NoError(t, err)
	ring := keys.NewRing(&lifecycleKeys{}, kek, keys.RingOptions{Algorithms: []string{"EdDSA"}, Now: func() time.Time { return testNow }})
	require.NoError(t, ring.Init(context.Background()))
	ex := NewExchanger(ring, f.ex.opts)
	state := f.state
	state.Policies = testPolicies()
	for i := range state.Policies {
		state.Policies[i].SigningAlgorithm = "EdDSA"
	}
	ex.Load(state)

	res, err := ex.Exchange(context.Background(), f.request(f.validToken(t)))
	require.NoError(t, err)
	jws, err := jose.ParseSignedCompact(res.AccessToken, []jose.SignatureAlgorithm{jose.EdDSA})
	require.NoError(t, err)
	require.Equal(t, ring.KeyIDFor("EdDSA"), jws.Signatures[0].Header.KeyID)
	require.NotEqual(t, ring.KeyID(), jws.Signatures[0].Header.KeyID, "not the default ES256 key")

	for i := range state.Policies {
		state.Policies[i].SigningAlgorithm = "PS256" // valid, but not configured
		state.Policies[i].Version++                  // a changed policy has a new version
	}
	ex.Load(state)
	token := f.validToken(t)
	_, err = ex.Exchange(context.Background(), f.request(token))
	requireCode(t, err, ServerError, token)
}

// lifecycleKeys is memKeys with the lifecycle, so that a ring keeps a key
// per configured algorithm.
type lifecycleKeys struct{ memKeys }

func (s *lifecycleKeys) UpdateKeys(_ context.Context, plan func([]keys.Key) (keys.Changes, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := plan(append([]keys.Key(nil), s.keys...))
	if err != nil {
		return err
	}
	for _, u := range ch.Update {
		for i := range s.keys {
			if s.keys[i].ID == u.ID {
				s.keys[i] = u
			}
		}
	}
	s.keys = append(s.keys, ch.Insert...)
	return nil
}
