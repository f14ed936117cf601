package sidecar_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/sidecar"
	"github.com/claimbridge/claimbridge/sts"
)

const (
	idpToken = "idp.token.value"
	secret   = "sidecar-secret/with+odd=chars"
)

// tokenService is a fake RFC 8693 token endpoint: it mints "minted-N" for
// the IdP token, or answers the error it is told to.
type tokenService struct {
	srv    *httptest.Server
	calls  atomic.Int64
	status atomic.Int64 // 0: success
	errJS  atomic.Pointer[string]
	reason atomic.Pointer[string]
}

func newTokenService(t *testing.T) *tokenService {
	ts := &tokenService{}
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := ts.calls.Add(1)
		id, sec, ok := r.BasicAuth()
		id, _ = url.QueryUnescape(id)
		sec, _ = url.QueryUnescape(sec)
		w.Header().Set("Content-Type", "application/json")
		if !ok || id != "sidecar" || sec != secret {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		if err := r.ParseForm(); err != nil || r.PostForm.Get("subject_token") != idpToken ||
			r.PostForm.Get("grant_type") != sts.GrantTypeTokenExchange || r.PostForm.Get("audience") != "https://orders.internal" ||
			r.PostForm.Get("subject_token_type") != sts.TokenTypeAccessToken || r.PostForm.Get("scope") != "orders:read" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_request","error_description":"unexpected form"}`)
			return
		}
		if st := ts.status.Load(); st != 0 {
			if p := ts.reason.Load(); p != nil {
				w.Header().Set("X-Claimbridge-Reason", *p)
			}
			w.WriteHeader(int(st))
			fmt.Fprint(w, *ts.errJS.Load())
			return
		}
		fmt.Fprintf(w, `{"access_token":"minted-%d","issued_token_type":%q,"token_type":"Bearer","expires_in":300}`, n, sts.TokenTypeAccessToken)
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *tokenService) fail(status int, body, reason string) {
	ts.status.Store(int64(status))
	ts.errJS.Store(&body)
	if reason != "" {
		ts.reason.Store(&reason)
	}
}

// upstream records the requests it gets.
type upstream struct {
	srv     *httptest.Server
	mu      sync.Mutex
	headers []http.Header
	bodies  []string
}

func newUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.headers = append(u.headers, r.Header.Clone())
		u.bodies = append(u.bodies, string(body))
		u.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("X-Upstream", "yes")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, "created")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) seen() []http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]http.Header(nil), u.headers...)
}

func newProxy(t *testing.T, ts *tokenService, up *upstream, change func(*sidecar.Config)) *httptest.Server {
	t.Helper()
	target, err := url.Parse(up.srv.URL)
	require.NoError(t, err)
	cfg := sidecar.Config{Upstream: target, TokenURL: ts.srv.URL + "/oauth2/token", ClientID: "sidecar", ClientSecret: secret,
		Audiences: []string{"https://orders.internal"}, Scopes: []string{"orders:read"}}
	if change != nil {
		change(&cfg)
	}
	p, err := sidecar.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv
}

func TestProxyExchangesAndStrips(t *testing.T) {
	ts, up := newTokenService(t), newUpstream(t, nil)
	srv := newProxy(t, ts, up, func(c *sidecar.Config) {
		c.TokenHeader = "X-Forwarded-Access-Token"
		c.StripHeaders = []string{"X-Pomerium-Jwt-Assertion"}
	})
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/orders?x=1", strings.NewReader("hello"))
		req.Header.Set("X-Forwarded-Access-Token", idpToken)
		req.Header.Set("X-Pomerium-Jwt-Assertion", "assertion")
		req.Header.Set("Authorization", "Bearer "+idpToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusCreated, resp.StatusCode, "attempt %d", i)
		require.Equal(t, "yes", resp.Header.Get("X-Upstream"), "the upstream's headers are kept")
		require.Equal(t, "created", string(body))
	}
	require.EqualValues(t, 1, ts.calls.Load(), "one exchange, then the cache")
	for _, h := range up.seen() {
		require.Equal(t, "Bearer minted-1", h.Get("Authorization"), "the minted token replaces the Authorization header")
		require.Empty(t, h.Get("X-Forwarded-Access-Token"))
		require.Empty(t, h.Get("X-Pomerium-Jwt-Assertion"))
		for k, vs := range h {
			for _, v := range vs {
				require.NotContains(t, v, idpToken, "header %s carries the IdP token", k)
			}
		}
	}
	require.Equal(t, "hello", up.bodies[0])
}

func TestProxyUpstreamHeader(t *testing.T) {
	ts, up := newTokenService(t), newUpstream(t, nil)
	srv := newProxy(t, ts, up, func(c *sidecar.Config) { c.UpstreamHeader = "X-Internal-Token" })
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Authorization", "Bearer "+idpToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	h := up.seen()[0]
	require.Equal(t, "minted-1", h.Get("X-Internal-Token"))
	require.Empty(t, h.Get("Authorization"), "the IdP token's header is removed")
}

