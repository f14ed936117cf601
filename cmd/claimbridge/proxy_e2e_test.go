package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// startProxy runs `claimbridge proxy` for audience in front of the echo
// upstream until the test ends, reading the IdP token from tokenHeader
// (as Pomerium's ${pomerium.access_token} would send it), and returns its
// base URL.
func (g *gatewayEnv) startProxy(audience, tokenHeader string) string {
	t := g.t
	listen := freeAddr(t)
	args := []string{"proxy", "--listen", listen, "--upstream", g.upstream.srv.URL, "--token-url", g.issuer + "/oauth2/token",
		"--client-id", "gateway", "--audience", audience, "--token-header", tokenHeader, "--strip-headers", "X-Pomerium-Jwt-Assertion"}
	getenv := mapEnv(map[string]string{"CLAIMBRIDGE_CLIENT_SECRET": g.secret})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logs := &syncBuffer{}
	go func() { done <- run(ctx, args, getenv, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "proxy logs:\n%s", logs)
		case <-time.After(20 * time.Second):
			t.Errorf("the proxy did not stop")
		}
		require.NotContains(t, logs.String(), g.secret, "the client secret is never logged")
	})
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "proxy logs:\n%s", logs)
	return "http://" + listen
}

// TestProxyEndToEnd: the sidecar in front of an upstream, against the real
// token endpoint: the upstream gets a minted token, never the IdP token;
// refusals are answered by the sidecar.
func TestProxyEndToEnd(t *testing.T) {
	g := startGatewayEnv(t)
	orders := g.startProxy(ordersAudience, "X-Forwarded-Access-Token")
	reports := g.startProxy(reportsAudience, "X-Forwarded-Access-Token")
	subject := g.subject(nil)
	send := func(base, path, token string) *http.Response {
		req, err := http.NewRequest(http.MethodPut, base+path, strings.NewReader("payload"))
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("X-Forwarded-Access-Token", token)
		}
		req.Header.Set("X-Pomerium-Jwt-Assertion", "gateway-assertion")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	var first string
	for range 2 {
		resp := send(orders, "/orders/7", subject)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "upstream", resp.Header.Get("X-Echo"))
		got := g.upstream.requests()
		require.Len(t, got, 1)
		require.Equal(t, "payload", got[0].body)
		require.Empty(t, got[0].header.Get("X-Pomerium-Jwt-Assertion"), "--strip-headers")
		token := g.requireMinted(got[0], "Authorization", "Bearer ", ordersAudience, subject)
		if first == "" {
			first = token
		}
		require.Equal(t, first, token, "the sidecar's cache serves the second request")
	}
	refusals := []struct {
		name, base, token string
		status            int
	}{
		{"no IdP token", orders, "", http.StatusUnauthorized},
		{"an expired IdP token", orders, g.subject(map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}), http.StatusUnauthorized},
		{"the policy's condition fails", reports, subject, http.StatusForbidden},
	}
	for _, tc := range refusals {
		resp := send(tc.base, "/x", tc.token)
		require.Equal(t, tc.status, resp.StatusCode, tc.name)
		require.Empty(t, g.upstream.requests(), "%s: a refused request never reaches the upstream", tc.name)
	}
}
