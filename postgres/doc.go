// Package postgres is the pgx adapter that keeps Claimbridge's state in
// PostgreSQL, the source of truth shared by every replica: trusted issuers,
// clients, policies and signing keys. It applies the embedded schema
// migrations, announces every write on a LISTEN/NOTIFY channel so that
// replicas reload their snapshot, and can run a development cluster from the
// machine's own Postgres binaries.
//
// It implements the store interfaces declared by sts and keys and must not
// import echo, fosite or the api package.
package postgres
