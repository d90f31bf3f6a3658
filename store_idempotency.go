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

// abandonedClaimAge is how long an unanswered claim may be held: the longest a submission may take
// to arrive (uploadDeadline), and then ample time to check and store it. An older one was left by a
// node that died, and a retry may claim the key again.
func abandonedClaimAge() time.Duration { return uploadDeadline(-1) + 10*time.Minute }

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

// ClaimIdempotencyKey claims key for keyID's submission at now, for the request owner (NODE/CLAIM,
// unique to the request). It returns nil when the claim is the caller's (the key is new, its last
// use is over idempotencyTTL old, or its claim was abandoned: unanswered for abandonedClaimAge): the
// caller then completes it (CreateJobIdempotent) or releases it (ReleaseIdempotencyKey). It returns
// the stored response when a submission with the key was answered within idempotencyTTL, and
// ErrIdempotencyInProgress when one is still under way. The statements are plain SQL that every
// dialect of the store runs alike; the transaction makes the check and the claim one step.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, keyID, key, owner string, now time.Time) (*storedResponse, error) {
	var stored *storedResponse
	err := s.tx(ctx, func(tx txn) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE key_id = ? AND idem_key = ?
			AND (created_at < ? OR status_code IS NULL AND created_at < ?)`,
			keyID, key, ms(now.Add(-idempotencyTTL)), ms(now.Add(-abandonedClaimAge()))); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (key_id, idem_key, created_at, claim_owner) VALUES (?, ?, ?, ?)
			ON CONFLICT (key_id, idem_key) DO NOTHING`, keyID, key, ms(now), owner)
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

// CreateJobIdempotent is CreateJob for the submission owner that claimed key for j's account: the
// job and the response its retries will get are stored in one transaction, so that no crash can
// leave a job whose retry would make another. It fails, making no job, when the claim is not
// owner's any more (released as abandoned, and perhaps claimed by a retry since).
func (s *Store) CreateJobIdempotent(ctx context.Context, j Job, key, owner string, resp storedResponse) error {
	return s.tx(ctx, func(tx txn) error {
		if err := s.insertJob(ctx, tx, j); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE idempotency_keys SET fingerprint = ?, job_id = ?, status_code = ?, response = ?
			WHERE key_id = ? AND idem_key = ? AND status_code IS NULL AND claim_owner = ?`,
			resp.Fingerprint, j.ID, resp.StatusCode, string(resp.Body), j.KeyID, key, owner)
		if err != nil {
			return fmt.Errorf("store idempotent response: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("store idempotent response: the claim on the key is gone (%d rows, %v)", n, err)
		}
		return nil
	})
}

// ReleaseIdempotencyKey gives up owner's claim on keyID's key when its submission was not answered
// with a new job, so that a retry is processed afresh. An answered key, or another request's
// claim, is left as it is.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, keyID, key, owner string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE key_id = ? AND idem_key = ? AND status_code IS NULL
		AND claim_owner = ?`, keyID, key, owner)
	if err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// ReleaseAbandonedIdempotencyKeys gives up the unanswered claims whose owner starts with prefix,
// and those made before claims had owners (a single box's): at start-up, the requests a dead
// process of this node was receiving, which nobody will answer. Other nodes' claims are uploads
// under way; a dead node's are taken over once abandonedClaimAge old (ClaimIdempotencyKey).
func (s *Store) ReleaseAbandonedIdempotencyKeys(ctx context.Context, prefix string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE status_code IS NULL
		AND (claim_owner IS NULL OR substr(claim_owner, 1, ?) = ?)`, len(prefix), prefix); err != nil {
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
