package main

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed schema_postgres.sql
var schemaPostgresSQL string

// dialect is what differs between the databases the store runs on. The store's queries are written
// once, in the SQL both understand, with ? for their arguments; the dialect fills in the rest.
type dialect struct {
	name   string // "sqlite" or "postgres", as /health names the store
	schema string // applied to a database that is new or behind this binary; idempotent
	// migrations are numbered alike on every dialect, so a version means the same schema on each.
	migrations []string
	// numbered: arguments are $1, $2 … (Postgres) rather than ? (SQLite).
	numbered bool
	// schemaTableQuery counts the schema_migrations tables the database has (0 or 1).
	schemaTableQuery string
	// lockSchema, run first in every transaction that changes the schema, keeps two nodes starting
	// at once from migrating the same database side by side; "" where the transaction's own lock
	// does that (SQLite's BEGIN IMMEDIATE).
	lockSchema string
	// forUpdate ends a SELECT of rows a transaction is about to change, so that a concurrent one
	// waits for it instead of deciding on what it read before; "" where transactions run one at a
	// time anyway (SQLite).
	forUpdate string
	// skipLocked ends the claim's SELECT: a worker passes over the jobs another one is claiming
	// instead of queueing behind it.
	skipLocked string
	// uniqueViolation reports whether err is the database refusing a row for a UNIQUE index.
	uniqueViolation func(error) bool
	// deadlock reports whether err is the database ending a transaction to break a deadlock,
	// which may then be run again; nil where one writer at a time cannot deadlock (SQLite).
	deadlock func(error) bool
	// server: the database is a server reached over connections, which may stop answering
	// (Postgres), so Ping asks it; not a file this process opened (SQLite), which always answers.
	server bool
	// checkpoint folds the write-ahead log into the database and empties it (Store.Checkpoint);
	// "" where the database does that itself (Postgres).
	checkpoint string
}

var sqliteDialect = &dialect{
	name:             "sqlite",
	schema:           schemaSQL,
	migrations:       migrations,
	schemaTableQuery: `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`,
	checkpoint:       `PRAGMA wal_checkpoint(TRUNCATE)`,
	uniqueViolation: func(err error) bool {
		var se *sqlite.Error
		return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
	},
}

var postgresDialect = &dialect{
	name:             "postgres",
	schema:           schemaPostgresSQL,
	migrations:       postgresMigrations,
	numbered:         true,
	schemaTableQuery: `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'`,
	// Any constant will do, as long as it is vidgen's alone among the database's users.
	lockSchema: `SELECT pg_advisory_xact_lock(7162738)`,
	forUpdate:  ` FOR UPDATE`,
	skipLocked: ` FOR UPDATE SKIP LOCKED`,
	server:     true,
	uniqueViolation: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505" // unique_violation
	},
	deadlock: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "40P01" // deadlock_detected
	},
}

// postgresMigrations are migrations' Postgres versions. schema_postgres.sql was written at
// migration 6, with every change up to it, so those are recorded without running anything; a
// later migration is written for each dialect, or shared when one text serves both.
var postgresMigrations = append([]string{"", "", "", "", "", ""}, migrations[6:]...)

// rebind turns the ? arguments of q into the dialect's. The store's queries have no ? in a
// literal or a comment, so every ? is an argument.
func (d *dialect) rebind(q string) string {
	if !d.numbered || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for _, part := range strings.Split(q, "?") {
		if n > 0 {
			b.WriteString("$" + strconv.Itoa(n))
		}
		b.WriteString(part)
		n++
	}
	return b.String()
}

// database is the store's pool of connections, taking queries written with ? (see dialect).
type database struct {
	*sql.DB
	d *dialect
}

func (db database) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return db.DB.ExecContext(ctx, db.d.rebind(q), args...)
}

func (db database) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return db.DB.QueryContext(ctx, db.d.rebind(q), args...)
}

func (db database) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return db.DB.QueryRowContext(ctx, db.d.rebind(q), args...)
}

func (db database) Exec(q string, args ...any) (sql.Result, error) {
	return db.ExecContext(context.Background(), q, args...)
}

func (db database) Query(q string, args ...any) (*sql.Rows, error) {
	return db.QueryContext(context.Background(), q, args...)
}

func (db database) QueryRow(q string, args ...any) *sql.Row {
	return db.QueryRowContext(context.Background(), q, args...)
}

// txn is a transaction of the store, taking queries written with ? (see dialect).
type txn struct {
	*sql.Tx
	d *dialect
}

func (tx txn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return tx.Tx.ExecContext(ctx, tx.d.rebind(q), args...)
}

func (tx txn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return tx.Tx.QueryContext(ctx, tx.d.rebind(q), args...)
}

func (tx txn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return tx.Tx.QueryRowContext(ctx, tx.d.rebind(q), args...)
}

func (tx txn) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return tx.Tx.PrepareContext(ctx, tx.d.rebind(q))
}

// isPostgresURL reports whether location names a Postgres server rather than a SQLite file.
func isPostgresURL(location string) bool {
	return strings.HasPrefix(location, "postgres://") || strings.HasPrefix(location, "postgresql://")
}

// OpenPostgresStore opens the Postgres database at url (postgres://user:password@host:port/db?…),
// creating vidgen's tables in its current schema if needed and applying pending migrations, under a
// lock, so several nodes may start at once.
func OpenPostgresStore(ctx context.Context, url string, now func() time.Time) (*Store, error) {
	return openPostgres(ctx, url, now, postgresDialect.migrations, true)
}

// OpenPostgresStoreAsIs opens the Postgres database at url without changing its schema (see
// OpenStoreAsIs).
func OpenPostgresStoreAsIs(ctx context.Context, url string, now func() time.Time) (*Store, error) {
	return openPostgres(ctx, url, now, postgresDialect.migrations, false)
}

// postgresMaxConns bounds each node's connections: a render worker holds one only for a claim, a
// renewal or an end, requests one per query; Postgres's default max_connections is 100, shared by
// every node.
const postgresMaxConns = 16

func openPostgres(ctx context.Context, url string, now func() time.Time, migs []string, migrate bool) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.SetMaxOpenConns(postgresMaxConns)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database: %s: %w", redactURL(url), err)
	}
	s := &Store{db: database{DB: db, d: postgresDialect}, now: now}
	if err := s.init(ctx, migs, migrate); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// redactURL is url without its password, for messages and logs.
func redactURL(raw string) string {
	cfg, err := pgconn.ParseConfig(raw)
	if err != nil {
		return "the -database URL"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}
