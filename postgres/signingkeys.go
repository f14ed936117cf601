package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/claimbridge/claimbridge/admin"
	"github.com/claimbridge/claimbridge/keys"
	"github.com/claimbridge/claimbridge/sts"
)

// keysLockID is the transaction advisory lock that serializes signing key
// changes across replicas.
const keysLockID int64 = 6_390_146_927_514_837_201

const keyColumns = "kid, alg, state, public_jwk, sealed, kek_id, created_at, activates_at, activated_at, retired_at, remove_after, removed_at"

var _ keys.LifecycleStore = (*Store)(nil)

// Keys returns every stored signing key (in every state, tombstones of
// removed and revoked keys included), oldest first.
func (s *Store) Keys(ctx context.Context) ([]keys.Key, error) {
	return listKeys(ctx, s.pool)
}

func listKeys(ctx context.Context, q queryer) ([]keys.Key, error) {
	rows, err := q.Query(ctx, "select "+keyColumns+" from signing_keys order by created_at, kid")
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", unavailable(err))
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (keys.Key, error) { return scanKey(row) })
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", unavailable(err))
	}
	return list, nil
}

// EnsureActiveKey makes sure one key is active: unless one already is, it
// calls generate and stores the result as the active key. Replicas that call
// it at once take turns on an advisory lock, so exactly one key results.
// generate runs inside the transaction and should be quick.
func (s *Store) EnsureActiveKey(ctx context.Context, generate func() (keys.Key, error)) error {
	return s.writeKeys(ctx, func(tx pgx.Tx) (keys.Changes, error) {
		var active bool
		err := tx.QueryRow(ctx, "select exists (select 1 from signing_keys where state = 'active')").Scan(&active)
		if err != nil || active {
			return keys.Changes{}, err
		}
		k, err := generate()
		if err != nil {
			return keys.Changes{}, fmt.Errorf("generate signing key: %w", err)
		}
		now := s.timestamp()
		k.State = keys.StateActive
		if k.CreatedAt.IsZero() {
			k.CreatedAt = now
		}
		if k.ActivatedAt.IsZero() {
			k.ActivatedAt = now
		}
		c := keys.Changes{Insert: []keys.Key{k}, Action: "keys.bootstrap", Events: []keys.Event{{
			KeyID: k.ID, Algorithm: k.Algorithm, Action: "activate", Detail: "The first signing key, active at once.",
		}}}
		return c, insertKey(ctx, tx, k)
	})
}

// UpdateKeys runs a lifecycle step: under the keys lock it calls plan with
// every stored key and writes the changes plan returns, records each of
// their events in the audit log and announces them, in one transaction.
func (s *Store) UpdateKeys(ctx context.Context, plan func(current []keys.Key) (keys.Changes, error)) error {
	return s.writeKeys(ctx, func(tx pgx.Tx) (keys.Changes, error) {
		current, err := listKeys(ctx, tx)
		if err != nil {
			return keys.Changes{}, err
		}
		c, err := plan(current)
		if err != nil {
			return keys.Changes{}, err
		}
		// Keys leave the active and next states before others enter them:
		// the unique indexes are checked after every statement.
		for _, entering := range []bool{false, true} {
			for _, k := range c.Update {
				if (k.State == keys.StateActive || k.State == keys.StateNext) != entering {
					continue
				}
				if err := updateKey(ctx, tx, k); err != nil {
					return keys.Changes{}, err
				}
			}
		}
		for _, k := range c.Insert {
			if err := insertKey(ctx, tx, k); err != nil {
				return keys.Changes{}, err
			}
		}
		return c, nil
	})
}

// writeKeys runs fn in a transaction holding the keys lock; when fn
// reports changes, the transaction records their events in the audit log
// and announces them on NotifyChannel.
func (s *Store) writeKeys(ctx context.Context, fn func(tx pgx.Tx) (keys.Changes, error)) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "select pg_advisory_xact_lock($1)", keysLockID); err != nil {
			return fmt.Errorf("lock signing keys: %w", err)
		}
		c, err := fn(tx)
		if err != nil || c.Empty() {
			return err
		}
		for _, e := range c.Events {
			if err := s.audit(ctx, tx, keyAuditEntry(c.Action, e)); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, "select pg_notify($1, $2)", NotifyChannel, ChangeKeys)
		return err
	})
	if err != nil {
		return fmt.Errorf("signing keys: %w", unavailable(err))
	}
	return nil
}

