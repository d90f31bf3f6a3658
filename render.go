package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/h264"
)

// The render pipeline. A still image over audio needs one encoded picture, not one per frame:
//
//  1. The image is decoded once (EXIF orientation applied by ffmpeg), scaled to fit maxSide with even
//     dimensions, flattened over a white background, converted to BT.709 and encoded as a short
//     clip of clipFrames frames at clipFPS: one keyframe, which x264 encodes, and P-frames that
//     repeat it exactly, which vidgen writes (stillclip.go). A JPEG poster for the share page
//     comes out of the same run.
//  2. The clip is repeated by stream copy for the audio's duration (the looped input is bounded
//     with -t, which is exact where -shortest is not at low frame rates) and muxed with the audio,
//     copied when it is already AAC-LC and encoded once otherwise, with the index first.
//
// Step 2 costs less than encoding the audio alone with ffmpeg's default AAC settings (the fast
// coder); see bench/render.sh. A captioned still's step 1 makes the whole video's frames, one
// encoded frame a change of captions (captionclip.go).
const (
	maxSide = 1920
	// -t keeps the frames that start before it, so the video ends within 1/clipFPS s after it; it
	// is set half a frame short of the audio, so the video ends within 1/(2*clipFPS) s of the audio.
	// Fewer frames make step 1 cheaper (10 fps: 100 frames for 10 s instead of 200 at 20 fps).
	clipFPS = 10
	// A keyframe every clipFrames/clipFPS = 10 s (the tutorial command's x264 default): seeking
	// lands within 10 s, and the output's size is its keyframes' (one per repeat of the clip), so
	// a 4 s clip made a detailed photo's video 3.0x the tutorial command's size.
	clipFrames = 100
	// veryfast at CRF 19 with the cheapest motion search (the P-frames repeat the picture, there is
	// no motion to find): on a noisy 1080p photo + 60 s the output is 0.71x the tutorial command's
	// (8.7 MB vs 12.3 MB) at a better decoded frame (PSNR 47.1 vs 42.2-44.5 dB, SSIM 0.9907 vs
	// 0.9829-0.9909), on a clean one 0.90x (PSNR 55.5 vs 53.6-54.0). superfast made P-frames that
	// kept refining the picture: 4.8x bigger on noise. The clip step costs 0.46-0.57 s CPU for
	// 1080p, now that x264 encodes only its first clipLookahead+1 frames (stillclip.go).
	clipPreset     = "veryfast"
	clipCRF        = "19"
	clipX264Params = "me=dia:subme=1:ref=1"
	audioRate      = "192k"
	// The AAC coder is ffmpeg's default, twoloop: the fast coder loses level on loud tonal sound
	// (a 1 kHz tone at -3 dBFS comes out 1.25 LU quieter, at -0.1 dBFS 2.86 LU; twoloop: 0.00 and
	// 0.30, the latter its clip avoidance keeping the decoded peak under full scale), and costs
	// more CPU on tonal music (2.9 s vs 1.9 s a minute); on speech and noise it is 25-40% cheaper.
	// TestLoudness holds the level within 0.2 LU; the measurements are in the commit that chose it.
	aacCoder = "twoloop"
	// setupShare is the part of the progress bar the steps before ffmpeg stand for.
	setupShare = 2
)

// audioArgs returns the ffmpeg output options for the audio of a job whose codec tag is tag: a copy
// when the audio already plays everywhere (AAC-LC, stereo or mono, at most 48 kHz; at exactly 48
// kHz for a platform size, which the platforms' upload rules ask for), decodes cleanly (no
// damagedMark) and keeps its level (no loudness), else AAC, at the level the render measured,
// damaged audio timed by its samples.
func audioArgs(tag string, o Options) []string {
	ct := parseCodecTag(tag)
	resample := ct.rate > 48000 || o.platform() && ct.rate != 48000
	if ct.codec == "aac" && ct.profile == "LC" && ct.channels <= 2 && !resample && o.Loudness == 0 {
		return []string{"-c:a", "copy"}
	}
	args := []string{"-c:a", "aac", "-aac_coder", aacCoder, "-b:a", audioRate}
	if ct.channels > 2 {
		args = append(args, "-ac", "2")
	}
	if resample {
		args = append(args, "-ar", "48000")
	}
	rate := ct.rate
	if resample {
		rate = 48000
	}
	f := o.level.filters(rate)
	if ct.damaged() {
		// The frames that did not decode leave gaps in the decoded sound's timestamps, which an
		// encode straight into the MP4 would keep as gaps: the sound is what decodes, end to end,
		// as the probe counted it and the video lasts.
		f = append([]string{gaplessAudio}, f...)
	}
	if f != nil {
		args = append(args, "-af", strings.Join(f, ","))
	}
	return args
}

