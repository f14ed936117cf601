// Package sidecar is a reverse proxy that stands in front of one upstream
// for gateways without forward-auth (Pomerium, which can only add headers
// such as the user's access token to the proxied request): it reads the
// IdP token from a configured header, exchanges it at a token endpoint
// (RFC 8693, client_secret_basic, through an sts.Cache), removes the IdP
// token, sets the minted token and proxies — bodies streamed, websockets
// passed through, the upstream's status and headers kept.
//
// It talks to Claimbridge over HTTP only, so it runs beside any upstream;
// it must not import echo, fosite, pgx, api or postgres.
package sidecar
