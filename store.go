package main

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

//go:embed schema.sql
var schemaSQL string

// migrations are the schema changes made after schema.sql was first shipped, numbered by their
// position (1-based). Each runs once, in its own transaction, and is recorded in schema_migrations.
// Append only: never edit or reorder a migration that has shipped.
var migrations = []string{
	// 1: inputs are found from the job's id in the data directory, which can then move; a stored
	// absolute path pointed into the old place and lost every pending job after a move.
	`ALTER TABLE jobs DROP COLUMN image_path;
	 ALTER TABLE jobs DROP COLUMN audio_path;`,
	// 2: listing a key's jobs by status reads only that page, however long the key's history.
	`CREATE INDEX IF NOT EXISTS jobs_by_key_status ON jobs(key_id, status, id);`,
	// 3: a webhook's body is the job's status, built when it is sent; a job's final state never
	// changes, so every attempt sends the same bytes.
	`ALTER TABLE webhook_deliveries DROP COLUMN payload;`,
	// 4: the queue is taken oldest first by creation, so a retried job keeps its place in line.
	`CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(status, created_at, id);`,
	// 5: a job's render options (size, background, waveform, captions) as JSON; '' for the defaults,
	// which is what every job made before them was.
	`ALTER TABLE jobs ADD COLUMN options TEXT NOT NULL DEFAULT '';`,
	// 6: the hourly sweep reads only the outputs that expired since the last one, however many
	// jobs the service has finished.
	`CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(status, finished_at);`,
	// 7: submissions made with an Idempotency-Key (store_idempotency.go): one row per account and
	// key, claimed while the request is received (status_code NULL), then holding the 201 it got,
	// so that a retry gets the same answer instead of a second job. Kept a day (created_at).
	`CREATE TABLE IF NOT EXISTS idempotency_keys (
	    key_id      TEXT NOT NULL REFERENCES api_keys(id),
	    idem_key    TEXT NOT NULL,
	    fingerprint TEXT,
	    job_id      TEXT,
	    status_code INTEGER,
	    response    TEXT,
	    created_at  BIGINT NOT NULL,
	    PRIMARY KEY (key_id, idem_key)
	 );
	 CREATE INDEX IF NOT EXISTS idempotency_by_age ON idempotency_keys(created_at);`,
	// 8: the inputs a job was given by URL, fetched before its render, as JSON ({"audio": URL});
	// '' for none, which is what every job made before them had.
	`ALTER TABLE jobs ADD COLUMN input_urls TEXT NOT NULL DEFAULT '';`,
	// 9: the trace id of the W3C traceparent a job was submitted with ('' when none), so its render
	// and webhook log lines, written long after the request, carry it too.
	`ALTER TABLE jobs ADD COLUMN trace_id TEXT NOT NULL DEFAULT '';`,
	// 10: leases, for several nodes on one queue.
	migrationLeases,
	// 11: an Idempotency-Key's claim names the request that holds it (NODE/CLAIM, as a lease's
	// owner), so a node starting up releases only its dead process's claims, not the uploads other
	// nodes are receiving, and a request whose claim was released cannot answer over another's.
	`ALTER TABLE idempotency_keys ADD COLUMN claim_owner TEXT;`,
	// 12: the database's id (InstallID), which a bucket prefix's owner marker names, so a second
	// vidgen with a database of its own cannot sweep away the first one's files. One row at most.
	`CREATE TABLE IF NOT EXISTS installation (
	    one INTEGER PRIMARY KEY CHECK (one = 1),
	    id  TEXT NOT NULL
	 );`,
	// 13: the loudness (LUFS) a completed job's audio reached when its render could not bring it
	// to the target asked under the peak ceiling, which its status warns of; NULL when on target.
	`ALTER TABLE jobs ADD COLUMN loudness_reached DOUBLE PRECISION;`,
}

// migrationLeases (10) makes each claim a lease, so several nodes can share one queue: the worker
// holding a PROCESSING job renews lease_until while it renders, and a job whose lease lapsed (its
// node died) is claimed again. progress is the furthest the job's renders got, written with each
// renewal, so a job another node took over never shows less. A webhook delivery being sent is
// leased the same way. The same text serves both dialects (BIGINT is an integer to SQLite).
const migrationLeases = `ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
	ALTER TABLE jobs ADD COLUMN lease_until BIGINT;
	ALTER TABLE jobs ADD COLUMN progress INTEGER NOT NULL DEFAULT 0;
	CREATE INDEX IF NOT EXISTS jobs_leases ON jobs(status, lease_until);
	ALTER TABLE webhook_deliveries ADD COLUMN lease_owner TEXT;`

