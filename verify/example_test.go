package verify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/claimbridge/claimbridge/verify"
)

// An upstream behind Claimbridge: the middleware verifies the token, the
// handler reads the subject and the permissions claim.
func ExampleVerifier_Middleware() {
	issuer, mint := fakeClaimbridge() // in production: "https://sts.example.com"

	v, err := verify.New(context.Background(), verify.Config{
		Issuer:   issuer,
		Audience: "https://orders.internal",
	})
	if err != nil {
		log.Fatal(err)
	}
	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := verify.FromContext(r.Context())
		if !slices.Contains(tok.Strings("permissions"), "orders:read") {
			http.Error(w, "orders:read is required", http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "orders of %s", tok.Subject)
	})
	upstream := httptest.NewServer(v.Middleware(orders))
	defer upstream.Close()

	for _, token := range []string{mint([]string{"orders:read"}), mint(nil), ""} {
		req, _ := http.NewRequest(http.MethodGet, upstream.URL, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %q %s\n", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), strings.TrimSpace(string(body)))
	}
	// Output:
	// 200 "" orders of auth0|alice
	// 403 "" orders:read is required
	// 401 "Bearer" a bearer token is required
}

// fakeClaimbridge serves a discovery document and a JWKS, and returns the
// issuer URL and a function that mints access tokens as Claimbridge does.
func fakeClaimbridge() (string, func(permissions []string) string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := jose.JSONWebKey{Key: key, KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux) // never closed: the example's process ends
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "jwks_uri": srv.URL + "/.well-known/jwks.json"})
	})
	mux.HandleFunc("/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk.Public()}})
	})
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jwk},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	mint := func(permissions []string) string {
		payload, _ := json.Marshal(map[string]any{
			"iss": srv.URL, "sub": "auth0|alice", "aud": "https://orders.internal", "client_id": "gateway",
			"iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix(), "permissions": permissions,
		})
		jws, _ := signer.Sign(payload)
		raw, _ := jws.CompactSerialize()
		return raw
	}
	return srv.URL, mint
}
