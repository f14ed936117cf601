package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/policy"
	"github.com/claimbridge/claimbridge/sts"
)

func testPolicy(name, audience string) policy.Policy {
	return policy.Policy{
		Name:           name,
		Audience:       audience,
		AllowedClients: []string{"gw"},
		AllowedIssuers: []string{"auth0"},
		Claims: []policy.ClaimMapping{
			{Claim: "permissions"},
			{Claim: "roles", From: "https://example.com/roles"},
			{Claim: "realm_roles", From: "/realm_access/roles"},
		},
		Scopes:               []string{"orders:read"},
		TokenLifetimeSeconds: 300,
	}
}

func TestPolicyLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, databaseURL)

	in := testPolicy("orders-life", "https://orders-life.internal")
	got, created, err := s.PutPolicy(ctx, in, 0)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, int64(1), got.Version)
	want := in
	want.Version, want.CreatedAt, want.UpdatedAt = 1, got.CreatedAt, got.UpdatedAt
	require.Equal(t, want, got, "every field survives the round trip")

	in.Scopes = nil
	in.Claims = in.Claims[:1]
	got2, created, err := s.PutPolicy(ctx, in, 0)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, int64(2), got2.Version)
	require.Equal(t, got.CreatedAt, got2.CreatedAt)
	require.False(t, got2.UpdatedAt.Before(got.UpdatedAt))
	require.Nil(t, got2.Scopes)
	require.Len(t, got2.Claims, 1)

	read, err := s.GetPolicy(ctx, in.Name)
	require.NoError(t, err)
	require.Equal(t, got2, read)

	require.NoError(t, s.DeletePolicy(ctx, in.Name, 0))
	_, err = s.GetPolicy(ctx, in.Name)
	require.ErrorIs(t, err, sts.ErrNotFound)
	require.ErrorIs(t, s.DeletePolicy(ctx, in.Name, 0), sts.ErrNotFound)
}

func TestPolicyAudienceConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, freshDatabase(t))
	_, _, err := s.PutPolicy(ctx, testPolicy("aud-a", "https://shared.internal"), 0)
	require.NoError(t, err)

	_, _, err = s.PutPolicy(ctx, testPolicy("aud-b", "https://shared.internal"), 0)
	require.ErrorIs(t, err, sts.ErrConflict)
	require.ErrorContains(t, err, `policy "aud-a"`, "the message names the policy that serves the audience")

	_, _, err = s.PutPolicy(ctx, testPolicy("aud-b", "https://b.internal"), 0)
	require.NoError(t, err)
	_, _, err = s.PutPolicy(ctx, testPolicy("aud-b", "https://shared.internal"), 0)
	require.ErrorIs(t, err, sts.ErrConflict, "an update that takes another policy's audience conflicts too")
	got, err := s.GetPolicy(ctx, "aud-b")
	require.NoError(t, err)
	require.Equal(t, "https://b.internal", got.Audience, "the failed update changed nothing")
	require.Equal(t, int64(1), got.Version)
}

// TestPolicyTargetsConflict: a target listed in audiences is served by one
// policy only, whichever field names it.
func TestPolicyTargetsConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, freshDatabase(t))
	a := testPolicy("targets-a", "https://a.internal")
	a.Audiences = []string{"https://a2.internal"}
	_, _, err := s.PutPolicy(ctx, a, 0)
	require.NoError(t, err)

	cases := []struct {
		name      string
		audience  string
		audiences []string
	}{
		{"audience is another's audiences entry", "https://a2.internal", nil},
		{"audiences entry is another's audience", "https://b.internal", []string{"https://a.internal"}},
		{"audiences overlap", "https://b.internal", []string{"https://x.internal", "https://a2.internal"}},
	}
	for _, tc := range cases {
		b := testPolicy("targets-b", tc.audience)
		b.Audiences = tc.audiences
		_, _, err := s.PutPolicy(ctx, b, 0)
		require.ErrorIs(t, err, sts.ErrConflict, tc.name)
		require.ErrorContains(t, err, `policy "targets-a"`, tc.name)
	}
	a.Audiences = []string{"https://a2.internal", "https://a3.internal"}
	_, _, err = s.PutPolicy(ctx, a, 0)
	require.NoError(t, err, "a policy's own targets never conflict with themselves")
}

func TestListPoliciesOrderedByName(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, freshDatabase(t))
	for _, name := range []string{"b", "c", "a"} {
		_, _, err := s.PutPolicy(ctx, testPolicy(name, "https://"+name+".internal"), 0)
		require.NoError(t, err)
	}
	list, err := s.ListPolicies(ctx)
	require.NoError(t, err)
	require.Len(t, list, 3)
	require.Equal(t, "a", list[0].Name)
	require.Equal(t, "c", list[2].Name)
	require.Equal(t, "https://a.internal", list[0].Audience)
}
