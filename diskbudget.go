package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"vidgen/internal/h264"
)

// The disk is a budget: a render whose output would take free space under -min-free does not
// start its long step, and one that finds the disk filling while it writes stops and comes back
// later, so that outputs never fill the disk that the database and every other job live on.

// errDiskFilling is a render stopped because free space fell under the floor while it wrote: not
// the job's fault, so it is requeued without counting a retry.
var errDiskFilling = errors.New("free disk space fell under -min-free during the render")

// checkBudget refuses a render whose estimated outputs would leave less than minFree bytes free.
// clips are the clips the videos repeat, one a size (a captioned still's lasts the whole video),
// and audio the audio as it goes into each output (the upload when it is copied, the encoded file
// otherwise).
func (rd *renderer) checkBudget(job Job, audio string, clips ...*h264.StillClip) error {
	if rd.minFree <= 0 {
		return nil
	}
	bits, err := audioBits(job, audio)
	if err != nil {
		return err
	}
	var need int64
	for _, clip := range clips {
		need += estimateOutputSize(clip.Size(), float64(len(clip.Frames))/float64(clip.FPS), job.AudioDuration, bits)
	}
	return rd.checkFree(job, need, videoNeeds)
}

// checkEncodeBudget refuses, before it starts, a render whose encoded audio alone would leave less
// than minFree free: the encode's file, its segments too when there are (segmented), and the copy
// in each of the job's videos (videos). Without it, a disk too small for the job filled during the
// encode, the render went back in the queue for want of room, and the next attempt filled it
// again, for ever. The pictures' share is checkBudget's, once the clips' sizes are known.
func (rd *renderer) checkEncodeBudget(job Job, segmented bool, videos int) error {
	if rd.minFree <= 0 {
		return nil
	}
	audio := int64(job.AudioDuration * encodedBitsPerSecond / 8)
	copies := 1 + int64(videos)
	if segmented {
		copies++
	}
	return rd.checkFree(job, audio*copies, "The job needs about %d MB of disk for its audio")
}

// encodedBitsPerSecond is audioRate as a number.
const encodedBitsPerSecond = 192000

// checkMovingBudget is checkBudget for a moving picture of size f: still is its lossless frame,
// audio the upload. later are the sizes the job renders after this one, each encoded in full: they
// are counted now, each with this size's lossless frame scaled to its area (an image-sized one as
// this size), so a disk too small for the job refuses it before the first encode rather than
// after it.
func (rd *renderer) checkMovingBudget(job Job, still, audio string, f frameSize, later []string) error {
	if rd.minFree <= 0 {
		return nil
	}
	si, err := os.Stat(still)
	if err != nil {
		return err
	}
	bits := int64(encodedBitsPerSecond)
	if a := audioArgs(job.AudioCodec, job.Options); a[1] == "copy" {
		if bits, err = audioBits(job, audio); err != nil {
			return err
		}
	}
	need := estimateMovingSize(si.Size(), f, job.Options, job.AudioDuration, bits)
	for _, size := range later {
		g, ok := platformSizes[size]
		if !ok {
			g = f
		}
		// The picture's frame scales with the area, up to the larger of its raw size there and
		// this size's frame (a tiny picture's few bytes are mostly its container's); the audio,
		// the same in every size, does not (scaling all of it made a 1x1 picture's job 145 GB).
		frame := min(int64(float64(si.Size())*float64(g.W*g.H)/float64(f.W*f.H)), max(int64(g.W*g.H*3/2), si.Size()))
		need += estimateMovingSize(frame, g, job.Options, job.AudioDuration, bits)
	}
	what := videoNeeds
	if len(later) > 0 {
		what = "The job's videos would take about %d MB"
	}
	return rd.checkFree(job, need, what)
}

// audioBits is the bitrate of the audio file at path, over the job's duration.
func audioBits(job Job, path string) (int64, error) {
	ai, err := os.Stat(path)
	if err != nil || job.AudioDuration <= 0 {
		return 0, err
	}
	return int64(float64(ai.Size()) * 8 / job.AudioDuration), nil
}

// videoNeeds is checkFree's what for a render's output.
const videoNeeds = "The video would take about %d MB"

// checkFree refuses a render whose files, need bytes, would leave less than minFree bytes free.
// what, with a %d for the megabytes, says what needs them in the user's message.
func (rd *renderer) checkFree(job Job, need int64, what string) error {
	free, err := rd.diskFree(rd.dirs.root)
	if err != nil {
		return fmt.Errorf("free disk space: %w", err)
	}
	if free-need < rd.minFree {
		rd.log.Warn("render refused: output would fill the disk", job.logAttrs("estimate", need, "free", free, "min_free", rd.minFree)...)
		return &renderFailure{final: true, err: fmt.Errorf("estimate %d bytes, free %d", need, free),
			msg: fmt.Sprintf(what+" and the server is short of disk space right now; submit the job again later", need>>20+1)}
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
