package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// interopDir holds the Node and Python verifiers of docs/upstreams.md.
const interopDir = "../../examples/interop"

// systemPython is Debian's interpreter, where python3-jwt installs; the
// python3 on PATH may be another one without it.
const systemPython = "/usr/bin/python3"

// interopVerifier is a verifier script in another language: it takes the
// JWKS URL, the issuer, the audience and a token and prints the verified
// claims as JSON, or exits non-zero.
type interopVerifier struct {
	name    string
	argv    []string // the command before the four arguments
	missing func() error
}

var interopVerifiers = []interopVerifier{
	{
		name: "node-jose",
		argv: []string{"node", filepath.Join(interopDir, "node", "verify.mjs")},
		missing: func() error {
			if _, err := exec.LookPath("node"); err != nil {
				return err
			}
			_, err := os.Stat(filepath.Join(interopDir, "node", "node_modules", "jose", "package.json"))
			return err
		},
	},
	{
		name: "python-pyjwt",
		argv: []string{systemPython, filepath.Join(interopDir, "python", "verify.py")},
		missing: func() error {
			out, err := exec.Command(systemPython, "-c", "import jwt, cryptography").CombinedOutput()
			if err != nil {
				return fmt.Errorf("%w: %s", err, out)
			}
			return nil
		},
	},
}

// requireInteropTool skips the test when v's runtime or library is not
// installed (make interop-deps installs them), but fails it in CI, which
// must run it.
func requireInteropTool(t *testing.T, v interopVerifier) {
	t.Helper()
	err := v.missing()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed (CI must run the interop tests; see .ci/run): %v", v.name, err)
	}
	t.Skipf("%s is not installed (run make interop-deps): %v", v.name, err)
}

// run verifies token with the script and returns the claims it printed.
func (v interopVerifier) run(jwksURL, issuer, audience, token string) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append(append([]string{}, v.argv[1:]...), jwksURL, issuer, audience, token)
	cmd := exec.CommandContext(ctx, v.argv[0], args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", v.name, err, stderr.Bytes())
	}
	var claims map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &claims); err != nil {
		return nil, fmt.Errorf("%s printed no JSON object: %w: %q", v.name, err, stdout.Bytes())
	}
	return claims, nil
}

// TestInteropE2E: tokens minted by the real server, with every signing
// algorithm, verify with Node's jose and Python's PyJWT as docs/upstreams.md
// shows them, permissions included; and both refuse a token for another
// audience or issuer, and one of typ JWT.
func TestInteropE2E(t *testing.T) {
	if os.Getenv("CI") == "" && interopVerifiers[0].missing() != nil && interopVerifiers[1].missing() != nil {
		t.Skip("neither node with jose nor python3-jwt is installed (run make interop-deps)")
	}
	env, secret := startSigningEnv(t)
	const audience = "https://orders.internal"
	jwksURL := env.issuer + "/.well-known/jwks.json"
	tokens := map[string]string{}
	for _, alg := range signingAlgorithms {
		tokens[alg] = env.mintWith(secret, alg, "")
	}
	jwtTyped := env.mintWith(secret, "ES256", "urn:ietf:params:oauth:token-type:jwt")
	perms := make([]any, 0, 20)
	for _, p := range permissions20() {
		perms = append(perms, p)
	}

	for _, v := range interopVerifiers {
		t.Run(v.name, func(t *testing.T) {
			requireInteropTool(t, v)
			for _, alg := range signingAlgorithms {
				t.Run(alg, func(t *testing.T) {
					claims, err := v.run(jwksURL, env.issuer, audience, tokens[alg])
					require.NoError(t, err)
					require.Equal(t, perms, claims["permissions"], "the permissions array came through")
					require.Equal(t, "auth0|alice", claims["sub"])
					require.Equal(t, "gateway", claims["client_id"])
					require.Equal(t, audience, claims["aud"])
				})
			}
			refused := []struct{ name, issuer, audience, token, reason string }{
				{"another audience", env.issuer, "https://billing.internal", tokens["ES256"], `(?i)aud`},
				{"another issuer", "https://sts.example.com", audience, tokens["ES256"], `(?i)iss`},
				{"typ JWT", env.issuer, audience, jwtTyped, `(?i)typ`},
				{"the IdP's own token", env.issuer, audience, env.subject(nil), `(?i)key`},
			}
			for _, tt := range refused {
				t.Run("refuses "+tt.name, func(t *testing.T) {
					_, err := v.run(jwksURL, tt.issuer, tt.audience, tt.token)
					require.Error(t, err)
					require.Regexp(t, "token refused: .*"+tt.reason, err.Error())
				})
			}
		})
	}
}
