package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/migrations"
	"github.com/claimbridge/claimbridge/postgres"
	"github.com/claimbridge/claimbridge/postgres/pgtest"
)

func emptyDatabase(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	db, err := pgtest.CreateEmpty(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Drop(context.Background())) })
	return db.URL
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func latestMigration(t *testing.T) int32 {
	t.Helper()
	names, err := migrate.FindMigrations(migrations.FS)
	require.NoError(t, err)
	require.NotEmpty(t, names)
	return int32(len(names))
}

func TestMigrateEmptyDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := connect(t, emptyDatabase(t))
	latest := latestMigration(t)

	current, got, err := postgres.MigrationStatus(ctx, conn)
	require.NoError(t, err)
	require.Equal(t, int32(0), current, "a database never migrated is at version 0")
	require.Equal(t, latest, got)

	require.NoError(t, postgres.Migrate(ctx, conn))
	current, _, err = postgres.MigrationStatus(ctx, conn)
	require.NoError(t, err)
	require.Equal(t, latest, current)

	require.NoError(t, postgres.Migrate(ctx, conn), "migrating a current schema is a no-op")
	current, _, err = postgres.MigrationStatus(ctx, conn)
	require.NoError(t, err)
	require.Equal(t, latest, current)

	for _, table := range []string{"issuers", "clients", "policies", "signing_keys"} {
		var exists bool
		require.NoError(t, conn.QueryRow(ctx, "select to_regclass($1) is not null", table).Scan(&exists))
		require.True(t, exists, table)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	url := emptyDatabase(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		conn := connect(t, url)
		wg.Go(func() { errs[i] = postgres.Migrate(context.Background(), conn) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "migrator %d", i)
	}
	s := openStore(t, url)
	current, latest, err := s.MigrationStatus(context.Background())
	require.NoError(t, err)
	require.Equal(t, latest, current)
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := connect(t, emptyDatabase(t))
	require.NoError(t, postgres.Migrate(ctx, conn))
	_, err := conn.Exec(ctx, "update "+migrations.VersionTable+" set version = version + 1")
	require.NoError(t, err)

	err = postgres.Migrate(ctx, conn)
	require.ErrorContains(t, err, "newer than this binary")
	var exists bool
	require.NoError(t, conn.QueryRow(ctx, "select to_regclass('issuers') is not null").Scan(&exists))
	require.True(t, exists, "a newer schema must not be migrated down")
}

func TestStoreMigrate(t *testing.T) {
	t.Parallel()
	s := openStore(t, emptyDatabase(t))
	ctx := context.Background()
	require.NoError(t, s.Migrate(ctx))
	current, latest, err := s.MigrationStatus(ctx)
	require.NoError(t, err)
	require.Equal(t, latest, current)
	_, err = s.ListIssuers(ctx)
	require.NoError(t, err, "the pool sees the migrated schema")
}
