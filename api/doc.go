// Package api is Claimbridge's HTTP adapter: the echo servers for the public
// listener (the token endpoint through fosite, well-known documents, health)
// and the admin listener (/admin/v1), the middleware, and the one table that
// maps core errors to the wire.
//
// It calls the core (sts, policy, keys) through small interfaces declared
// here and must not import pgx or the postgres package.
package api
