package main

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed schema.sql
var schemaSQL string

// migrations are the schema changes made after schema.sql was first shipped, numbered by their
// position (1-based). Each runs once, in its own transaction, and is recorded in schema_migrations.
// Append only: never edit or reorder a migration that has shipped.
var migrations = []string{}

// Errors returned at the store boundary; handlers map them to status codes.
var (
	ErrNotFound      = errors.New("not found")
	ErrActiveJob     = errors.New("key already has an active job")
	ErrNotCancelable = errors.New("job is not pending")
	ErrNameTaken     = errors.New("name already taken")
)

// Job states, as the API spells them.
const (
	StatusPending    = "PENDING"
	StatusProcessing = "PROCESSING"
	StatusCompleted  = "COMPLETED"
	StatusFailed     = "FAILED"
	StatusCancelled  = "CANCELLED"
)

// Store is vidgen's SQLite database: keys, jobs and the webhook outbox.
type Store struct {
	db  *sql.DB
	now func() time.Time
}

// Key is an API key's account. The key itself is never stored, only its SHA-256.
type Key struct {
	ID            string
	Name          string
	Prefix        string
	WebhookSecret string
	PrevSecret    string    // previous webhook secret, "" when none
	PrevUntil     time.Time // PrevSecret signs deliveries until then
	Active        bool
	CreatedAt     time.Time
}

// Job is one submission and what became of it.
type Job struct {
	ID            string
	KeyID         string
	Status        string
	ImagePath     string
	ImageType     string
	AudioPath     string
	AudioType     string
	AudioCodec    string
	AudioDuration float64
	WebhookURL    string // "" when none
	OutputToken   string // "" until COMPLETED
	ErrorMessage  string
	Retries       int
	CreatedAt     time.Time
	UpdatedAt     time.Time
	FinishedAt    time.Time // zero until the job ends
}

// Active reports whether the job still holds its key's one active slot.
func (j Job) Active() bool { return j.Status == StatusPending || j.Status == StatusProcessing }