// TestProxyRefusals: the sidecar answers refusals itself and the upstream
// sees nothing.
func TestProxyRefusals(t *testing.T) {
	cases := []struct {
		name    string
		auth    string
		setup   func(ts *tokenService)
		creds   string // a wrong client secret when set
		stopSTS bool
		status  int
		reason  string
	}{
		{name: "no IdP token", status: 401, reason: "invalid_token"},
		{name: "another scheme", auth: "Basic Zm9vOmJhcg==", status: 401, reason: "invalid_token"},
		{name: "Claimbridge: invalid subject token", auth: "Bearer " + idpToken, status: 401, reason: "invalid_token",
			setup: func(ts *tokenService) {
				ts.fail(400, `{"error":"invalid_request","error_description":"expired"}`, "invalid_token")
			}},
		{name: "Claimbridge: a condition fails", auth: "Bearer " + idpToken, status: 403, reason: "invalid_request",
			setup: func(ts *tokenService) {
				ts.fail(400, `{"error":"invalid_request","error_description":"condition"}`, "invalid_request")
			}},
		{name: "another service: invalid_request", auth: "Bearer " + idpToken, status: 401, reason: "invalid_token",
			setup: func(ts *tokenService) { ts.fail(400, `{"error":"invalid_request"}`, "") }},
		{name: "client not allowed", auth: "Bearer " + idpToken, status: 403, reason: "unauthorized_client",
			setup: func(ts *tokenService) { ts.fail(400, `{"error":"unauthorized_client"}`, "") }},
		{name: "no policy", auth: "Bearer " + idpToken, status: 403, reason: "invalid_target",
			setup: func(ts *tokenService) { ts.fail(400, `{"error":"invalid_target"}`, "") }},
		{name: "the sidecar's credentials", auth: "Bearer " + idpToken, creds: "wrong", status: 502, reason: "temporarily_unavailable"},
		{name: "server_error", auth: "Bearer " + idpToken, status: 502, reason: "temporarily_unavailable",
			setup: func(ts *tokenService) { ts.fail(500, `{"error":"server_error"}`, "") }},
		{name: "not JSON", auth: "Bearer " + idpToken, status: 502, reason: "temporarily_unavailable",
			setup: func(ts *tokenService) { ts.fail(200, `<html>`, "") }},
		{name: "unreachable", auth: "Bearer " + idpToken, stopSTS: true, status: 502, reason: "temporarily_unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts, up := newTokenService(t), newUpstream(t, nil)
			if tc.setup != nil {
				tc.setup(ts)
			}
			srv := newProxy(t, ts, up, func(c *sidecar.Config) {
				if tc.creds != "" {
					c.ClientSecret = tc.creds
				}
			})
			if tc.stopSTS {
				ts.srv.Close()
			}
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/orders", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, tc.status, resp.StatusCode, string(body))
			require.Equal(t, tc.reason, resp.Header.Get("X-Claimbridge-Reason"))
			if tc.status == 401 {
				require.Equal(t, `Bearer realm="claimbridge", error="invalid_token"`, resp.Header.Get("WWW-Authenticate"))
			}
			var e map[string]string
			require.NoError(t, json.Unmarshal(body, &e))
			require.Equal(t, tc.reason, e["error"])
			require.NotContains(t, string(body), idpToken)
			require.Empty(t, up.seen(), "a refused request never reaches the upstream")
		})
	}
}

// TestProxyStreams: the upstream's response reaches the client as it is
// written, and a request body is passed on while it is being sent.
func TestProxyStreams(t *testing.T) {
	release := make(chan struct{})
	up := newUpstream(t, nil)
	up.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		buf := make([]byte, 5)
		_, err := io.ReadFull(r.Body, buf) // the first part, while the client still sends
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "got %s\n", buf)
		w.(http.Flusher).Flush()
		<-release
		rest, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "then %s\n", rest)
	})
	ts := newTokenService(t)
	srv := newProxy(t, ts, up, nil)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/stream", pr)
	req.Header.Set("Authorization", "Bearer "+idpToken)
	go func() { _, _ = pw.Write([]byte("first")) }()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	line, err := rd.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "got first\n", line, "the first part went through before the body was complete")
	_, _ = pw.Write([]byte("second"))
	pw.Close()
	close(release)
	line, err = rd.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "then second\n", line)
}

// TestProxyUpgrade: a websocket handshake (any Upgrade) passes through and
// the connection then carries bytes both ways.
func TestProxyUpgrade(t *testing.T) {
	var sawToken atomic.Pointer[string]
	up := newUpstream(t, nil)
	up.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("Authorization")
		sawToken.Store(&tok)
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		_, _ = io.Copy(conn, brw) // echo
	})
	srv := newProxy(t, newTokenService(t), up, nil)
	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAuthorization: Bearer %s\r\n\r\n", idpToken)
	rd := bufio.NewReader(conn)
	resp, err := http.ReadResponse(rd, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	_, err = conn.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(rd, buf)
	require.NoError(t, err)
	require.Equal(t, "ping", string(buf))
	require.Equal(t, "Bearer minted-1", *sawToken.Load())
}

func TestNewChecksConfig(t *testing.T) {
	up, _ := url.Parse("http://127.0.0.1:1")
	good := sidecar.Config{Upstream: up, TokenURL: "http://127.0.0.1:2/oauth2/token", ClientID: "a", ClientSecret: "b", Audiences: []string{"x"}}
	_, err := sidecar.New(good)
	require.NoError(t, err)
	for name, change := range map[string]func(c *sidecar.Config){
		"no upstream":  func(c *sidecar.Config) { c.Upstream = nil },
		"relative":     func(c *sidecar.Config) { c.Upstream = &url.URL{Path: "/x"} },
		"no token URL": func(c *sidecar.Config) { c.TokenURL = "" },
		"no secret":    func(c *sidecar.Config) { c.ClientSecret = "" },
		"no audience":  func(c *sidecar.Config) { c.Audiences = nil },
	} {
		c := good
		change(&c)
		_, err := sidecar.New(c)
		require.Error(t, err, name)
	}
}
