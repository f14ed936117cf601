package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/postgres"
)

// devDir returns a directory for a dev cluster. Run as root, the cluster
// runs as an unprivileged user, who must be able to enter it: t.TempDir's
// parent is 0700, so the test opens it (the code under test never changes
// permissions above its directory).
func devDir(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chmod(filepath.Dir(tmp), 0o755))
		require.NoError(t, os.Chmod(tmp, 0o755))
	}
	return filepath.Join(tmp, "dev")
}

func startDevCluster(t *testing.T, dir string, port int, log *slog.Logger) *postgres.DevCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := postgres.StartDevCluster(ctx, dir, port, log)
	if errors.Is(err, postgres.ErrNoPostgresBinaries) {
		t.Skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine: skipping the dev cluster test")
	}
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Stop(context.Background())) })
	return c
}

func TestDevClusterKeepsDataAcrossRestarts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := devDir(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	c := startDevCluster(t, dir, 0, log)
	require.Contains(t, logs.String(), "initialized a new cluster")
	require.Contains(t, logs.String(), "data_dir="+filepath.Join(dir, "pgdata"))
	s := openStore(t, c.URL())
	require.NoError(t, s.Migrate(ctx))
	_, _, err := s.PutIssuer(ctx, testIssuer("kept", "https://kept.example.com"), 0)
	require.NoError(t, err)
	s.Close()

	again := startDevCluster(t, dir, c.Port(), log)
	require.Contains(t, logs.String(), "reusing the server already running",
		"a cluster already running on the data directory is adopted")
	require.Equal(t, c.URL(), again.URL())

	require.NoError(t, c.Stop(ctx))
	_, err = pgx.Connect(ctx, c.URL())
	require.Error(t, err, "the stopped cluster does not answer")
	require.NoError(t, c.Stop(ctx), "stopping a stopped cluster is fine")

	logs.Reset()
	restarted := startDevCluster(t, dir, c.Port(), log)
	require.NotContains(t, logs.String(), "initialized", "the data directory is reused")
	s = openStore(t, restarted.URL())
	got, err := s.GetIssuer(ctx, "kept")
	require.NoError(t, err, "data survives a restart")
	require.Equal(t, "https://kept.example.com", got.URL)
}

func TestDevClusterPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	_, err = postgres.StartDevCluster(context.Background(), devDir(t), port, nil)
	if errors.Is(err, postgres.ErrNoPostgresBinaries) {
		t.Skip("no PostgreSQL server binaries on this machine")
	}
	require.ErrorContains(t, err, "already in use by another program")
}

func TestDevClusterUnreachableDirAsRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root runs the cluster as another user")
	}
	tmp := t.TempDir() // its parent is 0700 and owned by root
	_, err := postgres.StartDevCluster(context.Background(), filepath.Join(tmp, "dev"), 0, nil)
	if errors.Is(err, postgres.ErrNoPostgresBinaries) {
		t.Skip("no PostgreSQL server binaries on this machine")
	}
	require.ErrorContains(t, err, "--dev-dir")
	require.ErrorContains(t, err, filepath.Dir(tmp), "the message names the directory that blocks")
	fi, err := os.Stat(filepath.Dir(tmp))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "ancestors are left untouched")
}
