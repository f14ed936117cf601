package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"
)

// fakeIssuer serves discovery and a JWKS and mints tokens for the audience.
func fakeIssuer(t *testing.T) (string, func(permissions []string) string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	jwk := jose.JSONWebKey{Key: key, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "jwks_uri": srv.URL + "/jwks"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk.Public()}})
	})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jwk}, (&jose.SignerOptions{}).WithType("at+jwt"))
	require.NoError(t, err)
	return srv.URL, func(permissions []string) string {
		payload, _ := json.Marshal(map[string]any{"iss": srv.URL, "sub": "auth0|alice", "aud": "https://orders.internal",
			"client_id": "gateway", "scope": "orders:read", "exp": time.Now().Add(time.Minute).Unix(), "permissions": permissions})
		jws, err := signer.Sign(payload)
		require.NoError(t, err)
		raw, err := jws.CompactSerialize()
		require.NoError(t, err)
		return raw
	}
}

// TestUpstream runs the example as its main does and checks 200, 403 and 401.
func TestUpstream(t *testing.T) {
	issuer, mint := fakeIssuer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", addr, "--issuer", issuer, "--require", "orders:read, orders:write"}, io.Discard)
	}()
	get := func(token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/orders", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	require.Eventually(t, func() bool { s, _ := get(""); return s == http.StatusUnauthorized }, 5*time.Second, 10*time.Millisecond)

	status, body := get(mint([]string{"orders:read", "orders:write", "invoices:read"}))
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, "auth0|alice", body["sub"])
	require.Equal(t, []any{"orders:read", "orders:write", "invoices:read"}, body["permissions"])

	status, body = get(mint([]string{"orders:read"}))
	require.Equal(t, http.StatusForbidden, status)
	require.Equal(t, "the token lacks the permission orders:write", body["error_description"])

	cancel()
	require.NoError(t, <-done)
}

func TestUpstreamFlags(t *testing.T) {
	ctx := context.Background()
	require.Error(t, run(ctx, []string{"--nope"}, io.Discard))
	require.ErrorContains(t, run(ctx, []string{"extra"}, io.Discard), "unexpected arguments")
	require.ErrorContains(t, run(ctx, []string{"--issuer", "http://127.0.0.1:1"}, io.Discard), "keys are unavailable")
	require.Equal(t, []string{"a", "b"}, splitList(" a,,b ,"))
}
