package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// reportsPolicy serves two targets with a condition, computed, required
// and static claims, and mints plain JWTs.
func reportsPolicy() map[string]any {
	return map[string]any{
		"audience":        "https://reports.internal",
		"audiences":       []string{"urn:reports:v2"},
		"allowed_clients": []string{"gateway"},
		"allowed_issuers": []string{"test-idp"},
		"conditions":      []string{`"orders:perm-a" in subject.permissions`},
		"claims": []map[string]any{
			{"claim": "orders", "expression": `subject.permissions.filter(p, p.endsWith("-a") || p.endsWith("-b"))`},
			{"claim": "tenant", "from": "/org/tenant_id", "required": true},
			{"claim": "big", "expression": "subject.big"},
			{"claim": "plan", "expression": `subject.org.plan.upperAscii()`},
			{"claim": "env", "value": "prod"},
		},
		"scopes":     []string{"orders:read"},
		"token_type": "jwt",
	}
}

func reportsForm(subject string, targets ...string) url.Values {
	f := exchangeForm(subject)
	f["audience"] = targets
	return f
}

func TestCELPolicyEndToEnd(t *testing.T) {
	env := startEnv(t)
	secret := env.seed()

	t.Run("a bad expression is refused with its position", func(t *testing.T) {
		bad := reportsPolicy()
		bad["claims"] = []map[string]any{{"claim": "orders", "expression": "subject.permissions.filter(p, p.startsWith(ordrs))"}}
		var problem struct {
			Errors []struct {
				Field, Reason string
				Line, Column  int
			} `json:"errors"`
		}
		env.mustAdmin(http.StatusBadRequest, http.MethodPut, "/policies/reports", bad, &problem)
		require.Len(t, problem.Errors, 1)
		require.Equal(t, "claims[0].expression", problem.Errors[0].Field)
		require.Equal(t, 1, problem.Errors[0].Line)
		require.Equal(t, 44, problem.Errors[0].Column)
		require.Equal(t, "at 1:44: undeclared reference to 'ordrs'", problem.Errors[0].Reason)
	})

	env.mustAdmin(http.StatusCreated, http.MethodPut, "/policies/reports", reportsPolicy(), nil)
	env.eventually("the CEL policy is served", func() bool {
		status, _, _ := env.exchange("gateway", secret, reportsForm(env.subject(nil), "https://reports.internal"))
		return status == http.StatusOK
	})

	status, body, _ := env.exchange("gateway", secret, reportsForm(env.subject(nil), "https://reports.internal", "urn:reports:v2"))
	require.Equal(t, http.StatusOK, status, body)
	require.Equal(t, "N_A", body["token_type"], "the policy mints plain JWTs")
	require.Equal(t, "urn:ietf:params:oauth:token-type:jwt", body["issued_token_type"])
	require.Equal(t, "orders:read", body["scope"], "nothing requested: allowed ∩ the subject's scope, returned")
	token := body["access_token"].(string)
	require.Equal(t, "JWT", tokenHeader(t, token)["typ"])
	claims := tokenClaims(t, token)
	require.JSONEq(t, `["https://reports.internal","urn:reports:v2"]`, string(claims["aud"]), "two targets of one policy: aud is both")
	require.JSONEq(t, `["orders:perm-a","orders:perm-b"]`, string(claims["orders"]))
	require.Equal(t, "12345678901234567890", string(claims["big"]), "exact through CEL")
	require.JSONEq(t, `"GOLD"`, string(claims["plan"]))
	require.JSONEq(t, `"t-42"`, string(claims["tenant"]))
	require.JSONEq(t, `"prod"`, string(claims["env"]))

	denials := []struct {
		name string
		form url.Values
		want string
	}{
		{"a failed condition", reportsForm(env.subject(map[string]any{"permissions": []string{"orders:perm-b"}}), "https://reports.internal"),
			`Policy "reports": conditions[0] is not satisfied: "orders:perm-a" in subject.permissions.`},
		{"a missing required claim", reportsForm(env.subject(map[string]any{"org": map[string]any{"plan": "gold"}}), "https://reports.internal"),
			`Policy "reports": the required claim "tenant" (claims[1]) has no value for this subject.`},
		{"an access token from a jwt policy", func() url.Values {
			f := reportsForm(env.subject(nil), "https://reports.internal")
			f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:access_token")
			return f
		}(), `Policy "reports" issues only urn:ietf:params:oauth:token-type:jwt tokens; ask for that 'requested_token_type' or none.`},
	}
	for _, d := range denials {
		t.Run(d.name, func(t *testing.T) {
			status, body, _ := env.exchange("gateway", secret, d.form)
			require.Equal(t, http.StatusBadRequest, status, body)
			require.Equal(t, "invalid_request", body["error"])
			require.Equal(t, d.want, body["error_description"])
		})
	}
	t.Run("targets of two policies", func(t *testing.T) {
		status, body, _ := env.exchange("gateway", secret, reportsForm(env.subject(nil), "https://reports.internal", "https://orders.internal"))
		require.Equal(t, http.StatusBadRequest, status, body)
		require.Equal(t, "invalid_target", body["error"])
	})
	t.Run("the policy reads back as written", func(t *testing.T) {
		var got map[string]any
		env.mustAdmin(http.StatusOK, http.MethodGet, "/policies/reports", nil, &got)
		want, _ := json.Marshal(reportsPolicy())
		var wantMap map[string]any
		require.NoError(t, json.Unmarshal(want, &wantMap))
		for k, v := range wantMap {
			require.Equal(t, v, got[k], k)
		}
	})
}

