package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/sts"
)

func TestLoadState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, freshDatabase(t))

	empty, err := s.LoadState(ctx)
	require.NoError(t, err)
	require.Empty(t, empty.Issuers)
	require.Empty(t, empty.Clients)
	require.Empty(t, empty.Policies)

	iss, _, err := s.PutIssuer(ctx, testIssuer("auth0", "https://auth0.example.com/"), 0)
	require.NoError(t, err)
	_, hash := sts.NewClientSecret()
	cl, _, err := s.PutClient(ctx, sts.Client{ID: "gw", SecretHash: hash}, 0)
	require.NoError(t, err)
	pol, _, err := s.PutPolicy(ctx, testPolicy("orders", "https://orders.internal"), 0)
	require.NoError(t, err)

	st, err := s.LoadState(ctx)
	require.NoError(t, err)
	require.Equal(t, sts.State{
		Issuers:  []sts.Issuer{iss},
		Clients:  []sts.Client{cl},
		Policies: st.Policies,
	}, st)
	require.Len(t, st.Policies, 1)
	require.Equal(t, pol, st.Policies[0])
}
