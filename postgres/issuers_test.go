package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/postgres"
	"github.com/claimbridge/claimbridge/sts"
)

func testIssuer(name, url string) sts.Issuer {
	return sts.Issuer{
		Name:       name,
		URL:        url,
		Audiences:  []string{"gateway", "gateway-2"},
		Algorithms: []string{"RS256", "ES256"},
		TokenTypes: []string{"urn:ietf:params:oauth:token-type:jwt"},
	}
}

func TestIssuerLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, freshDatabase(t))
	start := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)
	postgres.SetClock(s, fixedClock(start))

	in := testIssuer("auth0-life", "https://life.example.com/")
	got, created, err := s.PutIssuer(ctx, in, 0)
	require.NoError(t, err)
	require.True(t, created, "first put creates")
	require.Equal(t, int64(1), got.Version, "version starts at 1")
	require.Equal(t, start.Add(time.Second).Truncate(time.Microsecond), got.CreatedAt)
	require.Equal(t, got.CreatedAt, got.UpdatedAt)
	require.Equal(t, in.Audiences, got.Audiences)
	require.Equal(t, "", got.JWKSURI)

	in.Audiences = []string{"other"}
	in.JWKSURI = "https://life.example.com/jwks"
	got2, created, err := s.PutIssuer(ctx, in, 0)
	require.NoError(t, err)
	require.False(t, created, "second put updates")
	require.Equal(t, int64(2), got2.Version, "update bumps the version")
	require.Equal(t, got.CreatedAt, got2.CreatedAt, "created_at is kept")
	require.Equal(t, start.Add(2*time.Second).Truncate(time.Microsecond), got2.UpdatedAt)
	require.Equal(t, []string{"other"}, got2.Audiences)

	read, err := s.GetIssuer(ctx, in.Name)
	require.NoError(t, err)
	require.Equal(t, got2, read, "get returns what put returned")

	require.NoError(t, s.DeleteIssuer(ctx, in.Name, 0))
	_, err = s.GetIssuer(ctx, in.Name)
	require.ErrorIs(t, err, sts.ErrNotFound)
	require.ErrorIs(t, s.DeleteIssuer(ctx, in.Name, 0), sts.ErrNotFound)

	_, created, err = s.PutIssuer(ctx, in, 0)
	require.NoError(t, err)
	require.True(t, created, "put after delete creates anew")
}

func TestIssuerURLConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, databaseURL)
	_, _, err := s.PutIssuer(ctx, testIssuer("conflict-a", "https://conflict.example.com"), 0)
	require.NoError(t, err)

	_, _, err = s.PutIssuer(ctx, testIssuer("conflict-b", "https://conflict.example.com"), 0)
	require.ErrorIs(t, err, sts.ErrConflict)
	require.ErrorContains(t, err, `issuer "conflict-a"`, "the message names the issuer that has the URL")
	_, err = s.GetIssuer(ctx, "conflict-b")
	require.ErrorIs(t, err, sts.ErrNotFound, "the failed put stored nothing")

	_, _, err = s.PutIssuer(ctx, testIssuer("conflict-a", "https://conflict.example.com"), 0)
	require.NoError(t, err, "an issuer does not conflict with itself")
}

func TestIssuerNilListsStoredEmpty(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, databaseURL)
	got, _, err := s.PutIssuer(ctx, sts.Issuer{Name: "bare", URL: "https://bare.example.com"}, 0)
	require.NoError(t, err)
	require.Empty(t, got.Audiences)
	require.Empty(t, got.Algorithms)
	require.Empty(t, got.TokenTypes)
}

func TestListIssuersOrderedByName(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, freshDatabase(t))
	for _, name := range []string{"zeta", "alpha", "mid"} {
		_, _, err := s.PutIssuer(ctx, testIssuer(name, "https://"+name+".example.com"), 0)
		require.NoError(t, err)
	}
	list, err := s.ListIssuers(ctx)
	require.NoError(t, err)
	var names []string
	for _, i := range list {
		names = append(names, i.Name)
	}
	require.Equal(t, []string{"alpha", "mid", "zeta"}, names)
}
