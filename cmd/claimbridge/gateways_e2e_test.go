package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/require"
)

// Audiences of the gateway tests: orders is the seeded policy; reports
// has a condition the default subject does not meet.
const (
	ordersAudience  = "https://orders.internal"
	reportsAudience = "https://reports.internal"
)

// echoUpstream is an upstream that records the headers and bodies it gets.
type echoUpstream struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []echoRequest
}

type echoRequest struct {
	method, path, body string
	header             http.Header
}

func newEchoUpstream(t *testing.T) *echoUpstream {
	u := &echoUpstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.got = append(u.got, echoRequest{method: r.Method, path: r.URL.Path, body: string(body), header: r.Header.Clone()})
		u.mu.Unlock()
		w.Header().Set("X-Echo", "upstream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "echo "+r.URL.Path)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// requests returns what the upstream got since the last call.
func (u *echoUpstream) requests() []echoRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	got := u.got
	u.got = nil
	return got
}

func (u *echoUpstream) addr() string { return strings.TrimPrefix(u.srv.URL, "http://") }

// gatewayEnv is a running Claimbridge with the orders and reports policies
// and an echo upstream.
type gatewayEnv struct {
	*testEnv
	secret   string
	upstream *echoUpstream
}

func startGatewayEnv(t *testing.T) *gatewayEnv {
	t.Helper()
	env := startEnv(t)
	g := &gatewayEnv{testEnv: env, secret: env.seed(), upstream: newEchoUpstream(t)}
	env.mustAdmin(http.StatusCreated, http.MethodPut, "/policies/reports", map[string]any{
		"audience": reportsAudience, "allowed_clients": []string{"gateway"}, "allowed_issuers": []string{"test-idp"},
		"conditions": []string{`"reports:read" in subject.permissions`},
		"claims":     []map[string]string{{"claim": "permissions"}},
	}, nil)
	env.eventually("the reports policy is served", func() bool {
		status, _ := g.forwardAuth(url.Values{"audience": {reportsAudience}}, "Bearer "+env.subject(nil))
		return status == http.StatusForbidden
	})
	return g
}

// forwardAuth calls /forward-auth as a gateway would and returns the
// status and the response.
func (g *gatewayEnv) forwardAuth(q url.Values, authorization string) (int, *http.Response) {
	g.t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.issuer+"/forward-auth?"+q.Encode(), nil)
	require.NoError(g.t, err)
	req.Header.Set("X-Claimbridge-Client", "gateway:"+g.secret)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := g.http.Do(req)
	require.NoError(g.t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp
}

// verify checks token the way an upstream does (discovery, our JWKS,
// issuer, audience, expiry) and returns its claims.
func (g *gatewayEnv) verify(token, audience string) map[string]any {
	g.t.Helper()
	ctx := oidc.ClientContext(context.Background(), g.http)
	provider, err := oidc.NewProvider(ctx, g.issuer)
	require.NoError(g.t, err)
	idt, err := provider.Verifier(&oidc.Config{ClientID: audience, SupportedSigningAlgs: []string{"ES256"}}).Verify(ctx, token)
	require.NoError(g.t, err, "the upstream's token verifies through our JWKS")
	var claims map[string]any
	require.NoError(g.t, idt.Claims(&claims))
	return claims
}

// requireMinted checks what the upstream got: the minted token for
// audience, verifying through our JWKS with the subject's permissions,
// and never the IdP token in any header. It returns the minted token.
func (g *gatewayEnv) requireMinted(got echoRequest, header, prefix, audience, idpToken string) string {
	g.t.Helper()
	v := got.header.Get(header)
	require.True(g.t, strings.HasPrefix(v, prefix), "the upstream's %s header: %q", header, v)
	token := strings.TrimPrefix(v, prefix)
	claims := g.verify(token, audience)
	require.Len(g.t, claims["permissions"], 20, "the policy's permissions claim passes")
	require.Equal(g.t, "auth0|alice", claims["sub"])
	for k, vs := range got.header {
		for _, hv := range vs {
			require.NotContains(g.t, hv, idpToken, "the IdP token never reaches the upstream (header %s)", k)
		}
		require.NotEqual(g.t, "X-Claimbridge-Client", k, "the gateway's credentials never reach the upstream")
	}
	return token
}

// TestForwardAuthEndpoint calls /forward-auth directly: a token that
// verifies for the audience, the cache, and the refusals.
func TestForwardAuthEndpoint(t *testing.T) {
	g := startGatewayEnv(t)
	subject := g.subject(nil)
	status, resp := g.forwardAuth(url.Values{"audience": {ordersAudience}}, "Bearer "+subject)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	token := g.requireMinted(echoRequest{header: resp.Header}, "Authorization", "Bearer ", ordersAudience, subject)

	_, again := g.forwardAuth(url.Values{"audience": {ordersAudience}}, "Bearer "+subject)
	require.Equal(t, "Bearer "+token, again.Header.Get("Authorization"), "the second request is served from the cache")

	cases := []struct {
		name, audience, auth string
		status               int
		reason               string
	}{
		{"no subject token", ordersAudience, "", 401, "invalid_token"},
		{"a forged subject token", ordersAudience, "Bearer " + subject[:len(subject)-4] + "AAAA", 401, "invalid_token"},
		{"an expired subject token", ordersAudience, "Bearer " + g.subject(map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}), 401, "invalid_token"},
		{"the policy's condition fails", reportsAudience, "Bearer " + subject, 403, "invalid_request"},
		{"no policy for the audience", "https://nothing.internal", "Bearer " + subject, 403, "invalid_target"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, resp := g.forwardAuth(url.Values{"audience": {tc.audience}}, tc.auth)
			require.Equal(t, tc.status, status)
			require.Equal(t, tc.reason, resp.Header.Get("X-Claimbridge-Reason"))
			require.Empty(t, resp.Header.Get("Authorization"))
		})
	}
	metrics, err := http.Get(strings.TrimSuffix(g.adminURL, "/admin/v1") + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	require.Regexp(t, `(?m)^claimbridge_exchange_cache_hits_total [1-9]`, string(body))
	require.Regexp(t, `(?m)^claimbridge_exchange_cache_misses_total [1-9]`, string(body))
	require.NotContains(t, g.logs.String(), subject, "no token is ever logged")
	require.NotContains(t, g.logs.String(), token, "no token is ever logged")
	require.NotContains(t, g.logs.String(), g.secret, "no secret is ever logged")
}

