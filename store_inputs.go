package main

import (
	"context"
	"fmt"
)

// RecordFetchedInputs stores what fetching the inputs of j, a PROCESSING job, found: its image's and
// audio's types and the audio's codec tag and duration, so that a render tried again after a
// restart renders what was checked without fetching it again.
func (s *Store) RecordFetchedInputs(ctx context.Context, j Job) error {
	res, err := s.db.ExecContext(ctx, `UPDATE jobs SET image_type = ?, audio_type = ?, audio_codec = ?, audio_duration = ?, updated_at = ?
		WHERE id = ? AND status = 'PROCESSING'`, j.ImageType, j.AudioType, j.AudioCodec, j.AudioDuration, ms(s.now()), j.ID)
	if err != nil {
		return fmt.Errorf("record fetched inputs: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("record fetched inputs: job %s is no longer PROCESSING (%v)", j.ID, err)
	}
	return nil
}
