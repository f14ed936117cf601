package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/claimbridge/claimbridge/admin"
	"github.com/claimbridge/claimbridge/internal/devidp"
	"github.com/claimbridge/claimbridge/keys"
	"github.com/claimbridge/claimbridge/policy"
	"github.com/claimbridge/claimbridge/postgres"
	"github.com/claimbridge/claimbridge/sts"
)

// The configuration --dev seeds, matching the development IdP.
const (
	devIssuerName   = "devidp"
	devIdPAudience  = "https://api.example.com"
	devClientID     = "dev-gateway"
	devPolicyName   = "orders"
	devPolicyTarget = "https://orders.internal"
)

// devEnv is what --dev started: the embedded cluster and the dev IdP.
type devEnv struct {
	dir     string
	cluster *postgres.DevCluster
	idp     *http.Server
	idpURL  string
}

// startDev prepares the development environment and fills cfg with it: a
// Postgres cluster in the dev directory (kept across restarts), a local
// KEK and admin token, and the dev IdP.
func startDev(ctx context.Context, cfg *Config, log *slog.Logger) (*devEnv, error) {
	dir, err := filepath.Abs(cfg.DevDir)
	if err != nil {
		return nil, err
	}
	// Searchable by the cluster's unprivileged user when run as root; the
	// secrets inside are files of mode 0600.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("dev dir: %w", err)
	}
	d := &devEnv{dir: dir}
	if cfg.DatabaseURL == "" {
		if d.cluster, err = postgres.StartDevCluster(ctx, filepath.Join(dir, "postgres"), cfg.DevPostgresPort, log); err != nil {
			return nil, fmt.Errorf("development Postgres: %w", err)
		}
		cfg.DatabaseURL = d.cluster.URL()
	}
	if cfg.KEK == "" && cfg.KEKFile == "" {
		cfg.KEKFile = filepath.Join(dir, "kek")
		if _, err := os.Stat(cfg.KEKFile); errors.Is(err, os.ErrNotExist) {
			if _, err := keys.CreateKEKFile(cfg.KEKFile); err != nil {
				d.stop(log)
				return nil, err
			}
			log.Warn("created a development key-encryption key; production passes CLAIMBRIDGE_KEK or --kek-file", "path", cfg.KEKFile)
		}
	}
	if len(cfg.AdminTokens) == 0 {
		tok, err := readOrCreateSecret(filepath.Join(dir, "admin-token"))
		if err != nil {
			d.stop(log)
			return nil, err
		}
		cfg.AdminTokens = stringList{tok}
	}
	if cfg.DevIdPAddr != "" {
		if err := d.startIdP(cfg.DevIdPAddr, log); err != nil {
			d.stop(log)
			return nil, err
		}
	}
	return d, nil
}

func (d *devEnv) startIdP(addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("dev IdP: %w (set --dev-idp-addr to another address, or empty to run none)", err)
	}
	d.idpURL = "http://" + ln.Addr().String()
	idp, err := devidp.New(d.idpURL, devIdPAudience)
	if err != nil {
		ln.Close()
		return err
	}
	d.idp = &http.Server{Handler: idp.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = d.idp.Serve(ln) }()
	log.Info("development IdP started", "issuer", d.idpURL)
	return nil
}

func (d *devEnv) stop(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if d.idp != nil {
		_ = d.idp.Shutdown(ctx)
	}
	if d.cluster != nil {
		if err := d.cluster.Stop(ctx); err != nil {
			log.Error("stopping the development Postgres", "err", err)
		}
	}
}

// devStore is what seeding needs of the store.
type devStore interface {
	GetIssuer(ctx context.Context, name string) (sts.Issuer, error)
	PutIssuer(ctx context.Context, iss sts.Issuer, ifVersion int64) (sts.Issuer, bool, error)
	GetClient(ctx context.Context, id string) (sts.Client, error)
	PutClient(ctx context.Context, c sts.Client, ifVersion int64) (sts.Client, bool, error)
	SetClientSecret(ctx context.Context, id string, hash []byte) (sts.Client, error)
	GetPolicy(ctx context.Context, name string) (policy.Policy, error)
	PutPolicy(ctx context.Context, p policy.Policy, ifVersion int64) (policy.Policy, bool, error)
}