// gaplessAudio is the filter that times decoded audio by its samples alone.
const gaplessAudio = "asetpts=N/SR/TB"

// renderer runs PENDING jobs, oldest first, at most workers at a time, each in its own goroutine.
type renderer struct {
	jobs    *lifecycle // claims each job and records how its render ended
	dirs    dataDir    // its tmp/ holds each render's scratch
	files   fileStore  // the job's uploads, and where its outputs go
	log     *slog.Logger
	now     func() time.Time
	rand    io.Reader // names outputs
	tools   ffmpeg.Tools
	workers int
	// pictures admits the step that decodes a job's picture, shared with the uploads' checks.
	pictures *memoryGate
	// spliceWaveforms splices waveform-only jobs where the picture allows (waveformsplice.go).
	spliceWaveforms bool
	// timeout is how long a render of audio lasting audioSeconds may take before it is killed.
	timeout func(audioSeconds float64) time.Duration
	// diskFree reports the free bytes under a path; renders keep at least minFree (0: no floor).
	diskFree func(path string) (int64, error)
	minFree  int64
	// audioCores is the machine's cores, shared out between the renders running at once; the
	// audio of a job is encoded in at most its share of segments at once (audioSegments).
	audioCores int
	// costs, when set, replaces jobEncodeCosts: what a job's render costs, which decides into how
	// many segments its audio is cut.
	costs func(job Job, picture float64) encodeCosts
	// observe, when set, is told how each render attempt ended and how long it took (metrics).
	observe func(run renderRun, out Outcome)
	// fetch, when set, fetches a claimed job's inputs given by URL before its render and returns
	// the job as it is to be rendered (fetch.go).
	fetch func(ctx context.Context, job Job) (Job, error)

	wake chan struct{}

	mu       sync.Mutex
	progress map[string]*jobProgress
	// progressSeen, when set, is told each value a job's bar moves to, and with step true its value
	// as a step starts (tests follow a bar with it). It is called with mu held.
	progressSeen func(id string, pct int, step bool)

	stopClaiming context.CancelFunc // stops taking new jobs
	killRenders  context.CancelFunc // stops running ffmpeg processes
	done         chan struct{}      // closed when the loop and every job have returned
}

// Notify tells the renderer a job may be waiting. It never blocks.
func (rd *renderer) Notify() {
	select {
	case rd.wake <- struct{}{}:
	default:
	}
}

// longAudio is the audio length from which a render that times out is blamed on its input.
const longAudio = 10 * time.Minute

// renderTimeout is how long a render may take: a generous multiple of the work, so a hung ffmpeg
// cannot hold a slot forever. audioSeconds is the job's workSeconds.
func renderTimeout(audioSeconds float64) time.Duration {
	return 2*time.Minute + time.Duration(audioSeconds*float64(time.Second))
}

// Start runs the dispatch loop until Stop.
func (rd *renderer) Start() {
	claimCtx, stopClaiming := context.WithCancel(context.Background())
	killCtx, killRenders := context.WithCancel(context.Background())
	rd.stopClaiming, rd.killRenders = stopClaiming, killRenders
	rd.done = make(chan struct{})
	go rd.loop(claimCtx, killCtx)
}