// OpenStore opens (creating if needed) the SQLite database at path, applies schema.sql and any
// pending migrations.
func OpenStore(ctx context.Context, path string, now func() time.Time) (*Store, error) {
	// The pragmas live in the DSN because database/sql pools connections: a PRAGMA run once would set
	// only the connection it ran on.
	//   journal_mode(WAL): readers (status polls) never wait for the writer (the renderer).
	//   busy_timeout: writers queue for the lock for up to 10 s instead of failing with SQLITE_BUSY.
	//   foreign_keys: SQLite leaves them off unless asked, per connection.
	//   synchronous(FULL): a 201 (and the job row behind it) survives power loss, not just a crash.
	// _txlock=immediate makes every BeginTx take the write lock at BEGIN, so two writers cannot both
	// read and then deadlock upgrading; busy_timeout then applies.
	v := url.Values{}
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "foreign_keys(1)")
	v.Add("_pragma", "synchronous(FULL)")
	//   journal_size_limit: after a checkpoint the WAL file is truncated back to at most 64 MB, so
	//   one burst of writes does not leave a huge file behind (wal_autocheckpoint stays at its
	//   default of 1000 pages, about 4 MB, so the WAL is normally far smaller).
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
	s := &Store{db: db, now: now}
	if err := s.init(ctx, migrations); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init(ctx context.Context, migs []string) error {
	if _, err := s.db.ExecContext(ctx, schemaSQL); err != nil {
		return fmt.Errorf("apply schema: %w", err)
	}
	for i, m := range migs {
		version := i + 1
		err := s.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m); err != nil {
				return err
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

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// tx runs fn in a write transaction (BEGIN IMMEDIATE, see the DSN), committing if fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// isUniqueViolation reports whether err is SQLite refusing a row for a UNIQUE constraint or index.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

// ---- keys ----

const keyColumns = `id, name, prefix, webhook_secret, coalesce(prev_webhook_secret, ''), prev_secret_until, active, created_at`

func scanKey(row interface{ Scan(...any) error }) (Key, error) {
	var k Key
	var until, created sql.NullInt64
	err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.WebhookSecret, &k.PrevSecret, &until, &k.Active, &created)
	k.PrevUntil, k.CreatedAt = fromMS(until), fromMS(created)
	return k, err
}

// CreateKey stores a new account with the hash of its key. It returns ErrNameTaken when the name
// is in use.
func (s *Store) CreateKey(ctx context.Context, k Key, hash []byte) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO api_keys (id, name, key_hash, prefix, webhook_secret, active, created_at)
		VALUES (?, ?, ?, ?, ?, 1, ?)`, k.ID, k.Name, hash, k.Prefix, k.WebhookSecret, ms(k.CreatedAt))
	if isUniqueViolation(err) {
		return ErrNameTaken
	}
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	return nil
}

// KeyByHash returns the account whose key hashes to hash, active or not, or ErrNotFound.
func (s *Store) KeyByHash(ctx context.Context, hash []byte) (Key, error) {
	return s.oneKey(ctx, "key by hash", `key_hash = ?`, hash)
}

// KeyByID returns the account with the given id, or ErrNotFound.
func (s *Store) KeyByID(ctx context.Context, id string) (Key, error) {
	return s.oneKey(ctx, "key by id", `id = ?`, id)
}

// FindKey returns the account with the given id or, failing that, name; or ErrNotFound.
func (s *Store) FindKey(ctx context.Context, idOrName string) (Key, error) {
	return s.oneKey(ctx, "find key", `id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1`, idOrName)
}

// oneKey returns the one account matched by where, or ErrNotFound.
func (s *Store) oneKey(ctx context.Context, what, where string, args ...any) (Key, error) {
	k, err := scanKey(s.db.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, ErrNotFound
	}
	if err != nil {
		return Key{}, fmt.Errorf("%s: %w", what, err)
	}
	return k, nil
}

// ListKeys returns every account, oldest first.
func (s *Store) ListKeys(ctx context.Context) ([]Key, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	var keys []Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return keys, nil
}

// DeactivateKey turns a key off; its jobs stay.
func (s *Store) DeactivateKey(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE api_keys SET active = 0 WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("deactivate key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// RotateSecret makes secret the account's webhook secret; the old one keeps signing deliveries,
// beside the new one, until prevUntil.
func (s *Store) RotateSecret(ctx context.Context, id, secret string, prevUntil time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE api_keys SET prev_webhook_secret = webhook_secret,
		prev_secret_until = ?, webhook_secret = ? WHERE id = ?`, ms(prevUntil), secret, id)
	if err != nil {
		return fmt.Errorf("rotate secret: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// CountKeys returns how many accounts exist, active or not.
func (s *Store) CountKeys(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM api_keys`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count keys: %w", err)
	}
	return n, nil
}

// ---- jobs ----

const jobColumns = `id, key_id, status, image_path, image_type, audio_path, audio_type, audio_codec, audio_duration,
	coalesce(webhook_url, ''), coalesce(output_token, ''), coalesce(error_message, ''), retries, created_at, updated_at, finished_at`

func scanJob(row interface{ Scan(...any) error }) (Job, error) {
	var j Job
	var created, updated, finished sql.NullInt64
	err := row.Scan(&j.ID, &j.KeyID, &j.Status, &j.ImagePath, &j.ImageType, &j.AudioPath, &j.AudioType, &j.AudioCodec,
		&j.AudioDuration, &j.WebhookURL, &j.OutputToken, &j.ErrorMessage, &j.Retries, &created, &updated, &finished)
	j.CreatedAt, j.UpdatedAt, j.FinishedAt = fromMS(created), fromMS(updated), fromMS(finished)
	return j, err
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// HasActiveJob reports whether the key has a PENDING or PROCESSING job. It is only a cheap early
// answer: CreateJob is what enforces the rule.
func (s *Store) HasActiveJob(ctx context.Context, keyID string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE key_id = ? AND status IN ('PENDING','PROCESSING')`, keyID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("active job: %w", err)
	}
	return n > 0, nil
}

// CreateJob inserts j as PENDING. It returns ErrActiveJob when the key already has an active job.
func (s *Store) CreateJob(ctx context.Context, j Job) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO jobs (id, key_id, status, image_path, image_type, audio_path, audio_type,
		audio_codec, audio_duration, webhook_url, retries, created_at, updated_at)
		VALUES (?, ?, 'PENDING', ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
		j.ID, j.KeyID, j.ImagePath, j.ImageType, j.AudioPath, j.AudioType, j.AudioCodec, j.AudioDuration,
		nullString(j.WebhookURL), ms(j.CreatedAt), ms(j.CreatedAt))
	if isUniqueViolation(err) {
		return ErrActiveJob
	}
	if err != nil {
		return fmt.Errorf("create job: %w", err)
	}
	return nil
}

// Job returns the job with the given id if it belongs to keyID, else ErrNotFound.
func (s *Store) Job(ctx context.Context, keyID, id string) (Job, error) {
	return s.oneJob(ctx, "get job", `id = ? AND key_id = ?`, id, keyID)
}