// seed creates the issuer, client and policy of the quickstart where they
// are missing (what the user changed stays), then prints how to use them.
func (d *devEnv) seed(ctx context.Context, store devStore, out io.Writer, cfg Config) error {
	if d.idpURL != "" {
		iss := sts.Issuer{Name: devIssuerName, URL: d.idpURL, Audiences: []string{devIdPAudience}}
		iss.Normalize()
		if err := seedOne(ctx, store.GetIssuer, store.PutIssuer, devIssuerName, iss); err != nil {
			return err
		}
	}
	pol := policy.Policy{
		Name: devPolicyName, Audience: devPolicyTarget,
		AllowedClients: []string{devClientID}, AllowedIssuers: []string{devIssuerName},
		Claims: []policy.ClaimMapping{
			{Claim: "permissions"},
			{Claim: "roles", From: devidp.RolesClaim},
			{Claim: "email"},
			{Claim: "orders", Expression: `subject.permissions.filter(p, p.startsWith("orders:"))`},
		},
		Scopes: []string{"orders:read", "orders:write"},
	}
	if err := seedOne(ctx, store.GetPolicy, store.PutPolicy, devPolicyName, pol); err != nil {
		return err
	}
	secretFile := filepath.Join(d.dir, "client-secret")
	if err := d.seedClient(ctx, store, secretFile); err != nil {
		return err
	}
	fmt.Fprintf(out, `
Claimbridge is running in development mode.
  state directory   %s (Postgres cluster, KEK, admin token, client secret)
  database          %s
  token endpoint    %s/oauth2/token
  JWKS              %s/.well-known/jwks.json
  admin API         http://%s/admin/v1 (bearer token in %s)
  dev IdP           %s (GET /token for a subject token)
  client            %s (secret in %s)
  policy            %s for audience %s
`, d.dir, redactURL(cfg.DatabaseURL), cfg.Issuer, cfg.Issuer, cfg.AdminAddr, filepath.Join(d.dir, "admin-token"),
		orNone(d.idpURL), devClientID, secretFile, devPolicyName, devPolicyTarget)
	return nil
}

// seedOne puts v under name unless a resource of that name exists.
func seedOne[T any](ctx context.Context, get func(context.Context, string) (T, error), put func(context.Context, T, int64) (T, bool, error), name string, v T) error {
	_, err := get(ctx, name)
	if !errors.Is(err, sts.ErrNotFound) {
		return err
	}
	_, _, err = put(ctx, v, admin.IfAbsent)
	return err
}

// seedClient makes sure the dev client exists and its secret is in
// secretFile: a lost file means a new secret.
func (d *devEnv) seedClient(ctx context.Context, store devStore, secretFile string) error {
	_, err := store.GetClient(ctx, devClientID)
	_, fileErr := os.Stat(secretFile)
	switch {
	case err == nil && fileErr == nil:
		return nil
	case err != nil && !errors.Is(err, sts.ErrNotFound):
		return err
	}
	secret, hash := sts.NewClientSecret()
	if errors.Is(err, sts.ErrNotFound) {
		_, _, err = store.PutClient(ctx, sts.Client{ID: devClientID, Description: "development gateway (seeded by --dev)", SecretHash: hash}, admin.IfAbsent)
	} else {
		_, err = store.SetClientSecret(ctx, devClientID, hash)
	}
	if err != nil {
		return err
	}
	return os.WriteFile(secretFile, []byte(secret+"\n"), 0o600)
}

// readOrCreateSecret returns the secret in path, creating a random one.
func readOrCreateSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	b := make([]byte, 32)
	rand.Read(b)
	s := base64.RawURLEncoding.EncodeToString(b)
	return s, os.WriteFile(path, []byte(s+"\n"), 0o600)
}

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
