package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/claimbridge/claimbridge/keys"
	"github.com/claimbridge/claimbridge/sts"
)

// keysLockID is the transaction advisory lock that serializes signing key
// changes across replicas.
const keysLockID int64 = 6_390_146_927_514_837_201

const keyColumns = "kid, alg, state, public_jwk, sealed, kek_id, created_at, activated_at, retired_at"

// Keys returns every stored signing key (next, active and retired), oldest
// first.
func (s *Store) Keys(ctx context.Context) ([]keys.Key, error) {
	rows, err := s.pool.Query(ctx, "select "+keyColumns+" from signing_keys order by created_at, kid")
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
	return s.writeKeys(ctx, func(tx pgx.Tx) (changed bool, err error) {
		var active bool
		err = tx.QueryRow(ctx, "select exists (select 1 from signing_keys where state = 'active')").Scan(&active)
		if err != nil || active {
			return false, err
		}
		k, err := generate()
		if err != nil {
			return false, fmt.Errorf("generate signing key: %w", err)
		}
		now := s.timestamp()
		k.State = keys.StateActive
		if k.CreatedAt.IsZero() {
			k.CreatedAt = now
		}
		if k.ActivatedAt.IsZero() {
			k.ActivatedAt = now
		}
		return true, insertKey(ctx, tx, k)
	})
}

// writeKeys runs fn in a transaction holding the keys lock; when fn reports
// a change, the transaction announces it.
func (s *Store) writeKeys(ctx context.Context, fn func(tx pgx.Tx) (changed bool, err error)) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "select pg_advisory_xact_lock($1)", keysLockID); err != nil {
			return fmt.Errorf("lock signing keys: %w", err)
		}
		changed, err := fn(tx)
		if err != nil || !changed {
			return err
		}
		_, err = tx.Exec(ctx, "select pg_notify($1, $2)", NotifyChannel, ChangeKeys)
		return err
	})
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	return nil
}

func insertKey(ctx context.Context, tx pgx.Tx, k keys.Key) error {
	_, err := tx.Exec(ctx, `
		insert into signing_keys (`+keyColumns+`)
		values ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		k.ID, k.Algorithm, k.State, k.PublicJWK, k.Sealed, k.KEKID,
		k.CreatedAt, nullTime(k.ActivatedAt), nullTime(k.RetiredAt))
	if uniqueViolation(err) != "" {
		return fmt.Errorf("store key %q: %w", k.ID, errors.Join(sts.ErrConflict, err))
	}
	if err != nil {
		return fmt.Errorf("store key %q: %w", k.ID, err)
	}
	return nil
}

func scanKey(row pgx.Row) (keys.Key, error) {
	var (
		k                  keys.Key
		activated, retired pgtype.Timestamptz
	)
	err := row.Scan(&k.ID, &k.Algorithm, &k.State, &k.PublicJWK, &k.Sealed, &k.KEKID, &k.CreatedAt, &activated, &retired)
	k.CreatedAt = utc(k.CreatedAt)
	if activated.Valid {
		k.ActivatedAt = utc(activated.Time)
	}
	if retired.Valid {
		k.RetiredAt = utc(retired.Time)
	}
	return k, err
}

// nullTime is t, or SQL NULL for the zero time.
func nullTime(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}
