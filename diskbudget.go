package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"
)

// The disk is a budget: a render whose output would take free space under -min-free does not
// start its long step, and one that finds the disk filling while it writes stops and comes back
// later, so that outputs never fill the disk that the database and every other job live on.

// errDiskFilling is a render stopped because free space fell under the floor while it wrote: not
// the job's fault, so it is requeued without counting a retry.
var errDiskFilling = errors.New("free disk space fell under -min-free during the render")

// aacBytesPerSecond is what encoded audio costs on disk (audioRate, 192 kb/s).
const aacBytesPerSecond = 192_000 / 8

// estimateOutput is the expected size in bytes of a job's video, from its encoded clip: the clip
// repeated for the audio's length, plus the audio (its own size when copied, else the AAC rate),
// plus a tenth for the container.
func estimateOutput(job Job, clipBytes, audioBytes int64) int64 {
	repeats := math.Ceil(job.AudioDuration / (clipFrames / clipFPS))
	audio := float64(aacBytesPerSecond) * job.AudioDuration
	if a := audioArgs(job.AudioCodec); len(a) > 1 && a[1] == "copy" {
		audio = float64(audioBytes)
	}
	return int64(1.1 * (float64(clipBytes)*repeats + audio))
}

// checkBudget refuses a render whose estimated output would leave less than minFree bytes free.
func (rd *renderer) checkBudget(job Job, clip, audio string) error {
	if rd.minFree <= 0 {
		return nil
	}
	ci, err := os.Stat(clip)
	if err != nil {
		return err
	}
	ai, err := os.Stat(audio)
	if err != nil {
		return err
	}
	free, err := rd.diskFree(rd.dirs.root)
	if err != nil {
		return fmt.Errorf("free disk space: %w", err)
	}
	need := estimateOutput(job, ci.Size(), ai.Size())
	if free-need < rd.minFree {
		rd.log.Warn("render refused: output would fill the disk", "job", job.ID, "estimate", need, "free", free, "min_free", rd.minFree)
		return &renderFailure{final: true, err: fmt.Errorf("estimate %d bytes, free %d", need, free),
			msg: fmt.Sprintf("The video would take about %d MB and the server is short of disk space right now; submit the job again later", need>>20+1)}
	}
	return nil
}

// watchDisk returns a context that is cancelled, with errDiskFilling as its cause, when free space
// falls under minFree while the step it bounds writes; stop ends the watch.
func (rd *renderer) watchDisk(ctx context.Context) (watched context.Context, stop func()) {
	if rd.minFree <= 0 {
		return ctx, func() {}
	}
	watched, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if free, err := rd.diskFree(rd.dirs.root); err == nil && free < rd.minFree {
					cancel(errDiskFilling)
					return
				}
			}
		}
	}()
	return watched, func() { close(done); cancel(nil) }
}
