package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claimbridge/claimbridge/policy"
	"github.com/claimbridge/claimbridge/sts"
)

const policyColumns = "name, audience, body, version, created_at, updated_at"

// PutPolicy creates or replaces the policy named p.Name and returns the
// stored row; created reports whether it is new. Version starts at 1 and
// grows by one on every update; CreatedAt is kept. An audience already
// served by another policy is an sts.ErrConflict.
func (s *Store) PutPolicy(ctx context.Context, p policy.Policy) (stored policy.Policy, created bool, err error) {
	body, err := policyBody(p)
	if err != nil {
		return policy.Policy{}, false, fmt.Errorf("put policy %q: %w", p.Name, unavailable(err))
	}
	now := s.timestamp()
	err = s.write(ctx, ChangePolicies, func(tx pgx.Tx) error {
		row := tx.QueryRow(ctx, `
			insert into policies (name, audience, body, version, created_at, updated_at)
			values ($1, $2, $3, 1, $4, $4)
			on conflict (name) do update set
				audience = excluded.audience,
				body = excluded.body,
				version = policies.version + 1,
				updated_at = excluded.updated_at
			returning `+policyColumns,
			p.Name, p.Audience, body, now)
		stored, err = scanPolicy(row)
		return err
	})
	if uniqueViolation(err) == "policies_audience_key" {
		return policy.Policy{}, false, s.audienceConflict(ctx, p)
	}
	if err != nil {
		return policy.Policy{}, false, fmt.Errorf("put policy %q: %w", p.Name, unavailable(err))
	}
	return stored, stored.Version == 1, nil
}

// policyBody is p as JSON without the fields the table keeps in columns of
// their own (version and timestamps). Fields added to policy.Policy later
// are stored without a schema change.
func policyBody(p policy.Policy) ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	delete(fields, "version")
	delete(fields, "created_at")
	delete(fields, "updated_at")
	return json.Marshal(fields)
}

// audienceConflict names the policy that already serves p.Audience.
func (s *Store) audienceConflict(ctx context.Context, p policy.Policy) error {
	var other string
	err := s.pool.QueryRow(ctx, "select name from policies where audience = $1", p.Audience).Scan(&other)
	if err != nil {
		other = "another policy"
	} else {
		other = fmt.Sprintf("policy %q", other)
	}
	return fmt.Errorf("policy %q: audience %q is already served by %s: %w", p.Name, p.Audience, other, sts.ErrConflict)
}

// GetPolicy returns the policy called name, or an sts.ErrNotFound.
func (s *Store) GetPolicy(ctx context.Context, name string) (policy.Policy, error) {
	p, err := scanPolicy(s.pool.QueryRow(ctx, "select "+policyColumns+" from policies where name = $1", name))
	if errors.Is(err, pgx.ErrNoRows) {
		return policy.Policy{}, fmt.Errorf("policy %q: %w", name, sts.ErrNotFound)
	}
	if err != nil {
		return policy.Policy{}, fmt.Errorf("get policy %q: %w", name, unavailable(err))
	}
	return p, nil
}

// ListPolicies returns every policy, ordered by name.
func (s *Store) ListPolicies(ctx context.Context) ([]policy.Policy, error) {
	return listPolicies(ctx, s.pool)
}

func listPolicies(ctx context.Context, q queryer) ([]policy.Policy, error) {
	rows, err := q.Query(ctx, "select "+policyColumns+" from policies order by name")
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", unavailable(err))
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (policy.Policy, error) { return scanPolicy(row) })
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", unavailable(err))
	}
	return list, nil
}

// DeletePolicy deletes the policy called name, or returns an
// sts.ErrNotFound.
func (s *Store) DeletePolicy(ctx context.Context, name string) error {
	return s.deleteRow(ctx, ChangePolicies, "policies", "name", "policy", name)
}

func scanPolicy(row pgx.Row) (policy.Policy, error) {
	var (
		p                  policy.Policy
		name, audience     string
		body               []byte
		version            int64
		created, updatedAt time.Time
	)
	if err := row.Scan(&name, &audience, &body, &version, &created, &updatedAt); err != nil {
		return policy.Policy{}, err
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return policy.Policy{}, fmt.Errorf("decode policy %q: %w", name, err)
	}
	p.Name, p.Audience, p.Version = name, audience, version
	p.CreatedAt, p.UpdatedAt = utc(created), utc(updatedAt)
	return p, nil
}
