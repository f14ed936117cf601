package api_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/api"
	"github.com/claimbridge/claimbridge/keys"
)

// memKeys is a keys.LifecycleStore over a slice.
type memKeys struct {
	mu   sync.Mutex
	keys []keys.Key
}

func (s *memKeys) Keys(context.Context) ([]keys.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys), nil
}

func (s *memKeys) EnsureActiveKey(context.Context, func() (keys.Key, error)) error { return nil }

func (s *memKeys) UpdateKeys(_ context.Context, plan func([]keys.Key) (keys.Changes, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := plan(slices.Clone(s.keys))
	if err != nil {
		return err
	}
	for _, u := range c.Update {
		s.keys[slices.IndexFunc(s.keys, func(k keys.Key) bool { return k.ID == u.ID })] = u
	}
	s.keys = append(s.keys, c.Insert...)
	return nil
}

// keysAdmin is an admin server over a real ring; secrets lists every
// private value the store ever held, in the encodings it could leak in.
type keysAdmin struct {
	t       *testing.T
	h       http.Handler
	store   *memKeys
	kek     *keys.KEK
	secrets []string
}

func newKeysAdmin(t *testing.T) *keysAdmin {
	kek, err := keys.ParseKEK(strings.Repeat("ab", 32))
	require.NoError(t, err)
	store := &memKeys{}
	ring := keys.NewRing(store, kek, keys.RingOptions{Now: func() time.Time { return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC) }})
	require.NoError(t, ring.Init(context.Background()))
	h := api.NewAdmin(api.AdminConfig{
		Store: fakeStore{}, Tokens: []string{writeToken}, ReadTokens: []string{readToken},
		Keys: ring, Logger: slog.New(slog.DiscardHandler),
	})
	return &keysAdmin{t: t, h: h, store: store, kek: kek}
}

// collect remembers the private values of every key that has one.
func (a *keysAdmin) collect() {
	ks, _ := a.store.Keys(context.Background())
	for _, k := range ks {
		if len(k.Sealed) == 0 {
			continue
		}
		priv, err := keys.Open(k, a.kek)
		require.NoError(a.t, err)
		d, err := priv.(*ecdsa.PrivateKey).Bytes()
		require.NoError(a.t, err)
		a.secrets = append(a.secrets, hex.EncodeToString(d), base64.RawURLEncoding.EncodeToString(d), base64.StdEncoding.EncodeToString(d),
			base64.StdEncoding.EncodeToString(k.Sealed))
	}
}

// do sends a request and returns the status and body, checking that the
// body holds no private material.
func (a *keysAdmin) do(token, method, path, body string) (int, map[string]any) {
	a.t.Helper()
	a.collect()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	for _, s := range a.secrets {
		require.NotContains(a.t, rec.Body.String(), s, "private material in a response")
	}
	require.NotContains(a.t, rec.Body.String(), "sealed")
	var out map[string]any
	require.NoError(a.t, json.Unmarshal(rec.Body.Bytes(), &out), rec.Body.String())
	return rec.Code, out
}

