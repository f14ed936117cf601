package migrations_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/jackc/tern/v2/migrate"

	"github.com/claimbridge/claimbridge/migrations"
)

// TestMigrationsLoad proves that tern reads every embedded file as a
// migration with both directions, numbered without gaps.
func TestMigrationsLoad(t *testing.T) {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no embedded migrations: %v", err)
	}
	m, err := migrate.NewMigrator(context.Background(), nil, migrations.VersionTable)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		t.Fatalf("load: %v", err)
	}
	if len(m.Migrations) != len(names) {
		t.Fatalf("tern loaded %d migrations from %d files: is one misnamed (NNN_name.sql)?", len(m.Migrations), len(names))
	}
	for _, mig := range m.Migrations {
		if strings.TrimSpace(mig.DownSQL) == "" {
			t.Errorf("%s has no statements below '---- create above / drop below ----'", mig.Name)
		}
	}
}
