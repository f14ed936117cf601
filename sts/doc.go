// Package sts is the token exchange core (RFC 8693): it validates an exchange
// request, verifies the subject token against a trusted issuer, applies the
// audience's policy and mints the internal token, all from an immutable
// in-memory snapshot that is swapped when the configuration changes.
//
// It must not import echo, fosite, pgx or net/http server types; stores and
// signers reach it through the small interfaces it declares.
package sts
