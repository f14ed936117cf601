package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/claimbridge/claimbridge/sts"
)

const clientColumns = "id, description, secret_hash, version, created_at, updated_at"

// PutClient creates or updates the client c.ID and returns the stored row;
// created reports whether it is new. Creating a client requires
// c.SecretHash; an update changes only the description and keeps the stored
// secret hash, whatever c.SecretHash holds (see SetClientSecret).
func (s *Store) PutClient(ctx context.Context, c sts.Client) (stored sts.Client, created bool, err error) {
	now := s.timestamp()
	err = s.write(ctx, ChangeClients, func(tx pgx.Tx) error {
		if len(c.SecretHash) == 0 {
			stored, err = scanClient(tx.QueryRow(ctx, `
				update clients set description = $2, version = version + 1, updated_at = $3
				where id = $1 returning `+clientColumns,
				c.ID, c.Description, now))
			if errors.Is(err, pgx.ErrNoRows) {
				return errors.New("a new client requires a secret hash")
			}
			return err
		}
		stored, err = scanClient(tx.QueryRow(ctx, `
			insert into clients (id, description, secret_hash, version, created_at, updated_at)
			values ($1, $2, $3, 1, $4, $4)
			on conflict (id) do update set
				description = excluded.description,
				version = clients.version + 1,
				updated_at = excluded.updated_at
			returning `+clientColumns,
			c.ID, c.Description, c.SecretHash, now))
		return err
	})
	if err != nil {
		return sts.Client{}, false, fmt.Errorf("put client %q: %w", c.ID, unavailable(err))
	}
	return stored, stored.Version == 1, nil
}

// SetClientSecret replaces the secret hash of client id and returns the
// stored row, or an sts.ErrNotFound.
func (s *Store) SetClientSecret(ctx context.Context, id string, hash []byte) (sts.Client, error) {
	if len(hash) == 0 {
		return sts.Client{}, fmt.Errorf("set secret of client %q: the secret hash is empty", id)
	}
	var stored sts.Client
	err := s.write(ctx, ChangeClients, func(tx pgx.Tx) (err error) {
		stored, err = scanClient(tx.QueryRow(ctx, `
			update clients set secret_hash = $2, version = version + 1, updated_at = $3
			where id = $1 returning `+clientColumns,
			id, hash, s.timestamp()))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("client %q: %w", id, sts.ErrNotFound)
		}
		return err
	})
	if err != nil && !errors.Is(err, sts.ErrNotFound) {
		return sts.Client{}, fmt.Errorf("set secret of client %q: %w", id, unavailable(err))
	}
	return stored, err
}

// GetClient returns the client id, or an sts.ErrNotFound.
func (s *Store) GetClient(ctx context.Context, id string) (sts.Client, error) {
	c, err := scanClient(s.pool.QueryRow(ctx, "select "+clientColumns+" from clients where id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return sts.Client{}, fmt.Errorf("client %q: %w", id, sts.ErrNotFound)
	}
	if err != nil {
		return sts.Client{}, fmt.Errorf("get client %q: %w", id, unavailable(err))
	}
	return c, nil
}

// ListClients returns every client, ordered by ID.
func (s *Store) ListClients(ctx context.Context) ([]sts.Client, error) {
	return listClients(ctx, s.pool)
}

func listClients(ctx context.Context, q queryer) ([]sts.Client, error) {
	rows, err := q.Query(ctx, "select "+clientColumns+" from clients order by id")
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", unavailable(err))
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (sts.Client, error) { return scanClient(row) })
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", unavailable(err))
	}
	return list, nil
}

// DeleteClient deletes the client id, or returns an sts.ErrNotFound.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	return s.deleteRow(ctx, ChangeClients, "clients", "id", "client", id)
}

func scanClient(row pgx.Row) (sts.Client, error) {
	var c sts.Client
	err := row.Scan(&c.ID, &c.Description, &c.SecretHash, &c.Version, &c.CreatedAt, &c.UpdatedAt)
	c.CreatedAt, c.UpdatedAt = utc(c.CreatedAt), utc(c.UpdatedAt)
	return c, err
}
