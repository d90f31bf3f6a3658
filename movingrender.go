package main

import (
	"context"
	"fmt"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"

	"vidgen/internal/captions"
)

// A moving picture (a waveform, with or without captions; captions alone when their still cannot be
// spliced, see captionclip.go) cannot repeat one encoded clip: every frame is encoded.
// The image is still decoded and fitted once, into one lossless frame; the second step repeats that
// frame in the filter graph, draws the waveform and the captions over it and encodes the result,
// the audio muxed (or encoded) in the same run.

// movingPixelRate is how many output pixels a second the second step encodes per second of wall
// time on this class of machine (2 cores, x264 at clipPreset with the cheap motion search): 1080×1920
// at 30 fps took ~0.45 s of CPU per second of audio, filters included. It sizes the progress bar's
// steps; the timeout allows movingWork times more.
const movingPixelRate = 100e6

// movingWork is how many times a still render's time a moving one is given before it is killed
// (see renderTimeout): its encode costs about half the audio's length at 1080p, where a still
// render's costs a fraction of a second, and a busy machine may take several times that.
const movingWork = 4

// workSeconds is the audio length a job's render time is measured against: the audio's, or
// movingWork times it for a moving picture, once a size (each size's is encoded in full; a still's
// too, when the clip writer cannot extend x264's stream and every frame is encoded instead).
func workSeconds(job Job) float64 {
	n := float64(len(job.Options.sizes()))
	if job.Options.moving() {
		return job.AudioDuration * movingWork * n
	}
	return job.AudioDuration * n
}

// movingEstimate is the expected seconds of a moving picture's encode at frame size f.
func movingEstimate(job Job, f frameSize) float64 {
	return 0.3 + job.AudioDuration*float64(f.W*f.H*job.Options.fps())/movingPixelRate
}

// renderMoving makes a moving picture's video and poster of one size, o, from image and audio,
// working in o.dir. Its audio is o.audioFrom's, copied, when it has one.
func (rd *renderer) renderMoving(ctx context.Context, o sizeRender, image, audio string) error {
	job := o.job
	still := filepath.Join(o.dir, "still.mkv")
	f, split, err := rd.stillStep(ctx, job, image, still, o.poster, func(f frameSize) float64 { return movingEstimate(job, f) })
	if err != nil {
		return err
	}
	if spliced, err := rd.spliceWaveform(ctx, o, still, audio, f, split); spliced || err != nil {
		return err
	}
	var ass, fonts string
	if job.Options.Captions || job.Options.Title != "" {
		var cues []captions.Cue
		if job.Options.Captions {
			var err error
			if cues, err = rd.jobCues(ctx, job); err != nil {
				return err
			}
		}
		ass = filepath.Join(o.dir, "captions.ass")
		if err := writeASS(ass, cues, f, job); err != nil {
			return err
		}
		if fonts, err = writeCaptionFont(o.dir); err != nil {
			return err
		}
	}
	if err := rd.checkMovingBudget(job, still, audio, f, o.later); err != nil {
		return err
	}
	rd.startStep(job.ID, split, 100, movingEstimate(job, f))
	args := movingArgs(job, still, audio, o.audioFrom, ass, fonts, o.video, f)
	if err := rd.runWatched(ctx, job.ID, job.AudioDuration, args); err != nil {
		return rd.stepFailed(ctx, err, job, inputAudio, audio, args)
	}
	return nil
}

// stillStep is a moving picture's first step: the still (stillArgs) and the poster from image.
// Its part of the progress bar ends at split, sized by est, the second step's expected seconds at
// a frame size. It returns the frame's size.
func (rd *renderer) stillStep(ctx context.Context, job Job, image, still, poster string, est func(frameSize) float64) (f frameSize, split int, err error) {
	clipEst, _ := renderEstimates(job, image)
	f, known := platformSizes[job.Options.Size]
	guess := f
	if !known {
		guess = frameSize{1280, 720} // a typical photo's, until step 1 tells
	}
	split = min(setupShare+int(float64(100-setupShare)*clipEst/(clipEst+est(guess))), 90)
	rd.startStep(job.ID, setupShare, split, clipEst)
	if err := rd.pictureStep(ctx, job, image, stillArgs(job, image, still, poster), nil); err != nil {
		return f, split, err
	}
	if !known {
		f, err = jpegSize(poster)
	}
	return f, split, err
}

// jpegSize is the width and height of the JPEG at path.
func jpegSize(path string) (frameSize, error) {
	fh, err := os.Open(path)
	if err != nil {
		return frameSize{}, err
	}
	defer fh.Close()
	c, err := jpeg.DecodeConfig(fh)
	if err != nil {
		return frameSize{}, fmt.Errorf("poster: %w", err)
	}
	return frameSize{c.Width, c.Height}, nil
}

// estimateMovingSize is the expected size in bytes of a moving picture's video, for the disk
// budget: a keyframe of the picture every 10 s (stillBytes is its lossless frame; x264 at CRF 19
// keeps it to keyframeShare of that), the waveform band's bits in every frame, and the audio at
// audioBitsPerSecond, plus the MP4 index.
func estimateMovingSize(stillBytes int64, f frameSize, o Options, audioSeconds float64, audioBitsPerSecond int64) int64 {
	keyframes := math.Ceil(audioSeconds / 10)
	media := float64(stillBytes)*keyframeShare*keyframes + audioSeconds*float64(audioBitsPerSecond)/8
	if o.waveform() {
		_, h := waveformBand(f)
		bits := barsBitsPerPixel
		if o.Waveform == "line" {
			bits = lineBitsPerPixel
		}
		media += audioSeconds * float64(f.W*h*o.fps()) * bits / 8
	}
	if o.Captions {
		media += audioSeconds * float64(f.W*f.H) * captionBitsPerPixel / 8
	}
	return int64(media * 1.015)
}

// The parts of estimateMovingSize, measured on the worst case, loud pink noise, and rounded up (see
// TestE2EMovingOutputSize): a keyframe at CRF 19 is under half the lossless frame; the waveform band
// costs 0.07 bits a pixel a frame as bars over a clean picture and 0.37 as a line (a jagged line
// redrawn every frame), 0.66 as a line over a noisy photo; captions a little, when they change.
const (
	keyframeShare       = 0.5
	barsBitsPerPixel    = 0.12
	lineBitsPerPixel    = 0.7
	captionBitsPerPixel = 0.02
)
