package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"vidgen/internal/aac"
	"vidgen/internal/h264"
)

// A job of several sizes (the sizes field) is rendered as one: its audio is decoded, measured and
// encoded once (the image's own size copies AAC that a job of that size alone would copy, see
// renderStill), its picture made once per size beside that encode, and each size's video written
// from its picture and the shared audio by copy. A moving picture's encode is one per size; its
// audio is encoded once for each way the sizes need it (audioFrom): the image's own size may take
// the upload's at its own rate where a platform size must have it at 48 kHz.

// sizeRender is the render of one size of a job: the job as a job of that one size, and where its
// scratch, clip, poster and video go.
type sizeRender struct {
	job                      Job
	dir, clip, poster, video string
	later                    []string // the sizes rendered after this one
	// audioFrom, when not "", is the video of an earlier size of the job whose audio this size's
	// would encode the same way: a moving render copies that audio instead of encoding it again.
	audioFrom string
}

// sizeRenders are the renders of each of job's sizes, in order, working in tmp: in tmp itself for a
// job of one size, as ever, in a folder each for several.
func sizeRenders(job Job, tmp string) ([]sizeRender, error) {
	sizes := job.Options.sizes()
	outs := make([]sizeRender, len(sizes))
	for i, size := range sizes {
		dir := tmp
		if len(sizes) > 1 {
			dir = filepath.Join(tmp, "size-"+size)
			if err := os.Mkdir(dir, 0o700); err != nil {
				return nil, fmt.Errorf("render dir: %w", err)
			}
		}
		j := job
		j.Options = job.Options.sized(size)
		outs[i] = sizeRender{job: j, dir: dir, clip: filepath.Join(dir, "clip.mp4"),
			poster: filepath.Join(dir, "poster.jpg"), video: filepath.Join(dir, "video.mp4"), later: sizes[i+1:]}
		if a := audioArgs(j.AudioCodec, j.Options); a[1] != "copy" {
			for _, e := range outs[:i] {
				if slices.Equal(audioArgs(e.job.AudioCodec, e.job.Options), a) {
					outs[i].audioFrom = e.video
					break
				}
			}
		}
	}
	return outs, nil
}

// copiedAudioInput are ffmpeg's options that read a sizeRender's audioFrom, the MP4 whose audio a
// later size copies: its encoder's priming and its end are the edit list's, which ffmpeg keeps.
func copiedAudioInput(from string) []string {
	return []string{"-threads", "1", "-f", "mp4", "-i", "file:" + from}
}

// audioJob is the job whose options decide how the audio all of outs share is encoded: the first
// platform size's, whose rule (48 kHz) suits the image's own size too.
func audioJob(outs []sizeRender) Job {
	for _, o := range outs {
		if o.job.Options.platform() {
			return o.job
		}
	}
	return outs[0].job
}

// renderSizes makes every size's video and poster (outs) from image and audio, working in tmp.
func (rd *renderer) renderSizes(ctx context.Context, job Job, image, audio, tmp string, outs []sizeRender) error {
	if job.Options.everyFrame() {
		return rd.eachSize(job.ID, outs, func(o sizeRender) error {
			return rd.renderMoving(ctx, o, image, audio)
		})
	}
	return rd.renderStill(ctx, image, audio, tmp, outs)
}

// eachSize renders the sizes of outs one after another by render, each in its share of the
// progress bar, so the bar goes from 0 to 100 once across them all.
func (rd *renderer) eachSize(id string, outs []sizeRender, render func(sizeRender) error) error {
	return eachBand(rd, id, outs, render)
}

// eachBand renders parts (the sizes of a job, or groups of them) one after another by render, each
// in its share of job id's progress bar, so the bar goes from 0 to 100 once across them all.
func eachBand[T any](rd *renderer, id string, parts []T, render func(T) error) error {
	defer rd.progressBand(id, 0, 100)
	for i, o := range parts {
		rd.progressBand(id, 100*i/len(parts), 100*(i+1)/len(parts))
		if err := render(o); err != nil {
			return err
		}
	}
	return nil
}

