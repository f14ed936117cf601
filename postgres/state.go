package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/claimbridge/claimbridge/sts"
)

// LoadState reads every issuer, client and policy in one repeatable-read,
// read-only transaction, so the three lists are consistent with each other.
func (s *Store) LoadState(ctx context.Context) (sts.State, error) {
	var st sts.State
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) (err error) {
			if st.Issuers, err = listIssuers(ctx, tx); err != nil {
				return err
			}
			if st.Clients, err = listClients(ctx, tx); err != nil {
				return err
			}
			st.Policies, err = listPolicies(ctx, tx)
			return err
		})
	if err != nil {
		return sts.State{}, fmt.Errorf("load state: %w", err)
	}
	return st, nil
}