// keyAudit is the detail of a signing key's audit entry.
type keyAudit struct {
	Algorithm string `json:"alg"`
	// Step is what caused the change: keys.schedule, keys.rotate, …
	Step   string `json:"step"`
	Detail string `json:"detail"`
}

// keyAuditEntry is the audit entry of one key's part in a change.
func keyAuditEntry(step string, e keys.Event) admin.AuditEntry {
	detail, _ := json.Marshal(keyAudit{Algorithm: e.Algorithm, Step: step, Detail: e.Detail}) // strings only: cannot fail
	return admin.AuditEntry{Kind: admin.KindKey, Name: e.KeyID, Action: e.Action, Detail: detail}
}

func insertKey(ctx context.Context, tx pgx.Tx, k keys.Key) error {
	_, err := tx.Exec(ctx, `
		insert into signing_keys (`+keyColumns+`)
		values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		k.ID, k.Algorithm, k.State, k.PublicJWK, nonNilBytes(k.Sealed), k.KEKID, k.CreatedAt,
		nullTime(k.ActivatesAt), nullTime(k.ActivatedAt), nullTime(k.RetiredAt), nullTime(k.RemoveAfter), nullTime(k.RemovedAt))
	if c := uniqueViolation(err); c != "" {
		return fmt.Errorf("store key %q (%s %s): %s: %w", k.ID, k.State, k.Algorithm, c, errors.Join(sts.ErrConflict, err))
	}
	if err != nil {
		return fmt.Errorf("store key %q: %w", k.ID, err)
	}
	return nil
}

// updateKey writes every mutable column of k.
func updateKey(ctx context.Context, tx pgx.Tx, k keys.Key) error {
	tag, err := tx.Exec(ctx, `
		update signing_keys
		set state = $2, sealed = $3, kek_id = $4, created_at = $5, activates_at = $6, activated_at = $7,
		    retired_at = $8, remove_after = $9, removed_at = $10
		where kid = $1`,
		k.ID, k.State, nonNilBytes(k.Sealed), k.KEKID, k.CreatedAt,
		nullTime(k.ActivatesAt), nullTime(k.ActivatedAt), nullTime(k.RetiredAt), nullTime(k.RemoveAfter), nullTime(k.RemovedAt))
	if c := uniqueViolation(err); c != "" {
		return fmt.Errorf("update key %q (%s %s): %s: %w", k.ID, k.State, k.Algorithm, c, errors.Join(sts.ErrConflict, err))
	}
	if err != nil {
		return fmt.Errorf("update key %q: %w", k.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("update key %q: %w", k.ID, keys.ErrKeyNotFound)
	}
	return nil
}

func scanKey(row pgx.Row) (keys.Key, error) {
	var (
		k                             keys.Key
		activates, activated, retired pgtype.Timestamptz
		removeAfter, removed          pgtype.Timestamptz
	)
	err := row.Scan(&k.ID, &k.Algorithm, &k.State, &k.PublicJWK, &k.Sealed, &k.KEKID, &k.CreatedAt,
		&activates, &activated, &retired, &removeAfter, &removed)
	k.CreatedAt = utc(k.CreatedAt)
	for _, t := range []struct {
		src pgtype.Timestamptz
		dst *time.Time
	}{{activates, &k.ActivatesAt}, {activated, &k.ActivatedAt}, {retired, &k.RetiredAt}, {removeAfter, &k.RemoveAfter}, {removed, &k.RemovedAt}} {
		if t.src.Valid {
			*t.dst = utc(t.src.Time)
		}
	}
	return k, err
}

// nullTime is t, or SQL NULL for the zero time.
func nullTime(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// nonNilBytes is b, or empty for nil, for bytea not null columns.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
