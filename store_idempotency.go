package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// idempotencyTTL is how long a submission's Idempotency-Key is remembered, from its first use.
const idempotencyTTL = 24 * time.Hour

// storedResponse is the answer a submission made with an Idempotency-Key got, which every retry
// with the same key and the same request gets again.
type storedResponse struct {
	Fingerprint string // hex SHA-256 of the request's parts (requestFingerprint)
	JobID       string
	StatusCode  int
	Body        []byte // as sent, byte for byte
}

// ErrIdempotencyInProgress is a submission whose Idempotency-Key another request of the same
// account holds while it is received and checked.
var ErrIdempotencyInProgress = errorf(kindConflict,
	"A request with this Idempotency-Key is still being received or processed; retry once it has been answered")

// ClaimIdempotencyKey claims key for keyID's submission at now. It returns nil when the claim is
// the caller's (the key is new, or its last use is over idempotencyTTL old): the caller then
// completes it (CreateJobIdempotent) or releases it (ReleaseIdempotencyKey). It returns the stored
// response when a submission with the key was answered within idempotencyTTL, and
// ErrIdempotencyInProgress when one is still under way. The statements are plain SQL that every
// dialect of the store runs alike; the transaction makes the check and the claim one step.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, keyID, key string, now time.Time) (*storedResponse, error) {
	var stored *storedResponse
	err := s.tx(ctx, func(tx txn) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE key_id = ? AND idem_key = ? AND created_at < ?`,
			keyID, key, ms(now.Add(-idempotencyTTL))); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (key_id, idem_key, created_at) VALUES (?, ?, ?)
			ON CONFLICT (key_id, idem_key) DO NOTHING`, keyID, key, ms(now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var fp, jobID, body sql.NullString
		var code sql.NullInt64
		err = tx.QueryRowContext(ctx, `SELECT fingerprint, job_id, status_code, response FROM idempotency_keys
			WHERE key_id = ? AND idem_key = ?`, keyID, key).Scan(&fp, &jobID, &code, &body)
		if err != nil {
			return err
		}
		if !code.Valid {
			return ErrIdempotencyInProgress
		}
		stored = &storedResponse{Fingerprint: fp.String, JobID: jobID.String, StatusCode: int(code.Int64), Body: []byte(body.String)}
		return nil
	})
	if err != nil && !errors.Is(err, ErrIdempotencyInProgress) {
		return nil, fmt.Errorf("claim idempotency key: %w", err)
	}
	return stored, err
}

// CreateJobIdempotent is CreateJob for a submission that claimed key for j's account: the job and
// the response its retries will get are stored in one transaction, so that no crash can leave a
// job whose retry would make another.
func (s *Store) CreateJobIdempotent(ctx context.Context, j Job, key string, resp storedResponse) error {
	return s.tx(ctx, func(tx txn) error {
		if err := s.insertJob(ctx, tx, j); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE idempotency_keys SET fingerprint = ?, job_id = ?, status_code = ?, response = ?
			WHERE key_id = ? AND idem_key = ? AND status_code IS NULL`,
			resp.Fingerprint, j.ID, resp.StatusCode, string(resp.Body), j.KeyID, key)
		if err != nil {
			return fmt.Errorf("store idempotent response: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("store idempotent response: the claim on the key is gone (%d rows, %v)", n, err)
		}
		return nil
	})
}

// ReleaseIdempotencyKey gives up keyID's claim on key when its submission was not answered with a
// new job, so that a retry is processed afresh. An answered key is left as it is.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, keyID, key string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE key_id = ? AND idem_key = ? AND status_code IS NULL`, keyID, key)
	if err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// ReleaseAbandonedIdempotencyKeys gives up every claim still unanswered: at start-up these are the
// requests a dead process was receiving, which nobody will answer.
func (s *Store) ReleaseAbandonedIdempotencyKeys(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE status_code IS NULL`); err != nil {
		return fmt.Errorf("release abandoned idempotency keys: %w", err)
	}
	return nil
}

// PruneIdempotencyKeys deletes the keys first used before cutoff and returns how many.
func (s *Store) PruneIdempotencyKeys(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < ?`, ms(cutoff))
	if err != nil {
		return 0, fmt.Errorf("prune idempotency keys: %w", err)
	}
	return res.RowsAffected()
}