// TestTokenEndpointCacheTokens: a policy with cache_tokens answers a
// repeated token request with the same token; without it, a new one.
func TestTokenEndpointCacheTokens(t *testing.T) {
	env := startEnv(t)
	secret := env.seed()
	form := exchangeForm(env.subject(nil))
	jti := func() string {
		status, body, _ := env.exchange("gateway", secret, form)
		require.Equal(t, http.StatusOK, status, body)
		return decodeSegment(t, strings.Split(body["access_token"].(string), ".")[1])["jti"].(string)
	}
	require.NotEqual(t, jti(), jti(), "without cache_tokens every request mints")
	p := ordersPolicy()
	p["cache_tokens"] = true
	env.mustAdmin(http.StatusOK, http.MethodPut, "/policies/orders", p, nil)
	env.eventually("cache_tokens is served", func() bool { return jti() == jti() })
}

// gatewayBinary finds a gateway's binary: missing, the test is skipped
// locally and fails in CI (where .ci/run installs it).
func gatewayBinary(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil { // a PATH without sbin
		path, err = exec.LookPath("/usr/sbin/" + name)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; .ci/run installs it (apt-get install %s)", name, name)
		}
		t.Skipf("%s is not installed (apt-get install %s)", name, name)
	}
	return path
}

// startGateway runs a gateway as a child process in its own process group
// until the test ends, and waits until it accepts connections on addr.
func startGateway(t *testing.T, dir, addr string, env []string, name string, args ...string) {
	t.Helper()
	logFile, err := os.Create(filepath.Join(dir, "gateway.log"))
	require.NoError(t, err)
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// The whole group: nginx's workers outlive a killed master.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // workers left behind, if any
		logFile.Close()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			out, _ := os.ReadFile(logFile.Name())
			t.Fatalf("%s exited early:\n%s", name, out)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logFile.Name())
			t.Fatalf("%s is not listening on %s after 15s:\n%s", name, addr, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gatewayConfigData fills the configuration templates of docs/gateways.md.
type gatewayConfigData struct {
	Dir, Listen, Claimbridge, Upstream, Secret string
}

// writeConfig renders a configuration template into dir/name.
func writeConfig(t *testing.T, dir, name, tmpl string, data gatewayConfigData) string {
	t.Helper()
	var b strings.Builder
	require.NoError(t, template.Must(template.New(name).Parse(tmpl)).Execute(&b, data))
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

// nginxConf is the nginx configuration of docs/gateways.md (auth_request
// to /forward-auth, the minted token copied into Authorization), with
// every path in the test's directory.
const nginxConf = `user root;
worker_processes 1;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log info;
events { worker_connections 64; }
http {
  access_log {{.Dir}}/access.log;
  client_body_temp_path {{.Dir}}/client_body;
  proxy_temp_path {{.Dir}}/proxy;
  fastcgi_temp_path {{.Dir}}/fastcgi;
  uwsgi_temp_path {{.Dir}}/uwsgi;
  scgi_temp_path {{.Dir}}/scgi;

  upstream claimbridge { server {{.Claimbridge}}; }
  upstream orders_app { server {{.Upstream}}; }

  server {
    listen {{.Listen}};

    location /orders/ {
      auth_request /_claimbridge/orders;
      auth_request_set $claimbridge_token $upstream_http_authorization;
      proxy_set_header Authorization $claimbridge_token;
      proxy_pass http://orders_app;
    }
    location = /_claimbridge/orders {
      internal;
      proxy_pass http://claimbridge/forward-auth?audience=https%3A%2F%2Forders.internal;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Claimbridge-Client "gateway:{{.Secret}}";
    }

    location /reports/ {
      auth_request /_claimbridge/reports;
      auth_request_set $claimbridge_token $upstream_http_authorization;
      proxy_set_header Authorization $claimbridge_token;
      proxy_pass http://orders_app;
    }
    location = /_claimbridge/reports {
      internal;
      proxy_pass http://claimbridge/forward-auth?audience=https%3A%2F%2Freports.internal;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Claimbridge-Client "gateway:{{.Secret}}";
    }
  }
}
`

// caddyfile is the Caddy configuration of docs/gateways.md (forward_auth
// to /forward-auth, copy_headers Authorization).
const caddyfile = `{
	admin off
	auto_https off
	storage file_system {{.Dir}}/data
}

http://{{.Listen}} {
	handle /orders/* {
		forward_auth {{.Claimbridge}} {
			uri /forward-auth?audience=https://orders.internal
			header_up X-Claimbridge-Client "gateway:{{.Secret}}"
			copy_headers Authorization
		}
		reverse_proxy {{.Upstream}}
	}
	handle /reports/* {
		forward_auth {{.Claimbridge}} {
			uri /forward-auth?audience=https://reports.internal
			header_up X-Claimbridge-Client "gateway:{{.Secret}}"
			copy_headers Authorization
		}
		reverse_proxy {{.Upstream}}
	}
}
`

func TestNginxForwardAuth(t *testing.T) {
	bin := gatewayBinary(t, "nginx")
	g := startGatewayEnv(t)
	dir, listen := t.TempDir(), freeAddr(t)
	conf := writeConfig(t, dir, "nginx.conf", nginxConf, g.configData(dir, listen))
	startGateway(t, dir, listen, nil, bin, "-e", dir+"/error.log", "-p", dir, "-c", conf, "-g", "daemon off;")
	g.checkGateway("http://" + listen)
}

func TestCaddyForwardAuth(t *testing.T) {
	bin := gatewayBinary(t, "caddy")
	g := startGatewayEnv(t)
	dir, listen := t.TempDir(), freeAddr(t)
	conf := writeConfig(t, dir, "Caddyfile", caddyfile, g.configData(dir, listen))
	env := []string{"HOME=" + dir, "XDG_DATA_HOME=" + dir + "/data", "XDG_CONFIG_HOME=" + dir + "/config"}
	startGateway(t, dir, listen, env, bin, "run", "--config", conf, "--adapter", "caddyfile")
	g.checkGateway("http://" + listen)
}

func (g *gatewayEnv) configData(dir, listen string) gatewayConfigData {
	return gatewayConfigData{Dir: dir, Listen: listen, Claimbridge: strings.TrimPrefix(g.issuer, "http://"),
		Upstream: g.upstream.addr(), Secret: g.secret}
}

// checkGateway sends requests through a gateway: the upstream receives a
// minted token that verifies through our JWKS and carries permissions,
// never the IdP token; refusals reach the client as 401 and 403 and never
// the upstream.
func (g *gatewayEnv) checkGateway(base string) {
	t := g.t
	subject := g.subject(nil)
	send := func(method, path, auth, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := send(http.MethodGet, "/orders/42", "Bearer "+subject, "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "upstream", resp.Header.Get("X-Echo"), "the upstream's answer reaches the client")
	got := g.upstream.requests()
	require.Len(t, got, 1)
	token := g.requireMinted(got[0], "Authorization", "Bearer ", ordersAudience, subject)

	resp = send(http.MethodPost, "/orders/new", "Bearer "+subject, `{"item":1}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	got = g.upstream.requests()
	require.Len(t, got, 1)
	require.Equal(t, http.MethodPost, got[0].method)
	require.Equal(t, `{"item":1}`, got[0].body, "the body reaches the upstream")
	require.Equal(t, "Bearer "+token, got[0].header.Get("Authorization"), "the same token, from the cache")

	refusals := []struct {
		name, path, auth string
		status           int
	}{
		{"no IdP token", "/orders/1", "", http.StatusUnauthorized},
		{"a forged IdP token", "/orders/1", "Bearer " + subject[:len(subject)-4] + "AAAA", http.StatusUnauthorized},
		{"the policy's condition fails", "/reports/1", "Bearer " + subject, http.StatusForbidden},
	}
	for _, tc := range refusals {
		resp := send(http.MethodGet, tc.path, tc.auth, "")
		require.Equal(t, tc.status, resp.StatusCode, tc.name)
		if tc.status == http.StatusUnauthorized {
			require.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`, tc.name)
		}
		require.Empty(t, g.upstream.requests(), "%s: a refused request never reaches the upstream", tc.name)
	}
}