// Stop stops taking jobs, lets running renders finish until ctx is done, then kills them; their jobs
// go back to PENDING without counting a retry. It returns when every render has ended.
func (rd *renderer) Stop(ctx context.Context) {
	rd.stopClaiming()
	select {
	case <-rd.done:
	case <-ctx.Done():
		rd.killRenders()
		<-rd.done
	}
	rd.killRenders()
}

func (rd *renderer) loop(claimCtx, killCtx context.Context) {
	var wg sync.WaitGroup
	defer close(rd.done)
	defer wg.Wait()
	slots := make(chan struct{}, rd.workers)
	tick := time.NewTicker(5 * time.Second) // a safety net; Notify is what normally wakes the loop
	defer tick.Stop()
	for {
	claim:
		for claimCtx.Err() == nil {
			select {
			case slots <- struct{}{}:
			default:
				break claim
			}
			job, err := rd.jobs.claim(claimCtx)
			if err != nil {
				<-slots
				if !errors.Is(err, ErrNotFound) && claimCtx.Err() == nil {
					rd.log.Error("claim job", "err", err)
				}
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots; rd.Notify() }()
				rd.renderJob(killCtx, job)
			}()
		}
		select {
		case <-claimCtx.Done():
			return
		case <-rd.wake:
		case <-tick.C:
		}
	}
}

// renderJob renders one claimed job and records the outcome.
func (rd *renderer) renderJob(killCtx context.Context, job Job) {
	rd.mu.Lock()
	rd.progress[job.ID] = &jobProgress{started: rd.now()}
	rd.mu.Unlock()
	defer func() {
		rd.mu.Lock()
		delete(rd.progress, job.ID)
		rd.mu.Unlock()
	}()

	// The lease is renewed until the outcome is recorded: recording may be retried for a minute.
	leased, stopLease := rd.keepLease(killCtx, job)
	out, run := rd.render(leased, job)
	if errors.Is(context.Cause(leased), ErrLeaseLost) {
		stopLease()
		return // the job is another worker's now; its outcome is theirs to record
	}
	stored, err := rd.finish(killCtx, job, out)
	stopLease()
	if errors.Is(err, ErrLeaseLost) {
		rd.log.Warn("render ended after the job's lease was lost; another node has the job", job.logAttrs()...)
		return
	}
	if err != nil {
		// The job stays PROCESSING; the next start-up's recovery puts it back to PENDING.
		rd.log.Error("record render outcome", job.logAttrs("err", err)...)
		return
	}
	// The outcome is the job's state as stored: a retry past the last one is FAILED, not PENDING.
	// The job as fetched: a job's audio by URL is known only then.
	attrs := run.job.logAttrs("outcome", stored.Status, "seconds", run.took.Seconds(), "audio_s", run.job.AudioDuration)
	if run.fetched {
		attrs = append(attrs, "fetch_s", run.fetch.Seconds())
	}
	rd.log.Info("render ended", attrs...)
	if rd.observe != nil {
		rd.observe(run, out)
	}
}

// finish records a render's outcome, trying again for about a minute if the database refuses (a
// disk briefly full, a lock held past busy_timeout): a job left PROCESSING would hold its key's slot
// until the next restart. It runs even when killCtx is done, and returns the job as stored. During
// a shutdown (killCtx done) it tries once: the next start's recovery puts a job left PROCESSING
// back in the queue, and a shutdown must end within the unit's TimeoutStopSec, not after the
// minutes the retries can take.
func (rd *renderer) finish(killCtx context.Context, job Job, out Outcome) (Job, error) {
	var err error
	for wait := time.Second; wait <= 32*time.Second; wait *= 2 {
		// An attempt has 30 s, and 5 s once shutdown begins, even one already under way: with
		// -shutdown-grace (20 s) that stays within the unit's TimeoutStopSec (45 s), as far as a
		// context can stop the database (not inside a stuck fsync).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		stop := context.AfterFunc(killCtx, func() { time.AfterFunc(5*time.Second, cancel) })
		var j Job
		j, err = rd.jobs.change(ctx, transition{JobID: job.ID, From: StatusProcessing, Next: toward(out), Owner: job.Lease.Owner})
		stop()
		cancel()
		if err == nil || errors.Is(err, ErrLeaseLost) {
			return j, err
		}
		if killCtx.Err() != nil {
			return Job{}, err
		}
		rd.log.Warn("record render outcome, will retry", job.logAttrs("err", err, "in", wait)...)
		select {
		case <-time.After(wait):
		case <-killCtx.Done():
		}
	}
	return Job{}, err
}

