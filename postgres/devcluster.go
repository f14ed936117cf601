package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DevDatabase is the database a DevCluster serves Claimbridge from.
const DevDatabase = "claimbridge"

// DevCluster is a development PostgreSQL server run from the machine's own
// binaries, with its data kept in a directory across restarts. It listens on
// 127.0.0.1 only and trusts every local connection: never use it for
// anything but development.
type DevCluster struct {
	dir, dataDir, socketDir string
	port                    int
	initdb, pgCtl           string
	user                    *runUser // nil: the current user
	log                     *slog.Logger
}

// StartDevCluster starts (and on first use initializes) a development
// cluster with its data in dir/pgdata and its socket in dir/pgsocket,
// listening on 127.0.0.1:port (0 picks a free port), and creates the
// database DevDatabase. Binaries are taken from PATH, else from the newest
// /usr/lib/postgresql/*/bin. Run as root, it runs Postgres as the user
// "postgres" (else "nobody"), since Postgres refuses to run as root. A
// server already running on dir's data (left over by a crash) is adopted if
// it answers on port.
func StartDevCluster(ctx context.Context, dir string, port int, log *slog.Logger) (*DevCluster, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := newDevCluster(dir, port, log)
	if err != nil {
		return nil, err
	}
	if err := c.prepareDirs(ctx); err != nil {
		return nil, err
	}
	running := false
	if c.initialized() {
		if running, err = c.running(ctx); err != nil {
			return nil, err
		}
	}
	if running {
		err = c.adopt(ctx)
	} else {
		err = c.start(ctx)
	}
	if err != nil {
		return nil, err
	}
	if err := c.ensureDatabase(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func newDevCluster(dir string, port int, log *slog.Logger) (*DevCluster, error) {
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("dev postgres: port %d is out of range", port)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("dev postgres: %w", err)
	}
	initdb, pgCtl, err := findPostgresBinaries()
	if err != nil {
		return nil, err
	}
	u, err := devClusterUser()
	if err != nil {
		return nil, err
	}
	return &DevCluster{
		dir: abs, dataDir: filepath.Join(abs, "pgdata"), socketDir: filepath.Join(abs, "pgsocket"),
		port: port, initdb: initdb, pgCtl: pgCtl, user: u, log: log,
	}, nil
}

// URL is the connection URL of the development database.
func (c *DevCluster) URL() string { return c.databaseURL(DevDatabase) }

// Port is the TCP port the cluster listens on at 127.0.0.1.
func (c *DevCluster) Port() int { return c.port }

func (c *DevCluster) databaseURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Stop shuts the cluster down (fast mode: open sessions are ended) and
// waits until it is down. Stopping a cluster that is not running is not an
// error.
func (c *DevCluster) Stop(ctx context.Context) error {
	out, err := c.command(ctx, c.pgCtl, "stop", "-D", c.dataDir, "-m", "fast", "-w", "-t", "60").CombinedOutput()
	if err != nil {
		if running, serr := c.running(ctx); serr == nil && !running {
			return nil
		}
		return fmt.Errorf("dev postgres: pg_ctl stop: %w: %s", err, tail(out))
	}
	c.log.InfoContext(ctx, "dev postgres: stopped", "data_dir", c.dataDir, "port", c.port)
	return nil
}

// prepareDirs creates dir, its data and socket directories, and hands the
// latter to the user Postgres runs as.
func (c *DevCluster) prepareDirs(ctx context.Context) error {
	created := false
	if _, err := os.Stat(c.dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(c.dir, 0o755); err != nil {
			return fmt.Errorf("dev postgres: %w", err)
		}
		if err := os.Chmod(c.dir, 0o755); err != nil { // whatever the umask
			return fmt.Errorf("dev postgres: %w", err)
		}
		created = true
	}
	if c.user != nil {
		if err := c.checkReachable(ctx); err != nil {
			if created {
				os.Remove(c.dir)
			}
			return err
		}
	}
	for _, d := range []string{c.dataDir, c.socketDir} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("dev postgres: %w", err)
		}
	}
	if c.user == nil {
		return nil
	}
	if err := os.Lchown(c.socketDir, int(c.user.uid), int(c.user.gid)); err != nil {
		return fmt.Errorf("dev postgres: %w", err)
	}
	if c.initialized() {
		return c.checkDataOwner()
	}
	if err := os.Lchown(c.dataDir, int(c.user.uid), int(c.user.gid)); err != nil {
		return fmt.Errorf("dev postgres: %w", err)
	}
	return nil
}

