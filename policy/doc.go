// Package policy is the claim policy model of Claimbridge: what one upstream
// audience may receive, validated and compiled when it is written — its CEL
// conditions and claim expressions type-checked and cost-checked into
// programs — and evaluated per exchange without compiling anything. It is
// pure: input in, decision out, no I/O.
//
// It must not import net/http, echo, fosite, pgx or any other Claimbridge package.
package policy
