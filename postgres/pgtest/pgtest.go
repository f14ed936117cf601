// Package pgtest gives tests a fresh, migrated Claimbridge database on the
// PostgreSQL server the environment provides: CLAIMBRIDGE_TEST_DATABASE_URL
// names an administrative connection (a postgres:// URL to a database such as
// "postgres", as a user allowed to create databases), by default
// DefaultAdminURL.
//
// It is test support only: it must not be imported by non-test code.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claimbridge/claimbridge/postgres"
)

// DefaultAdminURL is the administrative connection used when
// CLAIMBRIDGE_TEST_DATABASE_URL is not set.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// EnvAdminURL is the environment variable that overrides DefaultAdminURL.
const EnvAdminURL = "CLAIMBRIDGE_TEST_DATABASE_URL"

// AdminURL returns the administrative connection URL tests use.
func AdminURL() string {
	if u := os.Getenv(EnvAdminURL); u != "" {
		return u
	}
	return DefaultAdminURL
}

// Database is a database created for tests.
type Database struct {
	// Name is the database's name, claimbridge_test_<random>.
	Name string
	// URL connects to it, as the administrative user.
	URL      string
	adminURL string
}

// CreateEmpty creates a database with a random name and no schema.
func CreateEmpty(ctx context.Context) (*Database, error) {
	admin := AdminURL()
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("pgtest: %s must be a postgres:// URL", EnvAdminURL)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "claimbridge_test_" + hex.EncodeToString(b)
	if err := adminExec(ctx, admin, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	u.Path = "/" + name
	return &Database{Name: name, URL: u.String(), adminURL: admin}, nil
}

// Create creates a database with a random name and applies every
// migration to it.
func Create(ctx context.Context) (*Database, error) {
	db, err := CreateEmpty(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, db.URL)
	if err == nil {
		err = postgres.Migrate(ctx, conn)
		conn.Close(ctx)
	}
	if err != nil {
		db.Drop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pgtest: migrate %s: %w", db.Name, err)
	}
	return db, nil
}

// Drop drops the database, ending the sessions still connected to it.
func (db *Database) Drop(ctx context.Context) error {
	err := adminExec(ctx, db.adminURL, "drop database if exists "+pgx.Identifier{db.Name}.Sanitize()+" with (force)")
	if err != nil {
		return fmt.Errorf("pgtest: drop database %s: %w", db.Name, err)
	}
	return nil
}

// NewDatabase creates a migrated database for one test (or benchmark),
// drops it when the test ends, and returns its URL. It fails the test when
// the server cannot be reached.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := Create(ctx)
	if err != nil {
		t.Fatalf("%v (is PostgreSQL running? set %s to an administrative URL)", err, EnvAdminURL)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Errorf("%v", err)
		}
	})
	return db.URL
}

// Run is a TestMain body: it creates a migrated database, stores its URL in
// *databaseURL, runs the tests, drops the database and returns the exit
// code for os.Exit.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &databaseURL)) }
func Run(m *testing.M, databaseURL *string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	db, err := Create(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v (is PostgreSQL running? set %s to an administrative URL)\n", err, EnvAdminURL)
		return 1
	}
	*databaseURL = db.URL
	code := m.Run()
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.Drop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}

func adminExec(ctx context.Context, adminURL, sql string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}
