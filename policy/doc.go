// Package policy is the claim policy model of Claimbridge: what one upstream
// audience may receive, validated when it is written and compiled once for the
// hot path. It is pure: input in, decision out, no I/O.
//
// It must not import net/http, echo, fosite, pgx or any other Claimbridge package.
package policy
