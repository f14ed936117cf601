package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoPostgresBinaries reports that no PostgreSQL server binaries were
// found for a development cluster.
var ErrNoPostgresBinaries = errors.New("dev postgres: no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH or in /usr/lib/postgresql/*/bin; install the PostgreSQL server package")

// maxSocketPath is the longest Unix socket path Linux accepts (sun_path is
// 108 bytes with the terminating NUL).
const maxSocketPath = 107

// runUser is the unprivileged user a root process runs Postgres as.
type runUser struct {
	name     string
	uid, gid uint32
}

// devClusterUser returns nil unless the process runs as root; then the
// system user "postgres" if it exists, else "nobody".
func devClusterUser() (*runUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil {
			return &runUser{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
		}
	}
	return nil, errors.New("dev postgres: Postgres refuses to run as root, and neither user postgres nor nobody exists to run it as")
}

func (c *DevCluster) userName() string {
	if c.user == nil {
		if u, err := user.Current(); err == nil {
			return u.Username
		}
		return strconv.Itoa(os.Geteuid())
	}
	return c.user.name
}

// findPostgresBinaries returns the paths of initdb and pg_ctl: from PATH
// when initdb, pg_ctl and postgres are all there, else from the newest
// /usr/lib/postgresql/*/bin (Debian and Ubuntu keep them off PATH).
func findPostgresBinaries() (initdb, pgCtl string, err error) {
	initdb, err1 := exec.LookPath("initdb")
	pgCtl, err2 := exec.LookPath("pg_ctl")
	_, err3 := exec.LookPath("postgres")
	if err1 == nil && err2 == nil && err3 == nil {
		return initdb, pgCtl, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return compareVersions(b, a) })
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "pg_ctl")) && isExecutable(filepath.Join(d, "postgres")) {
			return filepath.Join(d, "initdb"), filepath.Join(d, "pg_ctl"), nil
		}
	}
	return "", "", ErrNoPostgresBinaries
}

// compareVersions orders /usr/lib/postgresql/<version>/bin paths by
// version, numerically ("9.6" before "15").
func compareVersions(a, b string) int {
	va := strings.Split(filepath.Base(filepath.Dir(a)), ".")
	vb := strings.Split(filepath.Base(filepath.Dir(b)), ".")
	for i := 0; i < len(va) && i < len(vb); i++ {
		na, _ := strconv.Atoi(va[i])
		nb, _ := strconv.Atoi(vb[i])
		if na != nb {
			return na - nb
		}
	}
	return len(va) - len(vb)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// command prepares a Postgres program to run in dir as the cluster's user,
// in a process group of its own so that a terminal's Ctrl-C reaches
// Claimbridge (which then stops the cluster) and not the server directly.
func (c *DevCluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if c.user != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.user.uid, Gid: c.user.gid}
	}
	return cmd
}

// running reports whether a server runs on the data directory.
func (c *DevCluster) running(ctx context.Context) (bool, error) {
	out, err := c.command(ctx, c.pgCtl, "status", "-D", c.dataDir).CombinedOutput()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() == 3: // not running
		return false, nil
	default:
		return false, fmt.Errorf("dev postgres: pg_ctl status: %w: %s", err, tail(out))
	}
}

// checkReachable makes sure the cluster's user can enter dir: by the mode
// bits of dir and its parents, then by running pg_ctl --version there as
// that user (ACLs and the like can still say no).
func (c *DevCluster) checkReachable(ctx context.Context) error {
	if d := c.blockingAncestor(); d != "" {
		return c.unreachable(d)
	}
	err := c.command(ctx, c.pgCtl, "--version").Run()
	if err == nil {
		return nil
	}
	elsewhere := c.command(ctx, c.pgCtl, "--version")
	elsewhere.Dir = "/"
	if elsewhere.Run() == nil {
		return c.unreachable(c.dir + " or one of its parents")
	}
	return fmt.Errorf("dev postgres: run %s as user %s: %w", c.pgCtl, c.user.name, err)
}

func (c *DevCluster) unreachable(where string) error {
	return fmt.Errorf("dev postgres: Postgres refuses to run as root, so the development cluster runs as user %q, "+
		"who cannot enter %s (%s is not searchable by that user); choose a directory it can reach with --dev-dir, "+
		"such as /var/tmp/claimbridge-dev", c.user.name, c.dir, where)
}

// blockingAncestor returns the first directory on the way to dir that the
// cluster's user may not search, judged by owner, group and mode bits.
func (c *DevCluster) blockingAncestor() string {
	path := "/"
	for _, part := range append([]string{""}, strings.Split(strings.Trim(c.dir, "/"), "/")...) {
		path = filepath.Join(path, part)
		fi, err := os.Stat(path)
		if err != nil {
			return path
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return ""
		}
		perm := fi.Mode().Perm()
		var search bool
		switch {
		case st.Uid == c.user.uid:
			search = perm&0o100 != 0
		case st.Gid == c.user.gid:
			search = perm&0o010 != 0
		default:
			search = perm&0o001 != 0
		}
		if !search {
			return path
		}
	}
	return ""
}

// checkDataOwner makes sure an initialized data directory belongs to the
// user the cluster runs as.
func (c *DevCluster) checkDataOwner() error {
	fi, err := os.Stat(c.dataDir)
	if err != nil {
		return fmt.Errorf("dev postgres: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != c.user.uid {
		return fmt.Errorf("dev postgres: %s belongs to uid %d, but the cluster runs as user %s (uid %d); choose another --dev-dir or chown -R it",
			c.dataDir, st.Uid, c.user.name, c.user.uid)
	}
	return nil
}

// readPostmasterPID returns the PID and port recorded in a running
// cluster's postmaster.pid.
func readPostmasterPID(dataDir string) (pid, port int, err error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, 0, fmt.Errorf("dev postgres: %w", err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0, 0, fmt.Errorf("dev postgres: %s/postmaster.pid is incomplete", dataDir)
	}
	pid, err1 := strconv.Atoi(strings.TrimSpace(lines[0]))
	port, err2 := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("dev postgres: %s/postmaster.pid is malformed", dataDir)
	}
	return pid, port, nil
}

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("dev postgres: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// checkPortFree reports clearly when another program listens on port.
func checkPortFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("dev postgres: port %d on 127.0.0.1 is already in use by another program (%v); choose another port", port, err)
	}
	return l.Close()
}

// shellQuote quotes s for /bin/sh, which pg_ctl runs the server through.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tail returns the last lines of a program's output, for error messages.
func tail(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}