// maxOpenConns bounds the database's connection pool: every connection is a descriptor on
// vidgen.db, and a flood of requests must not turn into thousands of them. SQLite in WAL mode has
// one writer at a time anyway; readers queue for a moment instead of opening more.
const maxOpenConns = 16

// Store is vidgen's database, a SQLite file or a Postgres server (store_dialect.go): keys
// (store_keys.go), jobs (store_jobs.go) and the webhook outbox (store_outbox.go).
type Store struct {
	db  database
	now func() time.Time
}

// OpenStore opens (creating if needed) the SQLite database at path, applies schema.sql and any
// pending migrations.
func OpenStore(ctx context.Context, path string, now func() time.Time) (*Store, error) {
	return openStore(ctx, path, now, migrations, true)
}

// OpenStoreAsIs opens the database at path without changing its schema, for a command that runs
// beside a serve: migrating under a running service could pull its tables from under it. It fails
// with errSchemaBehind or errSchemaAhead when the database is not at this binary's schema.
func OpenStoreAsIs(ctx context.Context, path string, now func() time.Time) (*Store, error) {
	return openStore(ctx, path, now, migrations, false)
}

// A database whose schema is not the one this binary knows is either behind it (migrations pending,
// which only a command holding the data directory's lock may apply) or ahead of it (written by a
// later vidgen, which an older one must not run on).
var (
	errSchemaBehind = errors.New("the database is older than this vidgen")
	errSchemaAhead  = errors.New("the database was written by a later vidgen")
)

func openStore(ctx context.Context, path string, now func() time.Time, migs []string, migrate bool) (*Store, error) {
	// The pragmas live in the DSN because database/sql pools connections: a PRAGMA run once would set
	// only the connection it ran on.
	//   journal_mode(WAL): readers (status polls) never wait for the writer (the renderer).
	//   busy_timeout: writers queue for the lock for up to 10 s instead of failing with SQLITE_BUSY.
	//   foreign_keys: SQLite leaves them off unless asked, per connection.
	//   synchronous(FULL): a 201 (and the job row behind it) survives power loss, not just a crash.
	//   journal_size_limit: after a checkpoint the WAL file is truncated back to at most 64 MB, so
	//   one burst of writes does not leave a huge file behind.
	// _txlock=immediate makes every BeginTx take the write lock at BEGIN, so two writers cannot both
	// read and then deadlock upgrading; busy_timeout then applies.
	v := url.Values{}
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "foreign_keys(1)")
	v.Add("_pragma", "synchronous(FULL)")
	v.Add("_pragma", "journal_size_limit(67108864)")
	v.Set("_txlock", "immediate")
	// The path is escaped: a data directory named with '#' or '?' must not end the path early and
	// drop every pragma with it.
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: abs, RawQuery: v.Encode()}).String())
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(10 * time.Second) // a burst's connections (descriptors) do not linger
	s := &Store{db: database{DB: db, d: sqliteDialect}, now: now}
	if err := s.init(ctx, migs, migrate); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init(ctx context.Context, migs []string, migrate bool) error {
	// The version is read before schema.sql runs: a database a later vidgen migrated is left
	// exactly as it is.
	v, err := s.schemaVersion(ctx)
	if err != nil {
		return err
	}
	if v > len(migs) {
		// After a rollback to an older binary, its queries would meet tables they do not know.
		return fmt.Errorf("%w (schema version %d, this vidgen knows %d): run that version, or restore the backup made before it",
			errSchemaAhead, v, len(migs))
	}
	if !migrate {
		if v < len(migs) {
			return fmt.Errorf("%w (schema version %d, this vidgen needs %d): stop the running vidgen serve "+
				"and start this version's, which updates it", errSchemaBehind, v, len(migs))
		}
		return nil
	}
	if v > 0 && v == len(migs) {
		// Nothing to change, so nothing is locked: applying the schema's IF NOT EXISTS indexes
		// again would take a share lock on jobs and the outbox while the other nodes write them.
		return nil
	}
	if err := s.schemaTx(ctx, func(tx txn) error {
		_, err := tx.ExecContext(ctx, s.db.d.schema)
		return err
	}); err != nil {
		return fmt.Errorf("apply schema: %w", err)
	}
	for i, m := range migs {
		version := i + 1
		err := s.schemaTx(ctx, func(tx txn) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if m != "" { // "": the change is in the dialect's schema file already
				if _, err := tx.ExecContext(ctx, m); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, s.now().UnixMilli())
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d: %w", version, err)
		}
	}
	return nil
}

