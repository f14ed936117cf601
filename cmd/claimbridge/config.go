package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the configuration of `claimbridge serve`. Every field has a
// flag; the same name upper-cased with CLAIMBRIDGE_ and underscores is its
// environment variable, and its yaml tag its key in the --config file.
// Precedence: flag, then environment, then file, then default.
type Config struct {
	Issuer          string        `yaml:"issuer"`
	PublicAddr      string        `yaml:"public_addr"`
	AdminAddr       string        `yaml:"admin_addr"`
	DatabaseURL     string        `yaml:"database_url"`
	KEKFile         string        `yaml:"kek_file"`
	AdminTokens     stringList    `yaml:"admin_tokens"`
	AdminReadTokens stringList    `yaml:"admin_read_tokens"`
	AdminJWT        adminJWT      `yaml:",inline"`
	TokenLifetime   time.Duration `yaml:"token_lifetime"`
	ClockSkew       time.Duration `yaml:"clock_skew"`
	ReloadInterval  time.Duration `yaml:"reload_interval"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	JWKSMaxAge      time.Duration `yaml:"jwks_max_age"`
	IdPJWKSRefresh  time.Duration `yaml:"idp_jwks_min_refresh"`
	LogLevel        string        `yaml:"log_level"`
	LogFormat       string        `yaml:"log_format"`
	Dev             bool          `yaml:"dev"`
	DevDir          string        `yaml:"dev_dir"`
	DevPostgresPort int           `yaml:"dev_postgres_port"`
	DevIdPAddr      string        `yaml:"dev_idp_addr"`
	Keys            keyConfig     `yaml:",inline"`
	Gateway         gatewayConfig `yaml:",inline"`

	// KEK comes only from the environment (CLAIMBRIDGE_KEK), never from a
	// flag (visible in ps) or the file.
	KEK string `yaml:"-"`
}

func defaultConfig() Config {
	return Config{
		PublicAddr:      "127.0.0.1:8080",
		AdminAddr:       "127.0.0.1:8081",
		TokenLifetime:   5 * time.Minute,
		ClockSkew:       60 * time.Second,
		ReloadInterval:  30 * time.Second,
		ShutdownTimeout: 15 * time.Second,
		JWKSMaxAge:      5 * time.Minute,
		IdPJWKSRefresh:  10 * time.Second,
		LogLevel:        "info",
		LogFormat:       "text",
		DevDir:          ".claimbridge/dev",
		DevPostgresPort: 54329,
		DevIdPAddr:      "127.0.0.1:9090",
		Keys:            defaultKeyConfig(),
		Gateway:         defaultGatewayConfig(),
		AdminJWT:        adminJWT{RoleClaim: "roles", WriteRole: "claimbridge:write", ReadRole: "claimbridge:read"},
	}
}

// bindFlags registers every configuration flag on fs, bound to c.
func (c *Config) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Issuer, "issuer", c.Issuer, "our issuer URL, the `iss` of minted tokens (default in --dev: http://PUBLIC_ADDR)")
	fs.StringVar(&c.PublicAddr, "public-addr", c.PublicAddr, "listen address of the public listener (token endpoint, well-known, health)")
	fs.StringVar(&c.AdminAddr, "admin-addr", c.AdminAddr, "listen address of the admin listener (/admin/v1)")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "Postgres URL (required unless --dev)")
	fs.StringVar(&c.KEKFile, "kek-file", c.KEKFile, "file holding the 32-byte key-encryption key (base64 or hex); or set CLAIMBRIDGE_KEK")
	fs.Var(&c.AdminTokens, "admin-tokens", "comma-separated admin bearer tokens of the write role (prefer the environment or the file)")
	fs.Var(&c.AdminReadTokens, "admin-read-tokens", "comma-separated admin bearer tokens of the read role: GET only (prefer the environment or the file)")
	c.AdminJWT.bindFlags(fs)
	fs.DurationVar(&c.TokenLifetime, "token-lifetime", c.TokenLifetime, "lifetime of minted tokens for policies that set none")
	fs.DurationVar(&c.ClockSkew, "clock-skew", c.ClockSkew, "tolerance for subject token exp/nbf/iat (at most 5m)")
	fs.DurationVar(&c.ReloadInterval, "reload-interval", c.ReloadInterval, "periodic full reload of the configuration snapshot")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "time to finish in-flight requests on shutdown")
	fs.DurationVar(&c.JWKSMaxAge, "jwks-max-age", c.JWKSMaxAge, "Cache-Control max-age of our JWKS")
	fs.DurationVar(&c.IdPJWKSRefresh, "idp-jwks-min-refresh", c.IdPJWKSRefresh, "least time between two fetches of an IdP's JWKS on unknown key IDs")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	fs.BoolVar(&c.Dev, "dev", c.Dev, "development mode: embedded Postgres, local KEK and admin token, dev IdP, seeded configuration")
	fs.StringVar(&c.DevDir, "dev-dir", c.DevDir, "directory of the development state (Postgres cluster, KEK, secrets)")
	fs.IntVar(&c.DevPostgresPort, "dev-postgres-port", c.DevPostgresPort, "port of the development Postgres cluster")
	fs.StringVar(&c.DevIdPAddr, "dev-idp-addr", c.DevIdPAddr, "listen address of the development IdP in --dev (empty: none)")
	c.Keys.bindFlags(fs)
	c.Gateway.bindFlags(fs)
}

// loadConfig reads flags, environment and file. The file path comes from
// --config or CLAIMBRIDGE_CONFIG.
func loadConfig(name string, args []string, getenv func(string) string, stderr io.Writer) (Config, *flag.FlagSet, error) {
	return loadConfigWith(name, args, getenv, stderr, nil)
}

// loadConfigWith is loadConfig for a subcommand that has flags of its own,
// which extra binds (they come from the command line only).
func loadConfigWith(name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet)) (Config, *flag.FlagSet, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", getenv("CLAIMBRIDGE_CONFIG"), "YAML configuration file")
	cfg.bindFlags(fs)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return cfg, fs, err
	}
	// Rebuild with the right precedence: defaults, file, environment, flags.
	final := defaultConfig()
	ffs := flag.NewFlagSet(name, flag.ContinueOnError)
	final.bindFlags(ffs)
	var errs []error
	if *configFile != "" {
		if err := readConfigFile(*configFile, &final); err != nil {
			errs = append(errs, err)
		}
	}
	ffs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		if v := getenv(env); v != "" {
			if err := ffs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
			}
		}
	})
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "config" {
			_ = ffs.Set(f.Name, f.Value.String())
		}
	})
	final.KEK = getenv("CLAIMBRIDGE_KEK")
	final.Keys.OldKEK = getenv("CLAIMBRIDGE_OLD_KEK")
	return final, fs, errors.Join(errs...)
}

func envName(flagName string) string {
	return "CLAIMBRIDGE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func readConfigFile(path string, c *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// applyDevDefaults fills what --dev provides.
func (c *Config) applyDevDefaults() {
	if c.Dev && c.Issuer == "" {
		c.Issuer = "http://" + c.PublicAddr
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if u, err := url.Parse(c.Issuer); c.Issuer == "" {
		add("issuer: required (--issuer or CLAIMBRIDGE_ISSUER)")
	} else if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(c.Issuer, "/") {
		add("issuer: %q must be an absolute http(s) URL without query, fragment or trailing slash", c.Issuer)
	} else if u.Scheme == "http" && !c.Dev && !isLoopback(u.Hostname()) {
		add("issuer: %q must use https outside --dev (plain http is only for loopback)", c.Issuer)
	}
	for name, addr := range map[string]string{"public-addr": c.PublicAddr, "admin-addr": c.AdminAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			add("%s: %q is not host:port", name, addr)
		}
	}
	if c.PublicAddr == c.AdminAddr {
		add("admin-addr: must differ from public-addr: the admin API is served on its own listener")
	}
	if c.DatabaseURL == "" && !c.Dev {
		add("database-url: required (or --dev for an embedded development cluster)")
	}
	if c.KEK == "" && c.KEKFile == "" && !c.Dev {
		add("kek: set CLAIMBRIDGE_KEK or --kek-file (32 random bytes, base64 or hex; e.g. openssl rand -base64 32)")
	}
	if len(c.AdminTokens) == 0 && c.AdminJWT.Issuer == "" && !c.Dev {
		add("admin-tokens: at least one admin token is required (CLAIMBRIDGE_ADMIN_TOKENS), unless admins sign in with JWTs (--admin-jwt-issuer)")
	}
	errs = append(errs, validateAdminTokens(c.AdminTokens, c.AdminReadTokens)...)
	errs = append(errs, c.AdminJWT.validate(c.Dev)...)
	errs = append(errs, c.validateKeys()...)
	errs = append(errs, c.Gateway.validate()...)
	within := func(name string, d, lo, hi time.Duration) {
		if d < lo || d > hi {
			add("%s: %s must be between %s and %s", name, d, lo, hi)
		}
	}
	within("token-lifetime", c.TokenLifetime, 10*time.Second, 24*time.Hour)
	within("clock-skew", c.ClockSkew, 0, 5*time.Minute)
	within("reload-interval", c.ReloadInterval, time.Second, time.Hour)
	within("shutdown-timeout", c.ShutdownTimeout, 0, 10*time.Minute)
	within("jwks-max-age", c.JWKSMaxAge, time.Second, 24*time.Hour)
	within("idp-jwks-min-refresh", c.IdPJWKSRefresh, time.Second, time.Hour)
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		add("log-level: %q is not debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		add("log-format: %q is not text or json", c.LogFormat)
	}
	if c.Dev && c.DevDir == "" {
		add("dev-dir: required with --dev")
	}
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// stringList is a comma-separated flag and a YAML list.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(s string) error {
	*l = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}
