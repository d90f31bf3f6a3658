package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"vidgen/internal/h264"
)

// A waveform over a still picture moves only in its band: x264 spent two thirds of a 1080p
// waveform's encode (14.8 s of 23 s CPU a minute of audio) finding that the rest of every frame
// had not changed, and no x264 setting cut that without losing quality. So a job whose only
// moving part is the waveform can encode the band alone, as a narrow video of the frame's width
// with bandMargin rows of the picture around it, and the picture once, one slice per macroblock
// row; h264.SpliceBand writes each frame from them (the band's slice moved down between skipped
// rows, the picture's rows around the band's keyframes). The spliced stream is decoded once to
// check that it is clean and every frame's band exactly the band's own; a stream that fails that,
// or that SpliceBand cannot join, is logged and the job encodes every frame instead.
//
// The check fails whenever x264 points a motion vector of the band outside it (it reads the
// picture's rows in the spliced frame where it read the band's edge, extended, in its own), and
// x264 has no setting that keeps them inside. It does so from the band's first macroblock rows,
// which are still picture, over pictures that are smooth but not flat (gradients, soft photos):
// small vertical vectors, whole or sub-pixel (subme=0 too), where the reconstruction's errors
// make a shifted block the better match; not over flat colour, clean drawings or noise. So before
// any encode, smoothShare looks at the picture at the band's edges and a job splices only when
// few of its blocks there are smooth and not flat: the others would cost the band's encode and
// the check on top of the full encode (see the measurements in the commit that added the gate).

// spliceX264Params are x264's settings for both halves of a spliced waveform, on top of
// clipX264Params: weighted prediction off, which the splicer does not rewrite (and which would
// give the picture's and the band's parameter sets different flags).
const spliceX264Params = ":weightp=0"

// spliceable reports whether a job's moving picture is its waveform alone, which spliceWaveform
// splices: captions, a title and a progress bar change other rows.
func (o Options) spliceable() bool {
	return o.waveform() && !o.Captions && o.Title == "" && o.ProgressBar == ""
}

// bandMargin is how many rows of the still picture the band's encode takes in above and below
// the waveform, so that the band's motion vectors seldom reach outside it: with 16 and 32 the
// check failed on 1080p bars over a clean picture, with 48 it passed there (portrait and
// landscape); 96 drifted over more pictures than 48 (the drift starts at the band's first rows,
// see smoothShare).
const bandMargin = 48

// maxSmoothShare is the largest smoothShare of a picture whose waveform is spliced. Measured on
// 60 s of bars, every picture up to 0.33 spliced (flat colour, drawn cover art, noise, random
// pixels at 0; JPEG cover art and test pictures, their ringing or a blurred background around
// them, 0.04-0.33), and pictures from 0.48 on drifted (a diagonal gradient 0.48, the Mandelbrot
// set 0.56-0.71, blurred noise 0.64) but for some that the gate refuses and that would have
// spliced (a vertical gradient 0.90, faint noise ~0.6): they lose only the saving.
const maxSmoothShare = 0.40

// bandRows is the band of frame f in whole macroblock rows: its first row (a multiple of 16) and
// its height, within the frame.
func bandRows(f frameSize) (top, rows int) {
	t, h := waveformBand(f)
	top = max(0, t-bandMargin) &^ 15
	return top, min((t+h+bandMargin+15)&^15, f.H) - top
}

