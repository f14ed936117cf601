package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/claimbridge/claimbridge/postgres"
)

// migrate applies (`up`) or shows (`status`) the schema migrations.
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("database-url", getenv("CLAIMBRIDGE_DATABASE_URL"), "Postgres URL (or CLAIMBRIDGE_DATABASE_URL)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: claimbridge migrate up|status [--database-url URL]")
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		fs.Usage()
		return errors.New("migrate: want 'up' or 'status'")
	}
	action := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dbURL == "" {
		return errors.New("migrate: --database-url or CLAIMBRIDGE_DATABASE_URL is required")
	}
	store, err := postgres.Open(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	switch action {
	case "up":
		if err := store.Migrate(ctx); err != nil {
			return err
		}
	case "status":
	default:
		fs.Usage()
		return fmt.Errorf("migrate: unknown action %q: want 'up' or 'status'", action)
	}
	cur, latest, err := store.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	state := "up to date"
	if cur < latest {
		state = fmt.Sprintf("%d migration(s) pending: run `claimbridge migrate up`", latest-cur)
	}
	fmt.Fprintf(stdout, "schema version %d of %d: %s\n", cur, latest, state)
	return nil
}
