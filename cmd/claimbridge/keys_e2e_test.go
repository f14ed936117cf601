package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/keys"
	"github.com/claimbridge/claimbridge/postgres"
)

// jwks fetches the replica's JWKS; it returns the kids and Cache-Control.
func (env *testEnv) jwks() (jose.JSONWebKeySet, string) {
	env.t.Helper()
	resp, err := env.http.Get(env.issuer + "/.well-known/jwks.json")
	require.NoError(env.t, err)
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	require.NoError(env.t, json.NewDecoder(resp.Body).Decode(&set))
	return set, resp.Header.Get("Cache-Control")
}

func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

// verifyThroughJWKS verifies token as an upstream does, with the replica's
// JWKS, and returns its kid.
func (env *testEnv) verifyThroughJWKS(token string) string {
	env.t.Helper()
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	require.NoError(env.t, err)
	set, _ := env.jwks()
	kid := jws.Signatures[0].Protected.KeyID
	found := set.Key(kid)
	require.Len(env.t, found, 1, "kid %s is published", kid)
	_, err = jws.Verify(found[0])
	require.NoError(env.t, err)
	return kid
}

// mint exchanges a fresh subject token and returns the access token.
func (env *testEnv) mint(secret string) string {
	env.t.Helper()
	status, body, _ := env.exchange("gateway", secret, exchangeForm(env.subject(nil)))
	require.Equal(env.t, http.StatusOK, status, body)
	return body["access_token"].(string)
}

