package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/claimbridge/claimbridge/admin"
	"github.com/claimbridge/claimbridge/sts"
)

const issuerColumns = "name, issuer_url, audiences, algorithms, token_types, jwks_uri, version, created_at, updated_at"

// PutIssuer creates or replaces the issuer named iss.Name and returns the
// stored row; created reports whether it is new. Version starts at 1 and
// grows by one on every update that changes something: a put of what is
// already stored changes nothing, not even the version, and is not audited.
// CreatedAt is kept. ifVersion is the write's precondition (see admin.IfAbsent).
// An issuer URL already used by another issuer is an sts.ErrConflict.
func (s *Store) PutIssuer(ctx context.Context, iss sts.Issuer, ifVersion int64) (stored sts.Issuer, created bool, err error) {
	now := s.timestamp()
	err = s.write(ctx, ChangeIssuers, func(tx pgx.Tx) (*admin.AuditEntry, error) {
		current, err := lockVersion(ctx, tx, "issuers", "name", "issuer", iss.Name, ifVersion)
		if err != nil {
			return nil, err
		}
		stored, err = scanIssuer(tx.QueryRow(ctx, `
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
			where (issuers.issuer_url, issuers.audiences, issuers.algorithms, issuers.token_types, issuers.jwks_uri)
				is distinct from (excluded.issuer_url, excluded.audiences, excluded.algorithms, excluded.token_types, excluded.jwks_uri)
			returning `+issuerColumns,
			iss.Name, iss.URL, nonNil(iss.Audiences), nonNil(iss.Algorithms), nonNil(iss.TokenTypes), iss.JWKSURI, now))
		if errors.Is(err, pgx.ErrNoRows) { // unchanged
			stored, err = scanIssuer(tx.QueryRow(ctx, "select "+issuerColumns+" from issuers where name = $1", iss.Name))
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		created = current == 0
		return changed(admin.KindIssuer, putAction(created), stored.Name, stored.Version, stored.UpdatedAt, stored)
	})
	if uniqueViolation(err) == "issuers_issuer_url_key" {
		return sts.Issuer{}, false, s.issuerURLConflict(ctx, iss)
	}
	if err != nil {
		return sts.Issuer{}, false, writeError("put", "issuer", iss.Name, err)
	}
	return stored, created, nil
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
	return getRow(ctx, s.pool, "issuer", "select "+issuerColumns+" from issuers where name = $1", name, scanIssuer)
}

// ListIssuers returns every issuer, ordered by name.
func (s *Store) ListIssuers(ctx context.Context) ([]sts.Issuer, error) {
	return listIssuers(ctx, s.pool)
}

func listIssuers(ctx context.Context, q queryer) ([]sts.Issuer, error) {
	return listRows(ctx, q, "issuers", "select "+issuerColumns+" from issuers order by name", scanIssuer)
}

// DeleteIssuer deletes the issuer called name, or returns an
// sts.ErrNotFound; ifVersion is the precondition (see admin.IfAbsent).
func (s *Store) DeleteIssuer(ctx context.Context, name string, ifVersion int64) error {
	err := s.write(ctx, ChangeIssuers, func(tx pgx.Tx) (*admin.AuditEntry, error) {
		old, err := remove(ctx, tx, "issuers", "name", issuerColumns, "issuer", name, ifVersion, scanIssuer)
		if err != nil {
			return nil, err
		}
		return changed(admin.KindIssuer, admin.ActionDelete, name, old.Version, s.timestamp(), old)
	})
	return writeError("delete", "issuer", name, err)
}

func scanIssuer(row pgx.Row) (sts.Issuer, error) {
	var i sts.Issuer
	err := row.Scan(&i.Name, &i.URL, &i.Audiences, &i.Algorithms, &i.TokenTypes, &i.JWKSURI, &i.Version, &i.CreatedAt, &i.UpdatedAt)
	i.CreatedAt, i.UpdatedAt = utc(i.CreatedAt), utc(i.UpdatedAt)
	return i, err
}