// spliceArgs are ffmpeg's arguments for the waveform's encode: frames frames of the still
// (stillArgs) with the waveform over it, of which the first, one slice per macroblock row, goes to
// picture and the band's rows to band, both as x264's Annex B streams with the moving render's
// settings.
func spliceArgs(job Job, still, audio, picture, band string, f frameSize, frames int) []string {
	o := job.Options
	fps := o.fps()
	top, _ := waveformBand(f)
	btop, brows := bandRows(f)
	// The picture's rows around the band are the still alone (the band's keyframe replaces its
	// rows), and only the band's rows are repeated and drawn on: a full frame's copies and
	// overlay in every frame cost ~1 s of CPU a minute at 1080p.
	graph := fmt.Sprintf("[0:v]split[full][p];[p]crop=%d:%d:0:%d,loop=loop=%d:size=1:start=0,setpts=N/%d/TB[still];",
		f.W, brows, btop, frames-1, fps) +
		waveformGraph(job, f, fps) + fmt.Sprintf(";[still][wf]overlay=x=0:y=%d:shortest=1:format=yuv420[band]", top-btop)
	threads := strconv.Itoa(encoderThreads())
	x264 := func(threads, params string) []string {
		a := []string{"-threads", threads, "-c:v", "libx264", "-preset", clipPreset, "-crf", clipCRF, "-bf", "0",
			"-x264-params", clipX264Params + spliceX264Params + params, "-g", strconv.Itoa(10 * fps)}
		a = append(a, bt709Tags...)
		if o.platform() {
			a = append(a, platformVideoArgs...)
		}
		return a
	}
	args := []string{"-threads", "1", "-f", "matroska", "-i", "file:" + still}
	args = append(args, audioInput(job, audio)...)
	args = append(args, "-filter_complex_threads", threads, "-filter_complex", graph, "-map", "[full]", "-frames:v", "1")
	args = append(args, x264("1", ":slice-max-mbs="+strconv.Itoa((f.W+15)/16))...)
	args = append(args, "-f", "h264", "file:"+picture, "-map", "[band]", "-frames:v", strconv.Itoa(frames), "-r", strconv.Itoa(fps))
	args = append(args, x264(threads, "")...)
	return append(args, "-f", "h264", "file:"+band)
}

// errBandDrift is a spliced stream whose band does not decode to the band's own frames.
var errBandDrift = errors.New("the spliced band differs from the band's own frames")

// maxSpliceSeconds is the longest audio whose waveform is spliced. The splicer holds the band's
// stream in memory, a few copies of it while it rewrites the frames: ~0.4 MB a second of audio at
// 1080p (25 MB of Go heap for a minute), so an hour would take ~1.5 GB a worker, which a systemd
// MemoryMax would not allow; ten minutes take ~250 MB.
const maxSpliceSeconds = 600

