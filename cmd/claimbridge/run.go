package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
)

const usage = `Claimbridge: an OAuth 2.0 Token Exchange (RFC 8693) security token service.

Usage:
  claimbridge serve [flags]            run the service (--dev for a local playground)
  claimbridge migrate up|status [flags] apply or show the database migrations
  claimbridge proxy [flags]            a sidecar in front of one upstream: exchange the IdP token, proxy with the minted one
  claimbridge devidp [flags]           run the development identity provider alone
  claimbridge verify [flags] TOKEN     verify a minted token through our JWKS and print its claims
  claimbridge apply -f DIR|FILE [flags] apply YAML documents through the admin API (--dry-run, --prune)
  claimbridge get KIND [NAME] [flags]  print issuers, clients, policies or all as YAML documents
  claimbridge keys list|rotate|revoke|rewrap [flags] administer the signing keys

Run 'claimbridge COMMAND -h' for a command's flags.
`

// run is the whole program; main and the end-to-end tests call it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		err = migrate(ctx, rest, getenv, stdout, stderr)
	case "proxy":
		err = proxyCommand(ctx, rest, getenv, stderr)
	case "devidp":
		err = devIdP(ctx, rest, stdout, stderr)
	case "verify":
		err = verifyToken(ctx, rest, stdout, stderr)
	case "apply":
		err = applyCommand(ctx, rest, getenv, stdout, stderr)
	case "get":
		err = getCommand(ctx, rest, getenv, stdout, stderr)
	case "keys":
		err = keysCommand(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// newLogger builds the process logger.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level)) // validated with the configuration
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