func TestKeysAdminAPI(t *testing.T) {
	a := newKeysAdmin(t)
	status, list := a.do(readToken, "GET", "/admin/v1/keys", "")
	require.Equal(t, http.StatusOK, status)
	items := list["items"].([]any)
	require.Len(t, items, 1)
	active := items[0].(map[string]any)
	require.Equal(t, "active", active["state"])
	require.Equal(t, "ES256", active["alg"])
	require.Equal(t, active["kid"], active["public_jwk"].(map[string]any)["kid"])
	require.Equal(t, map[string]any{"rotation_period_seconds": 2592000.0, "lead_time_seconds": 3600.0,
		"retire_grace_seconds": 86700.0, "jwks_max_age_seconds": 300.0}, list["schedule"])

	status, _ = a.do(readToken, "POST", "/admin/v1/keys:rotate", "")
	require.Equal(t, http.StatusForbidden, status, "the read role cannot rotate")

	status, rot := a.do(writeToken, "POST", "/admin/v1/keys:rotate", "")
	require.Equal(t, http.StatusAccepted, status)
	r := rot["items"].([]any)[0].(map[string]any)
	require.Equal(t, true, r["created"])
	require.Equal(t, active["kid"], r["replaces"])
	require.Equal(t, "next", r["key"].(map[string]any)["state"])
	require.Equal(t, "2025-06-01T13:00:00Z", r["key"].(map[string]any)["activates_at"])
	require.Contains(t, r["detail"], "after the lead time of 1h0m0s")

	status, again := a.do(writeToken, "POST", "/admin/v1/keys:rotate", `{"algorithm":"ES256"}`)
	require.Equal(t, http.StatusAccepted, status)
	require.Equal(t, false, again["items"].([]any)[0].(map[string]any)["created"], "the pending next key is kept")

	tests := []struct {
		name, path, body string
		status           int
		field            string // the faulty field, if any
	}{
		{"rotate an algorithm not configured", "/admin/v1/keys:rotate", `{"algorithm":"RS256"}`, 400, "algorithm"},
		{"rotate with an unknown field", "/admin/v1/keys:rotate", `{"alg":"ES256"}`, 400, "alg"},
		{"revoke without kid", "/admin/v1/keys:revoke", `{}`, 400, "kid"},
		{"revoke with a long reason", "/admin/v1/keys:revoke", `{"kid":"x","reason":"` + strings.Repeat("x", 501) + `"}`, 400, "reason"},
		{"revoke an unknown kid", "/admin/v1/keys:revoke", `{"kid":"no-such-kid"}`, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, p := a.do(writeToken, "POST", tt.path, tt.body)
			require.Equal(t, tt.status, status, p)
			if tt.field != "" {
				require.Equal(t, tt.field, p["errors"].([]any)[0].(map[string]any)["field"])
			}
		})
	}

	status, res := a.do(writeToken, "POST", "/admin/v1/keys:revoke", `{"kid":"`+active["kid"].(string)+`","reason":"leaked"}`)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "revoked", res["revoked"].(map[string]any)["state"])
	require.Equal(t, "active", res["replacement"].(map[string]any)["state"])
	require.Contains(t, res["consequence"], "keep accepting them until their copy expires (max-age 5m0s)")
	status, _ = a.do(writeToken, "POST", "/admin/v1/keys:revoke", `{"kid":"`+active["kid"].(string)+`"}`)
	require.Equal(t, http.StatusConflict, status, "a key is revoked once")

	_, list = a.do(readToken, "GET", "/admin/v1/keys", "")
	var states []string
	for _, it := range list["items"].([]any) {
		k := it.(map[string]any)
		states = append(states, k["state"].(string))
		if k["state"] == "revoked" {
			require.NotContains(t, k, "kek_id", "a wiped key names no KEK")
			require.NotEmpty(t, k["removed_at"])
		}
	}
	require.Equal(t, []string{"revoked", "next", "active"}, states)
	require.NotEmpty(t, a.secrets)
}

func TestKeysAdminNotConfigured(t *testing.T) {
	h := api.NewAdmin(api.AdminConfig{Store: fakeStore{}, Tokens: []string{writeToken}, Logger: slog.New(slog.DiscardHandler)})
	for _, r := range []struct{ method, path string }{
		{"GET", "/admin/v1/keys"}, {"POST", "/admin/v1/keys:rotate"}, {"POST", "/admin/v1/keys:revoke"},
	} {
		req := httptest.NewRequest(r.method, r.path, nil)
		req.Header.Set("Authorization", "Bearer "+writeToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusServiceUnavailable, rec.Code, r.path)
		require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
	}
}

func TestMetricsEndpoint(t *testing.T) {
	get := func(h http.Handler) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec
	}
	cfg := api.AdminConfig{Store: fakeStore{}, Tokens: []string{writeToken}, Logger: slog.New(slog.DiscardHandler)}
	require.Equal(t, http.StatusNotFound, get(api.NewAdmin(cfg)).Code)

	cfg.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte("up 1\n"))
	})
	rec := get(api.NewAdmin(cfg))
	require.Equal(t, http.StatusOK, rec.Code, "served without a token")
	require.Equal(t, "up 1\n", rec.Body.String())
}