// JobByToken returns the job whose output is named by token, or ErrNotFound.
func (s *Store) JobByToken(ctx context.Context, token string) (Job, error) {
	return s.oneJob(ctx, "job by token", `output_token = ?`, token)
}

// oneJob returns the one job matched by where, or ErrNotFound.
func (s *Store) oneJob(ctx context.Context, what, where string, args ...any) (Job, error) {
	j, err := scanJob(s.db.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, ErrNotFound
	}
	if err != nil {
		return Job{}, fmt.Errorf("%s: %w", what, err)
	}
	return j, nil
}

// ListJobs returns up to limit of keyID's jobs, newest first, with ids below cursor (all when cursor
// is ""), and only those in status when it is not "".
func (s *Store) ListJobs(ctx context.Context, keyID, status, cursor string, limit int) ([]Job, error) {
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE key_id = ?`
	args := []any{keyID}
	if status != "" {
		q += ` AND status = ?`
		args = append(args, status)
	}
	if cursor != "" {
		q += ` AND id < ?`
		args = append(args, cursor)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	return s.queryJobs(ctx, "list jobs", q, args...)
}

func (s *Store) queryJobs(ctx context.Context, what, q string, args ...any) ([]Job, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var jobs []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return jobs, nil
}

// CancelJob moves keyID's job id from PENDING to CANCELLED. It returns ErrNotFound for a job the key
// does not own and ErrNotCancelable for one that is no longer PENDING.
func (s *Store) CancelJob(ctx context.Context, keyID, id string) (Job, error) {
	var j Job
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		j, err = scanJob(tx.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ? AND key_id = ?`, id, keyID))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if j.Status != StatusPending {
			return ErrNotCancelable
		}
		now := s.now()
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET status = 'CANCELLED', updated_at = ?1, finished_at = ?1 WHERE id = ?2`, ms(now), id)
		j.Status, j.UpdatedAt, j.FinishedAt = StatusCancelled, now.UTC(), now.UTC()
		return err
	})
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotCancelable) {
		return Job{}, err
	}
	if err != nil {
		return Job{}, fmt.Errorf("cancel job: %w", err)
	}
	return j, nil
}

// ClaimJob moves the oldest PENDING job to PROCESSING and returns it, or ErrNotFound when none waits.
// Jobs are taken in submission (insertion) order across all keys.
func (s *Store) ClaimJob(ctx context.Context) (Job, error) {
	var j Job
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		j, err = scanJob(tx.QueryRowContext(ctx, `UPDATE jobs SET status = 'PROCESSING', updated_at = ?
			WHERE rowid = (SELECT rowid FROM jobs WHERE status = 'PENDING' ORDER BY rowid LIMIT 1)
			RETURNING `+jobColumns, ms(s.now())))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, ErrNotFound
	}
	if err != nil {
		return Job{}, fmt.Errorf("claim job: %w", err)
	}
	return j, nil
}

// Outcome is how one render attempt ended.
type Outcome struct {
	Status       string // COMPLETED, FAILED, or PENDING to run the job again
	OutputToken  string // COMPLETED: names the output
	ErrorMessage string // FAILED: for the user
	CountRetry   bool   // PENDING: the attempt counts against MaxAttempts (false for a shutdown)
}

// MaxAttempts is how many times a job is rendered before a passing failure becomes FAILED.
const MaxAttempts = 3

// Payload builds the webhook body for a job that just ended; it runs inside the transaction that
// ends the job so that the delivery and the job's end are committed together.
type Payload func(Job) ([]byte, error)

// FinishAttempt records how the PROCESSING job id's attempt ended. A retry past MaxAttempts becomes
// FAILED. When the job ends (COMPLETED or FAILED) and has a webhook URL, the outbox row is written in
// the same transaction, with a delivery id from newID. It returns the job as stored.
func (s *Store) FinishAttempt(ctx context.Context, id string, o Outcome, payload Payload, newID func() string) (Job, error) {
	var j Job
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		j, err = scanJob(tx.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
		if err != nil {
			return err
		}
		if j.Status != StatusProcessing {
			return fmt.Errorf("job is %s, not PROCESSING", j.Status)
		}
		now := s.now().UTC()
		j.UpdatedAt = now
		switch o.Status {
		case StatusPending:
			if o.CountRetry {
				j.Retries++
			}
			if j.Retries >= MaxAttempts {
				j.Status, j.ErrorMessage, j.FinishedAt = StatusFailed, fmt.Sprintf("rendering failed %d times for a passing reason (the renderer was interrupted); please submit the job again", MaxAttempts), now
				j.Retries = MaxAttempts - 1
			} else {
				j.Status = StatusPending
			}
		case StatusCompleted:
			j.Status, j.OutputToken, j.FinishedAt = StatusCompleted, o.OutputToken, now
		case StatusFailed:
			j.Status, j.ErrorMessage, j.FinishedAt = StatusFailed, o.ErrorMessage, now
		default:
			return fmt.Errorf("bad outcome %q", o.Status)
		}
		var finished sql.NullInt64
		if !j.FinishedAt.IsZero() {
			finished = sql.NullInt64{Int64: ms(j.FinishedAt), Valid: true}
		}
		_, err = tx.ExecContext(ctx, `UPDATE jobs SET status = ?, output_token = ?, error_message = ?, retries = ?,
			updated_at = ?, finished_at = ? WHERE id = ?`,
			j.Status, nullString(j.OutputToken), nullString(j.ErrorMessage), j.Retries, ms(now), finished, id)
		if err != nil {
			return err
		}
		if j.Active() || j.WebhookURL == "" {
			return nil
		}
		return insertDelivery(ctx, tx, j, payload, newID(), now)
	})
	if err != nil {
		return Job{}, fmt.Errorf("finish attempt: %w", err)
	}
	return j, nil
}

func insertDelivery(ctx context.Context, tx *sql.Tx, j Job, payload Payload, id string, now time.Time) error {
	body, err := payload(j)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (id, job_id, url, payload, state, attempts, next_attempt_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)`, id, j.ID, j.WebhookURL, body, ms(now), ms(now), ms(now))
	return err
}

