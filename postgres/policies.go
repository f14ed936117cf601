package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claimbridge/claimbridge/admin"
	"github.com/claimbridge/claimbridge/policy"
	"github.com/claimbridge/claimbridge/sts"
)

const policyColumns = "name, audience, body, version, created_at, updated_at"

// PutPolicy creates or replaces the policy named p.Name and returns the
// stored row; created reports whether it is new. Version starts at 1 and
// grows by one on every update that changes something: a put of what is
// already stored changes nothing, not even the version, and records nothing.
// CreatedAt is kept. Every change is also a revision (PolicyRevisions).
// ifVersion is the write's precondition (see admin.IfAbsent). An audience already
// served by another policy is an sts.ErrConflict.
func (s *Store) PutPolicy(ctx context.Context, p policy.Policy, ifVersion int64) (stored policy.Policy, created bool, err error) {
	body, err := policyBody(p)
	if err != nil {
		return policy.Policy{}, false, fmt.Errorf("put policy %q: %w", p.Name, err)
	}
	now := s.timestamp()
	err = s.write(ctx, ChangePolicies, func(tx pgx.Tx) (*admin.AuditEntry, error) {
		current, err := lockVersion(ctx, tx, "policies", "name", "policy", p.Name, ifVersion)
		if err != nil {
			return nil, err
		}
		if err := targetsFree(ctx, tx, p); err != nil {
			return nil, err
		}
		stored, err = scanPolicy(tx.QueryRow(ctx, `
			insert into policies (name, audience, body, version, created_at, updated_at)
			values ($1, $2, $3, 1, $4, $4)
			on conflict (name) do update set
				audience = excluded.audience,
				body = excluded.body,
				version = policies.version + 1,
				updated_at = excluded.updated_at
			where (policies.audience, policies.body) is distinct from (excluded.audience, excluded.body)
			returning `+policyColumns,
			p.Name, p.Audience, body, now))
		if errors.Is(err, pgx.ErrNoRows) { // unchanged
			stored, err = scanPolicy(tx.QueryRow(ctx, "select "+policyColumns+" from policies where name = $1", p.Name))
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		created = current == 0
		return policyChanged(ctx, tx, putAction(created), stored.UpdatedAt, stored)
	})
	if uniqueViolation(err) == "policies_audience_key" {
		return policy.Policy{}, false, s.audienceConflict(ctx, p)
	}
	if err != nil {
		return policy.Policy{}, false, writeError("put", "policy", p.Name, err)
	}
	return stored, created, nil
}

// policyTargetsLockID serializes the policy writes that check targets, so
// that two policies cannot claim one target concurrently.
const policyTargetsLockID int64 = 4_170_273_316_845_601_733

// targetsFree refuses p when another policy already serves one of its
// targets (its audience or one of its audiences): every target is served by
// exactly one policy.
func targetsFree(ctx context.Context, tx pgx.Tx, p policy.Policy) error {
	if _, err := tx.Exec(ctx, "select pg_advisory_xact_lock($1)", policyTargetsLockID); err != nil {
		return fmt.Errorf("lock policy targets: %w", err)
	}
	targets := p.Targets()
	var other, target string
	err := tx.QueryRow(ctx, `
		select name, t from policies, unnest($2::text[]) as t
		where name <> $1 and (audience = t or coalesce(body->'audiences', '[]'::jsonb) ? t)
		limit 1`, p.Name, targets).Scan(&other, &target)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("check policy targets: %w", err)
	}
	return fmt.Errorf("policy %q: target %q is already served by policy %q: %w", p.Name, target, other, sts.ErrConflict)
}

// policyChanged records p, as written or deleted by action at, as a
// revision and returns the audit entry of the change.
func policyChanged(ctx context.Context, tx pgx.Tx, action string, at time.Time, p policy.Policy) (*admin.AuditEntry, error) {
	body, err := policyBody(p)
	if err != nil {
		return nil, fmt.Errorf("revision of policy %q: %w", p.Name, err)
	}
	_, err = tx.Exec(ctx, `
		insert into policy_revisions (policy_name, version, action, body, actor, at)
		values ($1, $2, $3, $4, $5, $6)`,
		p.Name, p.Version, action, body, admin.ActorFrom(ctx), at)
	if err != nil {
		return nil, fmt.Errorf("revision of policy %q: %w", p.Name, err)
	}
	return changed(admin.KindPolicy, action, p.Name, p.Version, at, p)
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
	return getRow(ctx, s.pool, "policy", "select "+policyColumns+" from policies where name = $1", name, scanPolicy)
}

// ListPolicies returns every policy, ordered by name.
func (s *Store) ListPolicies(ctx context.Context) ([]policy.Policy, error) {
	return listPolicies(ctx, s.pool)
}

func listPolicies(ctx context.Context, q queryer) ([]policy.Policy, error) {
	return listRows(ctx, q, "policies", "select "+policyColumns+" from policies order by name", scanPolicy)
}

// DeletePolicy deletes the policy called name, or returns an
// sts.ErrNotFound; ifVersion is the precondition (see admin.IfAbsent). Its
// revisions are kept, the deleted policy being the last.
func (s *Store) DeletePolicy(ctx context.Context, name string, ifVersion int64) error {
	err := s.write(ctx, ChangePolicies, func(tx pgx.Tx) (*admin.AuditEntry, error) {
		old, err := remove(ctx, tx, "policies", "name", policyColumns, "policy", name, ifVersion, scanPolicy)
		if err != nil {
			return nil, err
		}
		return policyChanged(ctx, tx, admin.ActionDelete, s.timestamp(), old)
	})
	return writeError("delete", "policy", name, err)
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
	// Strict: a field this binary does not know (written by a newer
	// replica) could restrict the policy; ignoring it would fail open.
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return policy.Policy{}, fmt.Errorf("decode policy %q (written by a newer Claimbridge?): %w", name, err)
	}
	p.Name, p.Audience, p.Version = name, audience, version
	p.CreatedAt, p.UpdatedAt = utc(created), utc(updatedAt)
	return p, nil
}