// renderSideBySide makes the clip and poster of each size of outs from image and encodes audio at
// once, one ffmpeg each (a picture step is one core's work, and so is the AAC encoder; the audio is
// encoded in as many segments as pay, one ffmpeg each, see segments.go, the first in the picture
// step's own when the job has one size and no captions: audioRide), then writes each size's
// video from its clip and the one encoded audio by copy: on two cores the job costs about the audio
// encode alone. The picture steps of several sizes run side by side too: one after another, three
// 1080p steps outlasted the encode of a minute of speech. job is audioJob(outs), whose options
// decide the audio's encode. The first failure stops the other steps; a failure of the input at
// fault is the one returned. Intermediate files go in tmp. clipEst and muxEst are the expected
// seconds of one picture step and of the audio's (renderEstimates).
func (rd *renderer) renderSideBySide(ctx context.Context, job Job, image, audio, tmp string, outs []sizeRender, clipEst, muxEst float64) error {
	rd.startStep(job.ID, setupShare, 95, max(clipEst, muxEst))
	encoded := filepath.Join(tmp, "audio.aac")
	var segs []aac.Segment
	_, rate := encodedFormat(job)
	costs := jobEncodeCosts
	if rd.costs != nil {
		costs = rd.costs
	}
	c := costs(job, pictureWork(image))
	c.Pictures = len(outs)
	// The first segment may ride in the picture step (audioRide, plan) when one picture step runs
	// beside the encode, not a captioned one (its step makes a frame a change of cues), with audio
	// that decoded cleanly and a picture whose step its file's size predicts.
	c.Ride = len(outs) == 1 && !job.Options.Captions && !parseCodecTag(job.AudioCodec).damaged() &&
		ridePicture(image, job.ImageType)
	rides := false
	// Audio under the limiter is encoded in one piece, as its level was checked (levelChecked):
	// a segment's encode can put its peaks dBs higher than the whole file's, past the ceiling.
	if n := audioSegments(job.AudioDuration, c, rd.freeCores()); n > 1 && rate > 0 && job.Options.level.limit == 0 {
		var shares []float64
		shares, rides = c.plan(job.AudioDuration, n)
		segs = aac.PlanWeighted(job.AudioDuration, rate, shares)
	}
	if err := rd.checkEncodeBudget(job, len(segs) > 0, len(outs)); err != nil {
		return err
	}
	parts := make([]string, len(segs))
	for k := range segs {
		parts[k] = filepath.Join(tmp, fmt.Sprintf("audio-%d.aac", k))
	}
	var ride *audioRide
	if rides {
		ride = newAudioRide(job, audio, parts[0], segs[0])
	}
	clips := make([]*h264.StillClip, len(outs))
	steps := rd.clipSteps(image, outs, clips, ride) // and the audio in one or more parts:
	run := func(duration float64, args []string) func(context.Context) error {
		return func(ctx context.Context) error {
			if err := rd.ffmpegRun(ctx, job.ID, duration, args...); err != nil {
				return rd.stepFailed(ctx, err, job, inputAudio, audio, args)
			}
			return nil
		}
	}
	for k, sg := range segs {
		if k == 0 && ride != nil {
			continue
		}
		// The segments take about as long as each other: the first in an ffmpeg of its own speaks
		// for all (a riding one's position is the picture's too at first).
		progress := 0.0
		if k == 0 || k == 1 && ride != nil {
			progress = segmentSeconds(sg, rate, job.AudioDuration)
		}
		steps = append(steps, run(progress, segmentArgs(job, audio, parts[k], sg)))
	}
	if segs == nil {
		steps = append(steps, run(job.AudioDuration, audioEncodeArgs(job, audio, encoded)))
	}
	if err := sideBySide(ctx, steps); err != nil {
		return err
	}
	if segs != nil {
		if err := joinSegments(encoded, parts, segs); err != nil {
			return rd.writeFailed(err)
		}
	}
	if err := rd.checkBudget(job, encoded, clips...); err != nil {
		return err
	}
	rd.startStep(job.ID, 95, 100, 0.05*float64(len(outs)))
	for i, o := range outs {
		if err := writeStillVideo(o.video, clips[i], encoded, job.AudioDuration); err != nil {
			return rd.writeFailed(err)
		}
	}
	return nil
}

// clipSteps are the picture steps of outs, one a size, for sideBySide: each makes its size's clip,
// into clips, and its poster; the first also encodes ride, when not nil.
func (rd *renderer) clipSteps(image string, outs []sizeRender, clips []*h264.StillClip, ride *audioRide) []func(context.Context) error {
	steps := make([]func(context.Context) error, len(outs))
	for i, o := range outs {
		r := ride
		if i > 0 {
			r = nil
		}
		steps[i] = func(ctx context.Context) (err error) {
			clips[i], err = rd.makeClip(ctx, o.job, image, o.poster, r)
			return err
		}
	}
	return steps
}

// sideBySide runs steps at once, each in a goroutine of its own, and returns when all have: the
// first failure cancels the others' context, and the error returned is that first failure (not
// what its cancellation made of another step's), or a final one (a failure of the input at fault)
// when there is one.
func sideBySide(ctx context.Context, steps []func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	var first error
	errs := make(chan error, len(steps))
	for _, f := range steps {
		go func() {
			err := f(ctx)
			if err != nil {
				once.Do(func() { first = err; cancel() })
			}
			errs <- err
		}()
	}
	var final error
	for range steps {
		if err := <-errs; isFinal(err) {
			final = cmp.Or(final, err)
		}
	}
	return cmp.Or(final, first)
}
