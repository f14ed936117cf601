package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/claimbridge/claimbridge/sts"
)

const issuerColumns = "name, issuer_url, audiences, algorithms, token_types, jwks_uri, version, created_at, updated_at"

// PutIssuer creates or replaces the issuer named iss.Name and returns the
// stored row; created reports whether it is new. Version starts at 1 and
// grows by one on every update; CreatedAt is kept. An issuer URL already
// used by another issuer is an sts.ErrConflict.
func (s *Store) PutIssuer(ctx context.Context, iss sts.Issuer) (stored sts.Issuer, created bool, err error) {
	now := s.timestamp()
	err = s.write(ctx, ChangeIssuers, func(tx pgx.Tx) error {
		row := tx.QueryRow(ctx, `
			insert into issuers (name, issuer_url, audiences, algorithms, token_types, jwks_uri, version, created_at, updated_at)
			values ($1, $2, $3, $4, $5, $6, 1, $7, $7)
			on conflict (name) do update set
				issuer_url = excluded.issuer_url,
				audiences = excluded.audiences,
				algorithms = excluded.algorithms,
				token_types = excluded.token_types,
				jwks_uri = excluded.jwks_uri,
				version = issuers.version + 1,
				updated_at = excluded.updated_at
			returning `+issuerColumns,
			iss.Name, iss.URL, nonNil(iss.Audiences), nonNil(iss.Algorithms), nonNil(iss.TokenTypes), iss.JWKSURI, now)
		stored, err = scanIssuer(row)
		return err
	})
	if uniqueViolation(err) == "issuers_issuer_url_key" {
		return sts.Issuer{}, false, s.issuerURLConflict(ctx, iss)
	}
	if err != nil {
		return sts.Issuer{}, false, fmt.Errorf("put issuer %q: %w", iss.Name, unavailable(err))
	}
	return stored, stored.Version == 1, nil
}

// issuerURLConflict names the issuer that already has iss.URL.
func (s *Store) issuerURLConflict(ctx context.Context, iss sts.Issuer) error {
	var other string
	err := s.pool.QueryRow(ctx, "select name from issuers where issuer_url = $1", iss.URL).Scan(&other)
	if err != nil {
		other = "another issuer"
	} else {
		other = fmt.Sprintf("issuer %q", other)
	}
	return fmt.Errorf("issuer %q: issuer URL %q is already used by %s: %w", iss.Name, iss.URL, other, sts.ErrConflict)
}

// GetIssuer returns the issuer called name, or an sts.ErrNotFound.
func (s *Store) GetIssuer(ctx context.Context, name string) (sts.Issuer, error) {
	iss, err := scanIssuer(s.pool.QueryRow(ctx, "select "+issuerColumns+" from issuers where name = $1", name))
	if errors.Is(err, pgx.ErrNoRows) {
		return sts.Issuer{}, fmt.Errorf("issuer %q: %w", name, sts.ErrNotFound)
	}
	if err != nil {
		return sts.Issuer{}, fmt.Errorf("get issuer %q: %w", name, unavailable(err))
	}
	return iss, nil
}

// ListIssuers returns every issuer, ordered by name.
func (s *Store) ListIssuers(ctx context.Context) ([]sts.Issuer, error) {
	return listIssuers(ctx, s.pool)
}

func listIssuers(ctx context.Context, q queryer) ([]sts.Issuer, error) {
	rows, err := q.Query(ctx, "select "+issuerColumns+" from issuers order by name")
	if err != nil {
		return nil, fmt.Errorf("list issuers: %w", unavailable(err))
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (sts.Issuer, error) { return scanIssuer(row) })
	if err != nil {
		return nil, fmt.Errorf("list issuers: %w", unavailable(err))
	}
	return list, nil
}

// DeleteIssuer deletes the issuer called name, or returns an
// sts.ErrNotFound.
func (s *Store) DeleteIssuer(ctx context.Context, name string) error {
	return s.deleteRow(ctx, ChangeIssuers, "issuers", "name", "issuer", name)
}

func scanIssuer(row pgx.Row) (sts.Issuer, error) {
	var i sts.Issuer
	err := row.Scan(&i.Name, &i.URL, &i.Audiences, &i.Algorithms, &i.TokenTypes, &i.JWKSURI, &i.Version, &i.CreatedAt, &i.UpdatedAt)
	i.CreatedAt, i.UpdatedAt = utc(i.CreatedAt), utc(i.UpdatedAt)
	return i, err
}
