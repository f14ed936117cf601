package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/claimbridge/claimbridge/admin"
	"github.com/claimbridge/claimbridge/sts"
)

// audit records e in the audit log inside tx, the transaction of the change
// it describes, so that the entry exists if and only if the change commits.
// The actor comes from ctx (admin.ActorFrom); At, when zero, is the store's
// clock; e.ID is ignored. Every write of the store calls it through write;
// signing key changes call it from their own transaction (writeKeys) with
// Kind admin.KindKey, the kid as Name, their verb as Action and the
// consequence of the change in Detail. e.Detail must never hold a secret.
func (s *Store) audit(ctx context.Context, tx pgx.Tx, e admin.AuditEntry) error {
	if e.At.IsZero() {
		e.At = s.timestamp()
	}
	_, err := tx.Exec(ctx, `
		insert into audit_log (at, actor, action, kind, name, version, detail)
		values ($1, $2, $3, $4, $5, $6, $7)`,
		e.At, admin.ActorFrom(ctx), e.Action, e.Kind, e.Name, pgtype.Int8{Int64: e.Version, Valid: e.Version != 0}, e.Detail)
	if err != nil {
		return fmt.Errorf("audit %s %s %q: %w", e.Action, e.Kind, e.Name, err)
	}
	return nil
}

// AuditLog returns a page of the audit log, newest first, keeping only the
// entries about q.Kind and q.Name when they are set.
func (s *Store) AuditLog(ctx context.Context, q admin.Query) (admin.Page[admin.AuditEntry], error) {
	limit := q.PageLimit()
	rows, err := s.pool.Query(ctx, `
		select id, at, actor, action, kind, name, coalesce(version, 0), detail
		from audit_log
		where ($1 = '' or kind = $1) and ($2 = '' or name = $2) and ($3 <= 0 or id < $3)
		order by id desc
		limit $4`,
		q.Kind, q.Name, q.Before, limit+1)
	if err != nil {
		return admin.Page[admin.AuditEntry]{}, fmt.Errorf("read audit log: %w", unavailable(err))
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (admin.AuditEntry, error) {
		var e admin.AuditEntry
		err := row.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.Kind, &e.Name, &e.Version, &e.Detail)
		e.At = utc(e.At)
		return e, err
	})
	if err != nil {
		return admin.Page[admin.AuditEntry]{}, fmt.Errorf("read audit log: %w", unavailable(err))
	}
	return page(list, limit, func(e admin.AuditEntry) int64 { return e.ID }), nil
}

// PolicyRevisions returns a page of the revisions of the policy called name,
// newest first, including those of a deleted policy; a name that never had
// a revision is an sts.ErrNotFound.
func (s *Store) PolicyRevisions(ctx context.Context, name string, q admin.Query) (admin.Page[admin.Revision], error) {
	limit := q.PageLimit()
	rows, err := s.pool.Query(ctx, `
		select id, version, action, actor, at, body
		from policy_revisions
		where policy_name = $1 and ($2 <= 0 or id < $2)
		order by id desc
		limit $3`,
		name, q.Before, limit+1)
	if err != nil {
		return admin.Page[admin.Revision]{}, fmt.Errorf("read revisions of policy %q: %w", name, unavailable(err))
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (admin.Revision, error) {
		var (
			r  admin.Revision
			at time.Time
		)
		err := row.Scan(&r.ID, &r.Version, &r.Action, &r.Actor, &at, &r.Policy)
		r.At = utc(at)
		return r, err
	})
	if err != nil {
		return admin.Page[admin.Revision]{}, fmt.Errorf("read revisions of policy %q: %w", name, unavailable(err))
	}
	if len(list) == 0 && q.Before <= 0 {
		return admin.Page[admin.Revision]{}, fmt.Errorf("policy %q has no revisions: %w", name, sts.ErrNotFound)
	}
	return page(list, limit, func(r admin.Revision) int64 { return r.ID }), nil
}

// page cuts list, read with one row more than limit, to limit and tells
// where the next page starts.
func page[T any](list []T, limit int, id func(T) int64) admin.Page[T] {
	if len(list) <= limit {
		return admin.Page[T]{Items: list}
	}
	list = list[:limit]
	return admin.Page[T]{Items: list, Next: id(list[limit-1])}
}
