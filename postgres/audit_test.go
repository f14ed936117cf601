package postgres_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/admin"
	"github.com/claimbridge/claimbridge/policy"
	"github.com/claimbridge/claimbridge/sts"
)

// TestPreconditions: every write kind honours ifVersion, and a failed
// precondition changes nothing.
func TestPreconditions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, freshDatabase(t))
	p := testPolicy("cond", "https://cond.internal")

	_, _, err := s.PutPolicy(ctx, p, 1)
	require.ErrorIs(t, err, sts.ErrPreconditionFailed, "If-Match on an absent policy")
	_, _, err = s.PutPolicy(ctx, p, admin.IfExists)
	require.ErrorIs(t, err, sts.ErrPreconditionFailed, "If-Match: * on an absent policy")
	_, created, err := s.PutPolicy(ctx, p, admin.IfAbsent)
	require.NoError(t, err)
	require.True(t, created)
	_, _, err = s.PutPolicy(ctx, p, admin.IfAbsent)
	require.ErrorIs(t, err, sts.ErrPreconditionFailed, "create only, but it exists")

	p.Scopes = []string{"changed"}
	_, _, err = s.PutPolicy(ctx, p, 2)
	require.ErrorIs(t, err, sts.ErrPreconditionFailed, "stale version")
	require.ErrorContains(t, err, "is at version 1, not 2")
	got, err := s.GetPolicy(ctx, p.Name)
	require.NoError(t, err)
	require.Equal(t, int64(1), got.Version, "a failed precondition changes nothing")

	got, _, err = s.PutPolicy(ctx, p, 1)
	require.NoError(t, err)
	require.Equal(t, int64(2), got.Version)
	_, _, err = s.PutPolicy(ctx, p, admin.IfExists)
	require.NoError(t, err)

	require.ErrorIs(t, s.DeletePolicy(ctx, p.Name, 1), sts.ErrPreconditionFailed)
	require.NoError(t, s.DeletePolicy(ctx, p.Name, 2))
	require.ErrorIs(t, s.DeletePolicy(ctx, p.Name, 2), sts.ErrNotFound, "a missing resource is not found whatever the precondition")

	_, hash := sts.NewClientSecret()
	_, _, err = s.PutClient(ctx, sts.Client{ID: "cond", SecretHash: hash}, 0)
	require.NoError(t, err)
	_, _, err = s.PutClient(ctx, sts.Client{ID: "cond", Description: "x"}, 7)
	require.ErrorIs(t, err, sts.ErrPreconditionFailed)
	require.ErrorIs(t, s.DeleteClient(ctx, "cond", 7), sts.ErrPreconditionFailed)
	_, _, err = s.PutIssuer(ctx, testIssuer("cond", "https://cond.example.com"), admin.IfExists)
	require.ErrorIs(t, err, sts.ErrPreconditionFailed)
}

// TestConcurrentConditionalWrites: of writers that all read version 1,
// exactly one wins; the others get a precondition failure, never a lost
// update.
func TestConcurrentConditionalWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, freshDatabase(t))
	_, _, err := s.PutPolicy(ctx, testPolicy("race", "https://race.internal"), 0)
	require.NoError(t, err)

	const writers = 8
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			p := testPolicy("race", "https://race.internal")
			p.Scopes = []string{"writer-" + string(rune('a'+i))}
			_, _, errs[i] = s.PutPolicy(ctx, p, 1)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		require.ErrorIs(t, err, sts.ErrPreconditionFailed)
	}
	require.Equal(t, 1, won)
	got, err := s.GetPolicy(ctx, "race")
	require.NoError(t, err)
	require.Equal(t, int64(2), got.Version)
}

// TestUnchangedPutRecordsNothing: a put of what is stored keeps the
// version and leaves no audit entry or revision, so apply is idempotent.
func TestUnchangedPutRecordsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, freshDatabase(t))
	p := testPolicy("same", "https://same.internal")
	first, _, err := s.PutPolicy(ctx, p, 0)
	require.NoError(t, err)
	again, created, err := s.PutPolicy(ctx, p, 1)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first, again, "same version, same timestamps")

	iss := testIssuer("same", "https://same.example.com")
	_, _, err = s.PutIssuer(ctx, iss, 0)
	require.NoError(t, err)
	gotIss, _, err := s.PutIssuer(ctx, iss, 0)
	require.NoError(t, err)
	require.Equal(t, int64(1), gotIss.Version)

	_, hash := sts.NewClientSecret()
	_, _, err = s.PutClient(ctx, sts.Client{ID: "same", Description: "d", SecretHash: hash}, 0)
	require.NoError(t, err)
	gotCl, created, err := s.PutClient(ctx, sts.Client{ID: "same", Description: "d", SecretHash: hash}, 0)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, int64(1), gotCl.Version)

	log, err := s.AuditLog(ctx, admin.Query{})
	require.NoError(t, err)
	require.Len(t, log.Items, 3, "one entry per create, none for the repeats")
	revs, err := s.PolicyRevisions(ctx, "same", admin.Query{})
	require.NoError(t, err)
	require.Len(t, revs.Items, 1)
}

