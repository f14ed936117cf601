package postgres

import (
	"context"
	"encoding/json"
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

	"github.com/claimbridge/claimbridge/admin"
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

// write runs fn in a transaction. When fn reports a change (a non-nil
// entry), the same transaction records it in the audit log and announces kind
// on NotifyChannel; both take effect only if the transaction commits. A write
// that changes nothing records and announces nothing.
func (s *Store) write(ctx context.Context, kind string, fn func(tx pgx.Tx) (*admin.AuditEntry, error)) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		e, err := fn(tx)
		if err != nil || e == nil {
			return err
		}
		if err := s.audit(ctx, tx, *e); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "select pg_notify($1, $2)", NotifyChannel, kind); err != nil {
			return fmt.Errorf("notify %s: %w", kind, err)
		}
		return nil
	})
}

// changed is the audit entry of a write, made at, that left v (as the admin
// API shows it) at version in place of what was there.
func changed(kind, action, name string, version int64, at time.Time, v any) (*admin.AuditEntry, error) {
	detail, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("audit %s %q: %w", kind, name, err)
	}
	return &admin.AuditEntry{At: at, Kind: kind, Action: action, Name: name, Version: version, Detail: detail}, nil
}

// putAction is the audit action of a put that created a resource or not.
func putAction(created bool) string {
	if created {
		return admin.ActionCreate
	}
	return admin.ActionUpdate
}

// lockVersion serializes the writers of one resource, checks the write's
// precondition ifVersion (see checkVersion; what names the resource in the
// error) and returns the stored version, 0 when there is none. The lock is
// a transaction advisory lock on (table, key), held until the transaction
// ends, so that it also covers a row about to be created: the version stays
// true for the whole transaction.
func lockVersion(ctx context.Context, tx pgx.Tx, table, column, what, key string, ifVersion int64) (int64, error) {
	if _, err := tx.Exec(ctx, "select pg_advisory_xact_lock(hashtext($1), hashtext($2))", table, key); err != nil {
		return 0, fmt.Errorf("lock %s %q: %w", what, key, err)
	}
	var v int64
	err := tx.QueryRow(ctx, "select version from "+table+" where "+column+" = $1", key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		v, err = 0, nil
	}
	if err != nil {
		return 0, err
	}
	return v, checkVersion(what, key, ifVersion, v)
}

// checkVersion applies the precondition ifVersion (0, a version,
// admin.IfAbsent or admin.IfExists) to a resource whose stored version is
// current (0: absent); what and name name it in the error.
func checkVersion(what, name string, ifVersion, current int64) error {
	switch {
	case ifVersion == admin.IfAbsent && current != 0:
		return fmt.Errorf("%s %q already exists (version %d): %w", what, name, current, sts.ErrPreconditionFailed)
	case (ifVersion > 0 || ifVersion == admin.IfExists) && current == 0:
		return fmt.Errorf("%s %q does not exist: %w", what, name, sts.ErrPreconditionFailed)
	case ifVersion > 0 && current != ifVersion:
		return fmt.Errorf("%s %q is at version %d, not %d: %w", what, name, current, ifVersion, sts.ErrPreconditionFailed)
	}
	return nil
}

// remove deletes, inside tx, the row of table whose column equals key and
// returns it as scan reads cols, provided its version satisfies ifVersion.
// A missing row is an sts.ErrNotFound whatever ifVersion says.
func remove[T any](ctx context.Context, tx pgx.Tx, table, column, cols, what, key string, ifVersion int64, scan func(pgx.Row) (T, error)) (T, error) {
	var old T
	current, err := lockVersion(ctx, tx, table, column, what, key, 0)
	if err != nil {
		return old, err
	}
	if current == 0 {
		return old, fmt.Errorf("%s %q: %w", what, key, sts.ErrNotFound)
	}
	if err := checkVersion(what, key, ifVersion, current); err != nil {
		return old, err
	}
	return scan(tx.QueryRow(ctx, "delete from "+table+" where "+column+" = $1 returning "+cols, key))
}

// writeError wraps the error of a write (op: put, delete, …) to the
// resource what/name, marking outages; the store's sentinel errors, whose
// messages already name the resource, pass through unchanged.
func writeError(op, what, name string, err error) error {
	switch {
	case err == nil, errors.Is(err, sts.ErrNotFound), errors.Is(err, sts.ErrConflict), errors.Is(err, sts.ErrPreconditionFailed):
		return err
	}
	return fmt.Errorf("%s %s %q: %w", op, what, name, unavailable(err))
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

// getRow reads the one row query finds for key, or an sts.ErrNotFound; what
// names the resource in errors.
func getRow[T any](ctx context.Context, q queryer, what, query, key string, scan func(pgx.Row) (T, error)) (T, error) {
	v, err := scan(q.QueryRow(ctx, query, key))
	if errors.Is(err, pgx.ErrNoRows) {
		var zero T
		return zero, fmt.Errorf("%s %q: %w", what, key, sts.ErrNotFound)
	}
	if err != nil {
		var zero T
		return zero, fmt.Errorf("get %s %q: %w", what, key, unavailable(err))
	}
	return v, nil
}

// listRows reads every row query finds; what names the resources in errors.
func listRows[T any](ctx context.Context, q queryer, what, query string, scan func(pgx.Row) (T, error)) ([]T, error) {
	rows, err := q.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, unavailable(err))
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, unavailable(err))
	}
	return list, nil
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
