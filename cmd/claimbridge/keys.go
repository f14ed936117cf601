package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/claimbridge/claimbridge/admin"
	"github.com/claimbridge/claimbridge/keys"
	"github.com/claimbridge/claimbridge/postgres"
)

// startKeys opens the signing keys for serve: it loads the previous KEK
// when one is configured (during a rewrap), gives every configured
// algorithm a key as the schedule says, and loads the ring. A KEK that
// cannot open the keys fails the start.
func startKeys(ctx context.Context, cfg Config, store *postgres.Store, kek *keys.KEK, log *slog.Logger) (*keys.Ring, error) {
	oldKEK, err := loadOldKEK(cfg)
	if err != nil {
		return nil, err
	}
	ring := keys.NewRing(store, kek, cfg.ringOptions(oldKEK, log))
	if err := ring.Init(ctx); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	s := ring.Schedule()
	attrs := []any{"kid", ring.KeyID(), "algorithms", ring.Algorithms(), "kek_id", kek.ID(),
		"rotation_period", s.RotationPeriod, "lead_time", s.LeadTime, "retire_grace", s.RetireGrace, "jwks_max_age", ring.MaxAge()}
	if oldKEK != nil {
		attrs = append(attrs, "old_kek_id", oldKEK.ID())
	}
	log.Info("signing keys ready", attrs...)
	if ring.MaxAge() < cfg.JWKSMaxAge {
		log.Info("JWKS max-age capped at half the key lead time, so that verifiers know a key before it signs",
			"jwks_max_age", ring.MaxAge(), "configured", cfg.JWKSMaxAge)
	}
	return ring, nil
}

const keysUsage = `Usage:
  claimbridge keys list   [flags]                list the signing keys: state and dates
  claimbridge keys rotate [--algorithm ALG] [flags]  plan a rotation: a next key, signing after the lead time
  claimbridge keys revoke [--reason TEXT] [flags] KID  emergency: unpublish KID at once (a fresh key signs if it was active)
  claimbridge keys retire --algorithm ALG [flags]  drop ALG, no longer configured: its keys stop signing, stay published until their tokens expire
  claimbridge keys rewrap [flags]                re-seal every private key under CLAIMBRIDGE_KEK, opening with CLAIMBRIDGE_OLD_KEK

The keys commands work on the database directly and take the configuration
of serve (flags, CLAIMBRIDGE_* and --config): --database-url, the KEK
(CLAIMBRIDGE_KEK or --kek-file), the previous KEK for rewrap
(CLAIMBRIDGE_OLD_KEK or --old-kek-file), --signing-algorithm(s) and the key
schedule. Changes reach every replica at once (LISTEN/NOTIFY) and are
recorded in the audit log with the actor cli:$USER.
`

// keysCommand runs `claimbridge keys ACTION`.
func keysCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, keysUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return errors.New("keys: want list, rotate, revoke, retire or rewrap")
	}
	action := args[0]
	var alg, reason string
	cfg, fs, err := loadConfigWith("keys "+action, args[1:], getenv, stderr, func(fs *flag.FlagSet) {
		switch action {
		case "rotate":
			fs.StringVar(&alg, "algorithm", "", "rotate only this configured algorithm (default: every configured one)")
		case "retire":
			fs.StringVar(&alg, "algorithm", "", "the algorithm to drop; it must no longer be configured (required)")
		case "revoke":
			fs.StringVar(&reason, "reason", "", "why the key is revoked, for the audit log")
		}
	})
	if err != nil {
		return err
	}
	if err := cfg.validateKeysCommand(action, fs.Args()); err != nil {
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("keys %s:\n%w", action, err)
	}
	store, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer store.Close()
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err := ensureSchema(ctx, store, false, log); err != nil {
		return err
	}
	ctx = admin.WithActor(ctx, "cli:"+cmp.Or(getenv("USER"), "unknown"))
	switch action {
	case "list":
		return listKeys(ctx, cfg, store, stdout)
	case "rotate":
		return rotateKeys(ctx, cfg, store, alg, log, stdout)
	case "revoke":
		return revokeKey(ctx, cfg, store, fs.Arg(0), reason, log, stdout)
	case "retire":
		return retireAlgorithm(ctx, cfg, store, alg, log, stdout)
	default:
		return rewrapKeys(ctx, cfg, store, stdout)
	}
}

