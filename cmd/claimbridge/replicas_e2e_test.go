package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTwoReplicasPropagation: two servers on one database; a policy changed
// through one is used by the next exchange on the other within a second.
// The periodic reload is an hour, so only LISTEN/NOTIFY can explain it.
func TestTwoReplicasPropagation(t *testing.T) {
	slow := []string{"--reload-interval", "1h"}
	a := newEnv(t)
	a.start(slow)
	b := &testEnv{t: t, databaseURL: a.databaseURL, kek: a.kek, adminToken: a.adminToken, idp: a.idp}
	b.start(slow)
	secret := a.seed()

	claimsOn := func(env *testEnv) map[string]any {
		status, body, _ := env.exchange("gateway", secret, exchangeForm(env.subject(nil)))
		if status != http.StatusOK {
			return nil
		}
		return jwtClaims(t, body["access_token"].(string))
	}
	// Within one second of the write: every exchange on the other replica
	// after that must already see the change.
	within := func(env *testEnv, what string, cond func(map[string]any) bool) {
		t.Helper()
		deadline := time.Now().Add(time.Second)
		for !cond(claimsOn(env)) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not seen within 1s; logs:\n%s", what, env.logs)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	within(b, "the seeded policy on replica b", func(c map[string]any) bool { return c["permissions"] != nil })

	p := ordersPolicy()
	p["claims"] = []map[string]string{{"claim": "email"}}
	a.mustAdmin(http.StatusOK, http.MethodPut, "/policies/orders", p, nil)
	within(b, "a's change on b", func(c map[string]any) bool { return c["email"] == "alice@example.com" && c["permissions"] == nil })

	p["claims"] = []map[string]string{{"claim": "tenant", "from": "/org/tenant_id"}}
	b.mustAdmin(http.StatusOK, http.MethodPut, "/policies/orders", p, nil)
	within(a, "b's change on a", func(c map[string]any) bool { return c["tenant"] == "t-42" && c["email"] == nil })

	b.mustAdmin(http.StatusNoContent, http.MethodDelete, "/policies/orders", nil, nil)
	within(a, "b's delete on a", func(c map[string]any) bool { return c == nil })
	status, body, _ := a.exchange("gateway", secret, exchangeForm(a.subject(nil)))
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, "invalid_target", body["error"])
}
