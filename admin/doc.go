// Package admin is the vocabulary of admin changes that the admin API and the
// store share: who makes a change (WithActor and ActorFrom: the admin API sets
// the caller's identity on the request context, the store reads it), on which
// condition (the version preconditions IfAbsent and IfExists), and the record
// every change leaves (AuditEntry in the audit log, Revision in a policy's
// history). Nothing here ever holds a secret: an entry's detail is the
// resource as the admin API shows it.
//
// It must not import net/http, echo, fosite, pgx or any other Claimbridge
// package.
package admin