// ProcessingJobs returns the jobs marked PROCESSING. At start-up these are the ones a dead process
// left behind.
func (s *Store) ProcessingJobs(ctx context.Context) ([]Job, error) {
	return s.queryJobs(ctx, "processing jobs", `SELECT `+jobColumns+` FROM jobs WHERE status = 'PROCESSING' ORDER BY rowid`)
}

// ActiveInputs returns the input paths of every job that may still be rendered.
func (s *Store) ActiveInputs(ctx context.Context) (map[string]bool, error) {
	jobs, err := s.queryJobs(ctx, "active inputs", `SELECT `+jobColumns+` FROM jobs WHERE status IN ('PENDING','PROCESSING')`)
	if err != nil {
		return nil, err
	}
	paths := make(map[string]bool, 2*len(jobs))
	for _, j := range jobs {
		paths[j.ImagePath], paths[j.AudioPath] = true, true
	}
	return paths, nil
}

// ExpiredOutputs returns the tokens of outputs of jobs that finished before cutoff.
func (s *Store) ExpiredOutputs(ctx context.Context, cutoff time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT output_token FROM jobs WHERE status = 'COMPLETED' AND finished_at < ? AND output_token IS NOT NULL`, ms(cutoff))
	if err != nil {
		return nil, fmt.Errorf("expired outputs: %w", err)
	}
	defer rows.Close()
	var tokens []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("expired outputs: %w", err)
		}
		tokens = append(tokens, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("expired outputs: %w", err)
	}
	return tokens, nil
}

// ---- webhook outbox ----

// Delivery is one webhook message for a job's final status, and how its delivery is going.
type Delivery struct {
	ID            string
	JobID         string
	KeyID         string
	URL           string
	Payload       []byte
	State         string // pending, delivered, failed
	Attempts      int
	NextAttemptAt time.Time // zero when none is planned
	CreatedAt     time.Time
	History       []Attempt
}

// Attempt is one try at a delivery.
type Attempt struct {
	At         time.Time
	StatusCode int    // 0 when no response came
	Error      string // "" on a 2xx
}

const deliveryColumns = `d.id, d.job_id, j.key_id, d.url, d.payload, d.state, d.attempts, d.next_attempt_at, d.created_at`

func scanDelivery(row interface{ Scan(...any) error }) (Delivery, error) {
	var d Delivery
	var next, created sql.NullInt64
	err := row.Scan(&d.ID, &d.JobID, &d.KeyID, &d.URL, &d.Payload, &d.State, &d.Attempts, &next, &created)
	d.NextAttemptAt, d.CreatedAt = fromMS(next), fromMS(created)
	return d, err
}

func (s *Store) queryDeliveries(ctx context.Context, what, q string, args ...any) ([]Delivery, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var ds []Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return ds, nil
}

// DueDeliveries returns up to limit pending deliveries whose next attempt is at or before now,
// earliest first.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error) {
	return s.queryDeliveries(ctx, "due deliveries", `SELECT `+deliveryColumns+` FROM webhook_deliveries d JOIN jobs j ON j.id = d.job_id
		WHERE d.state = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at LIMIT ?`, ms(now), limit)
}

// NextDeliveryAt returns when the earliest pending delivery is due, or the zero time when none is.
func (s *Store) NextDeliveryAt(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT min(next_attempt_at) FROM webhook_deliveries WHERE state = 'pending'`).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("next delivery: %w", err)
	}
	return fromMS(next), nil
}

// RecordAttempt stores the result of one attempt at delivery id and its new state: delivered,
// failed (given up), or pending again at next.
func (s *Store) RecordAttempt(ctx context.Context, id string, a Attempt, state string, next time.Time) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var code sql.NullInt64
		if a.StatusCode != 0 {
			code = sql.NullInt64{Int64: int64(a.StatusCode), Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_attempts (delivery_id, at, status_code, error) VALUES (?, ?, ?, ?)`,
			id, ms(a.At), code, nullString(a.Error)); err != nil {
			return err
		}
		var nextAt sql.NullInt64
		if state == "pending" {
			nextAt = sql.NullInt64{Int64: ms(next), Valid: true}
		}
		_, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, next_attempt_at = ?, updated_at = ?
			WHERE id = ?`, state, nextAt, ms(s.now()), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	return nil
}

// Deliveries returns every delivery of job jobID, oldest first, each with its attempts.
func (s *Store) Deliveries(ctx context.Context, jobID string) ([]Delivery, error) {
	ds, err := s.queryDeliveries(ctx, "deliveries", `SELECT `+deliveryColumns+` FROM webhook_deliveries d JOIN jobs j ON j.id = d.job_id
		WHERE d.job_id = ? ORDER BY d.created_at, d.rowid`, jobID)
	if err != nil {
		return nil, err
	}
	for i := range ds {
		if ds[i].History, err = s.attempts(ctx, ds[i].ID); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

func (s *Store) attempts(ctx context.Context, deliveryID string) ([]Attempt, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT at, coalesce(status_code, 0), coalesce(error, '') FROM webhook_attempts
		WHERE delivery_id = ? ORDER BY id`, deliveryID)
	if err != nil {
		return nil, fmt.Errorf("attempts: %w", err)
	}
	defer rows.Close()
	as := []Attempt{}
	for rows.Next() {
		var a Attempt
		var at int64
		if err := rows.Scan(&at, &a.StatusCode, &a.Error); err != nil {
			return nil, fmt.Errorf("attempts: %w", err)
		}
		a.At = time.UnixMilli(at).UTC()
		as = append(as, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("attempts: %w", err)
	}
	return as, nil
}

// Redeliver queues a fresh delivery, with a new id, of the final status of keyID's job jobID. It
// returns ErrNotFound for a job the key does not own, ErrNotFinal for one that has not ended, and
// ErrNoWebhook for one without a webhook URL.
func (s *Store) Redeliver(ctx context.Context, keyID, jobID string, payload Payload, id string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		j, err := scanJob(tx.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ? AND key_id = ?`, jobID, keyID))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if j.Status != StatusCompleted && j.Status != StatusFailed {
			return ErrNotFinal
		}
		if j.WebhookURL == "" {
			return ErrNoWebhook
		}
		return insertDelivery(ctx, tx, j, payload, id, s.now())
	})
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotFinal) || errors.Is(err, ErrNoWebhook) {
		return err
	}
	if err != nil {
		return fmt.Errorf("redeliver: %w", err)
	}
	return nil
}

// Errors of Redeliver.
var (
	ErrNotFinal  = errors.New("job has not reached COMPLETED or FAILED")
	ErrNoWebhook = errors.New("job has no webhookUrl")
)

// Checkpoint copies the WAL into the database and truncates it to zero bytes; it gives up quietly on
// frames a reader still needs (they go at the next one).
func (s *Store) Checkpoint(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// OutputTokens returns the output token of every job that has one.
func (s *Store) OutputTokens(ctx context.Context) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT output_token FROM jobs WHERE output_token IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("output tokens: %w", err)
	}
	defer rows.Close()
	tokens := map[string]bool{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("output tokens: %w", err)
		}
		tokens[t] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("output tokens: %w", err)
	}
	return tokens, nil
}

// IntegrityCheck runs PRAGMA integrity_check and returns its verdict ("ok" when sound).
func (s *Store) IntegrityCheck(ctx context.Context) (string, error) {
	var res []string
	rows, err := s.db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", fmt.Errorf("integrity check: %w", err)
		}
		res = append(res, line)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	return strings.Join(res, "\n"), nil
}
