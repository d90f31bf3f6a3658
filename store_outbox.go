package main

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// DeliveryState is how a webhook delivery stands.
type DeliveryState string

const (
	DeliveryPending   DeliveryState = "pending"   // an attempt is due at NextAttemptAt
	DeliveryDelivered DeliveryState = "delivered" // the receiver answered 2xx
	DeliveryFailed    DeliveryState = "failed"    // given up: 410 Gone, or the schedule ran out
)

// Delivery is one webhook message for a job's final status, and how its delivery is going. The body
// is built from the job when it is sent.
type Delivery struct {
	ID            string
	JobID         string
	KeyID         string
	TraceID       string // its job's (Job.TraceID), for its log lines
	URL           string
	State         DeliveryState
	Attempts      int
	NextAttemptAt time.Time // zero when none is planned
	CreatedAt     time.Time
	History       []Attempt
}

// logAttrs are the attributes that tie a log line to delivery d, then more: its job's (Job.logAttrs)
// and its id.
func (d Delivery) logAttrs(more ...any) []any {
	return Job{ID: d.JobID, TraceID: d.TraceID}.logAttrs(append([]any{"delivery", d.ID}, more...)...)
}

// Attempt is one try at a delivery.
type Attempt struct {
	At         time.Time
	StatusCode int    // 0 when no response came
	Error      string // "" on a 2xx
}

const deliveryColumns = `d.id, d.job_id, j.key_id, j.trace_id, d.url, d.state, d.attempts, d.next_attempt_at, d.created_at`

func scanDelivery(row scanner) (Delivery, error) {
	var d Delivery
	var next, created sql.NullInt64
	err := row.Scan(&d.ID, &d.JobID, &d.KeyID, &d.TraceID, &d.URL, &d.State, &d.Attempts, &next, &created)
	d.NextAttemptAt, d.CreatedAt = fromMS(next), fromMS(created)
	return d, err
}

func scanAttempt(row scanner) (Attempt, error) {
	var a Attempt
	var at int64
	err := row.Scan(&at, &a.StatusCode, &a.Error)
	a.At = time.UnixMilli(at).UTC()
	return a, err
}

