package sts

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/internal/devidp"
	"github.com/claimbridge/claimbridge/keys"
	"github.com/claimbridge/claimbridge/policy"
)

// Names shared by the exchange tests.
const (
	testSTS        = "https://sts.example.test"
	testIssuerName = "dev"
	testIdPAud     = "claimbridge-gateway" // what subject tokens are minted for
	testClient     = "gateway"
	testAudience   = "https://orders.example.test"
	testPolicy     = "orders"
	testSubject    = "auth0|user-42"
	testLifetime   = 10 * time.Minute
	testSkew       = time.Minute
	testMinRefresh = 10 * time.Second
)

// testNow is the injected clock's start.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is an injected clock that tests move by hand.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// testIdP is a devidp.IdP behind an httptest server whose IdP can be
// swapped (key rotation) and whose JWKS and discovery requests are counted.
type testIdP struct {
	srv       *httptest.Server
	idp       atomic.Pointer[devidp.IdP]
	handler   atomic.Pointer[http.Handler]
	jwksHits  atomic.Int64
	discovery atomic.Int64
}

func newTestIdP(t testing.TB) *testIdP {
	t.Helper()
	ti := &testIdP{}
	ti.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/jwks.json":
			ti.jwksHits.Add(1)
		case "/.well-known/openid-configuration":
			ti.discovery.Add(1)
		}
		(*ti.handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(ti.srv.Close)
	ti.rotate(t)
	return ti
}

// rotate replaces the IdP (and so its signing key) behind the same URL.
func (ti *testIdP) rotate(t testing.TB) *devidp.IdP {
	t.Helper()
	idp, err := devidp.New(ti.srv.URL, testIdPAud)
	require.NoError(t, err)
	h := idp.Handler()
	ti.handler.Store(&h)
	ti.idp.Store(idp)
	return idp
}

// serve replaces what the server answers, e.g. a hand-written JWKS.
func (ti *testIdP) serve(h http.Handler) { ti.handler.Store(&h) }

func (ti *testIdP) URL() string { return ti.srv.URL }

// claims returns the claims of a typical subject token at now.
func (ti *testIdP) claims(now time.Time) map[string]any {
	perms := make([]string, 20)
	for i := range perms {
		perms[i] = fmt.Sprintf("orders:perm-%02d", i)
	}
	return map[string]any{
		"iss":                ti.URL(),
		"sub":                testSubject,
		"aud":                []string{testIdPAud, ti.URL() + "/userinfo"},
		"azp":                "dev-spa",
		"scope":              "openid orders:read orders:write",
		"iat":                now.Unix(),
		"exp":                now.Add(time.Hour).Unix(),
		"permissions":        perms,
		devidp.RolesClaim:    []string{"admin", "billing"},
		"tenant":             json.Number("12345678901234567890"),
		"email":              "ada@example.com",
		"secret_internal_id": "must-not-pass",
	}
}

// mint signs claims with the current IdP key.
func (ti *testIdP) mint(t testing.TB, claims map[string]any) string {
	t.Helper()
	tok, err := ti.idp.Load().Mint(claims)
	require.NoError(t, err)
	return tok
}

// forge signs claims exactly as given (no defaults) with key, alg and kid.
func forge(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("at+jwt")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	require.NoError(t, err)
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	obj, err := s.Sign(payload)
	require.NoError(t, err)
	tok, err := obj.CompactSerialize()
	require.NoError(t, err)
	return tok
}

func newRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return k
}

func without(m map[string]any, drop ...string) map[string]any {
	c := maps.Clone(m)
	for _, k := range drop {
		delete(c, k)
	}
	return c
}

func with(m map[string]any, kv ...any) map[string]any {
	c := maps.Clone(m)
	for i := 0; i < len(kv); i += 2 {
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

// memKeys is a keys.Store over a slice.
type memKeys struct {
	mu   sync.Mutex
	keys []keys.Key
}

var _ keys.Store = (*memKeys)(nil)

func (s *memKeys) Keys(context.Context) ([]keys.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]keys.Key(nil), s.keys...), nil
}