// schemaVersion is the number of the last migration applied to the database; 0 for none, or for a
// file vidgen never set up.
func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var tables, v int
	err := s.db.QueryRowContext(ctx, s.db.d.schemaTableQuery).Scan(&tables)
	if err == nil && tables > 0 {
		err = s.db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// tx runs fn in a write transaction (on SQLite BEGIN IMMEDIATE, see the DSN), committing if fn
// returns nil.
func (s *Store) tx(ctx context.Context, fn func(txn) error) error {
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	tx := txn{Tx: sqlTx, d: s.db.d}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// schemaTxAttempts bounds how often a schema change the database ended to break a deadlock is
// tried again; each time another transaction of the cycle went on, so a second try nearly always
// gets through.
const schemaTxAttempts = 5

// schemaTx runs fn, a change of the schema, in a transaction that holds the dialect's schema lock.
// A node upgrading the schema locks tables that the other nodes, still at work, write in another
// order; when Postgres picks its transaction as a deadlock's victim, fn runs again from the start
// instead of the node failing to start.
func (s *Store) schemaTx(ctx context.Context, fn func(txn) error) error {
	for attempt := 1; ; attempt++ {
		err := s.tx(ctx, func(tx txn) error {
			if s.db.d.lockSchema != "" {
				if _, err := tx.ExecContext(ctx, s.db.d.lockSchema); err != nil {
					return err
				}
			}
			return fn(tx)
		})
		if err == nil || attempt == schemaTxAttempts || s.db.d.deadlock == nil || !s.db.d.deadlock(err) {
			return err
		}
	}
}

// Ping reports whether the database answers. A SQLite file always does (see dataDir.check).
func (s *Store) Ping(ctx context.Context) error {
	if !s.db.d.server {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return nil
}

// Backend names the database the store runs on: "sqlite" or "postgres".
func (s *Store) Backend() string { return s.db.d.name }

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// queryer is a *sql.DB or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// collect runs q and returns every row scanned by scan; what prefixes its errors.
func collect[T any](ctx context.Context, db queryer, what string, scan func(scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// one runs q, which matches at most one row, and returns it scanned by scan, or notFound.
func one[T any](ctx context.Context, db queryer, what string, notFound error, scan func(scanner) (T, error), q string, args ...any) (T, error) {
	v, err := scan(db.QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		var zero T
		return zero, notFound
	}
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

func scanString(row scanner) (string, error) {
	var v string
	err := row.Scan(&v)
	return v, err
}

// isUniqueViolation reports whether err is the database refusing a row for a UNIQUE constraint or
// index.
func (s *Store) isUniqueViolation(err error) bool { return err != nil && s.db.d.uniqueViolation(err) }

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

// nullMS is t in unix milliseconds, NULL when zero.
func nullMS(t time.Time) sql.NullInt64 {
	return sql.NullInt64{Int64: ms(t), Valid: !t.IsZero()}
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// Checkpoint copies SQLite's WAL into the database and truncates it to zero bytes; it gives up
// quietly on frames a reader still needs (they go at the next one). Postgres needs none.
func (s *Store) Checkpoint(ctx context.Context) error {
	if s.db.d.checkpoint == "" {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, s.db.d.checkpoint); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// InstallID returns the database's id, made from rnd the first time it is asked for. Every node on
// one database reads the same id; two databases never share one.
func (s *Store) InstallID(ctx context.Context, rnd io.Reader) (string, error) {
	id, err := randomHex(rnd, 16)
	if err != nil {
		return "", err
	}
	// ON CONFLICT DO NOTHING: two nodes asking at once both read the one id that was stored first.
	if _, err := s.db.ExecContext(ctx, `INSERT INTO installation (one, id) VALUES (1, ?) ON CONFLICT DO NOTHING`, id); err != nil {
		return "", fmt.Errorf("install id: %w", err)
	}
	if err := s.db.QueryRowContext(ctx, `SELECT id FROM installation WHERE one = 1`).Scan(&id); err != nil {
		return "", fmt.Errorf("install id: %w", err)
	}
	return id, nil
}

// IntegrityCheck runs PRAGMA integrity_check and returns its verdict ("ok" when sound).
func (s *Store) IntegrityCheck(ctx context.Context) (string, error) {
	lines, err := collect(ctx, s.db, "integrity check", scanString, `PRAGMA integrity_check`)
	if err != nil {
		return "", err
	}
	return strings.Join(lines, "\n"), nil
}