func insertDelivery(ctx context.Context, tx txn, id string, j Job, now time.Time) error {
	if id == "" {
		return fmt.Errorf("delivery of job %s without an id", j.ID)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (id, job_id, url, state, attempts, next_attempt_at, created_at, updated_at)
		VALUES (?, ?, ?, 'pending', 0, ?, ?, ?)`, id, j.ID, j.WebhookURL, ms(now), ms(now), ms(now))
	if err != nil {
		return fmt.Errorf("insert delivery: %w", err)
	}
	return nil
}

// DueDeliveries returns up to limit pending deliveries whose next attempt is at or before now,
// earliest first.
func (s *Store) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error) {
	return collect(ctx, s.db, "due deliveries", scanDelivery, `SELECT `+deliveryColumns+` FROM webhook_deliveries d JOIN jobs j ON j.id = d.job_id
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

// ClaimDelivery takes pending delivery id, due at now, for an attempt by lease owner: its next
// attempt moves to until, so no other node finds it due while this one sends it (RecordAttempt then
// sets the real next one); if this node dies first, it is due again at until. It reports false when
// the delivery is not due any more: another node took it, or it was recorded meanwhile.
func (s *Store) ClaimDelivery(ctx context.Context, id, owner string, now, until time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE webhook_deliveries SET next_attempt_at = ?, lease_owner = ?
		WHERE id = ? AND state = 'pending' AND next_attempt_at <= ?`, ms(until), owner, id, ms(now))
	if err != nil {
		return false, fmt.Errorf("claim delivery: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ReleaseDeliveries makes the pending deliveries whose attempt a lease owner starting with
// prefix took due at now: at start-up, those a dead process of this node was sending.
func (s *Store) ReleaseDeliveries(ctx context.Context, prefix string, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE webhook_deliveries SET next_attempt_at = ?, lease_owner = NULL
		WHERE state = 'pending' AND lease_owner IS NOT NULL AND substr(lease_owner, 1, ?) = ?`, ms(now), len(prefix), prefix)
	if err != nil {
		return fmt.Errorf("release deliveries: %w", err)
	}
	return nil
}

// RecordAttempt stores the result of one attempt at delivery id, made under lease owner ("" when
// deliveries are not leased), and its new state: delivered, failed (given up), or pending again at
// next. It returns ErrLeaseLost, recording nothing, when owner's lease on the delivery is gone:
// another node took it after it lapsed, and that node's attempt is the one to record.
func (s *Store) RecordAttempt(ctx context.Context, id, owner string, a Attempt, state DeliveryState, next time.Time) error {
	err := s.tx(ctx, func(tx txn) error {
		var code sql.NullInt64
		if a.StatusCode != 0 {
			code = sql.NullInt64{Int64: int64(a.StatusCode), Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_attempts (delivery_id, at, status_code, error) VALUES (?, ?, ?, ?)`,
			id, ms(a.At), code, nullString(a.Error)); err != nil {
			return err
		}
		var nextAt sql.NullInt64
		if state == DeliveryPending {
			nextAt = sql.NullInt64{Int64: ms(next), Valid: true}
		}
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, next_attempt_at = ?, updated_at = ?,
			lease_owner = NULL WHERE id = ? AND (? = '' OR lease_owner = ?)`, state, nextAt, ms(s.now()), id, owner, owner)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, ErrLeaseLost)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	return nil
}

// Deliveries returns every delivery of job jobID, oldest first, each with its attempts.
func (s *Store) Deliveries(ctx context.Context, jobID string) ([]Delivery, error) {
	ds, err := collect(ctx, s.db, "deliveries", scanDelivery, `SELECT `+deliveryColumns+` FROM webhook_deliveries d JOIN jobs j ON j.id = d.job_id
		WHERE d.job_id = ? ORDER BY d.created_at, d.rowid`, jobID)
	if err != nil {
		return nil, err
	}
	for i := range ds {
		ds[i].History, err = collect(ctx, s.db, "attempts", scanAttempt, `SELECT at, coalesce(status_code, 0), coalesce(error, '')
			FROM webhook_attempts WHERE delivery_id = ? ORDER BY id`, ds[i].ID)
		if err != nil {
			return nil, err
		}
	}
	return ds, nil
}

// Redeliver queues a fresh delivery, named id, of the final status of keyID's job jobID. It returns
// ErrJobNotFound for a job the key does not own, ErrNotFinal for one that has not ended,
// ErrNoWebhook for one without a webhook URL, and a conflict naming the delivery already queued
// when one is: a job has at most one delivery waiting, however often its owner asks.
func (s *Store) Redeliver(ctx context.Context, keyID, jobID, id string) error {
	return s.tx(ctx, func(tx txn) error {
		j, err := one(ctx, tx, "redeliver", ErrJobNotFound, scanJob, `SELECT `+jobColumns+` FROM jobs WHERE id = ? AND key_id = ?`+s.db.d.forUpdate, jobID, keyID)
		if err != nil {
			return err
		}
		if j.Status != StatusCompleted && j.Status != StatusFailed {
			return ErrNotFinal
		}
		if j.WebhookURL == "" {
			return ErrNoWebhook
		}
		queued, err := one(ctx, tx, "redeliver", ErrNotFound, scanString,
			`SELECT id FROM webhook_deliveries WHERE job_id = ? AND state = 'pending' LIMIT 1`, jobID)
		if err == nil {
			return errorf(kindConflict, "Delivery %s of this job is still queued; wait for it to be delivered or given up", queued)
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		return insertDelivery(ctx, tx, id, j, s.now())
	})
}

// PruneDeliveries deletes the deliveries, with their attempts, of jobs that finished before cutoff
// and have nothing left to send, so the history does not grow without bound.
func (s *Store) PruneDeliveries(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := s.tx(ctx, func(tx txn) error {
		const old = `SELECT d.id FROM webhook_deliveries d JOIN jobs j ON j.id = d.job_id
			WHERE j.finished_at < ? AND d.state != 'pending'`
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_attempts WHERE delivery_id IN (`+old+`)`, ms(cutoff)); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE id IN (`+old+`)`, ms(cutoff))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune deliveries: %w", err)
	}
	return n, nil
}

// PendingDeliveries returns how many deliveries are neither delivered nor given up.
func (s *Store) PendingDeliveries(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("pending deliveries: %w", err)
	}
	return n, nil
}
