package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/postgres"
	"github.com/claimbridge/claimbridge/sts"
)

// startListener runs a Listener on url until the test ends; it returns the
// kinds it delivers and a channel that receives each time it listens.
func startListener(t *testing.T, url string) (changes <-chan string, listening <-chan struct{}) {
	t.Helper()
	ch := make(chan string, 16)
	ready := make(chan struct{}, 16)
	l := &postgres.Listener{
		DatabaseURL: url,
		OnChange:    func(kind string) { ch <- kind },
		Listening:   func() { ready <- struct{}{} },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done, "Run returns nil when its context ends")
	})
	return ch, ready
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestListenDeliversChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := freshDatabase(t)
	s := openStore(t, url)
	changes, listening := startListener(t, url)
	receive(t, listening, "the listener to listen")

	_, hash := sts.NewClientSecret()
	tests := []struct {
		kind  string
		write func() error
	}{
		{postgres.ChangeIssuers, func() error {
			_, _, err := s.PutIssuer(ctx, testIssuer("n", "https://n.example.com"), 0)
			return err
		}},
		{postgres.ChangeClients, func() error {
			_, _, err := s.PutClient(ctx, sts.Client{ID: "n", SecretHash: hash}, 0)
			return err
		}},
		{postgres.ChangePolicies, func() error {
			_, _, err := s.PutPolicy(ctx, testPolicy("n", "https://n.internal"), 0)
			return err
		}},
		{postgres.ChangeKeys, func() error { return s.EnsureActiveKey(ctx, fakeKey) }},
		{postgres.ChangeIssuers, func() error { return s.DeleteIssuer(ctx, "n", 0) }},
	}
	for _, tt := range tests {
		require.NoError(t, tt.write())
		require.Equal(t, tt.kind, receive(t, changes, tt.kind+" change"))
	}

	require.ErrorIs(t, s.DeletePolicy(ctx, "absent", 0), sts.ErrNotFound)
	require.NoError(t, s.DeleteClient(ctx, "n", 0))
	require.Equal(t, postgres.ChangeClients, receive(t, changes, "clients change"),
		"a failed write announces nothing")
}

func TestListenReconnects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := freshDatabase(t)
	s := openStore(t, url)
	changes, listening := startListener(t, url)
	receive(t, listening, "the listener to listen")

	tag, err := s.Pool().Exec(ctx, `select pg_terminate_backend(pid) from pg_stat_activity
		where datname = current_database() and application_name = 'claimbridge-listener'`)
	require.NoError(t, err)
	require.Equal(t, int64(1), tag.RowsAffected(), "one listener connection was terminated")

	receive(t, listening, "the listener to listen again")
	require.Equal(t, postgres.ChangeReconnect, receive(t, changes, "the reconnect signal"))

	_, _, err = s.PutIssuer(ctx, testIssuer("after", "https://after.example.com"), 0)
	require.NoError(t, err)
	require.Equal(t, postgres.ChangeIssuers, receive(t, changes, "a change after reconnecting"))
}

func TestListenRejectsBadURL(t *testing.T) {
	t.Parallel()
	err := (&postgres.Listener{DatabaseURL: "postgres://bad host:x/", OnChange: func(string) {}}).Run(context.Background())
	require.Error(t, err)
}
