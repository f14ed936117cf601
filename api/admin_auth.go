package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/labstack/echo/v4"

	"github.com/claimbridge/claimbridge/admin"
)

// AdminJWT admits admins who present a JWT from one trusted issuer: verified
// through the issuer's OpenID discovery and JWKS (signature, iss, exp and an
// aud that includes Audience), then given the write role if RoleClaim holds
// WriteRole, else the read role if it holds ReadRole, else refused (403).
type AdminJWT struct {
	// Issuer is the issuer URL, exactly as the tokens' iss.
	Issuer string
	// Audience must be among the tokens' aud.
	Audience string
	// RoleClaim names the top-level claim that lists the caller's roles: a
	// JSON array of strings, or a string of space-separated roles.
	RoleClaim string
	// WriteRole and ReadRole are the role values that grant each role.
	WriteRole, ReadRole string
	// HTTPClient fetches discovery and keys; nil means a client with a 10s
	// timeout.
	HTTPClient *http.Client
}

// role is what an admin caller may do: read (GET) or write (everything).
type role int

const (
	roleNone role = iota
	roleRead
	roleWrite
)

// adminAuth authenticates admin requests and authorizes them by role.
type adminAuth struct {
	tokens []adminToken
	jwt    *jwtAdmins
}

// adminToken is a static token, kept as its SHA-256 digest.
type adminToken struct {
	digest [32]byte
	role   role
}

func newAdminAuth(cfg AdminConfig) *adminAuth {
	a := &adminAuth{}
	for _, t := range cfg.Tokens {
		a.tokens = append(a.tokens, adminToken{digest: sha256.Sum256([]byte(t)), role: roleWrite})
	}
	for _, t := range cfg.ReadTokens {
		a.tokens = append(a.tokens, adminToken{digest: sha256.Sum256([]byte(t)), role: roleRead})
	}
	if cfg.JWT != nil {
		a.jwt = &jwtAdmins{cfg: *cfg.JWT}
		if a.jwt.cfg.HTTPClient == nil {
			a.jwt.cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
		}
	}
	return a
}

// middleware lets a request through when its bearer credential grants a
// role that allows its method, with the caller's name on the request
// context (admin.WithActor) for the audit log and in the access line.
func (a *adminAuth) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		role, actor, err := a.authenticate(r.Context(), r.Header.Get("Authorization"))
		if err != nil {
			if errors.Is(err, errUnauthenticated) {
				c.Response().Header().Set("WWW-Authenticate", `Bearer realm="claimbridge-admin"`)
			}
			return err
		}
		c.Set(logAttrsKey, []slog.Attr{slog.String("actor", actor)})
		if role < roleWrite && changes(r) {
			return newHTTPError(http.StatusForbidden, "This credential has the read role only: it may not change the configuration.", nil)
		}
		c.SetRequest(r.WithContext(admin.WithActor(r.Context(), actor)))
		return next(c)
	}
}

// errUnauthenticated is the 401 of a request without a valid credential.
var errUnauthenticated = newHTTPError(http.StatusUnauthorized, "A valid admin bearer token is required.", nil)

// authenticate returns the role and the actor name of the bearer credential
// in header: a static token (compared in constant time over SHA-256
// digests, so that neither content nor length leaks) or a JWT.
func (a *adminAuth) authenticate(ctx context.Context, header string) (role, string, error) {
	scheme, cred, ok := strings.Cut(header, " ")
	cred = strings.TrimSpace(cred)
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" { // RFC 7235: the scheme is case-insensitive
		return roleNone, "", errUnauthenticated
	}
	d := sha256.Sum256([]byte(cred))
	found := roleNone
	for _, t := range a.tokens {
		if subtle.ConstantTimeCompare(d[:], t.digest[:]) == 1 {
			found = max(found, t.role)
		}
	}
	if found != roleNone {
		return found, "token:" + hex.EncodeToString(d[:4]), nil
	}
	if a.jwt != nil && strings.Count(cred, ".") == 2 {
		return a.jwt.authenticate(ctx, cred)
	}
	return roleNone, "", errUnauthenticated
}

// jwtAdmins verifies admin JWTs. The issuer's discovery document is fetched
// on first use and again after a failure, so that the admin listener starts
// while the issuer is unreachable.
type jwtAdmins struct {
	cfg      AdminJWT
	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
}

func (j *jwtAdmins) authenticate(ctx context.Context, raw string) (role, string, error) {
	v, err := j.getVerifier(ctx)
	if err != nil {
		return roleNone, "", newHTTPError(http.StatusServiceUnavailable, "The admin identity provider cannot be reached; try again later.", err)
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		return roleNone, "", fmt.Errorf("%w: admin JWT: %w", errUnauthenticated, err)
	}
	claims := map[string]any{}
	if err := tok.Claims(&claims); err != nil {
		return roleNone, "", fmt.Errorf("%w: admin JWT claims: %w", errUnauthenticated, err)
	}
	actor := "jwt:" + tok.Subject
	roles := claimRoles(claims[j.cfg.RoleClaim])
	switch {
	case j.cfg.WriteRole != "" && slices.Contains(roles, j.cfg.WriteRole):
		return roleWrite, actor, nil
	case j.cfg.ReadRole != "" && slices.Contains(roles, j.cfg.ReadRole):
		return roleRead, actor, nil
	}
	return roleNone, actor, newHTTPError(http.StatusForbidden,
		fmt.Sprintf("The token's %q claim grants no admin role.", j.cfg.RoleClaim), nil)
}

// getVerifier returns the verifier, running discovery the first time.
func (j *jwtAdmins) getVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.verifier != nil {
		return j.verifier, nil
	}
	// The provider keeps the client (not the context) for its key fetches.
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, j.cfg.HTTPClient), j.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("admin JWT issuer discovery: %w", err)
	}
	j.verifier = p.Verifier(&oidc.Config{ClientID: j.cfg.Audience})
	return j.verifier, nil
}

// claimRoles reads a role claim: an array of strings, or one string of
// space-separated roles.
func claimRoles(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		var roles []string
		for _, r := range v {
			if s, ok := r.(string); ok {
				roles = append(roles, s)
			}
		}
		return roles
	}
	return nil
}

// changes reports whether r may change the configuration: anything but a
// GET or HEAD, a dry run of a PUT, or a policy preview, which only read.
func changes(r *http.Request) bool {
	switch {
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		return false
	case r.Method == http.MethodPut && r.URL.Query().Get("dry_run") == "true":
		return false
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/policies:preview"):
		return false
	}
	return true
}
