package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// serveBaseline serves the yardstick for a load test: the least a token
// exchange can do over HTTP with go-jose and encoding/json — parse the
// form, verify the RS256 subject token with the IdP's first key, copy three
// claims and sign an ES256 token — with no framework, no client
// authentication, no policy and no database. It stops after maxRun.
func serveBaseline(ctx context.Context, addr, jwksURL string, maxRun time.Duration) error {
	resp, err := http.Get(jwksURL)
	if err != nil {
		return err
	}
	var set jose.JSONWebKeySet
	err = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if err != nil || len(set.Keys) == 0 {
		return errors.New("no key in the JWKS")
	}
	idpKey := set.Keys[0]
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		return err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jws, err := jose.ParseSignedCompact(r.PostFormValue("subject_token"), []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		payload, err := jws.Verify(&idpKey)
		var in map[string]any
		if err != nil || json.Unmarshal(payload, &in) != nil {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		out, _ := json.Marshal(map[string]any{"iss": "baseline", "sub": in["sub"], "aud": r.PostFormValue("audience"),
			"exp": time.Now().Add(5 * time.Minute).Unix(), "permissions": in["permissions"]})
		obj, err := signer.Sign(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		tok, _ := obj.CompactSerialize()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 300})
	})
	return serveFor(ctx, addr, h, maxRun)
}

// serveTrivial serves the yardstick for a forward-auth cache hit: the
// least an HTTP handler can do — answer 200 with a fixed Authorization
// header and no body. It stops after maxRun.
func serveTrivial(ctx context.Context, addr string, maxRun time.Duration) error {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Authorization", "Bearer a.fixed.token")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	})
	return serveFor(ctx, addr, h, maxRun)
}

// serveFor serves h on addr, a loopback address only, until ctx ends or
// maxRun has passed.
func serveFor(ctx context.Context, addr string, h http.Handler, maxRun time.Duration) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || !isLoopback(host) {
		return fmt.Errorf("%q: only loopback addresses are allowed", addr)
	}
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, maxRun)
	defer cancel()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
