package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// cli runs a claimbridge command against env's admin listener and returns
// its output.
func (env *testEnv) cli(args ...string) (string, error) {
	env.t.Helper()
	var out bytes.Buffer
	getenv := mapEnv(map[string]string{
		"CLAIMBRIDGE_ADMIN_TOKEN": env.adminToken,
		"CLAIMBRIDGE_ADMIN_URL":   strings.TrimSuffix(env.adminURL, "/admin/v1"),
	})
	err := run(context.Background(), args, getenv, &out, &out)
	return out.String(), err
}

func (env *testEnv) mustCLI(args ...string) string {
	env.t.Helper()
	out, err := env.cli(args...)
	require.NoError(env.t, err, "%s", out)
	return out
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

const applyBase = `apiVersion: claimbridge.dev/v1
kind: Issuer
metadata: {name: test-idp}
spec:
  issuer: %IDP%
  audiences: [https://api.test]
  algorithms: [RS256]
---
apiVersion: claimbridge.dev/v1
kind: Client
metadata:
  name: gateway
spec:
  description: the edge gateway
`

const applyPolicies = `apiVersion: claimbridge.dev/v1
kind: Policy
metadata: {name: orders}
spec:
  audience: https://orders.internal
  allowed_clients: [gateway]
  allowed_issuers: [test-idp]
  claims:
    - claim: permissions
    - {claim: roles, from: "https://example.com/roles"}
  scopes: ["orders:read", "orders:write"]
  token_lifetime_seconds: 300
---
apiVersion: claimbridge.dev/v1
kind: Policy
metadata: {name: extra}
spec:
  audience: https://extra.internal
  allowed_clients: [gateway]
  allowed_issuers: [test-idp]
`

// TestApplyGetRoundTrip: apply creates, is idempotent, round-trips with
// get, shows a diff in a dry run and prunes only the kinds it was given.
func TestApplyGetRoundTrip(t *testing.T) {
	env := startEnv(t)
	dir, secrets := t.TempDir(), t.TempDir()
	base, policies := filepath.Join(dir, "base.yaml"), filepath.Join(dir, "policies")
	require.NoError(t, os.Mkdir(policies, 0o700))
	writeFile(t, base, strings.ReplaceAll(applyBase, "%IDP%", env.idp.Issuer()))
	writeFile(t, filepath.Join(policies, "orders.yaml"), applyPolicies)

	out := env.mustCLI("apply", "-f", base, "-f", policies, "--secrets-dir", secrets)
	require.Equal(t, []string{
		"issuer/test-idp created",
		"client/gateway created; client_secret written to " + filepath.Join(secrets, "gateway.secret"),
		"policy/orders created",
		"policy/extra created",
	}, lines(out))
	secret, err := os.ReadFile(filepath.Join(secrets, "gateway.secret"))
	require.NoError(t, err)
	env.eventually("the applied configuration serves exchanges", func() bool {
		status, _, _ := env.exchange("gateway", strings.TrimSpace(string(secret)), exchangeForm(env.subject(nil)))
		return status == http.StatusOK
	})

	var before auditPage
	env.mustAdmin(http.StatusOK, http.MethodGet, "/audit", nil, &before)
	out = env.mustCLI("apply", "-f", base, "-f", policies)
	require.Equal(t, []string{"issuer/test-idp unchanged", "client/gateway unchanged", "policy/orders unchanged", "policy/extra unchanged"}, lines(out))
	var after auditPage
	env.mustAdmin(http.StatusOK, http.MethodGet, "/audit", nil, &after)
	require.Equal(t, before.Items[0].ID, after.Items[0].ID, "applying again changes nothing")

	for _, format := range []string{"yaml", "json"} {
		exported := env.mustCLI("get", "all", "-o", format)
		require.NotContains(t, exported, "created_at")
		require.NotContains(t, exported, "client_secret")
		file := filepath.Join(dir, "exported."+format)
		writeFile(t, file, exported)
		out = env.mustCLI("apply", "-f", file)
		require.Equal(t, []string{"issuer/test-idp unchanged", "client/gateway unchanged", "policy/extra unchanged", "policy/orders unchanged"}, lines(out), format)
	}
	one := env.mustCLI("get", "policy", "orders")
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(one), &doc))
	require.Equal(t, "Policy", doc["kind"])
	require.Equal(t, map[string]any{"name": "orders"}, doc["metadata"])

	// A change, first as a dry run: a diff, nothing written.
	writeFile(t, filepath.Join(policies, "orders.yaml"), strings.Replace(applyPolicies, `scopes: ["orders:read", "orders:write"]`, `scopes: ["orders:read"]`, 1))
	out = env.mustCLI("apply", "-f", policies, "--dry-run")
	require.Contains(t, out, "policy/orders configured (dry run)\n")
	require.Contains(t, out, "\n    -   - orders:write\n")
	require.Contains(t, out, "policy/extra unchanged\n")
	var stored map[string]any
	env.mustAdmin(http.StatusOK, http.MethodGet, "/policies/orders", nil, &stored)
	require.EqualValues(t, 1, stored["version"], "a dry run writes nothing")

	// Prune: only the kinds the files contain. A client made elsewhere stays.
	env.createClient("made-elsewhere")
	onlyOrders := applyPolicies[:strings.Index(applyPolicies, "---")]
	writeFile(t, filepath.Join(policies, "orders.yaml"), strings.Replace(onlyOrders, `scopes: ["orders:read", "orders:write"]`, `scopes: ["orders:read"]`, 1))
	out = env.mustCLI("apply", "-f", policies, "--prune", "--dry-run")
	require.Contains(t, out, "policy/extra deleted (dry run)\n    - allowed_clients:\n")
	require.Contains(t, out, "\n    - audience: https://extra.internal\n")
	env.mustAdmin(http.StatusOK, http.MethodGet, "/policies/extra", nil, nil)
	out = env.mustCLI("apply", "-f", policies, "--prune")
	require.Equal(t, []string{"policy/orders configured", "policy/extra deleted"}, lines(out))
	env.mustAdmin(http.StatusNotFound, http.MethodGet, "/policies/extra", nil, nil)
	env.mustAdmin(http.StatusOK, http.MethodGet, "/clients/made-elsewhere", nil, nil)
	env.mustAdmin(http.StatusOK, http.MethodGet, "/issuers/test-idp", nil, nil)
}

