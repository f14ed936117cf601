// Package layout holds the test that keeps the dependency rules of
// docs/architecture.md true: the core (sts, policy, keys, admin) imports no
// adapter, policy is pure, and verify (for upstreams) imports no other
// Claimbridge package.
package layout

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/claimbridge/claimbridge"

func TestLayering(t *testing.T) {
	forbidden := map[string][]string{
		"sts":      {"github.com/labstack/echo", "github.com/ory/fosite", "github.com/jackc/pgx", module + "/api", module + "/postgres", module + "/keys"},
		"policy":   {"net/http", "github.com/labstack/echo", "github.com/ory/fosite", "github.com/jackc/pgx", module + "/"},
		"keys":     {"net/http", "github.com/labstack/echo", "github.com/ory/fosite", "github.com/jackc/pgx", module + "/"},
		"api":      {"github.com/jackc/pgx", module + "/postgres"},
		"postgres": {"github.com/labstack/echo", "github.com/ory/fosite", module + "/api"},
		// sidecar talks to Claimbridge over HTTP only.
		"sidecar": {"github.com/labstack/echo", "github.com/ory/fosite", "github.com/jackc/pgx", module + "/api", module + "/postgres", module + "/keys"},
		// verify is imported by upstreams: the standard library and go-jose only.
		"verify": {"github.com/labstack/echo", "github.com/ory/fosite", "github.com/jackc/pgx", "github.com/coreos/go-oidc", module + "/"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", module+"/"+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == module+"/"+pkg {
				continue
			}
			for _, b := range bad {
				if dep == b || strings.HasPrefix(dep, b+"/") || (strings.HasSuffix(b, "/") && strings.HasPrefix(dep, b)) {
					t.Errorf("%s must not depend on %s (via %s)", pkg, b, dep)
				}
			}
		}
	}
}