// TestAuditLogContent: who, what and when of every kind of change, newest
// first, never a secret; filters and paging.
func TestAuditLogContent(t *testing.T) {
	t.Parallel()
	s := openStore(t, freshDatabase(t))
	ctx := admin.WithActor(context.Background(), "token:0123abcd")

	_, _, err := s.PutIssuer(ctx, testIssuer("idp", "https://idp.example.com"), 0)
	require.NoError(t, err)
	_, hash := sts.NewClientSecret()
	_, _, err = s.PutClient(ctx, sts.Client{ID: "gw", Description: "edge", SecretHash: hash}, 0)
	require.NoError(t, err)
	_, newHash := sts.NewClientSecret()
	_, err = s.SetClientSecret(ctx, "gw", newHash)
	require.NoError(t, err)
	_, _, err = s.PutPolicy(context.Background(), testPolicy("p", "https://p.internal"), 0)
	require.NoError(t, err)
	require.NoError(t, s.DeleteIssuer(ctx, "idp", 0))

	log, err := s.AuditLog(context.Background(), admin.Query{})
	require.NoError(t, err)
	type row struct{ actor, action, kind, name string }
	var got []row
	for _, e := range log.Items {
		got = append(got, row{e.Actor, e.Action, e.Kind, e.Name})
		require.False(t, e.At.IsZero())
		require.NotContains(t, string(e.Detail), "secret", "no secret nor its hash in %s", e.Detail)
	}
	require.Equal(t, []row{
		{"token:0123abcd", "delete", "issuer", "idp"},
		{"system", "create", "policy", "p"},
		{"token:0123abcd", "rotate_secret", "client", "gw"},
		{"token:0123abcd", "create", "client", "gw"},
		{"token:0123abcd", "create", "issuer", "idp"},
	}, got, "newest first; a context without an actor is the system")

	var deleted sts.Issuer
	require.NoError(t, json.Unmarshal(log.Items[0].Detail, &deleted))
	require.Equal(t, "https://idp.example.com", deleted.URL, "a delete records what was deleted")
	require.Equal(t, int64(2), log.Items[2].Version, "the version after the change")

	page1, err := s.AuditLog(ctx, admin.Query{Limit: 2})
	require.NoError(t, err)
	require.Len(t, page1.Items, 2)
	require.Equal(t, page1.Items[1].ID, page1.Next)
	page2, err := s.AuditLog(ctx, admin.Query{Limit: 2, Before: page1.Next})
	require.NoError(t, err)
	page3, err := s.AuditLog(ctx, admin.Query{Limit: 2, Before: page2.Next})
	require.NoError(t, err)
	require.Len(t, page3.Items, 1)
	require.Zero(t, page3.Next, "the last page")
	require.Equal(t, log.Items[4].ID, page3.Items[0].ID)

	clients, err := s.AuditLog(ctx, admin.Query{Kind: admin.KindClient, Name: "gw"})
	require.NoError(t, err)
	require.Len(t, clients.Items, 2)
	none, err := s.AuditLog(ctx, admin.Query{Kind: admin.KindPolicy, Name: "gw"})
	require.NoError(t, err)
	require.Empty(t, none.Items)
}

// TestPolicyRevisions: every version with its full body and actor, kept
// after a delete, and a re-created policy continues the history.
func TestPolicyRevisions(t *testing.T) {
	t.Parallel()
	s := openStore(t, freshDatabase(t))
	alice := admin.WithActor(context.Background(), "jwt:alice")
	bob := admin.WithActor(context.Background(), "jwt:bob")

	p := testPolicy("hist", "https://hist.internal")
	_, _, err := s.PutPolicy(alice, p, 0)
	require.NoError(t, err)
	p.Scopes = []string{"orders:write"}
	_, _, err = s.PutPolicy(bob, p, 1)
	require.NoError(t, err)
	require.NoError(t, s.DeletePolicy(alice, "hist", 2))
	_, _, err = s.PutPolicy(bob, p, admin.IfAbsent)
	require.NoError(t, err)

	revs, err := s.PolicyRevisions(context.Background(), "hist", admin.Query{})
	require.NoError(t, err)
	type row struct {
		version       int64
		action, actor string
	}
	var got []row
	for _, r := range revs.Items {
		got = append(got, row{r.Version, r.Action, r.Actor})
	}
	require.Equal(t, []row{{1, "create", "jwt:bob"}, {2, "delete", "jwt:alice"}, {2, "update", "jwt:bob"}, {1, "create", "jwt:alice"}}, got)

	var first policy.Policy
	require.NoError(t, json.Unmarshal(revs.Items[3].Policy, &first))
	require.Equal(t, "hist", first.Name)
	require.Equal(t, "https://hist.internal", first.Audience)
	require.Equal(t, []string{"orders:read"}, first.Scopes, "the body as it was then")
	require.NotContains(t, string(revs.Items[3].Policy), "version", "a revision body can be PUT back")

	older, err := s.PolicyRevisions(context.Background(), "hist", admin.Query{Limit: 3})
	require.NoError(t, err)
	rest, err := s.PolicyRevisions(context.Background(), "hist", admin.Query{Before: older.Next})
	require.NoError(t, err)
	require.Len(t, rest.Items, 1)
	require.Equal(t, revs.Items[3].ID, rest.Items[0].ID)

	_, err = s.PolicyRevisions(context.Background(), "never", admin.Query{})
	require.ErrorIs(t, err, sts.ErrNotFound)
}
