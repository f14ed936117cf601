package admin

import (
	"context"
	"encoding/json"
	"time"
)

// The kinds of resource an AuditEntry is about.
const (
	KindIssuer = "issuer"
	KindClient = "client"
	KindPolicy = "policy"
	KindKey    = "key"
)

// The actions an AuditEntry records. Signing key changes use their own verbs
// (rotate, revoke, rewrap, …).
const (
	ActionCreate       = "create"
	ActionUpdate       = "update"
	ActionDelete       = "delete"
	ActionRotateSecret = "rotate_secret"
)

// SystemActor is the actor of changes made by Claimbridge itself (the
// development seed, the first signing key, migrations): a context without
// an actor.
const SystemActor = "system"

// Version preconditions of a write (the ifVersion argument of the store's
// Put… and Delete…): 0 writes unconditionally, a positive value is the version
// the resource must be at, and these two say whether it must exist. A write
// whose precondition does not hold changes nothing and fails with
// sts.ErrPreconditionFailed.
const (
	// IfAbsent: the resource must not exist yet (create only; HTTP
	// If-None-Match: *).
	IfAbsent int64 = -1
	// IfExists: the resource must exist, at any version (update only; HTTP
	// If-Match: *).
	IfExists int64 = -2
)

// AuditEntry is one admin change.
type AuditEntry struct {
	// ID grows with every entry; newer entries have larger IDs.
	ID int64 `json:"id"`
	// At is when the change was committed (the store's clock).
	At time.Time `json:"at"`
	// Actor names who made the change: "token:<8 hex digits of the token's
	// SHA-256>", "jwt:<sub>" or SystemActor; never a credential.
	Actor string `json:"actor"`
	// Action is one of the Action… constants, or a signing key verb.
	Action string `json:"action"`
	// Kind is one of the Kind… constants; Name the resource's name (or kid).
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Version is the resource's version after the change (before it, for a
	// delete); 0 when the resource has none.
	Version int64 `json:"version,omitempty"`
	// Detail is what the change wrote, as the admin API shows the resource
	// (never a secret or a secret's hash); for a delete, what was deleted.
	// Signing key changes put the consequence of the change here.
	Detail json.RawMessage `json:"detail,omitempty"`
}

// Revision is one version of a policy, as it was written or deleted.
type Revision struct {
	// ID orders revisions across the policy's whole history, which outlives
	// a delete and a re-create (where Version starts over at 1).
	ID      int64     `json:"id"`
	Version int64     `json:"version"`
	Action  string    `json:"action"`
	Actor   string    `json:"actor"`
	At      time.Time `json:"at"`
	// Policy is the whole policy as written (name and audience included,
	// without version and timestamps), so that it can be PUT back to restore
	// it; for a delete, the policy that was deleted.
	Policy json.RawMessage `json:"policy"`
}

// Query selects a page of entries or revisions, newest first.
type Query struct {
	// Kind and Name, when set, keep only the entries about that kind of
	// resource and that name (audit log only).
	Kind, Name string
	// Before, when positive, keeps only the entries with a smaller ID: the
	// Next of the previous page.
	Before int64
	// Limit is the page size; the store bounds it to [1, MaxLimit].
	Limit int
}

// Page sizes.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// PageLimit returns the limit a store applies: DefaultLimit when unset,
// at most MaxLimit.
func (q Query) PageLimit() int {
	switch {
	case q.Limit <= 0:
		return DefaultLimit
	case q.Limit > MaxLimit:
		return MaxLimit
	}
	return q.Limit
}

// Page is one page of results, newest first. Next, when positive, is the
// Before of the following page; 0 means this page is the last.
type Page[T any] struct {
	Items []T
	Next  int64
}

type actorKey struct{}

// WithActor returns ctx carrying the identity of whoever makes the request.
// Only the admin API sets it, from the credentials it verified.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor WithActor put on ctx, or SystemActor.
func ActorFrom(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return SystemActor
}
