package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/claimbridge/claimbridge/verify"
)

// verifyToken checks a minted token the way an upstream does, with the
// verify package: discovery, our JWKS, signature, algorithm, issuer,
// audience, expiry and typ; then it prints the claims.
func verifyToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	issuer := fs.String("issuer", "http://127.0.0.1:8080", "Claimbridge issuer URL")
	audience := fs.String("audience", "", "expected audience (required)")
	acceptJWT := fs.Bool("accept-jwt", false, `also accept tokens of typ "JWT" (requested_token_type jwt)`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *audience == "" {
		return errors.New("usage: claimbridge verify --issuer URL --audience AUD [--accept-jwt] TOKEN")
	}
	v, err := verify.New(ctx, verify.Config{Issuer: *issuer, Audience: *audience, AcceptJWT: *acceptJWT})
	if err != nil {
		return err
	}
	tok, err := v.Verify(ctx, strings.TrimSpace(fs.Arg(0)))
	if err != nil {
		return fmt.Errorf("token rejected: %w", err)
	}
	out, _ := json.MarshalIndent(tok.Claims, "", "  ")
	fmt.Fprintf(stdout, "signature valid (%s key %s, issuer %s, audience %s)\n%s\n", tok.Algorithm, tok.KeyID, tok.Issuer, *audience, out)
	return nil
}
