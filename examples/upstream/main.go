// Command upstream is a small service behind Claimbridge: it verifies the
// token of every request with the verify package's middleware and answers
// JSON with the subject and the permissions claim, or 403 when a required
// permission is missing.
//
//	go run ./examples/upstream --issuer http://127.0.0.1:8080 \
//	  --audience https://orders.internal --require orders:read
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/claimbridge/claimbridge/verify"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

// run parses the flags, builds the verifier and serves until ctx ends.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	issuer := fs.String("issuer", "http://127.0.0.1:8080", "Claimbridge's issuer URL")
	audience := fs.String("audience", "https://orders.internal", "this upstream's audience")
	require := fs.String("require", "", "comma-separated permissions every request must carry (e.g. orders:read)")
	acceptJWT := fs.Bool("accept-jwt", false, `also accept tokens of typ "JWT" (requested_token_type jwt)`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	v, err := verify.New(ctx, verify.Config{Issuer: *issuer, Audience: *audience, AcceptJWT: *acceptJWT})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	log.Info("upstream listening", "addr", ln.Addr().String(), "issuer", *issuer, "audience", *audience, "require", *require)
	srv := &http.Server{Handler: v.Middleware(newHandler(splitList(*require))), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newHandler answers with the verified token's subject and permissions, or
// 403 when one of the required permissions is missing. It runs behind
// verify's middleware, which has put the token in the context.
func newHandler(required []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := verify.FromContext(r.Context())
		if !ok {
			http.Error(w, "no verified token", http.StatusInternalServerError) // not behind the middleware
			return
		}
		permissions := tok.Strings("permissions")
		for _, p := range required {
			if !slices.Contains(permissions, p) {
				writeJSON(w, http.StatusForbidden, map[string]any{
					"error": "insufficient_permissions", "error_description": "the token lacks the permission " + p,
				})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"sub": tok.Subject, "client_id": tok.ClientID, "scope": tok.Scope,
			"permissions": permissions, "expires_at": tok.Expiry.UTC().Format(time.RFC3339),
		})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// splitList splits a comma-separated flag, dropping empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
