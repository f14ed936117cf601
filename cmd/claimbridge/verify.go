package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
)

// verifyToken checks a minted token the way an upstream would: discovery,
// our JWKS, issuer, audience and expiry, then prints the header's kid and
// the claims.
func verifyToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	issuer := fs.String("issuer", "http://127.0.0.1:8080", "Claimbridge issuer URL")
	audience := fs.String("audience", "", "expected audience (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *audience == "" {
		return errors.New("usage: claimbridge verify --issuer URL --audience AUD TOKEN")
	}
	provider, err := oidc.NewProvider(ctx, *issuer)
	if err != nil {
		return err
	}
	v := provider.Verifier(&oidc.Config{ClientID: *audience, SupportedSigningAlgs: []string{"ES256"}})
	tok, err := v.Verify(ctx, strings.TrimSpace(fs.Arg(0)))
	if err != nil {
		return fmt.Errorf("token rejected: %w", err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return err
	}
	out, _ := json.MarshalIndent(claims, "", "  ")
	fmt.Fprintf(stdout, "signature valid (issuer %s, audience %s)\n%s\n", tok.Issuer, *audience, out)
	return nil
}
