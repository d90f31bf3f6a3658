package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"vidgen/internal/captions"
	"vidgen/internal/h264"
	"vidgen/internal/media"
)

// A captioned still changes only when a cue starts or ends. Its video is made as a still's is, its
// audio encoded beside the picture step, but the picture step's x264 encodes one frame a shot (a
// run of frames that show the same cues): a keyframe where the shot starts a keyframe interval,
// else a P-frame against the shot before, which costs little more than the caption's pixels.
// h264.Splice then shows each shot's frame for the shot's length, the frames between being
// skipped, as a still clip's are. The cues are drawn by libass from the same script as a moving
// picture's, only with each shot's cues timed to its one frame. Encoding every frame (the moving
// picture's way) took as long as the tutorial command; this takes about the still picture's time.

// captionShot is a run of frames of a captioned still that show the same cues: frames frames from
// frame start, cues the indexes of the cues drawn; key when it starts a keyframe interval.
type captionShot struct {
	start, frames int
	cues          []int
	key           bool
}

// cueFrame is the first of the frames at fps that a cue starting (or ending) at d covers: libass
// draws a cue on a frame whose time, in milliseconds, is at or past its start and before its end,
// both as the ASS script writes them, in whole centiseconds.
func cueFrame(d time.Duration, fps int) int {
	ms := int64(d/(10*time.Millisecond)) * 10
	return int((ms*int64(fps) + 999) / 1000)
}

