package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/claimbridge/claimbridge/migrations"
)

// migrateLockID is the session advisory lock that serializes Claimbridge
// migrators around their version check (tern takes its own lock for each
// step as well).
const migrateLockID int64 = 4_170_273_316_845_601_731

// Migrate applies every pending migration of migrations.FS. It is safe to call
// from several processes at once: they take turns on an advisory lock and
// those that come later find nothing to do. It refuses to touch a schema
// newer than this binary knows, rather than migrate it down.
func Migrate(ctx context.Context, conn *pgx.Conn) (err error) {
	if _, err := conn.Exec(ctx, "select pg_advisory_lock($1)", migrateLockID); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "select pg_advisory_unlock($1)", migrateLockID); uerr != nil && err == nil {
			err = fmt.Errorf("migrate: unlock: %w", uerr)
		}
	}()
	m, err := newMigrator(ctx, conn)
	if err != nil {
		return err
	}
	current, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	latest := int32(len(m.Migrations))
	switch {
	case current > latest:
		return fmt.Errorf("migrate: the database schema is at version %d, newer than this binary's %d: upgrade claimbridge", current, latest)
	case current == latest:
		return nil
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate from version %d to %d: %w", current, latest, err)
	}
	return nil
}

// MigrationStatus reports the schema version of the database (0 when no
// migration was ever applied) and the latest version this binary carries.
// It writes nothing.
func MigrationStatus(ctx context.Context, conn *pgx.Conn) (current, latest int32, err error) {
	names, err := migrate.FindMigrations(migrations.FS)
	if err != nil {
		return 0, 0, fmt.Errorf("migration status: %w", err)
	}
	latest = int32(len(names))
	var exists bool
	err = conn.QueryRow(ctx, "select to_regclass($1) is not null", migrations.VersionTable).Scan(&exists)
	if err != nil {
		return 0, 0, fmt.Errorf("migration status: %w", err)
	}
	if !exists {
		return 0, latest, nil
	}
	err = conn.QueryRow(ctx, "select version from "+migrations.VersionTable).Scan(&current)
	if err != nil {
		return 0, 0, fmt.Errorf("migration status: read schema version: %w", err)
	}
	return current, latest, nil
}

func newMigrator(ctx context.Context, conn *pgx.Conn) (*migrate.Migrator, error) {
	m, err := migrate.NewMigrator(ctx, conn, migrations.VersionTable)
	if err != nil {
		return nil, fmt.Errorf("migrate: prepare version table: %w", err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return nil, fmt.Errorf("migrate: load migrations: %w", err)
	}
	return m, nil
}

// Migrate applies every pending migration on a connection of the store's
// pool (see the function Migrate).
func (s *Store) Migrate(ctx context.Context) error {
	return s.withDedicatedConn(ctx, func(conn *pgx.Conn) error { return Migrate(ctx, conn) })
}

// MigrationStatus reports the database's schema version and the latest this
// binary carries (see the function MigrationStatus).
func (s *Store) MigrationStatus(ctx context.Context) (current, latest int32, err error) {
	err = s.withDedicatedConn(ctx, func(conn *pgx.Conn) error {
		current, latest, err = MigrationStatus(ctx, conn)
		return err
	})
	return current, latest, err
}

// withDedicatedConn takes a connection out of the pool for good, so that no
// session state (locks, settings, cached statements from before a schema
// change) goes back into it.
func (s *Store) withDedicatedConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	conn := c.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	return fn(conn)
}