// render produces the job's video and poster in outputs/ and says how it went, and what it did.
func (rd *renderer) render(killCtx context.Context, job Job) (Outcome, renderRun) {
	// The inputs given by URL come first, in a time of their own: the render's is sized by the
	// audio, which is not known before.
	var err error
	var run renderRun
	if rd.fetch != nil && len(job.InputURLs) > 0 {
		start := time.Now()
		job, err = rd.fetch(killCtx, job)
		run.fetched, run.fetch, run.fetchFailed = true, time.Since(start), err != nil
	}
	start := time.Now()
	out := rd.renderFetched(killCtx, job, err)
	run.job, run.took = job, time.Since(start)
	return out, run
}

// renderFetched is render once the job's inputs by URL were fetched, which failed with err when
// not nil.
func (rd *renderer) renderFetched(killCtx context.Context, job Job, err error) Outcome {
	timeout := renderTimeout
	if rd.timeout != nil {
		timeout = rd.timeout
	}
	limit := timeout(workSeconds(job))
	ctx, cancel := context.WithTimeout(killCtx, limit)
	defer cancel()
	var token string
	var reached float64
	if err == nil {
		token, reached, err = rd.renderFiles(ctx, job)
	}
	if err == nil {
		return Outcome{Status: StatusCompleted, OutputToken: token, LoudnessReached: loudnessShort(job.Options.Loudness, reached)}
	}
	if errors.Is(context.Cause(killCtx), ErrLeaseLost) || errors.Is(err, ErrLeaseLost) {
		// Another node has the job (this one missed its renewals): neither the job's fault nor a
		// shutdown, and the outcome is that node's to record. keepLease, or renderJob when recording
		// this outcome is refused, logs the loss.
		return Outcome{Status: StatusPending}
	}
	if killCtx.Err() != nil {
		// Shutting down, whatever the render's error became: not the job's fault, no retry counted,
		// and no failure to alert on.
		rd.log.Info("render stopped for shutdown, the job goes back to the queue", job.logAttrs()...)
		return Outcome{Status: StatusPending}
	}
	var rf *renderFailure
	if errors.As(err, &rf) && rf.final {
		rd.log.Warn("render failed", job.logAttrs("err", err)...)
		return Outcome{Status: StatusFailed, ErrorMessage: rf.msg}
	}
	if errors.Is(err, errDiskFilling) {
		rd.log.Warn("render stopped: disk filling, will retry", job.logAttrs()...)
		// The disk's fault, not the job's: no retry counted.
		return Outcome{Status: StatusPending, Cause: passingCause(err, 0)}
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && job.AudioDuration >= longAudio.Seconds() {
		// A long job that runs out of time will run out again: three tries would hold a worker for
		// hours. A short one that times out met a stalled machine, which passes.
		rd.log.Warn("render timed out", job.logAttrs("err", err, "audio_s", job.AudioDuration)...)
		return Outcome{Status: StatusFailed, ErrorMessage: fmt.Sprintf(
			"Rendering took longer than the %s allowed for audio of this length; try a shorter or simpler audio file", fmtDuration(limit.Seconds()))}
	}
	var timedOut time.Duration
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		timedOut = limit
	}
	rd.log.Warn("render failed, will retry", job.logAttrs("err", err)...)
	return Outcome{Status: StatusPending, CountRetry: true, Cause: passingCause(err, timedOut)}
}