// preview posts a preview and returns the status and the answer.
func (env *testEnv) preview(body map[string]any) (int, map[string]any) {
	env.t.Helper()
	var out map[string]any
	return env.admin(http.MethodPost, "/policies:preview", body, &out), out
}

func TestPreviewEndToEnd(t *testing.T) {
	env := startEnv(t)
	env.seed()
	claimsObject := map[string]any{
		"sub": "auth0|bob", "scope": "orders:write", "permissions": []string{"orders:perm-a"},
		"https://example.com/roles": []string{"viewer"}, "big": json.Number("98765432109876543210"), "email": "bob@example.com",
	}

	t.Run("the saved policy with a subject token", func(t *testing.T) {
		status, p := env.preview(map[string]any{"client_id": "gateway", "audience": []string{"https://orders.internal"},
			"scope": "orders:read", "subject_token": env.subject(nil), "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"})
		require.Equal(t, http.StatusOK, status, p)
		require.Equal(t, "allow", p["decision"])
		require.Equal(t, true, p["subject_verified"])
		require.Equal(t, "orders", p["policy"])
		header := p["header"].(map[string]any)
		require.Equal(t, "at+jwt", header["typ"])
		require.NotEmpty(t, header["kid"])
		claims := p["claims"].(map[string]any)
		require.Equal(t, "auth0|alice", claims["sub"])
		require.Len(t, claims["permissions"], 20)
		require.Equal(t, "orders:read", p["scope"])
		require.Contains(t, p["unmapped_claims"], "email")
		require.Len(t, p["steps"], 4, "one step per mapping of the seeded policy")
	})
	t.Run("the saved policy with a claims object", func(t *testing.T) {
		status, p := env.preview(map[string]any{"client_id": "gateway", "audience": []string{"https://orders.internal"}, "subject_claims": claimsObject})
		require.Equal(t, http.StatusOK, status, p)
		require.Equal(t, "allow", p["decision"], p)
		require.Equal(t, false, p["subject_verified"])
		require.Equal(t, "test-idp", p["issuer"])
		require.Equal(t, "orders:write", p["scope"])
		steps := p["steps"].([]any)
		require.Equal(t, map[string]any{"field": "claims[2]", "claim": "tenant", "outcome": "dropped",
			"reason": "the subject has no such claim, or it is null"}, steps[2])
	})
	t.Run("an unsaved change, tried before it is applied", func(t *testing.T) {
		change := ordersPolicy()
		change["conditions"] = []string{`"orders:perm-a" in subject.permissions`}
		change["claims"] = []map[string]any{{"claim": "roles", "expression": `subject["https://example.com/roles"].map(r, "role:" + r)`}}
		status, p := env.preview(map[string]any{"client_id": "gateway", "audience": []string{"https://orders.internal"},
			"subject_claims": claimsObject, "policy": change})
		require.Equal(t, http.StatusOK, status, p)
		require.Equal(t, "allow", p["decision"], p)
		require.Equal(t, []any{"role:viewer"}, p["claims"].(map[string]any)["roles"])

		var stored map[string]any
		env.mustAdmin(http.StatusOK, http.MethodGet, "/policies/orders", nil, &stored)
		require.NotContains(t, stored, "conditions", "a preview stores nothing")
	})
	t.Run("a denial is explained", func(t *testing.T) {
		change := ordersPolicy()
		change["conditions"] = []string{`"orders:perm-z" in subject.permissions`}
		status, p := env.preview(map[string]any{"client_id": "gateway", "audience": []string{"https://orders.internal"},
			"subject_claims": claimsObject, "policy": change})
		require.Equal(t, http.StatusOK, status, p)
		require.Equal(t, "deny", p["decision"])
		require.Equal(t, "invalid_request", p["error"].(map[string]any)["error"])
		require.Equal(t, "not_satisfied", p["steps"].([]any)[0].(map[string]any)["outcome"])
		require.NotContains(t, p, "claims")
	})
	t.Run("an unsaved policy that does not compile", func(t *testing.T) {
		change := ordersPolicy()
		change["conditions"] = []string{`subject.permissions.size() > "1"`}
		var problem struct {
			Errors []map[string]any `json:"errors"`
		}
		status := env.admin(http.MethodPost, "/policies:preview", map[string]any{"client_id": "gateway",
			"audience": []string{"https://orders.internal"}, "subject_claims": claimsObject, "policy": change}, &problem)
		require.Equal(t, http.StatusBadRequest, status)
		require.Len(t, problem.Errors, 1)
		require.Equal(t, "policy.conditions[0]", problem.Errors[0]["field"])
		require.Contains(t, problem.Errors[0]["reason"], "at 1:28: found no matching overload for '_>_'")
	})
}

// tokenClaims decodes a JWT's payload without verifying it (the exchange
// tests verify the signature through go-oidc).
func tokenClaims(t *testing.T, token string) map[string]json.RawMessage {
	t.Helper()
	var claims map[string]json.RawMessage
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &claims))
	return claims
}
