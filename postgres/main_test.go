package postgres_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/claimbridge/claimbridge/postgres"
	"github.com/claimbridge/claimbridge/postgres/pgtest"
	"github.com/claimbridge/claimbridge/sts"
)

// databaseURL is the package's migrated test database, shared by the tests
// that do not need a database of their own.
var databaseURL string

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &databaseURL)) }

// openStore opens a store on url, closed when the test ends.
func openStore(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// fixedClock returns a clock that advances by one second on every reading.
func fixedClock(start time.Time) func() time.Time {
	n := 0
	return func() time.Time {
		n++
		return start.Add(time.Duration(n) * time.Second)
	}
}

// freshDatabase returns a migrated database of the test's own, for tests
// that list everything.
func freshDatabase(t *testing.T) string { return pgtest.NewDatabase(t) }

func errorsIsNotFound(err error) bool { return errors.Is(err, sts.ErrNotFound) }
