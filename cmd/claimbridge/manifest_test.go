package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestYAMLToJSON: a spec reaches the API as the JSON it reads as, exactly:
// big numbers keep their digits, timestamps and yes/no-looking strings stay
// strings, anchors resolve.
func TestYAMLToJSON(t *testing.T) {
	cases := []struct {
		name, yaml, json string
	}{
		{"big integer", "n: 12345678901234567890", `{"n":12345678901234567890}`},
		{"float", "n: 1.5e3", `{"n":1.5e3}`},
		{"yaml-only number forms", "hex: 0x10\nsep: 1_000", `{"hex":16,"sep":1000}`},
		{"timestamp stays as written", "t: 2025-01-01", `{"t":"2025-01-01"}`},
		{"quoted stays a string", `s: "123"`, `{"s":"123"}`},
		{"booleans and null", "a: true\nb: null\nc: ~", `{"a":true,"b":null,"c":null}`},
		{"anchors", "a: &x [1, 2]\nb: *x", `{"a":[1,2],"b":[1,2]}`},
		{"nested", "claims:\n  - {claim: roles, from: 'https://e.com/roles'}", `{"claims":[{"claim":"roles","from":"https://e.com/roles"}]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := "apiVersion: claimbridge.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec:\n" + indent(tc.yaml)
			docs, err := parseDocuments([]byte(doc), "test.yaml")
			require.NoError(t, err)
			require.Len(t, docs, 1)
			got, err := json.Marshal(docs[0].spec)
			require.NoError(t, err)
			require.JSONEq(t, tc.json, string(got))
			// And back: YAML written by get reads as the same JSON.
			var out bytes.Buffer
			require.NoError(t, writeDocuments(&out, docs, "yaml"))
			again, err := parseDocuments(out.Bytes(), "again.yaml")
			require.NoError(t, err)
			require.Equal(t, docs[0].spec, again[0].spec, "%s", out.String())
		})
	}
	_, err := parseDocuments([]byte("apiVersion: claimbridge.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec: {n: .inf}\n"), "x.yaml")
	require.ErrorContains(t, err, "not a JSON number")
	_, err = parseDocuments([]byte("apiVersion: claimbridge.dev/v1\nkind: Policy\nmetadata: {name: p}\nspec: {[a]: b}\n"), "x.yaml")
	require.ErrorContains(t, err, "a key must be a string")
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

func TestDiffLines(t *testing.T) {
	got := diffLines([]string{"a", "b", "c"}, []string{"a", "c", "d"})
	require.Equal(t, []string{"  a", "- b", "  c", "+ d"}, got)
	require.Equal(t, []string{"+ x"}, diffLines(nil, []string{"x"}))
	require.Equal(t, []string{"- x"}, diffLines([]string{"x"}, nil))
}

// TestAdminAuthConfig: the admin credentials are validated with the rest
// of the configuration.
func TestAdminAuthConfig(t *testing.T) {
	base := []string{"serve", "--database-url", "postgres://x", "--issuer", "http://127.0.0.1:1"}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"short read token", []string{"--admin-read-tokens", "short"}, map[string]string{"CLAIMBRIDGE_ADMIN_TOKENS": randomSecret()}, []string{"admin-read-tokens[0]"}},
		{"one token in both roles", []string{"--admin-read-tokens", "same-token-0123456789"}, map[string]string{"CLAIMBRIDGE_ADMIN_TOKENS": "same-token-0123456789"}, []string{"is also an admin token of the write role"}},
		{"JWT issuer without audience, over http", []string{"--admin-jwt-issuer", "http://idp.example.com"}, nil, []string{"admin-jwt-audience", "must use https"}},
		{"equal roles", []string{"--admin-jwt-issuer", "https://idp.example.com", "--admin-jwt-audience", "a", "--admin-jwt-read-role", "claimbridge:write"}, nil, []string{"admin-jwt-read-role: must differ"}},
		{"no write credential at all", []string{"--admin-read-tokens", randomSecret()}, nil, []string{"admin-tokens: at least one"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"CLAIMBRIDGE_KEK": randomSecret()}
			for k, v := range tc.env {
				env[k] = v
			}
			var out bytes.Buffer
			err := run(context.Background(), append(base, tc.args...), mapEnv(env), &out, &out)
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}