// TestApplyValidatesEverythingFirst: one invalid document and nothing is
// written; every problem is reported.
func TestApplyValidatesEverythingFirst(t *testing.T) {
	env := startEnv(t)
	file := filepath.Join(t.TempDir(), "bad.yaml")
	writeFile(t, file, `apiVersion: claimbridge.dev/v1
kind: Client
metadata: {name: fine}
spec: {description: ok}
---
apiVersion: claimbridge.dev/v1
kind: Policy
metadata: {name: broken}
spec:
  audience: https://broken.internal
  claims: [{claim: sub}]
`)
	out, err := env.cli("apply", "-f", file)
	require.Error(t, err, out)
	require.ErrorContains(t, err, "nothing was applied")
	require.ErrorContains(t, err, "policy/broken")
	require.ErrorContains(t, err, "claims[0].claim")
	require.ErrorContains(t, err, "allowed_clients")
	env.mustAdmin(http.StatusNotFound, http.MethodGet, "/clients/fine", nil, nil)

	for _, bad := range []string{
		"apiVersion: v0\nkind: Policy\nmetadata: {name: x}\n",
		"apiVersion: claimbridge.dev/v1\nkind: Widget\nmetadata: {name: x}\n",
		"apiVersion: claimbridge.dev/v1\nkind: Policy\nspec: {}\n",
		"apiVersion: claimbridge.dev/v1\nkind: Policy\nmetadata: {name: x}\n---\napiVersion: claimbridge.dev/v1\nkind: Policy\nmetadata: {name: x}\n",
	} {
		writeFile(t, file, bad)
		_, err := env.cli("apply", "-f", file)
		require.Error(t, err, bad)
	}
}

func lines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }
