package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// JobStatus is a job's state, as the API spells it.
type JobStatus string

const (
	StatusPending    JobStatus = "PENDING"
	StatusProcessing JobStatus = "PROCESSING"
	StatusCompleted  JobStatus = "COMPLETED"
	StatusFailed     JobStatus = "FAILED"
	StatusCancelled  JobStatus = "CANCELLED"
)

// jobStatuses lists every state, in the order the API documents them.
var jobStatuses = []JobStatus{StatusPending, StatusProcessing, StatusCompleted, StatusFailed, StatusCancelled}

// Final reports whether a job in state st has ended for good.
func (st JobStatus) Final() bool {
	return st == StatusCompleted || st == StatusFailed || st == StatusCancelled
}

// Job is one submission and what became of it. Its uploads are found from its ID (dataDir.input).
type Job struct {
	ID            string
	KeyID         string
	Status        JobStatus
	ImageType     string
	AudioType     string
	AudioCodec    string
	AudioDuration float64
	Options       Options
	WebhookURL    string // "" when none
	// InputURLs are the inputs given by URL, fetched before the render (fetchInputs); until then
	// the types, codec and duration of those inputs are unknown ("" and 0).
	InputURLs    map[inputKind]string
	OutputToken  string // "" until COMPLETED
	ErrorMessage string
	Retries      int
	CreatedAt    time.Time
	UpdatedAt    time.Time
	FinishedAt   time.Time // zero until the job ends
	TraceID      string    // the trace id of the traceparent header it was submitted with, "" when none
	// Lease is the claim on a PROCESSING job of the worker rendering it; zero otherwise.
	Lease Lease
	// Progress is the furthest (0-100) a render of the job reported with a lease renewal.
	Progress int
	// LoudnessReached is the loudness (LUFS) a COMPLETED job's audio was brought to when its
	// render could not reach Options.Loudness under the peak ceiling (loudnessShort); 0 otherwise.
	LoudnessReached float64
}

// logAttrs are the attributes that tie a log line to job j, then more: its id and, when it was
// submitted with a traceparent, its trace id, so a trace's lines are found from the request to the
// webhook.
func (j Job) logAttrs(more ...any) []any {
	attrs := []any{"job", j.ID}
	if j.TraceID != "" {
		attrs = append(attrs, "trace_id", j.TraceID)
	}
	return append(attrs, more...)
}

// Lease is a worker's claim on a PROCESSING job: Owner names the node and the claim
// (NODE/CLAIM), Until is when it lapses unless renewed; another node may then claim the job.
type Lease struct {
	Owner string
	Until time.Time
}

// ErrLeaseLost is a change of a job by a worker whose lease on it lapsed and was taken by another,
// or that the job has otherwise left: the worker must stop and leave the job to whoever has it.
var ErrLeaseLost = errors.New("the job's lease was lost: another worker has the job")

// Active reports whether the job still holds its key's one active slot.
func (j Job) Active() bool { return j.Status == StatusPending || j.Status == StatusProcessing }

const jobColumns = `id, key_id, status, image_type, audio_type, audio_codec, audio_duration,
	coalesce(webhook_url, ''), coalesce(output_token, ''), coalesce(error_message, ''), retries, created_at, updated_at, finished_at, options,
	input_urls, trace_id, coalesce(lease_owner, ''), lease_until, progress, coalesce(loudness_reached, 0)`

func scanJob(row scanner) (Job, error) {
	var j Job
	var created, updated, finished, leaseUntil sql.NullInt64
	var opts, urls string
	err := row.Scan(&j.ID, &j.KeyID, &j.Status, &j.ImageType, &j.AudioType, &j.AudioCodec,
		&j.AudioDuration, &j.WebhookURL, &j.OutputToken, &j.ErrorMessage, &j.Retries, &created, &updated, &finished, &opts,
		&urls, &j.TraceID, &j.Lease.Owner, &leaseUntil, &j.Progress, &j.LoudnessReached)
	j.CreatedAt, j.UpdatedAt, j.FinishedAt = fromMS(created), fromMS(updated), fromMS(finished)
	j.Lease.Until = fromMS(leaseUntil)
	if err == nil {
		j.Options, err = decodeOptions(opts)
	}
	if err == nil && urls != "" {
		err = json.Unmarshal([]byte(urls), &j.InputURLs)
	}
	return j, err
}

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

// CreateJob inserts j as PENDING. It returns ErrActiveJob when the key already has an active job,
// and ErrBadKey when the key was deactivated while the job was being uploaded.
func (s *Store) CreateJob(ctx context.Context, j Job) error {
	return s.insertJob(ctx, s.db, j)
}

// execer is the store's database or one of its transactions.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// insertJob is CreateJob's insert, in db or in a transaction of the caller's.
func (s *Store) insertJob(ctx context.Context, db execer, j Job) error {
	var urls []byte
	if len(j.InputURLs) > 0 {
		var err error
		if urls, err = json.Marshal(j.InputURLs); err != nil {
			return fmt.Errorf("create job: %w", err)
		}
	}
	res, err := db.ExecContext(ctx, `INSERT INTO jobs (id, key_id, status, image_type, audio_type,
		audio_codec, audio_duration, webhook_url, retries, created_at, updated_at, options, input_urls, trace_id)
		SELECT ?, id, 'PENDING', ?, ?, ?, CAST(? AS DOUBLE PRECISION), ?, 0, CAST(? AS BIGINT), CAST(? AS BIGINT), ?, ?, ?
		FROM api_keys WHERE id = ? AND active = 1`,
		j.ID, j.ImageType, j.AudioType, j.AudioCodec, j.AudioDuration,
		nullString(j.WebhookURL), ms(j.CreatedAt), ms(j.CreatedAt), encodeOptions(j.Options), string(urls), j.TraceID, j.KeyID)
	if s.isUniqueViolation(err) {
		return ErrActiveJob
	}
	if err != nil {
		return fmt.Errorf("create job: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrBadKey
	}
	return nil
}

// Job returns the job with the given id if it belongs to keyID, else ErrJobNotFound.
func (s *Store) Job(ctx context.Context, keyID, id string) (Job, error) {
	return one(ctx, s.db, "get job", ErrJobNotFound, scanJob, `SELECT `+jobColumns+` FROM jobs WHERE id = ? AND key_id = ?`, id, keyID)
}

// JobByID returns the job with the given id, whoever owns it, or ErrJobNotFound.
func (s *Store) JobByID(ctx context.Context, id string) (Job, error) {
	return one(ctx, s.db, "job by id", ErrJobNotFound, scanJob, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id)
}

// JobByToken returns the job whose output is named by token, or ErrNotFound.
func (s *Store) JobByToken(ctx context.Context, token string) (Job, error) {
	return one(ctx, s.db, "job by token", ErrNotFound, scanJob, `SELECT `+jobColumns+` FROM jobs WHERE output_token = ?`, token)
}

// JobFilter selects a page of one key's jobs, newest first.
type JobFilter struct {
	Status JobStatus // only jobs in this state; "" for all
	Before string    // only jobs whose id sorts before this one (the previous page's last); "" for all
	Limit  int
}

// ListJobs returns keyID's jobs that f selects, newest first. Each query reads only the page it
// returns, through jobs_by_key or jobs_by_key_status, however many jobs the key has.
func (s *Store) ListJobs(ctx context.Context, keyID string, f JobFilter) ([]Job, error) {
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE key_id = ?`
	args := []any{keyID}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	if f.Before != "" {
		q += ` AND id < ?`
		args = append(args, f.Before)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.Limit)
	return collect(ctx, s.db, "list jobs", scanJob, q, args...)
}

// transition is one change of a job's state, checked against the state it must be in. What the
// change writes is the lifecycle's decision (Next); the store applies it.
type transition struct {
	JobID string
	KeyID string    // when set, the job must belong to this key, else ErrJobNotFound
	From  JobStatus // the state the job must be in: else ErrNotCancelable for PENDING, an error otherwise
	// Next returns the job as it must be stored, given it as stored, and whether its webhook
	// delivery is written with it. It is called inside the transaction that read the job.
	Next       func(Job) (next Job, deliver bool, err error)
	DeliveryID string // names the webhook delivery written when Next says so
	// Owner, when set, must hold the job's lease, else ErrLeaseLost: a worker records how its
	// render ended only while the job is still its own.
	Owner string
}

// Transition applies t in one transaction and returns the job as stored: the job's new state, its
// retries, output token and error message as t.Next decided them, and the webhook delivery when it
// said so, in the same transaction, so a webhook is never lost nor sent for an end not recorded.
func (s *Store) Transition(ctx context.Context, t transition) (Job, error) {
	var j Job
	err := s.tx(ctx, func(tx txn) error {
		var err error
		j, err = s.apply(ctx, tx, t)
		return err
	})
	return j, err
}

// ClaimJob applies t, a change from PENDING, to the oldest PENDING job in one transaction and
// returns the job as stored, or ErrNotFound when none waits. Jobs are taken by creation time across
// all keys, so a job put back after a crash keeps its place.
func (s *Store) ClaimJob(ctx context.Context, t transition) (Job, error) {
	var j Job
	err := s.tx(ctx, func(tx txn) error {
		var err error
		t.JobID, err = one(ctx, tx, "claim job", ErrNotFound, scanString,
			`SELECT id FROM jobs WHERE status = 'PENDING' ORDER BY created_at, id LIMIT 1`+s.db.d.skipLocked)
		if err != nil {
			return err
		}
		j, err = s.apply(ctx, tx, t)
		return err
	})
	return j, err
}

// ReclaimJob applies t, a change from PROCESSING, to the job whose lease lapsed longest before
// now, and returns the job as stored, or ErrNotFound when no lease has lapsed. A lease lapses when
// its node stopped renewing it: the node died, or lost the database for longer than a lease.
func (s *Store) ReclaimJob(ctx context.Context, t transition, now time.Time) (Job, error) {
	var j Job
	err := s.tx(ctx, func(tx txn) error {
		var err error
		t.JobID, err = one(ctx, tx, "reclaim job", ErrNotFound, scanString,
			`SELECT id FROM jobs WHERE status = 'PROCESSING' AND lease_until < ? ORDER BY lease_until LIMIT 1`+s.db.d.skipLocked, ms(now))
		if err != nil {
			return err
		}
		j, err = s.apply(ctx, tx, t)
		return err
	})
	return j, err
}

// HasLapsedLease reports whether a PROCESSING job's lease lapsed before now: a plain read, so that
// a worker looking for work takes a write transaction to reclaim one only when there is one.
func (s *Store) HasLapsedLease(ctx context.Context, now time.Time) (bool, error) {
	_, err := one(ctx, s.db, "lapsed lease", ErrNotFound, scanString,
		`SELECT id FROM jobs WHERE status = 'PROCESSING' AND lease_until < ? LIMIT 1`, ms(now))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// RenewLease moves the lease of owner on PROCESSING job id to until, and records progress (0-100)
// unless the job got further before. It returns ErrLeaseLost when the job is not, or no longer,
// PROCESSING under that lease.
func (s *Store) RenewLease(ctx context.Context, id, owner string, until time.Time, progress int) error {
	res, err := s.db.ExecContext(ctx, `UPDATE jobs SET lease_until = ?, progress = CASE WHEN progress > ? THEN progress ELSE ? END
		WHERE id = ? AND status = 'PROCESSING' AND lease_owner = ?`, ms(until), progress, progress, id, owner)
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrLeaseLost
	}
	return nil
}

// apply makes the change t in tx and returns the job as stored.
func (s *Store) apply(ctx context.Context, tx txn, t transition) (Job, error) {
	j, err := one(ctx, tx, "get job", ErrJobNotFound, scanJob, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`+s.db.d.forUpdate, t.JobID)
	if err != nil {
		return Job{}, err
	}
	if t.KeyID != "" && j.KeyID != t.KeyID {
		return Job{}, ErrJobNotFound
	}
	if t.Owner != "" && (j.Status != StatusProcessing || j.Lease.Owner != t.Owner) {
		return Job{}, ErrLeaseLost
	}
	if j.Status != t.From {
		if t.From == StatusPending {
			return Job{}, ErrNotCancelable
		}
		return Job{}, fmt.Errorf("job %s is %s, not %s", j.ID, j.Status, t.From)
	}
	j, deliver, err := t.Next(j)
	if err != nil {
		return Job{}, err
	}
	now := s.now().UTC()
	j.UpdatedAt = now
	var finished sql.NullInt64
	if j.Status.Final() {
		j.FinishedAt = now
		finished = nullMS(now)
	}
	if j.Status != StatusProcessing {
		j.Lease = Lease{} // only a job being rendered is leased
	}
	var reached sql.NullFloat64
	if j.LoudnessReached != 0 {
		reached = sql.NullFloat64{Float64: j.LoudnessReached, Valid: true}
	}
	_, err = tx.ExecContext(ctx, `UPDATE jobs SET status = ?, output_token = ?, error_message = ?, retries = ?,
		updated_at = ?, finished_at = ?, lease_owner = ?, lease_until = ?, loudness_reached = ? WHERE id = ?`,
		j.Status, nullString(j.OutputToken), nullString(j.ErrorMessage), j.Retries, ms(now), finished,
		nullString(j.Lease.Owner), nullMS(j.Lease.Until), reached, j.ID)
	if err != nil {
		return Job{}, fmt.Errorf("update job: %w", err)
	}
	if deliver {
		if err := insertDelivery(ctx, tx, t.DeliveryID, j, now); err != nil {
			return Job{}, err
		}
	}
	return j, nil
}

// ProcessingJobs returns the jobs marked PROCESSING. At start-up these are the ones a dead process
// left behind.
func (s *Store) ProcessingJobs(ctx context.Context) ([]Job, error) {
	return collect(ctx, s.db, "processing jobs", scanJob, `SELECT `+jobColumns+` FROM jobs WHERE status = 'PROCESSING' ORDER BY created_at, id`)
}

// ActiveJobIDs returns the ids of every job that may still be rendered.
func (s *Store) ActiveJobIDs(ctx context.Context) (map[string]bool, error) {
	return idSet(collect(ctx, s.db, "active jobs", scanString, `SELECT id FROM jobs WHERE status IN ('PENDING','PROCESSING')`))
}

// expiredOutput is a job whose output has expired, that output's token, and the job's options,
// which say what sizes the output has.
type expiredOutput struct {
	JobID, Token, TraceID string
	Options               Options
}

// ExpiredOutputs returns the outputs of jobs that finished in [since, cutoff).
func (s *Store) ExpiredOutputs(ctx context.Context, since, cutoff time.Time) ([]expiredOutput, error) {
	return collect(ctx, s.db, "expired outputs", func(row scanner) (expiredOutput, error) {
		var o expiredOutput
		var opts string
		err := row.Scan(&o.JobID, &o.Token, &o.TraceID, &opts)
		if err == nil {
			o.Options, err = decodeOptions(opts)
		}
		return o, err
	}, expiredOutputsQuery, ms(since), ms(cutoff))
}

// expiredOutputsQuery reads a window of finished jobs through the jobs_finished index.
const expiredOutputsQuery = `SELECT id, output_token, trace_id, options FROM jobs
	WHERE status = 'COMPLETED' AND finished_at >= ? AND finished_at < ? AND output_token IS NOT NULL`

// OutputTokens returns the output token of every job that has one.
func (s *Store) OutputTokens(ctx context.Context) (map[string]bool, error) {
	return idSet(collect(ctx, s.db, "output tokens", scanString, `SELECT output_token FROM jobs WHERE output_token IS NOT NULL`))
}

func idSet(ids []string, err error) (map[string]bool, error) {
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set, nil
}

// OldestPending is the creation time of the oldest PENDING job (the next a renderer claims), or the
// zero time when no job waits.
func (s *Store) OldestPending(ctx context.Context) (time.Time, error) {
	var created sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT min(created_at) FROM jobs WHERE status = ?`, StatusPending).Scan(&created); err != nil {
		return time.Time{}, fmt.Errorf("oldest pending job: %w", err)
	}
	return fromMS(created), nil
}

// CountJobs returns how many jobs are in each state.
func (s *Store) CountJobs(ctx context.Context) (map[JobStatus]int, error) {
	type count struct {
		status JobStatus
		n      int
	}
	rows, err := collect(ctx, s.db, "count jobs", func(r scanner) (count, error) {
		var c count
		err := r.Scan(&c.status, &c.n)
		return c, err
	}, `SELECT status, count(*) FROM jobs GROUP BY status`)
	if err != nil {
		return nil, err
	}
	counts := map[JobStatus]int{}
	for _, c := range rows {
		counts[c.status] = c.n
	}
	return counts, nil
}
