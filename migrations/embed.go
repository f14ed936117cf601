// Package migrations holds Claimbridge's SQL schema migrations, embedded in
// the binary. Each file NNN_name.sql is one tern migration: the statements
// that bring the schema up, then "---- create above / drop below ----" and the
// statements that undo them. Files are applied in order by postgres.Migrate
// and never edited once released; a change is a new file.
//
// It must not import any other Claimbridge package.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS

// VersionTable is the table in which the applied migration version is kept.
const VersionTable = "claimbridge_schema_version"
