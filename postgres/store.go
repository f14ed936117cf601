package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"

	"github.com/claimbridge/claimbridge/keys"
	"github.com/claimbridge/claimbridge/sts"
)

// NotifyChannel is the LISTEN/NOTIFY channel on which every write is
// announced, with one of the Change… kinds as payload.
const NotifyChannel = "claimbridge_changes"

// The kinds of change announced on NotifyChannel and passed to a Listener.
const (
	ChangeIssuers  = "issuers"
	ChangeClients  = "clients"
	ChangePolicies = "policies"
	ChangeKeys     = "keys"
	// ChangeReconnect is passed by a Listener after its connection was
	// restored: changes may have been missed, so everything should reload.
	ChangeReconnect = "reconnect"
)

// defaultMaxConns bounds the pool unless the URL sets pool_max_conns: the
// exchange hot path never touches Postgres, so a few connections serve the
// admin API and snapshot reloads.
const defaultMaxConns = 8

// Store keeps Claimbridge's state in PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var (
	_ sts.StateLoader = (*Store)(nil)
	_ keys.Store      = (*Store)(nil)
)

// Open connects to the database at databaseURL (a postgres:// URL or a
// key=value connection string; pgxpool's pool_* parameters are honoured) and
// checks that it answers. It does not migrate the schema: see Store.Migrate.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse database URL: %w", err)
	}
	if !strings.Contains(databaseURL, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "claimbridge"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s:%d database %q: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return &Store{pool: pool, now: time.Now}, nil
}

// Close closes every connection of the pool.
func (s *Store) Close() { s.pool.Close() }

// Pool returns the underlying connection pool (for health checks and tools).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// timestamp is the store's clock at the precision Postgres keeps, so that a
// returned row equals what a later read returns.
func (s *Store) timestamp() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// write runs fn in a transaction that also announces a change of kind on
// NotifyChannel; the notification is delivered only if the transaction
// commits.
func (s *Store) write(ctx context.Context, kind string, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "select pg_notify($1, $2)", NotifyChannel, kind); err != nil {
			return fmt.Errorf("notify %s: %w", kind, err)
		}
		return nil
	})
}

// queryer is what reads need from a pool or a transaction.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// uniqueViolation returns the name of the unique constraint err violates,
// or "" when err is not a unique violation.
func uniqueViolation(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return pgErr.ConstraintName
	}
	return ""
}

// deleteRow deletes the row of table whose key column equals key,
// announcing kind; what names the resource in errors.
func (s *Store) deleteRow(ctx context.Context, kind, table, column, what, key string) error {
	return s.write(ctx, kind, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "delete from "+table+" where "+column+" = $1", key)
		if err != nil {
			return fmt.Errorf("delete %s %q: %w", what, key, unavailable(err))
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%s %q: %w", what, key, sts.ErrNotFound)
		}
		return nil
	})
}

// unavailable marks err with sts.ErrUnavailable when it says the database
// cannot be reached or is shutting down, so that the admin API answers 503
// for an outage and 500 for anything else.
func unavailable(err error) error {
	var (
		connErr *pgconn.ConnectError
		netErr  net.Error
		pgErr   *pgconn.PgError
	)
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr), pgconn.Timeout(err),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, pgx.ErrTxClosed), errors.Is(err, puddle.ErrClosedPool),
		errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")):
		return fmt.Errorf("%w: %w", sts.ErrUnavailable, err)
	}
	return err
}

// nonNil returns s, or an empty slice for nil, for text[] not null columns.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// utc returns t in UTC; pgx returns timestamps in the local zone.
func utc(t time.Time) time.Time { return t.UTC() }
