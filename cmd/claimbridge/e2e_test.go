package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/internal/devidp"
	"github.com/claimbridge/claimbridge/postgres/pgtest"
)

// idpAudience is the audience the test IdP's tokens carry and the trusted
// issuer requires.
const idpAudience = "https://api.test"

// testEnv is a running Claimbridge (through run, on random ports, against a
// fresh database) with a test IdP.
type testEnv struct {
	t           *testing.T
	issuer      string // our issuer, http://127.0.0.1:PORT
	adminURL    string
	adminToken  string
	databaseURL string
	kek         string
	idp         *devidp.IdP
	http        *http.Client
	logs        *syncBuffer
	stop        func()
}

// newIdP starts a test OIDC issuer.
func newIdP(t *testing.T) *devidp.IdP {
	t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	idp, err := devidp.New(srv.URL, idpAudience)
	require.NoError(t, err)
	h = idp.Handler()
	return idp
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func randomSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// startEnv starts Claimbridge on a fresh database.
func startEnv(t *testing.T) *testEnv {
	t.Helper()
	env := &testEnv{t: t, databaseURL: pgtest.NewDatabase(t), kek: randomSecret(), adminToken: randomSecret(), idp: newIdP(t)}
	env.start(nil)
	return env
}

// start runs `claimbridge serve` with extra flags until the test ends.
func (env *testEnv) start(extra []string) {
	t := env.t
	t.Helper()
	pub, adm := freeAddr(t), freeAddr(t)
	env.issuer, env.adminURL = "http://"+pub, "http://"+adm+"/admin/v1"
	env.http = &http.Client{Timeout: 10 * time.Second, Transport: newSpecTransport(t)}
	env.logs = &syncBuffer{}
	getenv := mapEnv(map[string]string{"CLAIMBRIDGE_KEK": env.kek, "CLAIMBRIDGE_ADMIN_TOKENS": env.adminToken})
	args := append([]string{"serve", "--database-url", env.databaseURL, "--public-addr", pub, "--admin-addr", adm,
		"--issuer", env.issuer, "--reload-interval", "2s", "--idp-jwks-min-refresh", "1s", "--shutdown-timeout", "5s", "--log-level", "debug"}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, getenv, io.Discard, env.logs) }()
	env.stop = func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "serve returned an error; logs:\n%s", env.logs)
		case <-time.After(30 * time.Second):
			stacks := make([]byte, 1<<20)
			stacks = stacks[:runtime.Stack(stacks, true)]
			t.Fatalf("serve did not stop within 30s; logs:\n%s\ngoroutines:\n%s", env.logs, stacks)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			env.stop()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v\nlogs:\n%s", err, env.logs)
		default:
		}
		resp, err := http.Get(env.issuer + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready within 30s; logs:\n%s", env.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// admin sends an admin request and decodes the JSON answer into out (if
// not nil); it returns the status.
func (env *testEnv) admin(method, path string, body any, out any) int {
	env.t.Helper()
	return env.adminAs(env.adminToken, method, path, body, out)
}

func (env *testEnv) adminAs(token, method, path string, body any, out any) int {
	env.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(env.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, env.adminURL+path, rd)
	require.NoError(env.t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := env.http.Do(req)
	require.NoError(env.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(env.t, err)
	if out != nil && len(raw) > 0 {
		require.NoError(env.t, json.Unmarshal(raw, out), "body: %s", raw)
	}
	return resp.StatusCode
}

// mustAdmin is admin that requires the given status.
func (env *testEnv) mustAdmin(want int, method, path string, body any, out any) {
	env.t.Helper()
	var raw json.RawMessage
	got := env.admin(method, path, body, &raw)
	require.Equal(env.t, want, got, "%s %s: %s", method, path, raw)
	if out != nil {
		require.NoError(env.t, json.Unmarshal(raw, out))
	}
}

// seed registers the test IdP, a client and a policy; it returns the
// client's secret.
func (env *testEnv) seed() string {
	env.mustAdmin(http.StatusCreated, http.MethodPut, "/issuers/test-idp", map[string]any{
		"issuer": env.idp.Issuer(), "audiences": []string{idpAudience}, "algorithms": []string{"RS256"},
	}, nil)
	secret := env.createClient("gateway")
	env.mustAdmin(http.StatusCreated, http.MethodPut, "/policies/orders", ordersPolicy(), nil)
	env.eventually("the policy is served", func() bool {
		status, _, _ := env.exchange("gateway", secret, exchangeForm(env.subject(nil)))
		return status == http.StatusOK
	})
	return secret
}

func ordersPolicy() map[string]any {
	return map[string]any{
		"audience":        "https://orders.internal",
		"allowed_clients": []string{"gateway"},
		"allowed_issuers": []string{"test-idp"},
		"claims": []map[string]string{
			{"claim": "permissions"},
			{"claim": "roles", "from": "https://example.com/roles"},
			{"claim": "tenant", "from": "/org/tenant_id"},
			{"claim": "big"},
		},
		"scopes": []string{"orders:read", "orders:write"},
	}
}

func (env *testEnv) createClient(id string) string {
	var c struct {
		Secret string `json:"client_secret"`
	}
	env.mustAdmin(http.StatusCreated, http.MethodPut, "/clients/"+id, map[string]any{"description": "test " + id}, &c)
	require.NotEmpty(env.t, c.Secret)
	return c.Secret
}

// eventually waits for cond, which becomes true once the replica has
// reloaded after an admin write (LISTEN/NOTIFY).
func (env *testEnv) eventually(what string, cond func() bool) {
	env.t.Helper()
	require.Eventually(env.t, cond, 10*time.Second, 10*time.Millisecond, "%s; logs:\n%s", what, env.logs)
}

// subject mints a subject token at the test IdP: a user with a 20-element
// permissions array, namespaced roles, a nested tenant, a number beyond
// float64 precision and claims the policy does not pass. extra overrides.
func (env *testEnv) subject(extra map[string]any) string {
	env.t.Helper()
	claims := map[string]any{
		"sub":                       "auth0|alice",
		"aud":                       []string{idpAudience, env.idp.Issuer() + "/userinfo"},
		"azp":                       "spa",
		"scope":                     "openid orders:read orders:write",
		"permissions":               permissions20(),
		"https://example.com/roles": []string{"admin", "buyer"},
		"org":                       map[string]any{"tenant_id": "t-42", "plan": "gold"},
		"big":                       json.Number("12345678901234567890"),
		"email":                     "alice@example.com",
		"secret_claim":              "must not pass",
	}
	for k, v := range extra {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	tok, err := env.idp.Mint(claims)
	require.NoError(env.t, err)
	return tok
}

func permissions20() []string {
	p := make([]string, 20)
	for i := range p {
		p[i] = "orders:perm-" + string(rune('a'+i))
	}
	return p
}

// exchange posts a token request with client_secret_basic (when clientID is
// set) and returns the status, the decoded body and the response.
func (env *testEnv) exchange(clientID, secret string, form url.Values) (int, map[string]any, *http.Response) {
	env.t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	require.NoError(env.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if clientID != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	resp, err := env.http.Do(req)
	require.NoError(env.t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(env.t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body, resp
}

// exchangeForm is a valid token exchange request for subject.
func exchangeForm(subject string) url.Values {
	return url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subject},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"audience":           {"https://orders.internal"},
	}
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
