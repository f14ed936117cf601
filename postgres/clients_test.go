package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/sts"
)

func TestClientLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, databaseURL)
	secret, hash := sts.NewClientSecret()

	got, created, err := s.PutClient(ctx, sts.Client{ID: "gw-life", Description: "edge", SecretHash: hash}, 0)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, int64(1), got.Version)
	require.Equal(t, hash, got.SecretHash)

	_, otherHash := sts.NewClientSecret()
	got2, created, err := s.PutClient(ctx, sts.Client{ID: "gw-life", Description: "edge 2", SecretHash: otherHash}, 0)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, int64(2), got2.Version)
	require.Equal(t, "edge 2", got2.Description)
	require.Equal(t, hash, got2.SecretHash, "an update keeps the stored secret hash")
	require.True(t, sts.CheckSecret(got2.SecretHash, secret))

	got3, _, err := s.PutClient(ctx, sts.Client{ID: "gw-life", Description: "edge 3"}, 0)
	require.NoError(t, err, "an update needs no secret hash")
	require.Equal(t, hash, got3.SecretHash)
	require.Equal(t, got.CreatedAt, got3.CreatedAt)

	newSecret, newHash := sts.NewClientSecret()
	got4, err := s.SetClientSecret(ctx, "gw-life", newHash)
	require.NoError(t, err)
	require.Equal(t, int64(4), got4.Version, "a new secret bumps the version")
	require.Equal(t, "edge 3", got4.Description)
	read, err := s.GetClient(ctx, "gw-life")
	require.NoError(t, err)
	require.Equal(t, got4, read)
	require.True(t, sts.CheckSecret(read.SecretHash, newSecret))
	require.False(t, sts.CheckSecret(read.SecretHash, secret), "the old secret no longer works")

	require.NoError(t, s.DeleteClient(ctx, "gw-life", 0))
	_, err = s.GetClient(ctx, "gw-life")
	require.ErrorIs(t, err, sts.ErrNotFound)
	require.ErrorIs(t, s.DeleteClient(ctx, "gw-life", 0), sts.ErrNotFound)
}

func TestClientWriteErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, databaseURL)
	_, hash := sts.NewClientSecret()
	tests := []struct {
		name     string
		write    func() error
		notFound bool
	}{
		{"creating a client without a secret hash fails", func() error {
			_, _, err := s.PutClient(ctx, sts.Client{ID: "no-secret"}, 0)
			return err
		}, false},
		{"setting the secret of a missing client is not found", func() error {
			_, err := s.SetClientSecret(ctx, "missing", hash)
			return err
		}, true},
		{"setting an empty secret hash fails", func() error {
			_, err := s.SetClientSecret(ctx, "missing", nil)
			return err
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.write()
			require.Error(t, err)
			require.Equal(t, tt.notFound, errorsIsNotFound(err), "%v", err)
		})
	}
	_, err := s.GetClient(ctx, "no-secret")
	require.ErrorIs(t, err, sts.ErrNotFound, "the failed create stored nothing")
}

func TestListClientsOrderedByID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, freshDatabase(t))
	for _, id := range []string{"gw-b", "gw-a"} {
		_, hash := sts.NewClientSecret()
		_, _, err := s.PutClient(ctx, sts.Client{ID: id, SecretHash: hash}, 0)
		require.NoError(t, err)
	}
	list, err := s.ListClients(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "gw-a", list[0].ID)
	require.NotEmpty(t, list[0].SecretHash)
}