// renderFiles runs both steps and publishes the outputs, one video and poster per size, under a new
// token, which it returns with the loudness (LUFS) the audio was brought to, 0 without the
// loudness option.
func (rd *renderer) renderFiles(ctx context.Context, job Job) (string, float64, error) {
	token, err := randomHex(rd.rand, 16)
	if err != nil {
		return "", 0, err
	}
	tmp, err := rd.dirs.renderScratch(job.ID)
	if err != nil {
		return "", 0, fmt.Errorf("render dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	// ffmpeg reads the uploads from local files: the data directory's own, or copies fetched into
	// the scratch directory when they live in a bucket.
	var image, audio string
	for _, in := range []struct {
		kind inputKind
		path *string
	}{{inputImage, &image}, {inputAudio, &audio}, {inputCaptions, nil}} {
		var err error
		if in.path != nil {
			*in.path, err = rd.files.Local(ctx, inputKey(job.ID, in.kind), tmp)
		} else if job.Options.Captions {
			_, err = rd.files.Stat(ctx, inputKey(job.ID, in.kind)) // small: read whole when drawn
		}
		if errors.Is(err, fs.ErrNotExist) {
			// The upload was accepted and then lost on the server (deleted, or a restore that missed
			// it): the service's fault, which no retry mends, and never the user's file.
			return "", 0, &renderFailure{final: true, err: fmt.Errorf("input missing: %w", err),
				msg: "The uploaded files of this job were lost on the server before it could be rendered; please submit the job again"}
		}
		if err != nil {
			return "", 0, fmt.Errorf("fetch input: %w", err)
		}
	}
	var reached float64
	if job.Options.Loudness != 0 {
		if job.Options.level, reached, err = rd.measureLevel(ctx, job, audio, tmp); err != nil {
			return "", 0, err
		}
	}
	outs, err := sizeRenders(job, tmp)
	if err != nil {
		return "", 0, err
	}
	if err := rd.renderSizes(ctx, job, image, audio, tmp, outs); err != nil {
		return "", 0, err
	}
	// A URL never serves a half-written file: each is whole under its key or not there.
	for i, name := range outputNames(token, job.Options.Sizes) {
		for src, key := range map[string]string{outs[i].video: outputKey(name, "mp4"), outs[i].poster: outputKey(name, "jpg")} {
			if err := rd.files.Place(ctx, key, src); err != nil {
				return "", 0, fmt.Errorf("publish output: %w", err)
			}
		}
	}
	return token, reached, nil
}

// freeCores is this render's share of the machine's cores: the renders running at once share them.
func (rd *renderer) freeCores() int {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return max(1, rd.audioCores/max(1, len(rd.progress)))
}

// writeFailed is the error of a file vidgen writes itself during a render: a full disk under
// -min-free is errDiskFilling, as when the disk watch stops ffmpeg, and the job waits for room
// without counting a retry. Without a floor there is no watch, and a disk that stays full must end
// the job, so ENOSPC is then an ordinary failure.
func (rd *renderer) writeFailed(err error) error {
	if errors.Is(err, syscall.ENOSPC) && rd.minFree > 0 {
		return errDiskFilling
	}
	return err
}

// runWatched runs ffmpeg for the step that writes the output while watchDisk watches free space;
// it returns errDiskFilling when the watch stopped it.
func (rd *renderer) runWatched(ctx context.Context, jobID string, duration float64, args []string) error {
	watched, stop := rd.watchDisk(ctx)
	err := rd.ffmpegRun(watched, jobID, duration, args...)
	stop()
	if errors.Is(context.Cause(watched), errDiskFilling) {
		return errDiskFilling
	}
	return err
}

// makeClip is step 1: the clip from image, and the poster at poster. ffmpeg makes the poster and
// x264 the clip's keyframe (in a file beside the poster); newStillClip the rest of the clip. The
// same ffmpeg encodes ride when it is not nil. A captioned still's clip is the whole video's
// (makeCaptionClip), whose steps no audio rides.
func (rd *renderer) makeClip(ctx context.Context, job Job, image, poster string, ride *audioRide) (*h264.StillClip, error) {
	if job.Options.Captions {
		return rd.makeCaptionClip(ctx, job, image, poster)
	}
	stream := filepath.Join(filepath.Dir(poster), "clip.h264")
	if err := rd.pictureStep(ctx, job, image, clipArgs(job, image, stream, poster), ride); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(stream)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	os.Remove(stream)
	return newStillClip(b, clipFrameCount(job), job.Options.fps())
}

// pictureStep runs ffmpeg with args, the render's step that decodes the job's image, once the
// memory it takes fits beside the other pictures being decoded; with ride's encode too when ride is
// not nil. A failure is the image's when stepFailed says so, else the audio's when it says that of
// the audio; else, when that ffmpeg stopped with an error of its own, the picture and the segment
// run again apart, as without the ride: -xerror, there for the picture, stops it at any decoding
// error of the audio too, which a segment of its own decodes past.
func (rd *renderer) pictureStep(ctx context.Context, job Job, image string, args []string, ride *audioRide) error {
	release, err := rd.pictures.acquire(ctx, pictureCost(image, job.ImageType))
	if err != nil {
		return &renderFailure{err: fmt.Errorf("image: waiting for memory: %w", err)}
	}
	defer release()
	picture := args
	if ride != nil {
		args = append(slices.Clip(args), ride.args...)
	}
	err = rd.ffmpegRun(ctx, job.ID, 0, args...)
	if err == nil {
		return nil
	}
	failed := rd.stepFailed(ctx, err, job, inputImage, image, args)
	if ride == nil || isFinal(failed) {
		return failed
	}
	if audio := rd.stepFailed(ctx, err, job, inputAudio, ride.audio, args); isFinal(audio) {
		return audio
	}
	if serverFailure(ctx, err, err) != nil {
		return failed // killed, crashed, stopped or short of disk: the attempt is tried again as it is
	}
	rd.log.Warn("the picture step that encoded the first audio segment failed, neither file at fault: running them apart",
		job.logAttrs("err", err)...)
	if err := rd.ffmpegRun(ctx, job.ID, 0, picture...); err != nil {
		return rd.stepFailed(ctx, err, job, inputImage, image, picture)
	}
	if err := rd.ffmpegRun(ctx, job.ID, 0, ride.apart...); err != nil {
		return rd.stepFailed(ctx, err, job, inputAudio, ride.audio, ride.apart)
	}
	return nil
}

// isFinal reports whether err is a renderFailure that trying again cannot help.
func isFinal(err error) bool {
	var rf *renderFailure
	return errors.As(err, &rf) && rf.final
}

// clipFrameCount is the number of frames of a job's clip: clipFrames/clipFPS seconds at its frame rate.
func clipFrameCount(job Job) int { return clipFrames * job.Options.fps() / clipFPS }

// clipArgs are ffmpeg's arguments for step 1: image to poster and to the start of the clip, which
// x264 writes to stream as H.264 (Annex B) for newStillClip. x264 encodes the keyframe and the
// clipLookahead frames after it that its rate control weighs the keyframe's quality by: in a
// whole clip the keyframe comes out the same (on a noisy 1080p photo, 1,174,805 bytes at an
// average QP of 14.09 either way), for half the CPU. x264 runs on one thread: one keyframe is
// not shared out between frame threads, the step mostly runs beside the audio encode on a core of
// its own, and each extra thread costs ~75 MB and a few thousand page faults (the output is the
// same frame). The filters and the poster's encoder run on one thread too (pictureThreads).
func clipArgs(job Job, image, stream, poster string) []string {
	fps := job.Options.fps()
	frames := clipLookahead + 1
	graph := pictureGraph(job) + fmt.Sprintf("[v0]loop=loop=%d:size=1:start=0,setpts=N/%d/TB[v];", frames-1, fps) + posterGraph
	args := []string{
		// A decoding error is the image's fault: stop at once, never render a partial picture. One
		// picture has no frames to share out between decoder threads.
		"-xerror", "-threads", "1", "-f", demuxer[job.ImageType], "-i", "file:" + image,
		"-filter_complex_threads", "1", "-filter_complex", graph,
		"-map", "[v]", "-frames:v", strconv.Itoa(frames), "-r", strconv.Itoa(fps),
		"-threads", "1", "-c:v", "libx264", "-preset", clipPreset, "-tune", "stillimage",
		"-crf", clipCRF, "-x264-params", clipX264Params + ":rc-lookahead=" + strconv.Itoa(clipLookahead),
		"-g", strconv.Itoa(clipFrameCount(job)), "-bf", "0",
	}
	args = append(args, bt709Tags...)
	if job.Options.platform() {
		args = append(args, platformVideoArgs...)
	}
	return append(args, "-f", "h264", "file:"+stream,
		"-threads", "1", "-map", "[pj]", "-frames:v", "1", "-q:v", "3", "-f", "image2", "file:"+poster)
}

// estimateOutputSize is the expected size in bytes of a job's video, for a disk budget: the clip
// (clipBytes, step 1's output, whose size is its keyframes' plus a few bytes a P-frame, lasting
// clipSeconds) is repeated for the audio's length, the audio costs its bitrate
// (audioBitsPerSecond: the copied stream's, or audioRate's when encoded) and the MP4 index ~1.5%.
func estimateOutputSize(clipBytes int64, clipSeconds, audioSeconds float64, audioBitsPerSecond int64) int64 {
	repeats := math.Ceil(audioSeconds / max(clipSeconds, 1e-3))
	media := float64(clipBytes)*repeats + audioSeconds*float64(audioBitsPerSecond)/8
	return int64(media * 1.015)
}

// muxArgs are ffmpeg's arguments for step 2: the clip repeated for the audio's duration, plus audio.
func muxArgs(job Job, audio, clip, video string) []string {
	t := clipLength(job.AudioDuration, job.Options.fps())
	args := append([]string{"-stream_loop", "-1", "-t", t, "-f", "mp4", "-i", "file:" + clip}, audioInput(job, audio)...)
	args = append(args, "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy")
	args = append(args, audioArgs(job.AudioCodec, job.Options)...)
	return append(args, "-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4", "file:"+video)
}

// clipMillis is how long, in milliseconds, the repeated clip lasts under audio of duration seconds
// at fps: half a frame short of the audio, so the video ends within half a frame of it (see
// clipFPS).
func clipMillis(duration float64, fps int) int64 {
	half := 0.5 / float64(fps)
	return int64(math.Round(max(duration-half, half) * 1000))
}

// clipLength is clipMillis as ffmpeg's -t reads it, when ffmpeg repeats the clip.
func clipLength(duration float64, fps int) string {
	ms := clipMillis(duration, fps)
	return fmt.Sprintf("%d.%03d", ms/1000, ms%1000)
}

// audioInput are ffmpeg's options that read a job's audio: its format, and one decoder thread. The
// FLAC and ALAC decoders run a thread per core by default, each with buffers of its own: encoding 5 s
// of FLAC took 900 MiB of address space with 32 cores (-cpucount), 280 MiB on one thread. Audio
// decodes hundreds of times faster than it plays on one. Damaged audio (damagedMark) renders what
// decodes of it, as the upload counted it, however few of its frames that is: ffmpeg would give up
// (exit 69) when more than 2/3 of its frames fail (-max_error_rate 1 turns that off).
func audioInput(job Job, audio string) []string {
	args := []string{"-threads", "1"}
	if parseCodecTag(job.AudioCodec).damaged() {
		args = append(args, "-max_error_rate", "1")
	}
	return append(args, "-f", demuxer[job.AudioType], "-i", "file:"+audio)
}

// audioEncodeArgs are ffmpeg's arguments for encoding a job's audio alone into an ADTS stream at
// out.
func audioEncodeArgs(job Job, audio, out string) []string {
	args := append(audioInput(job, audio), "-map", "0:a:0")
	args = append(args, audioArgs(job.AudioCodec, job.Options)...)
	return append(args, "-f", "adts", "file:"+out)
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Base(path), err)
	}
	return nil
}

func syncDir(path string) error { return syncFile(path) }
