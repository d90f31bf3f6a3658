package main

// The migrate-store command: `vidgen migrate-store -from data/vidgen.db -to postgres://…` moves a
// single box's jobs, keys and webhook outbox from its SQLite file into an empty Postgres database.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// migratedTables are the tables migrate-store copies, parents before children, each with the
// columns both schemas have and the order that keeps Postgres's generated row numbers in SQLite's.
// Every table and column of the schema is here but schema_migrations and Postgres's generated
// webhook_deliveries.rowid (TestMigrateStoreCoversSchema): a migration that adds one adds it here.
var migratedTables = []struct{ name, columns, order string }{
	{"api_keys", "id, name, key_hash, prefix, webhook_secret, prev_webhook_secret, prev_secret_until, active, created_at", "created_at, id"},
	{"jobs", "id, key_id, status, image_type, audio_type, audio_codec, audio_duration, webhook_url, output_token, error_message, " +
		"retries, created_at, updated_at, finished_at, options, input_urls, trace_id, lease_owner, lease_until, progress, loudness_reached", "created_at, id"},
	{"idempotency_keys", "key_id, idem_key, fingerprint, job_id, status_code, response, created_at, claim_owner", "created_at, key_id, idem_key"},
	{"webhook_deliveries", "id, job_id, url, state, attempts, next_attempt_at, created_at, updated_at, lease_owner", "rowid"},
	{"webhook_attempts", "id, delivery_id, at, status_code, error", "id"},
	// The database's id moves with it: the bucket's owner marker names it.
	{"installation", "one, id", "one"},
}

// runMigrateStore implements `vidgen migrate-store`.
func runMigrateStore(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string, now func() time.Time) error {
	usage := "usage: vidgen migrate-store -from DATA/vidgen.db -to postgres://… (with the serve stopped)"
	fs := flag.NewFlagSet("migrate-store", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the SQLite database to move, the vidgen.db of the data directory")
	to := fs.String("to", envOr(env, envName("database"), ""), "the Postgres URL to move it to, an empty database ("+envName("database")+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || !isPostgresURL(*to) || fs.NArg() > 0 {
		return errors.New(usage)
	}
	// The data directory's lock: a running serve would go on writing to the file being copied.
	unlock, err := dataDir{root: filepath.Dir(*from)}.lock()
	if err != nil {
		return fmt.Errorf("migrate-store: %w: stop vidgen serve first", err)
	}
	defer unlock()
	// The source is opened with its pending migrations applied, which the lock allows: a file an older
	// vidgen last wrote then has every column copied below.
	if _, err := os.Stat(*from); err != nil {
		return fmt.Errorf("migrate-store: %w", err)
	}
	src, err := OpenStore(ctx, *from, now)
	if err != nil {
		return fmt.Errorf("migrate-store: %s: %w", *from, err)
	}
	defer src.Close()
	dst, err := OpenPostgresStore(ctx, *to, now)
	if err != nil {
		return fmt.Errorf("migrate-store: %w", err)
	}
	defer dst.Close()
	counts, err := migrateStore(ctx, src, dst)
	if err != nil {
		return fmt.Errorf("migrate-store: %w", err)
	}
	fmt.Fprintf(stdout, "moved %s to %s: %s\n", *from, redactURL(*to), strings.Join(counts, ", "))
	return nil
}

// migrateStore copies every row of src into dst, which must hold no key yet, in one transaction of
// dst: all of it or nothing. It returns how many rows of each table it copied.
func migrateStore(ctx context.Context, src, dst *Store) ([]string, error) {
	if n, err := dst.CountKeys(ctx); err != nil || n > 0 {
		if err == nil {
			err = fmt.Errorf("the Postgres database already has %d keys: migrate into an empty one", n)
		}
		return nil, err
	}
	var counts []string
	err := dst.tx(ctx, func(tx txn) error {
		for _, t := range migratedTables {
			n, err := copyTable(ctx, src, tx, t.name, t.columns, t.order)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			counts = append(counts, fmt.Sprintf("%d %s", n, t.name))
		}
		// Attempts keep their ids; the next one made in Postgres must come after them.
		_, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('webhook_attempts', 'id'), coalesce(max(id), 0) + 1, false) FROM webhook_attempts`)
		return err
	})
	return counts, err
}

// copyTable inserts every row of table in src into tx, in order, and returns how many.
func copyTable(ctx context.Context, src *Store, tx txn, table, columns, order string) (int, error) {
	rows, err := src.db.QueryContext(ctx, `SELECT `+columns+` FROM `+table+` ORDER BY `+order)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	width := len(strings.Split(columns, ","))
	insert := `INSERT INTO ` + table + ` (` + columns + `) VALUES (?` + strings.Repeat(", ?", width-1) + `)`
	n := 0
	for rows.Next() {
		vals := make([]any, width)
		ptrs := make([]any, width)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		if _, err := tx.ExecContext(ctx, insert, vals...); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}