func (c *DevCluster) initialized() bool {
	_, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION"))
	return err == nil
}

// initialize runs initdb unless the data directory holds a cluster.
func (c *DevCluster) initialize(ctx context.Context) error {
	if c.initialized() {
		return nil
	}
	out, err := c.command(ctx, c.initdb, "-D", c.dataDir, "--auth=trust", "-U", "postgres",
		"--encoding=UTF8", "--no-locale").CombinedOutput()
	if err != nil {
		return fmt.Errorf("dev postgres: initdb %s: %w: %s", c.dataDir, err, tail(out))
	}
	c.log.InfoContext(ctx, "dev postgres: initialized a new cluster", "data_dir", c.dataDir, "user", c.userName(), "initdb", c.initdb)
	return nil
}

// start initializes the cluster if needed, starts the server and waits
// until it accepts connections.
func (c *DevCluster) start(ctx context.Context) error {
	if c.port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		c.port = p
	}
	if err := checkPortFree(c.port); err != nil {
		return err
	}
	if err := c.initialize(ctx); err != nil {
		return err
	}
	socketDir := c.socketDir
	if len(filepath.Join(socketDir, fmt.Sprintf(".s.PGSQL.%d", c.port))) > maxSocketPath {
		c.log.InfoContext(ctx, "dev postgres: the socket path would be too long; listening on TCP only", "socket_dir", socketDir)
		socketDir = ""
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s", c.port, shellQuote(socketDir))
	logFile := filepath.Join(c.dataDir, "postgres.log")
	out, err := c.command(ctx, c.pgCtl, "start", "-D", c.dataDir, "-w", "-t", "60", "-l", logFile, "-o", opts).CombinedOutput()
	if err != nil {
		logTail, _ := os.ReadFile(logFile)
		return fmt.Errorf("dev postgres: pg_ctl start: %w: %s\nserver log %s:\n%s", err, tail(out), logFile, tail(logTail))
	}
	c.log.InfoContext(ctx, "dev postgres: started", "data_dir", c.dataDir, "port", c.port, "user", c.userName(), "log", logFile)
	return nil
}

// adopt takes over a server already running on the data directory (left
// over by a crash) if it is the one this cluster would be.
func (c *DevCluster) adopt(ctx context.Context) error {
	pid, port, err := readPostmasterPID(c.dataDir)
	if err != nil {
		return err
	}
	if c.port == 0 {
		c.port = port
	}
	stopHint := fmt.Sprintf("stop it with: pg_ctl stop -D %s", c.dataDir)
	if port != c.port {
		return fmt.Errorf("dev postgres: a server is already running on %s (pid %d) on port %d, not %d; use port %d or %s", c.dataDir, pid, port, c.port, port, stopHint)
	}
	if err := c.ping(ctx); err != nil {
		return fmt.Errorf("dev postgres: a server is already running on %s (pid %d) but does not answer on 127.0.0.1:%d (%v); %s", c.dataDir, pid, c.port, err, stopHint)
	}
	c.log.InfoContext(ctx, "dev postgres: reusing the server already running", "data_dir", c.dataDir, "port", c.port, "pid", pid)
	return nil
}

func (c *DevCluster) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.databaseURL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// ensureDatabase creates DevDatabase unless it exists.
func (c *DevCluster) ensureDatabase(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.databaseURL("postgres"))
	if err != nil {
		return fmt.Errorf("dev postgres: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "select exists (select 1 from pg_database where datname = $1)", DevDatabase).Scan(&exists); err != nil {
		return fmt.Errorf("dev postgres: %w", err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "create database "+pgx.Identifier{DevDatabase}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile
		return nil
	}
	if err != nil {
		return fmt.Errorf("dev postgres: create database %s: %w", DevDatabase, err)
	}
	c.log.InfoContext(ctx, "dev postgres: created database", "database", DevDatabase)
	return nil
}
