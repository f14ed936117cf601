package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/claimbridge/claimbridge/api"
	"github.com/claimbridge/claimbridge/keys"
	"github.com/claimbridge/claimbridge/postgres"
	"github.com/claimbridge/claimbridge/sts"
)

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig("serve", args, getenv, stderr)
	if err != nil {
		return err
	}
	cfg.applyDevDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)

	var dev *devEnv
	if cfg.Dev {
		if dev, err = startDev(ctx, &cfg, log); err != nil {
			return err
		}
		defer dev.stop(log)
	}
	kek, err := loadKEK(cfg)
	if err != nil {
		return err
	}
	store, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := ensureSchema(ctx, store, cfg.Dev, log); err != nil {
		return err
	}
	ring, err := startKeys(ctx, cfg, store, kek, log)
	if err != nil {
		return err
	}
	if dev != nil {
		if err := dev.seed(ctx, store, stdout, cfg); err != nil {
			return err
		}
	}
	cache := cfg.Gateway.cache()
	ex := sts.NewExchanger(ring, sts.Options{
		Issuer:          cfg.Issuer,
		DefaultLifetime: cfg.TokenLifetime,
		ClockSkew:       cfg.ClockSkew,
		JWKSMinRefresh:  cfg.IdPJWKSRefresh,
		Cache:           cache,
		ActiveKeys:      ring,
		Logger:          log,
	})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()
	if err := keepCurrent(ctx, &bg, cfg, store, ring, ex, log); err != nil {
		return err
	}
	bg.Go(func() { ring.Run(ctx) })
	return serveUntilDone(ctx, cfg, log, newServers(cfg, store, ring, ex, cache, log))
}

// newServers builds the public and the admin listener, by address.
func newServers(cfg Config, store *postgres.Store, ring *keys.Ring, ex *sts.Exchanger, cache *sts.Cache, log *slog.Logger) map[string]*echo.Echo {
	ready := func(context.Context) error {
		if _, _, _, at := ex.Stats(); at.IsZero() {
			return errors.New("configuration not loaded yet")
		}
		if ring.KeyID() == "" {
			return errors.New("no active signing key")
		}
		return nil
	}
	public := api.NewPublic(api.PublicConfig{Issuer: cfg.Issuer, Exchanger: ex, Keys: ring, SigningAlgorithms: ring.Algorithms(),
		ForwardAuth: cfg.Gateway.forwardAuth(), Ready: ready, Logger: log})
	admin := api.NewAdmin(api.AdminConfig{
		Store: store, Tokens: cfg.AdminTokens, ReadTokens: cfg.AdminReadTokens, JWT: cfg.AdminJWT.api(), Ready: ready, Logger: log,
		Preview: ex, Keys: ring, Metrics: newMetrics(ring, cache),
	})
	return map[string]*echo.Echo{cfg.PublicAddr: public, cfg.AdminAddr: admin}
}

// ensureSchema migrates in dev mode; in production it only checks, so that
// schema changes are an explicit step (`claimbridge migrate up`).
func ensureSchema(ctx context.Context, store *postgres.Store, dev bool, log *slog.Logger) error {
	if dev {
		return store.Migrate(ctx)
	}
	cur, latest, err := store.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	if cur != latest {
		return fmt.Errorf("the database schema is at version %d but this binary needs %d: run `claimbridge migrate up` first", cur, latest)
	}
	log.Debug("database schema is current", "version", cur)
	return nil
}

// keepCurrent loads the first snapshot and keeps it and the signing keys
// current: on every change Postgres announces and on a periodic reload.
func keepCurrent(ctx context.Context, bg *sync.WaitGroup, cfg Config, store *postgres.Store, ring *keys.Ring, ex *sts.Exchanger, log *slog.Logger) error {
	changed := make(chan struct{}, 1)
	listening := make(chan struct{})
	var once sync.Once
	reloadKeys := func() {
		if err := ring.Reload(ctx); err != nil && ctx.Err() == nil {
			log.Error("signing keys reload failed; signing with the previous key", "err", err)
		}
	}
	l := &postgres.Listener{
		DatabaseURL: cfg.DatabaseURL,
		Log:         log,
		Listening:   func() { once.Do(func() { close(listening) }) },
		OnChange: func(kind string) {
			if kind == postgres.ChangeKeys || kind == postgres.ChangeReconnect {
				reloadKeys()
			}
			if kind != postgres.ChangeKeys {
				select {
				case changed <- struct{}{}:
				default: // a reload is already pending
				}
			}
		},
	}
	bg.Add(2)
	go func() { defer bg.Done(); _ = l.Run(ctx) }()
	select {
	case <-listening:
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return errors.New("could not LISTEN for configuration changes within 30s")
	}
	if err := ex.Reload(ctx, store); err != nil {
		return err
	}
	issuers, clients, policies, _ := ex.Stats()
	log.Info("configuration loaded", "issuers", issuers, "clients", clients, "policies", policies)
	// The key ring reloads itself on its check interval (ring.Run).
	go func() { defer bg.Done(); ex.Run(ctx, store, changed, cfg.ReloadInterval) }()
	return nil
}

// serveUntilDone serves each echo server on its address until ctx ends or
// one fails, then shuts all down, letting in-flight requests finish.
func serveUntilDone(ctx context.Context, cfg Config, log *slog.Logger, servers map[string]*echo.Echo) error {
	errc := make(chan error, len(servers))
	for addr, e := range servers {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		e.Listener = ln
		e.Server.ReadHeaderTimeout = 10 * time.Second
		e.Server.ReadTimeout = 30 * time.Second
		e.Server.IdleTimeout = 120 * time.Second
		go func() {
			if err := e.Start(""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving %s: %w", addr, err)
			}
		}()
	}
	log.Info("claimbridge is serving", "issuer", cfg.Issuer, "public", cfg.PublicAddr, "admin", cfg.AdminAddr)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	log.Info("shutting down; finishing in-flight requests", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	for _, e := range servers {
		if serr := e.Shutdown(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("shutdown: %w", serr))
		}
	}
	return err
}

// loadKEK reads the key-encryption key from the environment or its file.
func loadKEK(cfg Config) (*keys.KEK, error) {
	if cfg.KEK != "" {
		k, err := keys.ParseKEK(cfg.KEK)
		if err != nil {
			return nil, fmt.Errorf("CLAIMBRIDGE_KEK: %w", err)
		}
		return k, nil
	}
	k, err := keys.LoadKEKFile(cfg.KEKFile)
	if err != nil {
		return nil, fmt.Errorf("kek-file: %w", err)
	}
	return k, nil
}
