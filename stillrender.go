package main

import (
	"context"
	"errors"
	"slices"

	"vidgen/internal/h264"
)

// A still picture's video is the clip (stillclip.go) repeated under the audio. The clip's frames
// after the keyframe are vidgen's own, written for the stream x264 makes today; should a later x264
// make one h264.NewStillClip cannot extend (other defaults, say), the job still completes: its
// video is encoded the plain way, every frame by x264, as a moving picture's is, and the log says
// why. That is correct and slower: a 1080p JPEG over 60 s of MP3 took 9.3-11.9 s instead of
// 0.9-1.4 s on a loaded 2-core machine (bench/render.sh), well inside the render's timeout.

// renderStill makes a still picture's videos (captioned or not) and posters, one of each per size
// of outs, from image and audio, working in tmp: by renderSideBySide for the sizes whose audio must
// be encoded (once, for every one of them), by renderCopied for those whose audio is copied (the
// image's own size may copy AAC that a platform size must have at 48 kHz), each in its share of the
// progress bar. When the clip step's x264 stream is one the clip writer (or, captioned,
// h264.Splice) refuses (h264.ErrUnsupported), it logs why and renders by renderMoving instead.
// Any other error (a disk, a kill, a bad input) is returned as it came.
func (rd *renderer) renderStill(ctx context.Context, image, audio, tmp string, outs []sizeRender) error {
	var encoded, copied []sizeRender
	for _, o := range outs {
		if audioArgs(o.job.AudioCodec, o.job.Options)[1] == "copy" {
			copied = append(copied, o)
		} else {
			encoded = append(encoded, o)
		}
	}
	parts := slices.DeleteFunc([][]sizeRender{encoded, copied}, func(p []sizeRender) bool { return len(p) == 0 })
	render := func(part []sizeRender) error {
		job := audioJob(part)
		clipEst, muxEst := renderEstimates(job, image)
		if audioArgs(job.AudioCodec, job.Options)[1] != "copy" {
			// The audio must be encoded: that and the picture steps run side by side, then copy muxes.
			return rd.renderSideBySide(ctx, job, image, audio, tmp, part, clipEst, muxEst)
		}
		return rd.renderCopied(ctx, job, image, audio, part, clipEst, muxEst)
	}
	var err error
	if len(parts) == 1 {
		err = render(parts[0])
	} else {
		err = eachBand(rd, outs[0].job.ID, parts, render)
	}
	if !errors.Is(err, h264.ErrUnsupported) || ctx.Err() != nil {
		return err
	}
	rd.log.Warn("the still clip writer cannot extend x264's stream, encoding every frame instead (slower)",
		outs[0].job.logAttrs("err", err)...)
	return rd.eachSize(outs[0].job.ID, outs, func(o sizeRender) error {
		return rd.renderMoving(ctx, o, image, audio)
	})
}

// renderCopied makes the videos of a job whose audio is copied: the clip (and the poster) of each
// size of outs from image, side by side, then each clip written to its file and repeated by ffmpeg
// under the audio, one size after another. The disk budget counts every video before the first is
// written. job is audioJob(outs); clipEst and muxEst are one picture step's and one mux's expected
// seconds (renderEstimates).
func (rd *renderer) renderCopied(ctx context.Context, job Job, image, audio string, outs []sizeRender, clipEst, muxEst float64) error {
	clipEnd := min(setupShare+int(float64(100-setupShare)*clipEst/(clipEst+muxEst*float64(len(outs)))), 90)
	rd.startStep(job.ID, setupShare, clipEnd, clipEst)
	clips := make([]*h264.StillClip, len(outs))
	if err := sideBySide(ctx, rd.clipSteps(image, outs, clips, nil)); err != nil {
		return err
	}
	if err := rd.checkBudget(job, audio, clips...); err != nil {
		return err
	}
	for i, o := range outs {
		if err := writeClipFile(o.clip, clips[i]); err != nil {
			return err
		}
		rd.startStep(job.ID, clipEnd+(100-clipEnd)*i/len(outs), clipEnd+(100-clipEnd)*(i+1)/len(outs), muxEst)
		args := muxArgs(o.job, audio, o.clip, o.video)
		if err := rd.runWatched(ctx, job.ID, job.AudioDuration, args); err != nil {
			return rd.stepFailed(ctx, err, o.job, inputAudio, audio, args)
		}
	}
	return nil
}