// spliceWaveform makes the video of one size, o, of a job whose only moving part is its waveform
// by splicing (see above) from still (stillStep's, of frame size f; its step's progress ended at
// split) and audio (or o.audioFrom's, copied), working in o.dir, and reports whether it did. It
// does not (false, nil: the caller encodes every frame from the same still) when the renderer does
// not splice waveforms, the job has other moving parts or audio longer than maxSpliceSeconds, or
// the spliced stream is refused or its band drifts (logged at WARN with the reason).
func (rd *renderer) spliceWaveform(ctx context.Context, o sizeRender, still, audio string, f frameSize, split int) (bool, error) {
	job, tmp := o.job, o.dir
	if !rd.spliceWaveforms || !job.Options.spliceable() || job.AudioDuration > maxSpliceSeconds+1 {
		return false, nil
	}
	smooth, err := rd.smoothShare(ctx, job, still, tmp, f)
	if err != nil {
		return false, err
	}
	if smooth > maxSmoothShare {
		rd.log.Info("the picture is too smooth at the waveform's edges to splice its band, encoding every frame",
			job.logAttrs("smooth", fmt.Sprintf("%.3f", smooth), "limit", maxSmoothShare)...)
		return false, nil
	}
	if err := rd.checkMovingBudget(job, still, audio, f, o.later); err != nil {
		return false, err
	}
	// The audio is encoded (or copied) beside the band, on its own core; a failure of either stops the other,
	// and a failure of the input at fault (a damaged audio file) is the one the job ends with.
	encoded := filepath.Join(tmp, "audio.aac")
	fps := job.Options.fps()
	frames := stillVideoFrames(job.AudioDuration, fps)
	picture, bandFile := filepath.Join(tmp, "picture.h264"), filepath.Join(tmp, "band.h264")
	band, check, bandEnd, checkEnd := spliceSteps(job, f, split)
	rd.startStep(job.ID, split, bandEnd, band)
	step := func(duration float64, args []string) func(context.Context) error {
		return func(ctx context.Context) error {
			if err := rd.runWatched(ctx, job.ID, duration, args); err != nil {
				return rd.stepFailed(ctx, err, job, inputAudio, audio, args)
			}
			return nil
		}
	}
	sound := audioEncodeArgs(job, audio, encoded)
	if o.audioFrom != "" {
		sound = append(copiedAudioInput(o.audioFrom), "-map", "0:a:0", "-c:a", "copy", "-f", "adts", "file:"+encoded)
	}
	if err := sideBySide(ctx, []func(context.Context) error{
		step(0, sound),
		step(job.AudioDuration, spliceArgs(job, still, audio, picture, bandFile, f, frames)),
	}); err != nil {
		return false, err
	}
	rd.startStep(job.ID, bandEnd, checkEnd, check)
	clip, err := rd.splice(ctx, job, picture, bandFile, f, frames)
	if errors.Is(err, h264.ErrUnsupported) || errors.Is(err, errBandDrift) {
		rd.log.Warn("the waveform's band cannot be spliced into the picture, encoding every frame instead (slower)",
			job.logAttrs("err", err, "smooth", fmt.Sprintf("%.3f", smooth))...)
		rd.fellBack(job.ID)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := rd.checkBudget(job, encoded, clip); err != nil {
		return false, err
	}
	rd.startStep(job.ID, checkEnd, 100, 0.05)
	if err := rd.writeFailed(writeStillVideo(o.video, clip, encoded, job.AudioDuration)); err != nil {
		return false, err
	}
	rd.log.Info("the waveform's band was spliced into the picture", job.logAttrs("smooth", fmt.Sprintf("%.3f", smooth))...)
	return true, nil
}

// spliceSteps are the expected seconds of a splice attempt's steps at frame size f, the band's
// encode and the check of the spliced stream, and where on the bar each ends, the attempt starting
// at split and sharing the bar up to 95 by their costs. A splice the gate let through is usually
// kept, so its bar and its etaSeconds are made for that: after the rare refused one, the full
// encode moves the bar from where it is to the end (startStep), slowly but never still.
func spliceSteps(job Job, f frameSize, split int) (band, check float64, bandEnd, checkEnd int) {
	_, brows := bandRows(f)
	band = movingEstimate(job, frameSize{f.W, brows})
	check = 0.1 + job.AudioDuration*float64(f.W*f.H*job.Options.fps())/spliceCheckPixelRate
	return band, check, split + int(float64(95-split)*band/(band+check)), 95
}

// spliceCheckPixelRate is how many pixels of the spliced frames a second the check decodes, beside
// the band's own: 1.24 gigapixels (20 s at 1080p) in 1.5 s on a loaded 2-core machine.
const spliceCheckPixelRate = 800e6

// smoothShare is the share of the still picture's 8×8 luma blocks (still, stillStep's, of frame
// size f) at the band's edges that are smooth and not flat: the band's first and last macroblock
// rows and the 8 rows beyond each (where a vector that leaves the band reads), a block smooth when
// its neighbouring samples differ by at most 1 on average, flat when they are all equal.
func (rd *renderer) smoothShare(ctx context.Context, job Job, still, tmp string, f frameSize) (float64, error) {
	btop, brows := bandRows(f)
	y0, y1 := max(0, btop-8), min(f.H, btop+brows+8)
	out := filepath.Join(tmp, "edges.gray")
	defer os.Remove(out)
	err := rd.ffmpegRun(ctx, job.ID, 0, "-threads", "1", "-f", "matroska", "-i", "file:"+still,
		"-vf", fmt.Sprintf("crop=%d:%d:0:%d,format=gray", f.W, y1-y0, y0), "-frames:v", "1", "-f", "rawvideo", "file:"+out)
	if err != nil {
		return 0, fmt.Errorf("the picture at the band's edges: %w", err)
	}
	luma, err := os.ReadFile(out)
	if err != nil {
		return 0, fmt.Errorf("the picture at the band's edges: %w", err)
	}
	if len(luma) != f.W*(y1-y0) {
		return 0, fmt.Errorf("the picture at the band's edges: %d bytes of luma, want %d", len(luma), f.W*(y1-y0))
	}
	smooth, blocks := smoothBlocks(luma, f.W, 0, min(btop+16, y1)-y0)
	if end := btop + brows; end < f.H {
		s, b := smoothBlocks(luma, f.W, end-16-y0, y1-y0)
		smooth, blocks = smooth+s, blocks+b
	}
	if blocks == 0 {
		return 0, nil
	}
	return float64(smooth) / float64(blocks), nil
}

// smoothBlocks counts the whole 8×8 blocks of rows y0 to y1 of the w-wide picture luma, and those
// of them that are smooth and not flat (see smoothShare).
func smoothBlocks(luma []byte, w, y0, y1 int) (smooth, blocks int) {
	for by := y0; by+8 <= y1; by += 8 {
		for bx := 0; bx+8 <= w; bx += 8 {
			sum := 0
			for y := by; y < by+8; y++ {
				for x := bx; x < bx+8; x++ {
					v := int(luma[y*w+x])
					if x+1 < bx+8 {
						sum += max(v-int(luma[y*w+x+1]), int(luma[y*w+x+1])-v)
					}
					if y+1 < by+8 {
						sum += max(v-int(luma[(y+1)*w+x]), int(luma[(y+1)*w+x])-v)
					}
				}
			}
			blocks++
			if sum > 0 && sum <= 112 { // 112 pairs in a block: a mean difference of at most 1
				smooth++
			}
		}
	}
	return smooth, blocks
}

// splice joins the picture's and the band's streams (spliceArgs) into frames frames and checks,
// by decoding it, that the stream is clean and that each frame's band is the band's own frame
// within minBandPSNR (after the band's last frame, that frame): x264 may point a motion vector of
// the band's first rows, which are still picture, outside it, where the spliced frame holds the
// picture's rows and the band's own stream its edge; over most pictures that drifts by a code
// value or two in those rows, which no one can see, and the check lets it pass. A stream the check
// finds bad is errBandDrift; a check that fails for the server (serverFailure) is a renderFailure.
func (rd *renderer) splice(ctx context.Context, job Job, picture, band string, f frameSize, frames int) (*h264.StillClip, error) {
	p, err := os.ReadFile(picture)
	if err != nil {
		return nil, fmt.Errorf("splice: %w", err)
	}
	b, err := os.ReadFile(band)
	if err != nil {
		return nil, fmt.Errorf("splice: %w", err)
	}
	btop, brows := bandRows(f)
	clip, err := h264.SpliceBand(p, b, uint(btop/16), frames, job.Options.fps())
	if err != nil {
		return nil, fmt.Errorf("splice: %w", err)
	}
	spliced := filepath.Join(filepath.Dir(band), "spliced.h264")
	if err := os.WriteFile(spliced, clip.AnnexB(), 0o600); err != nil {
		return nil, rd.writeFailed(fmt.Errorf("splice: %w", err))
	}
	defer os.Remove(spliced)
	stats := spliced + ".psnr"
	defer os.Remove(stats)
	args := []string{"-xerror", "-threads", "1", "-err_detect", "explode", "-f", "h264", "-i", "file:" + spliced, "-threads", "1", "-f", "h264", "-i", "file:" + band,
		// Frame k against frame k, whatever times the raw streams' demuxer gives them.
		"-filter_complex", fmt.Sprintf("[0:v]crop=%d:%d:0:%d,settb=1/1000,setpts=N[s];[1:v]settb=1/1000,setpts=N[b];[s][b]psnr=stats_file=%s",
			f.W, brows, btop, filterArg(stats)),
		"-f", "null", "-"}
	if err := rd.ffmpegRun(ctx, job.ID, 0, args...); err != nil {
		// Only an ffmpeg that exits with an error of its own says the stream is bad; one killed,
		// crashed or out of memory says nothing of it, and the full encode would meet the same fate.
		if rf := serverFailure(ctx, err, fmt.Errorf("splice check: %w", err)); rf != nil {
			return nil, rf
		}
		return nil, fmt.Errorf("%w: decoding it: %w", errBandDrift, err)
	}
	st, err := os.ReadFile(stats)
	if err != nil {
		return nil, fmt.Errorf("splice: %w", err)
	}
	worst, at, n := worstPSNR(st)
	if n != frames || worst < minBandPSNR {
		return nil, fmt.Errorf("%w (%d frames spliced of %d; the worst, frame %d, %.1f dB from the band's own)", errBandDrift, n, frames, at, worst)
	}
	return clip, nil
}

// minBandPSNR is the least PSNR, in dB, of a spliced frame's band against the band's own frame:
// the drift measured where the band's motion vectors leave it was at most 4 code values in its top
// 1-7 rows (78-107 dB); 60 dB is a squared error of 0.065 a sample, far below what shows.
const minBandPSNR = 60.0

// worstPSNR reads the psnr filter's stats file b: the least PSNR of any frame in any plane (+Inf
// for identical frames), the frame it is in, and how many frames there are.
func worstPSNR(b []byte) (worst float64, frame, n int) {
	worst = math.Inf(1)
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, "n:") {
			continue
		}
		n++
		for _, field := range strings.Fields(line) {
			name, v, _ := strings.Cut(field, ":")
			if name != "psnr_y" && name != "psnr_u" && name != "psnr_v" {
				continue
			}
			db, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(db) {
				db = math.Inf(-1) // not a number ffmpeg writes: never a pass
			}
			if db < worst {
				worst, frame = db, n-1
			}
		}
	}
	return worst, frame, n
}