// within polls cond for up to d.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rotateRaw posts keys:rotate from any goroutine and returns the status and
// the kids it created.
func (env *testEnv) rotateRaw() (int, []string) {
	req, _ := http.NewRequest(http.MethodPost, env.adminURL+"/keys:rotate", nil)
	req.Header.Set("Authorization", "Bearer "+env.adminToken)
	resp, err := env.http.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var out struct {
		Items []struct {
			Created bool
			Key     struct{ KID string }
		}
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	var created []string
	for _, it := range out.Items {
		if it.Created {
			created = append(created, it.Key.KID)
		}
	}
	return resp.StatusCode, created
}

type keyItem struct {
	KID         string    `json:"kid"`
	State       string    `json:"state"`
	ActivatesAt time.Time `json:"activates_at"`
}

func (env *testEnv) listKeys() []keyItem {
	env.t.Helper()
	var out struct{ Items []keyItem }
	env.mustAdmin(http.StatusOK, http.MethodGet, "/keys", nil, &out)
	return out.Items
}

// TestKeysTwoReplicas runs two replicas on one database, with an hour
// between periodic reloads and lifecycle checks so that only LISTEN/NOTIFY
// can carry a change: concurrent rotations on both make exactly one new
// key, which the other replica publishes within a second; an emergency
// revoke on one stops both from publishing and signing with the key within
// a second.
func TestKeysTwoReplicas(t *testing.T) {
	slow := []string{"--reload-interval", "1h", "--key-check-interval", "4m"}
	a := newEnv(t)
	a.start(slow)
	b := &testEnv{t: t, databaseURL: a.databaseURL, kek: a.kek, adminToken: a.adminToken, idp: a.idp}
	b.start(slow)
	secret := a.seed()
	first := a.listKeys()
	require.Len(t, first, 1, "two replicas starting on one database agree on one key")
	b.eventually("the other replica serves the policy", func() bool {
		status, _, _ := b.exchange("gateway", secret, exchangeForm(b.subject(nil)))
		return status == http.StatusOK
	})
	tokenBefore := b.mint(secret)

	var wg sync.WaitGroup
	var mu sync.Mutex
	var created []string
	for i := range 12 {
		env := []*testEnv{a, b}[i%2]
		wg.Go(func() {
			status, kids := env.rotateRaw()
			if status != http.StatusAccepted {
				t.Errorf("rotate: status %d", status)
			}
			mu.Lock()
			created = append(created, kids...)
			mu.Unlock()
		})
	}
	wg.Wait()
	rotated := time.Now()
	require.Len(t, created, 1, "exactly one new key from 12 concurrent rotations on two replicas")
	next := created[0]
	for _, env := range []*testEnv{a, b} {
		within(t, time.Second-time.Since(rotated), "the new key in a replica's JWKS", func() bool {
			set, _ := env.jwks()
			return slicesContains(kids(set), next)
		})
	}
	ks := b.listKeys()
	require.Len(t, ks, 2)
	require.Equal(t, "next", ks[1].State)
	require.WithinDuration(t, rotated.Add(time.Hour), ks[1].ActivatesAt, time.Minute, "signs after the lead time")
	require.Equal(t, first[0].KID, b.verifyThroughJWKS(b.mint(secret)), "the next key does not sign yet")

	var res struct {
		Revoked     keyItem
		Replacement keyItem
		Consequence string
	}
	a.mustAdmin(http.StatusOK, http.MethodPost, "/keys:revoke", map[string]string{"kid": first[0].KID, "reason": "e2e"}, &res)
	revoked := time.Now()
	require.Equal(t, "revoked", res.Revoked.State)
	require.Contains(t, res.Consequence, "max-age 5m0s")
	within(t, time.Second-time.Since(revoked), "the other replica drops the revoked key and signs with the fresh one", func() bool {
		set, _ := b.jwks()
		status, body, _ := b.exchange("gateway", secret, exchangeForm(b.subject(nil)))
		return !slicesContains(kids(set), first[0].KID) && status == http.StatusOK &&
			jwtHeader(t, body["access_token"].(string))["kid"] == res.Replacement.KID
	})
	set, _ := b.jwks()
	require.Nil(t, set.Key(tokenKID(t, tokenBefore)), "tokens of the revoked key no longer verify")
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func jwtHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	return decodeSegment(t, strings.Split(token, ".")[0])
}

func tokenKID(t *testing.T, token string) string {
	t.Helper()
	return jwtHeader(t, token)["kid"].(string)
}

// TestKeysLifecycleRealTime runs a short schedule on a real server: a
// rotation publishes a key that starts signing after the 4s lead time;
// tokens minted before still verify through the JWKS; max-age follows the
// schedule; /metrics reports the lifecycle; nothing secret reaches the log.
func TestKeysLifecycleRealTime(t *testing.T) {
	env := newEnv(t)
	env.start([]string{"--key-lead-time", "4s", "--key-check-interval", "1s", "--key-rotation-period", "1h"})
	secret := env.seed()
	before := env.mint(secret)
	_, cacheControl := env.jwks()
	require.Equal(t, "public, max-age=2", cacheControl, "max-age is capped at half the lead time")

	var rot struct{ Items []struct{ Key keyItem } }
	env.mustAdmin(http.StatusAccepted, http.MethodPost, "/keys:rotate", map[string]string{"algorithm": "ES256"}, &rot)
	next := rot.Items[0].Key.KID
	secrets := storedSecrets(t, env)
	require.Len(t, secrets, 2*4, "the active and the next key")
	set, _ := env.jwks()
	require.Contains(t, kids(set), next, "published at once")
	require.NotEqual(t, next, tokenKID(t, env.mint(secret)), "not signing before the lead time")

	env.eventually("the next key signs after the lead time", func() bool { return tokenKID(t, env.mint(secret)) == next })
	require.NotEqual(t, next, env.verifyThroughJWKS(before), "a token minted before the rotation verifies after it")
	states := map[string]string{}
	for _, k := range env.listKeys() {
		states[k.KID] = k.State
	}
	require.Equal(t, map[string]string{tokenKID(t, before): "retired", next: "active"}, states)

	resp, err := env.http.Get(strings.TrimSuffix(env.adminURL, "/admin/v1") + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "no authentication")
	require.Contains(t, string(body), `claimbridge_signing_key_active_age_seconds{alg="ES256"}`)
	require.Contains(t, string(body), `claimbridge_signing_key_next_rotation_seconds{alg="ES256"}`)

	logs := env.logs.String()
	require.Contains(t, logs, "signing key activated")
	for _, s := range secrets {
		require.NotContains(t, logs, s, "private material in the log")
	}
}

// storedSecrets opens every sealed key in the database with the env's KEK
// and returns the private scalars in the encodings a log could show.
func storedSecrets(t *testing.T, env *testEnv) []string {
	t.Helper()
	store, err := postgres.Open(context.Background(), env.databaseURL)
	require.NoError(t, err)
	defer store.Close()
	kek, err := keys.ParseKEK(env.kek)
	require.NoError(t, err)
	ks, err := store.Keys(context.Background())
	require.NoError(t, err)
	var out []string
	for _, k := range ks {
		if len(k.Sealed) == 0 {
			continue
		}
		priv, err := keys.Open(k, kek)
		require.NoError(t, err)
		d, err := priv.(*ecdsa.PrivateKey).Bytes()
		require.NoError(t, err)
		out = append(out, hex.EncodeToString(d), base64.RawURLEncoding.EncodeToString(d), base64.StdEncoding.EncodeToString(d),
			base64.StdEncoding.EncodeToString(k.Sealed))
	}
	return out
}

// keysCLI runs `claimbridge keys ARGS` with the env's database and the
// given environment.
func keysCLI(t *testing.T, env *testEnv, vars map[string]string, args ...string) (string, error) {
	t.Helper()
	vars["CLAIMBRIDGE_DATABASE_URL"] = env.databaseURL
	vars["USER"] = "tester"
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"keys"}, args...), mapEnv(vars), &out, &errOut)
	return out.String() + errOut.String(), err
}