func (s *memKeys) EnsureActiveKey(_ context.Context, generate func() (keys.Key, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.keys {
		if k.State == keys.StateActive {
			return nil
		}
	}
	k, err := generate()
	if err != nil {
		return err
	}
	s.keys = append(s.keys, k)
	return nil
}

// newRing returns an initialized keys.Ring with a fresh ES256 key.
func newRing(t testing.TB) *keys.Ring {
	t.Helper()
	raw := make([]byte, 32)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	kek, err := keys.ParseKEK(base64.StdEncoding.EncodeToString(raw))
	require.NoError(t, err)
	ring := keys.NewRing(&memKeys{}, kek, keys.RingOptions{Now: func() time.Time { return testNow }})
	require.NoError(t, ring.Init(context.Background()))
	return ring
}

// fixture is an Exchanger wired to a test IdP, a real key ring and an
// injected clock.
type fixture struct {
	idp   *testIdP
	ring  *keys.Ring
	clock *clock
	ex    *Exchanger
	state State
}

func testIssuer(url string) Issuer {
	return Issuer{
		Name:       testIssuerName,
		URL:        url,
		Audiences:  []string{testIdPAud},
		TokenTypes: []string{TokenTypeAccessToken, TokenTypeJWT},
	}
}

func testPolicies() []policy.Policy {
	return []policy.Policy{
		{
			Name:           testPolicy,
			Audience:       testAudience,
			AllowedClients: []string{testClient},
			AllowedIssuers: []string{testIssuerName},
			Claims: []policy.ClaimMapping{
				{Claim: "permissions"},
				{Claim: "roles", From: devidp.RolesClaim},
				{Claim: "tenant"},
				{Claim: "missing_claim"},
			},
			Scopes:               []string{"orders:read", "orders:write"},
			TokenLifetimeSeconds: int64(testLifetime / time.Second),
			Version:              1,
		},
		// billing accepts only another issuer.
		{
			Name:           "billing",
			Audience:       "https://billing.example.test",
			AllowedClients: []string{testClient},
			AllowedIssuers: []string{"corp"},
			Version:        1,
		},
		// admin is for another client only.
		{
			Name:           "admin",
			Audience:       "https://admin.example.test",
			AllowedClients: []string{"backoffice"},
			AllowedIssuers: []string{testIssuerName},
			Version:        1,
		},
	}
}

func newFixture(t testing.TB) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith lets a test change the Exchanger's options.
func newFixtureWith(t testing.TB, change func(o *Options)) *fixture {
	t.Helper()
	f := &fixture{idp: newTestIdP(t), ring: newRing(t), clock: newClock(testNow)}
	opts := Options{
		Issuer:          testSTS,
		DefaultLifetime: 5 * time.Minute,
		ClockSkew:       testSkew,
		HTTPClient:      f.idp.srv.Client(),
		JWKSMinRefresh:  testMinRefresh,
		JWKSMaxAge:      time.Hour,
		Now:             f.clock.Now,
	}
	if change != nil {
		change(&opts)
	}
	f.ex = NewExchanger(f.ring, opts)
	f.state = State{
		Issuers:  []Issuer{testIssuer(f.idp.URL())},
		Clients:  []Client{{ID: testClient}, {ID: "backoffice"}},
		Policies: testPolicies(),
	}
	f.ex.Load(f.state)
	return f
}

// request is a valid exchange request for subjectToken.
func (f *fixture) request(subjectToken string) Request {
	return Request{
		ClientID:         testClient,
		SubjectToken:     subjectToken,
		SubjectTokenType: TokenTypeAccessToken,
		Audiences:        []string{testAudience},
		Scopes:           []string{"orders:read"},
	}
}

// validToken is a subject token that exchanges successfully.
func (f *fixture) validToken(t testing.TB) string {
	return f.idp.mint(t, f.idp.claims(f.clock.Now()))
}

// minted verifies a minted token against the ring's JWKS and returns its
// "typ" header and its claims, numbers as json.Number.
func (f *fixture) minted(t testing.TB, token string) (string, map[string]any) {
	t.Helper()
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	require.NoError(t, err)
	require.Len(t, jws.Signatures, 1)
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(f.ring.JWKS(), &set))
	hdr := jws.Signatures[0].Header
	require.Equal(t, f.ring.KeyID(), hdr.KeyID)
	found := set.Key(hdr.KeyID)
	require.Len(t, found, 1)
	payload, err := jws.Verify(found[0])
	require.NoError(t, err)
	typ, _ := hdr.ExtraHeaders["typ"].(string)
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	require.NoError(t, dec.Decode(&claims))
	return typ, claims
}

// requireCode checks that err is an *Error with code whose Description does
// not leak the subject token.
func requireCode(t testing.TB, err error, code Code, subjectToken string) *Error {
	t.Helper()
	require.Error(t, err)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, code, e.Code, "error: %v", err)
	require.NotEmpty(t, e.Description)
	if subjectToken != "" {
		require.NotContains(t, e.Description, subjectToken, "the description never echoes the subject token")
		for _, part := range strings.Split(subjectToken, ".") {
			if len(part) >= 16 {
				require.NotContains(t, e.Description, part, "the description never echoes part of the subject token")
			}
		}
	}
	return e
}
