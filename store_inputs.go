package main

import (
	"context"
	"fmt"
)

// RecordFetchedInputs stores what fetching the inputs of j, a PROCESSING job, found: its image's and
// audio's types and the audio's codec tag and duration, so that a render tried again after a
// restart renders what was checked without fetching it again. When j was claimed under a lease, it
// returns ErrLeaseLost, writing nothing, if the lease is not j's any more: another node has the job
// and may have recorded its own fetch.
func (s *Store) RecordFetchedInputs(ctx context.Context, j Job) error {
	res, err := s.db.ExecContext(ctx, `UPDATE jobs SET image_type = ?, audio_type = ?, audio_codec = ?, audio_duration = ?, updated_at = ?
		WHERE id = ? AND status = 'PROCESSING' AND (? = '' OR lease_owner = ?)`,
		j.ImageType, j.AudioType, j.AudioCodec, j.AudioDuration, ms(s.now()), j.ID, j.Lease.Owner, j.Lease.Owner)
	if err != nil {
		return fmt.Errorf("record fetched inputs: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("record fetched inputs: %w", err)
	} else if n != 1 {
		return fmt.Errorf("record fetched inputs of job %s: %w", j.ID, ErrLeaseLost)
	}
	return nil
}
