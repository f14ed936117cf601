package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/claimbridge/claimbridge/admin"
	"github.com/claimbridge/claimbridge/sts"
)

const clientColumns = "id, description, secret_hash, version, created_at, updated_at"

// PutClient creates or updates the client c.ID and returns the stored row;
// created reports whether it is new. Creating a client requires
// c.SecretHash; an update changes only the description and keeps the stored
// secret hash, whatever c.SecretHash holds (see SetClientSecret). An update
// that changes nothing keeps the version and is not audited. ifVersion is the
// write's precondition (see admin.IfAbsent).
func (s *Store) PutClient(ctx context.Context, c sts.Client, ifVersion int64) (stored sts.Client, created bool, err error) {
	now := s.timestamp()
	err = s.write(ctx, ChangeClients, func(tx pgx.Tx) (*admin.AuditEntry, error) {
		current, err := lockVersion(ctx, tx, "clients", "id", "client", c.ID, ifVersion)
		if err != nil {
			return nil, err
		}
		if current == 0 {
			if len(c.SecretHash) == 0 {
				return nil, errors.New("a new client requires a secret hash")
			}
			stored, err = scanClient(tx.QueryRow(ctx, `
				insert into clients (id, description, secret_hash, version, created_at, updated_at)
				values ($1, $2, $3, 1, $4, $4) returning `+clientColumns,
				c.ID, c.Description, c.SecretHash, now))
			created = true
			return changedClient(admin.ActionCreate, stored, err)
		}
		stored, err = scanClient(tx.QueryRow(ctx, `
			update clients set description = $2, version = version + 1, updated_at = $3
			where id = $1 and description is distinct from $2 returning `+clientColumns,
			c.ID, c.Description, now))
		if errors.Is(err, pgx.ErrNoRows) { // unchanged
			stored, err = scanClient(tx.QueryRow(ctx, "select "+clientColumns+" from clients where id = $1", c.ID))
			return nil, err
		}
		return changedClient(admin.ActionUpdate, stored, err)
	})
	if err != nil {
		return sts.Client{}, false, writeError("put", "client", c.ID, err)
	}
	return stored, created, nil
}

// changedClient is the audit entry of a write that stored c (its secret
// hash is never part of it), or err.
func changedClient(action string, c sts.Client, err error) (*admin.AuditEntry, error) {
	if err != nil {
		return nil, err
	}
	return changed(admin.KindClient, action, c.ID, c.Version, c.UpdatedAt, c)
}

// SetClientSecret replaces the secret hash of client id and returns the
// stored row, or an sts.ErrNotFound. The audit entry records the rotation,
// never the hash.
func (s *Store) SetClientSecret(ctx context.Context, id string, hash []byte) (sts.Client, error) {
	if len(hash) == 0 {
		return sts.Client{}, fmt.Errorf("set secret of client %q: the secret hash is empty", id)
	}
	var stored sts.Client
	err := s.write(ctx, ChangeClients, func(tx pgx.Tx) (*admin.AuditEntry, error) {
		current, err := lockVersion(ctx, tx, "clients", "id", "client", id, 0)
		if err != nil {
			return nil, err
		}
		if current == 0 {
			return nil, fmt.Errorf("client %q: %w", id, sts.ErrNotFound)
		}
		stored, err = scanClient(tx.QueryRow(ctx, `
			update clients set secret_hash = $2, version = version + 1, updated_at = $3
			where id = $1 returning `+clientColumns,
			id, hash, s.timestamp()))
		return changedClient(admin.ActionRotateSecret, stored, err)
	})
	if err != nil {
		return sts.Client{}, writeError("set secret of", "client", id, err)
	}
	return stored, nil
}

// GetClient returns the client id, or an sts.ErrNotFound.
func (s *Store) GetClient(ctx context.Context, id string) (sts.Client, error) {
	return getRow(ctx, s.pool, "client", "select "+clientColumns+" from clients where id = $1", id, scanClient)
}

// ListClients returns every client, ordered by ID.
func (s *Store) ListClients(ctx context.Context) ([]sts.Client, error) {
	return listClients(ctx, s.pool)
}

func listClients(ctx context.Context, q queryer) ([]sts.Client, error) {
	return listRows(ctx, q, "clients", "select "+clientColumns+" from clients order by id", scanClient)
}

// DeleteClient deletes the client id, or returns an sts.ErrNotFound;
// ifVersion is the precondition (see admin.IfAbsent).
func (s *Store) DeleteClient(ctx context.Context, id string, ifVersion int64) error {
	err := s.write(ctx, ChangeClients, func(tx pgx.Tx) (*admin.AuditEntry, error) {
		old, err := remove(ctx, tx, "clients", "id", clientColumns, "client", id, ifVersion, scanClient)
		if err != nil {
			return nil, err
		}
		return changed(admin.KindClient, admin.ActionDelete, id, old.Version, s.timestamp(), old)
	})
	return writeError("delete", "client", id, err)
}

func scanClient(row pgx.Row) (sts.Client, error) {
	var c sts.Client
	err := row.Scan(&c.ID, &c.Description, &c.SecretHash, &c.Version, &c.CreatedAt, &c.UpdatedAt)
	c.CreatedAt, c.UpdatedAt = utc(c.CreatedAt), utc(c.UpdatedAt)
	return c, err
}
