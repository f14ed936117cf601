package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/postgres"
	"github.com/claimbridge/claimbridge/postgres/pgtest"
)

type problemBody struct {
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"errors"`
}

func (p problemBody) fields() []string {
	var f []string
	for _, e := range p.Errors {
		f = append(f, e.Field)
	}
	return f
}

func TestAdminCRUDAndValidation(t *testing.T) {
	env := startEnv(t)

	t.Run("authentication", func(t *testing.T) {
		require.Equal(t, http.StatusUnauthorized, env.adminAs("", http.MethodGet, "/issuers", nil, nil))
		require.Equal(t, http.StatusUnauthorized, env.adminAs("wrong-token-0123456789", http.MethodGet, "/issuers", nil, nil))
	})

	t.Run("issuer", func(t *testing.T) {
		body := map[string]any{"issuer": env.idp.Issuer(), "audiences": []string{idpAudience}}
		var iss map[string]any
		env.mustAdmin(http.StatusCreated, http.MethodPut, "/issuers/idp", body, &iss)
		require.EqualValues(t, 1, iss["version"])
		require.Equal(t, []any{"RS256", "ES256"}, iss["algorithms"], "defaults filled in")
		env.mustAdmin(http.StatusOK, http.MethodPut, "/issuers/idp", body, &iss)
		require.EqualValues(t, 1, iss["version"], "PUT of what is stored changes nothing")
		body["audiences"] = []string{idpAudience, "other"}
		env.mustAdmin(http.StatusOK, http.MethodPut, "/issuers/idp", body, &iss)
		require.EqualValues(t, 2, iss["version"], "PUT of a change updates")
		var list struct{ Items []map[string]any }
		env.mustAdmin(http.StatusOK, http.MethodGet, "/issuers", nil, &list)
		require.Len(t, list.Items, 1)
		env.mustAdmin(http.StatusOK, http.MethodGet, "/issuers/idp", nil, &iss)
		env.mustAdmin(http.StatusConflict, http.MethodPut, "/issuers/idp-again", body, nil)
		env.mustAdmin(http.StatusNoContent, http.MethodDelete, "/issuers/idp", nil, nil)
		env.mustAdmin(http.StatusNotFound, http.MethodGet, "/issuers/idp", nil, nil)
		env.mustAdmin(http.StatusNotFound, http.MethodDelete, "/issuers/idp", nil, nil)
	})

	t.Run("validation errors name the field", func(t *testing.T) {
		cases := []struct {
			name   string
			path   string
			body   any
			fields []string
		}{
			{"issuer without audiences", "/issuers/x", map[string]any{"issuer": "https://idp.example"}, []string{"audiences"}},
			{"issuer every problem at once", "/issuers/X!", map[string]any{"issuer": "ftp://x", "algorithms": []string{"HS256", "none"}}, []string{"name", "issuer", "audiences", "algorithms[0]", "algorithms[1]"}},
			{"unknown field", "/issuers/x", map[string]any{"issuer": "https://idp.example", "audiences": []string{"a"}, "audience": "typo"}, []string{"audience"}},
			{"wrong type", "/policies/p", map[string]any{"audience": 42}, []string{"audience"}},
			{"reserved claim", "/policies/p", map[string]any{"audience": "a", "allowed_clients": []string{"c"}, "allowed_issuers": []string{"i"}, "claims": []map[string]string{{"claim": "sub", "from": "email"}}}, []string{"claims[0].claim"}},
			{"policy without clients", "/policies/p", map[string]any{"audience": "a", "allowed_issuers": []string{"i"}}, []string{"allowed_clients"}},
			{"name mismatch", "/clients/a", map[string]any{"id": "b"}, []string{"id"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var p problemBody
				env.mustAdmin(http.StatusBadRequest, http.MethodPut, tc.path, tc.body, &p)
				require.Equal(t, tc.fields, p.fields(), p)
				for _, e := range p.Errors {
					require.NotEmpty(t, e.Reason)
				}
			})
		}
		raw := []struct {
			name        string
			contentType string
			body        string
			status      int
		}{
			{"not JSON", "application/json", "{not json", http.StatusBadRequest},
			{"not an object", "application/json", `["a"]`, http.StatusBadRequest},
			{"two objects", "application/json", `{} {}`, http.StatusBadRequest},
			{"empty", "application/json; charset=utf-8", ``, http.StatusBadRequest},
			{"form", "application/x-www-form-urlencoded", `audience=a`, http.StatusUnsupportedMediaType},
			{"no content type", "", `{}`, http.StatusUnsupportedMediaType},
		}
		for _, tc := range raw {
			req, _ := http.NewRequest(http.MethodPut, env.adminURL+"/policies/p", bytes.NewBufferString(tc.body))
			req.Header.Set("Authorization", "bearer "+env.adminToken) // the scheme is case-insensitive
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := env.http.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, tc.status, resp.StatusCode, tc.name)
			require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"), tc.name)
		}
	})

	t.Run("client secret shown once, rotated, never listed", func(t *testing.T) {
		secret := env.createClient("gw")
		var got map[string]any
		env.mustAdmin(http.StatusOK, http.MethodGet, "/clients/gw", nil, &got)
		require.NotContains(t, got, "client_secret")
		env.mustAdmin(http.StatusOK, http.MethodPut, "/clients/gw", map[string]any{"description": "renamed"}, &got)
		require.NotContains(t, got, "client_secret", "an update keeps the secret and does not show it")
		var rotated struct {
			Secret string `json:"client_secret"`
		}
		env.mustAdmin(http.StatusOK, http.MethodPost, "/clients/gw/secret", nil, &rotated)
		require.NotEmpty(t, rotated.Secret)
		require.NotEqual(t, secret, rotated.Secret)
		require.GreaterOrEqual(t, len(rotated.Secret), 43, "256 bits")
		env.mustAdmin(http.StatusNotFound, http.MethodPost, "/clients/none/secret", nil, nil)
	})

	t.Run("a GET body can be PUT back", func(t *testing.T) {
		var got map[string]any
		env.mustAdmin(http.StatusCreated, http.MethodPut, "/policies/roundtrip", map[string]any{
			"audience": "https://roundtrip.internal", "allowed_clients": []string{"c"}, "allowed_issuers": []string{"i"},
		}, &got)
		env.mustAdmin(http.StatusOK, http.MethodPut, "/policies/roundtrip", got, &got)
		require.EqualValues(t, 1, got["version"], "the GET body PUT back changes nothing")
	})

	t.Run("policy conflict on audience", func(t *testing.T) {
		env.mustAdmin(http.StatusCreated, http.MethodPut, "/policies/one", ordersPolicy(), nil)
		env.mustAdmin(http.StatusConflict, http.MethodPut, "/policies/two", ordersPolicy(), nil)
	})
}

// TestPolicyChangeWithoutRestart: an admin write reaches the exchange
// through LISTEN/NOTIFY, and a rotated client secret replaces the old one.
func TestPolicyChangeWithoutRestart(t *testing.T) {
	env := startEnv(t)
	secret := env.seed()

	claimsOf := func(secret string) map[string]any {
		status, body, _ := env.exchange("gateway", secret, exchangeForm(env.subject(nil)))
		if status != http.StatusOK {
			return nil
		}
		return jwtClaims(t, body["access_token"].(string))
	}
	require.Contains(t, claimsOf(secret), "permissions")
	require.NotContains(t, claimsOf(secret), "email")

	p := ordersPolicy()
	p["claims"] = []map[string]string{{"claim": "email"}}
	env.mustAdmin(http.StatusOK, http.MethodPut, "/policies/orders", p, nil)
	env.eventually("the new policy is applied", func() bool {
		c := claimsOf(secret)
		return c["email"] == "alice@example.com" && c["permissions"] == nil
	})

	var rotated struct {
		Secret string `json:"client_secret"`
	}
	env.mustAdmin(http.StatusOK, http.MethodPost, "/clients/gateway/secret", nil, &rotated)
	env.eventually("the old secret stops working", func() bool {
		status, _, _ := env.exchange("gateway", secret, exchangeForm(env.subject(nil)))
		return status == http.StatusUnauthorized
	})
	require.NotNil(t, claimsOf(rotated.Secret))

	env.mustAdmin(http.StatusNoContent, http.MethodDelete, "/policies/orders", nil, nil)
	env.eventually("a deleted policy serves nothing", func() bool {
		_, body, _ := env.exchange("gateway", rotated.Secret, exchangeForm(env.subject(nil)))
		return body["error"] == "invalid_target"
	})
}

func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	return decodeSegment(t, parts[1])
}

// TestMigrateCommand: migrations on an empty database, and serve refusing
// an unmigrated one outside dev mode.
func TestMigrateCommand(t *testing.T) {
	ctx := context.Background()
	db, err := pgtest.CreateEmpty(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Drop(context.Background()) })

	var out bytes.Buffer
	getenv := mapEnv(map[string]string{"CLAIMBRIDGE_KEK": randomSecret(), "CLAIMBRIDGE_ADMIN_TOKENS": randomSecret()})
	require.NoError(t, run(ctx, []string{"migrate", "status", "--database-url", db.URL}, getenv, &out, &out))
	require.Contains(t, out.String(), "schema version 0 of")

	err = run(ctx, []string{"serve", "--database-url", db.URL, "--issuer", "http://127.0.0.1:1", "--public-addr", freeAddr(t), "--admin-addr", freeAddr(t)}, getenv, &out, &out)
	require.ErrorContains(t, err, "claimbridge migrate up")

	out.Reset()
	require.NoError(t, run(ctx, []string{"migrate", "up", "--database-url", db.URL}, getenv, &out, &out))
	require.Contains(t, out.String(), "up to date")
	require.NoError(t, run(ctx, []string{"migrate", "up", "--database-url", db.URL}, getenv, &out, &out), "idempotent")
}

// TestServeConfigErrors: every problem of the configuration is reported at
// once.
func TestServeConfigErrors(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"serve", "--issuer", "ftp://x/", "--clock-skew", "1h", "--log-format", "xml"}, mapEnv(nil), &out, &out)
	require.Error(t, err)
	for _, want := range []string{"issuer:", "database-url:", "kek:", "admin-tokens:", "clock-skew:", "log-format:"} {
		require.Contains(t, err.Error(), want)
	}
	err = run(context.Background(), []string{"serve"}, mapEnv(map[string]string{"CLAIMBRIDGE_TOKEN_LIFETIME": "forever"}), &out, &out)
	require.ErrorContains(t, err, "CLAIMBRIDGE_TOKEN_LIFETIME")
}

// TestWrongKEKFailsStart: a KEK other than the one that sealed the signing
// key stops the start with a clear message and creates no new key.
func TestWrongKEKFailsStart(t *testing.T) {
	env := startEnv(t)
	env.stop()
	env.kek = randomSecret()
	pub, adm := freeAddr(t), freeAddr(t)
	getenv := mapEnv(map[string]string{"CLAIMBRIDGE_KEK": env.kek, "CLAIMBRIDGE_ADMIN_TOKENS": env.adminToken})
	var logs bytes.Buffer
	err := run(context.Background(), []string{"serve", "--database-url", env.databaseURL, "--public-addr", pub, "--admin-addr", adm, "--issuer", "http://" + pub}, getenv, &logs, &logs)
	require.ErrorContains(t, err, "KEK")
	require.ErrorContains(t, err, "configured KEK")

	store, err := postgres.Open(context.Background(), env.databaseURL)
	require.NoError(t, err)
	defer store.Close()
	stored, err := store.Keys(context.Background())
	require.NoError(t, err)
	require.Len(t, stored, 1, "a wrong KEK never makes a new key")
}