// validateKeysCommand reports every problem of the configuration a keys
// action needs.
func (c *Config) validateKeysCommand(action string, args []string) error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch action {
	case "list", "rotate", "rewrap", "retire":
		if len(args) != 0 {
			add("unexpected arguments %q (flags go before them)", args)
		}
	case "revoke":
		if len(args) != 1 {
			add("want exactly one KID after the flags (claimbridge keys list shows them), got %d arguments", len(args))
		}
	default:
		add("unknown action %q: want list, rotate, revoke, retire or rewrap", action)
	}
	if c.DatabaseURL == "" {
		add("database-url: required (or CLAIMBRIDGE_DATABASE_URL)")
	}
	if action != "list" && c.KEK == "" && c.KEKFile == "" {
		add("kek: set CLAIMBRIDGE_KEK or --kek-file")
	}
	if action == "rewrap" && c.Keys.OldKEK == "" && c.Keys.OldKEKFile == "" {
		add("old-kek: set CLAIMBRIDGE_OLD_KEK or --old-kek-file to the KEK the keys are sealed under now")
	}
	errs = append(errs, c.validateKeys()...)
	return errors.Join(errs...)
}

// keysRing is a ring for one lifecycle step of the CLI: it is not loaded
// and signs nothing.
func keysRing(cfg Config, store *postgres.Store, log *slog.Logger) (*keys.Ring, error) {
	kek, err := loadKEK(cfg)
	if err != nil {
		return nil, err
	}
	return keys.NewRing(store, kek, cfg.ringOptions(nil, log)), nil
}

func listKeys(ctx context.Context, cfg Config, store *postgres.Store, stdout io.Writer) error {
	ring := keys.NewRing(store, nil, cfg.ringOptions(nil, nil))
	ks, err := ring.ListKeys(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tPUBLISHED\tSIGNS FROM\tRETIRED\tUNPUBLISHED\tKEK")
	for _, k := range ks {
		signs, unpublished := when(k.ActivatedAt), when(k.RemovedAt)
		if k.State == keys.StateNext {
			signs = when(k.ActivatesAt) + " (planned)"
		}
		if k.State == keys.StateRetired {
			unpublished = when(k.RemoveAfter) + " (planned)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, k.State, when(k.CreatedAt),
			signs, when(k.RetiredAt), unpublished, cmp.Or(k.KEKID, "-"))
	}
	return tw.Flush()
}

// when formats a lifecycle date, "-" for none.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func rotateKeys(ctx context.Context, cfg Config, store *postgres.Store, alg string, log *slog.Logger, stdout io.Writer) error {
	ring, err := keysRing(cfg, store, log)
	if err != nil {
		return err
	}
	rs, err := ring.Rotate(ctx, alg)
	if err != nil {
		return err
	}
	for _, r := range rs {
		fmt.Fprintln(stdout, strings.ToUpper(r.Detail[:1])+r.Detail[1:])
	}
	return nil
}

func revokeKey(ctx context.Context, cfg Config, store *postgres.Store, kid, reason string, log *slog.Logger, stdout io.Writer) error {
	ring, err := keysRing(cfg, store, log)
	if err != nil {
		return err
	}
	res, err := ring.Revoke(ctx, kid, reason)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.Consequence)
	return nil
}

func retireAlgorithm(ctx context.Context, cfg Config, store *postgres.Store, alg string, log *slog.Logger, stdout io.Writer) error {
	if alg == "" {
		return errors.New("keys retire: --algorithm is required")
	}
	ring, err := keysRing(cfg, store, log)
	if err != nil {
		return err
	}
	gone, err := ring.Retire(ctx, alg)
	if err != nil {
		return err
	}
	for _, k := range gone {
		fmt.Fprintf(stdout, "Retired %s key %s: it signs no more and stays published until %s.\n", k.Algorithm, k.ID, when(k.RemoveAfter))
	}
	return nil
}

func rewrapKeys(ctx context.Context, cfg Config, store *postgres.Store, stdout io.Writer) error {
	kek, err := loadKEK(cfg)
	if err != nil {
		return err
	}
	old, err := loadOldKEK(cfg)
	if err != nil {
		return err
	}
	if old.ID() == kek.ID() {
		return fmt.Errorf("keys rewrap: the old and the new KEK are the same (%s)", kek.ID())
	}
	res, err := keys.Rewrap(ctx, store, kek, old)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Re-sealed %d private keys under KEK %s (%d unchanged: already under it, or holding no private key).\n",
		len(res.Rewrapped), res.KEKID, res.Unchanged)
	for _, kid := range res.Rewrapped {
		fmt.Fprintln(stdout, "  "+kid)
	}
	fmt.Fprintf(stdout, "The old KEK %s now opens nothing: remove CLAIMBRIDGE_OLD_KEK / --old-kek-file from every replica.\n", old.ID())
	return nil
}