// captionShots splits frames frames at fps into the shots of cues: a shot ends where a cue starts
// or ends and where a keyframe interval of gop frames does.
func captionShots(cues []captions.Cue, frames, fps, gop int) []captionShot {
	cuts := []int{0}
	for k := gop; k < frames; k += gop {
		cuts = append(cuts, k)
	}
	for _, c := range cues {
		for _, d := range []time.Duration{c.Start, c.End} {
			if k := cueFrame(d, fps); k > 0 && k < frames {
				cuts = append(cuts, k)
			}
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	var shots []captionShot
	for i, a := range cuts {
		b := frames
		if i+1 < len(cuts) {
			b = cuts[i+1]
		}
		var on []int
		for j, c := range cues {
			if cueFrame(c.Start, fps) <= a && a < cueFrame(c.End, fps) {
				on = append(on, j)
			}
		}
		key := a%gop == 0
		if n := len(shots); n > 0 && !key && slices.Equal(shots[n-1].cues, on) {
			shots[n-1].frames += b - a // a cue that covers no frame changes nothing
			continue
		}
		shots = append(shots, captionShot{start: a, frames: b - a, cues: on, key: key})
	}
	return shots
}

// shotCues are the cues of an ASS script that draws shot j's cues on frame j of a stream at fps,
// and on no other: each shown from half a frame before frame j to half a frame after, in whole
// centiseconds, so that rounding a frame's time to milliseconds cannot move it out.
func shotCues(cues []captions.Cue, shots []captionShot, fps int) []captions.Cue {
	edge := func(halfFrames int) time.Duration {
		d := time.Duration(halfFrames) * time.Second / time.Duration(2*fps)
		return max(0, (d+5*time.Millisecond)/(10*time.Millisecond)*(10*time.Millisecond))
	}
	var out []captions.Cue
	for j, s := range shots {
		for _, i := range s.cues {
			out = append(out, captions.Cue{Start: edge(2*j - 1), End: edge(2*j + 1), Text: cues[i].Text, Line: cues[i].Line})
		}
	}
	return out
}

// jobCues are the cues of a job's captions file, fitted to its audio.
func (rd *renderer) jobCues(ctx context.Context, job Job) ([]captions.Cue, error) {
	b, err := readStored(ctx, rd.files, inputKey(job.ID, inputCaptions), captions.MaxSize)
	if err != nil {
		return nil, err
	}
	cues, err := captions.Parse(b)
	if err == nil {
		cues, err = captions.Fit(cues, job.AudioDuration)
	}
	if err != nil { // checked at upload: only a file changed on the server gets here
		return nil, &renderFailure{final: true, err: err, msg: inputsDamaged}
	}
	return cues, nil
}

// makeCaptionClip is makeClip for a captioned still: one frame a shot encoded by x264, its cues
// drawn by libass, and spliced into the whole video's frames by h264.Splice; and the poster. One
// ffmpeg makes the picture from image, the poster and the shots, the captions laid out for the
// frame's size: a platform size's, or at the picture's own size the one pictureGraph gives the
// image's header size (originalFrame). Should the poster come out another size, or the header not
// read, the picture and the poster are made first (the moving picture's first step) and the shots
// drawn over that. A stream Splice refuses is an error that wraps h264.ErrUnsupported.
func (rd *renderer) makeCaptionClip(ctx context.Context, job Job, image, poster string) (*h264.StillClip, error) {
	tmp := filepath.Dir(poster)
	still, stream := filepath.Join(tmp, "still.mkv"), filepath.Join(tmp, "shots.h264")
	cues, err := rd.jobCues(ctx, job)
	if err != nil {
		return nil, err
	}
	fps := job.Options.fps()
	shots := captionShots(cues, stillVideoFrames(job.AudioDuration, fps), fps, clipFrameCount(job))
	ass := filepath.Join(tmp, "shots.ass")
	fonts, err := writeCaptionFont(tmp)
	if err != nil {
		return nil, err
	}
	f, platform := platformSizes[job.Options.Size]
	known := platform
	if !known {
		f, known = originalFrame(image, job.ImageType)
	}
	if known {
		if err := writeASS(ass, shotCues(cues, shots, fps), f, job); err != nil {
			return nil, err
		}
		if err := rd.pictureStep(ctx, job, image, captionClipArgs(job, image, ass, fonts, stream, poster, shots), nil); err != nil {
			return nil, err
		}
		if !platform {
			got, err := jpegSize(poster)
			if err != nil {
				return nil, err
			}
			if got != f {
				rd.log.Warn("the picture came out another size than its header gave, drawing the captions again",
					job.logAttrs("want", fmt.Sprintf("%dx%d", f.W, f.H), "got", fmt.Sprintf("%dx%d", got.W, got.H))...)
				known = false
			}
		}
	}
	if !known {
		if err := rd.pictureStep(ctx, job, image, stillArgs(job, image, still, poster), nil); err != nil {
			return nil, err
		}
		if f, err = jpegSize(poster); err != nil {
			return nil, err
		}
		if err := writeASS(ass, shotCues(cues, shots, fps), f, job); err != nil {
			return nil, err
		}
		args := captionClipArgs(job, still, ass, fonts, stream, "", shots)
		if err = rd.ffmpegRun(ctx, job.ID, 0, args...); err != nil {
			return nil, rd.stepFailed(ctx, err, job, inputImage, image, args)
		}
	}
	b, err := os.ReadFile(stream)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	os.Remove(stream)
	runs := make([]int, len(shots))
	for i, s := range shots {
		runs[i] = s.frames
	}
	c, err := h264.Splice(b, runs, fps)
	if err != nil {
		return nil, fmt.Errorf("caption clip: %w", err)
	}
	return c, nil
}

// originalFrame is the frame size pictureGraph makes of the image at path, of type typ, at its own
// size: its header's width and height, shrunk to fit maxSide, each even, at least 2, and swapped
// when a JPEG's EXIF orientation turns it a quarter (5-8: a phone photo taken upright), as ffmpeg
// turns it before the graph. ffmpeg turns no other type (a PNG's eXIf, a TIFF's or WebP's EXIF are
// ignored; HEIC/AVIF and JPEGs stored as RGB reach it as PNGs already turned). ok is false when the
// header does not read.
func originalFrame(path, typ string) (f frameSize, ok bool) {
	w, h, _, err := imageSize(path, typ)
	if err != nil || w <= 0 || h <= 0 {
		return frameSize{}, false
	}
	if typ == media.JPEG {
		file, err := os.Open(path)
		if err != nil {
			return frameSize{}, false
		}
		defer file.Close()
		if readJPEGOrientation(file) >= 5 {
			w, h = h, w
		}
	}
	scale := min(1, float64(maxSide)/float64(max(w, h)))
	even := func(n int) int { return max(2, 2*int(float64(n)*scale/2)) }
	return frameSize{even(w), even(h)}, true
}

// captionClipArgs are ffmpeg's arguments for the shots of a captioned still: the picture once a
// shot, the shot's cues drawn from the script at ass (shotCues) in the font in fontsDir, encoded by
// x264 as the still clip is (clipArgs), its keyframes where the shots start a keyframe interval
// and nowhere else, to stream as H.264 (Annex B). With a poster, the picture is made from the
// job's image at in, and the poster with it (as clipArgs makes both); without, in is the picture
// already made (stillArgs's lossless frame).
func captionClipArgs(job Job, in, ass, fontsDir, stream, poster string, shots []captionShot) []string {
	fps := job.Options.fps()
	var keys []string
	for j, s := range shots {
		if s.key {
			// Rounded down to the microsecond, which ffmpeg reads: at or before the frame's time.
			keys = append(keys, strconv.FormatFloat(float64(int64(j)*1e6/int64(fps))/1e6, 'f', 6, 64))
		}
	}
	// Frame j at exactly j/fps, whatever the time base of the picture's graph (a coarser one would
	// merge and drop frames, each a different shot).
	shotsGraph := fmt.Sprintf("loop=loop=%d:size=1:start=0,settb=1/%d,setpts=N,ass=filename=%s:fontsdir=%s[v]",
		len(shots)-1, fps, filterArg(ass), filterArg(fontsDir))
	args := []string{"-threads", "1", "-f", "matroska", "-i", "file:" + in,
		"-filter_complex_threads", "1", "-filter_complex", "[0:v]" + shotsGraph}
	if poster != "" {
		args = []string{"-xerror", "-threads", "1", "-f", demuxer[job.ImageType], "-i", "file:" + in, // as clipArgs
			"-filter_complex_threads", "1", "-filter_complex", pictureGraph(job) + "[v0]" + shotsGraph + ";" + posterGraph}
	}
	args = append(args, "-map", "[v]", "-frames:v", strconv.Itoa(len(shots)), "-r", strconv.Itoa(fps),
		"-threads", "1", "-c:v", "libx264", "-preset", clipPreset, "-tune", "stillimage", "-crf", clipCRF,
		// One reference frame, B-frames never, keyframes only where forced: what h264.Splice splices.
		"-x264-params", clipX264Params+":rc-lookahead="+strconv.Itoa(clipLookahead)+":scenecut=0:keyint=infinite",
		"-bf", "0", "-force_key_frames", strings.Join(keys, ","), "-forced-idr", "1")
	args = append(args, bt709Tags...)
	if job.Options.platform() {
		args = append(args, platformVideoArgs...)
	}
	args = append(args, "-f", "h264", "file:"+stream)
	if poster != "" {
		args = append(args, "-threads", "1", "-map", "[pj]", "-frames:v", "1", "-q:v", "3", "-f", "image2", "file:"+poster)
	}
	return args
}