// TestKeysCLIAndRewrap: the CLI lists, rotates and revokes on a running
// cluster, and a KEK switch goes without downtime: serve with both KEKs,
// rewrap, serve with the new one alone. A wrong KEK fails the start.
func TestKeysCLIAndRewrap(t *testing.T) {
	env := newEnv(t)
	env.start(nil)
	secret := env.seed()
	oldKEK := env.kek
	first := env.listKeys()[0].KID

	out, err := keysCLI(t, env, map[string]string{}, "list")
	require.NoError(t, err, out)
	require.Contains(t, out, first)
	require.Contains(t, out, "active")

	out, err = keysCLI(t, env, map[string]string{"CLAIMBRIDGE_KEK": oldKEK}, "retire", "--algorithm", "ES256")
	require.ErrorContains(t, err, "configured here", "the default algorithm cannot be retired while configured")
	out, err = keysCLI(t, env, map[string]string{"CLAIMBRIDGE_KEK": oldKEK}, "retire", "--algorithm", "EdDSA")
	require.ErrorContains(t, err, "no active or next key", "nothing to retire")
	out, err = keysCLI(t, env, map[string]string{"CLAIMBRIDGE_KEK": oldKEK}, "retire")
	require.ErrorContains(t, err, "--algorithm is required", out)

	// Switch the KEK: every replica gets the new one and keeps the old one.
	newKEK := randomSecret()
	oldFile := filepath.Join(t.TempDir(), "old-kek")
	require.NoError(t, os.WriteFile(oldFile, []byte(oldKEK), 0o600))
	env.stop()
	env.kek = newKEK
	env.start([]string{"--old-kek-file", oldFile})
	before := env.mint(secret)

	out, err = keysCLI(t, env, map[string]string{"CLAIMBRIDGE_KEK": newKEK}, "rotate")
	require.NoError(t, err, out)
	require.Contains(t, out, "is published in the JWKS")
	env.eventually("the CLI's key is published", func() bool { set, _ := env.jwks(); return len(set.Keys) == 2 })

	out, err = keysCLI(t, env, map[string]string{"CLAIMBRIDGE_KEK": newKEK}, "rewrap")
	require.ErrorContains(t, err, "old-kek", "rewrap needs the old KEK")
	out, err = keysCLI(t, env, map[string]string{"CLAIMBRIDGE_KEK": newKEK, "CLAIMBRIDGE_OLD_KEK": oldKEK}, "rewrap")
	require.NoError(t, err, out)
	require.Contains(t, out, "Re-sealed 1 private keys")
	require.Contains(t, out, first)
	env.verifyThroughJWKS(env.mint(secret))

	// The new KEK alone serves; the old one alone no longer starts.
	env.stop()
	env.start(nil)
	require.Equal(t, first, env.verifyThroughJWKS(env.mint(secret)))
	env.verifyThroughJWKS(before)
	env.stop()
	var logs bytes.Buffer
	err = run(context.Background(), []string{"serve", "--database-url", env.databaseURL, "--issuer", "http://127.0.0.1:1",
		"--public-addr", freeAddr(t), "--admin-addr", freeAddr(t)},
		mapEnv(map[string]string{"CLAIMBRIDGE_KEK": oldKEK, "CLAIMBRIDGE_ADMIN_TOKENS": env.adminToken}), io.Discard, &logs)
	require.ErrorIs(t, err, keys.ErrWrongKEK)
	require.ErrorContains(t, err, "configure the KEK it was sealed with")

	env.start(nil)
	out, err = keysCLI(t, env, map[string]string{"CLAIMBRIDGE_KEK": newKEK}, "revoke", "--reason", "cli test", first)
	require.NoError(t, err, out)
	require.Contains(t, out, "is revoked and no longer published")
	env.eventually("the revoke reaches the server", func() bool {
		set, _ := env.jwks()
		return !slicesContains(kids(set), first)
	})
	_, err = keysCLI(t, env, map[string]string{"CLAIMBRIDGE_KEK": newKEK}, "revoke", first)
	require.ErrorIs(t, err, keys.ErrKeyGone)

	var audit struct {
		Items []struct{ Actor, Action, Name string }
	}
	env.mustAdmin(http.StatusOK, http.MethodGet, "/audit?kind=key", nil, &audit)
	var actions []string
	for _, e := range audit.Items {
		if e.Actor == "cli:tester" {
			actions = append(actions, e.Action+" "+e.Name)
		}
	}
	require.Contains(t, actions, "revoke "+first)
	require.Contains(t, actions, "rewrap "+first)
}
