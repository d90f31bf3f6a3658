package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"vidgen/internal/captions"
	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
)

// spliceFFmpeg writes into dir a stand-in for ffmpeg that runs the real one and appends each run's
// arguments, one run a line, to the file it returns; with oneSlice, x264 writes the picture's
// keyframe as one slice (the slice-max-mbs option dropped): a stream h264.SpliceBand refuses.
func spliceFFmpeg(t testing.TB, dir string, oneSlice bool) (path, runs string) {
	t.Helper()
	real, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	path, runs = filepath.Join(dir, "ffmpeg"), filepath.Join(dir, "runs")
	edit := ""
	if oneSlice {
		edit = "  case $a in *slice-max-mbs=*) a=$(printf %s \"$a\" | sed 's/:slice-max-mbs=[0-9]*//');; esac\n"
	}
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >>%q\nfor a do\n  shift\n%s  set -- \"$@\" \"$a\"\ndone\nexec %q \"$@\"\n",
		runs, edit, real)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, runs
}

// spliceTestPicture writes into dir, as a PNG or a JPEG (ext) of size f, a picture of one of the
// classes the splice gate was measured on (see maxSmoothShare) and returns its path.
func spliceTestPicture(t testing.TB, dir, class string, f frameSize, ext string) string {
	t.Helper()
	size := fmt.Sprintf("s=%dx%d", f.W, f.H)
	graph := map[string]string{
		"flat":     "color=c=0x2a4d69:" + size,
		"testsrc2": "testsrc2=" + size,
		"noise":    "color=c=0x506070:" + size + ",noise=alls=12",
		"random":   "color=c=gray:" + size + ",geq=lum='random(1)*255':cb=128:cr=128",
		"gradient": fmt.Sprintf("gradients=%s:c0=0x203040:c1=0xd0a070:x0=0:y0=0:x1=%d:y1=%d:n=2:seed=1", size, f.W, f.H),
		"mandel":   "mandelbrot=" + size,
		"soft":     "color=c=gray:" + size + ",geq=lum='random(1)*255':cb=128:cr=128,gblur=sigma=6",
	}[class]
	if class == "cover" {
		fonts, err := writeCaptionFont(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		font := filepath.Join(fonts, captions.FontFile)
		graph = "color=c=0x1e2a38:" + size + ",drawbox=x=iw/10:y=ih/8:w=iw/3:h=ih/3:c=0xe0b040:t=fill," +
			"drawbox=x=iw/2:y=ih/2:w=iw/3:h=ih/2:c=0x30a0c0:t=12," +
			"drawtext=fontfile=" + font + ":text='THE PODCAST':fontsize=h/10:fontcolor=white:x=(w-tw)/2:y=h*0.6," +
			"drawtext=fontfile=" + font + ":text='Episode 42':fontsize=h/20:fontcolor=0xc0c0c0:x=(w-tw)/2:y=h*0.85"
	}
	if graph == "" {
		t.Fatalf("no picture of class %q", class)
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%dx%d.%s", class, f.W, f.H, ext))
	ffmpegMake(t, "-f", "lavfi", "-i", graph, "-frames:v", "1", "-q:v", "2", path)
	return path
}

// TestWaveformSmoothBlocks checks what the splice gate counts as smooth in 16×16 pictures of four
// 8×8 blocks: a flat block is not (x264 leaves it alone), a block with a step of one code value or
// a gentle slope is (a gradient, where a shifted block matches), a block of steps of 3 is not
// (a mean difference above 1), and noise is not.
func TestWaveformSmoothBlocks(t *testing.T) {
	t.Parallel()
	const w = 16
	picture := func(v func(x, y int) int) []byte {
		b := make([]byte, w*w)
		for y := range w {
			for x := range w {
				b[y*w+x] = byte(v(x, y))
			}
		}
		return b
	}
	noise := []byte("2f8a61c03be7d945a1f06c2e8b3d7590")
	for _, c := range []struct {
		name   string
		luma   []byte
		smooth int
	}{
		{"flat", picture(func(x, y int) int { return 90 }), 0},
		{"a step of one in each block", picture(func(x, y int) int { return 90 + x%8/4 }), 4},
		{"a slope of one every 4 rows", picture(func(x, y int) int { return 60 + y/4 }), 4},
		{"steps of 3 every column", picture(func(x, y int) int { return 60 + 3*x }), 0},
		{"noise", picture(func(x, y int) int { return 100 + 40*int(noise[(x*7+y*13)%len(noise)]%7) }), 0},
		{"flat left, slope right", picture(func(x, y int) int { return 90 + max(0, x-8)/4 }), 2},
	} {
		if smooth, blocks := smoothBlocks(c.luma, w, 0, w); smooth != c.smooth || blocks != 4 {
			t.Errorf("%s: %d smooth of %d blocks, want %d of 4", c.name, smooth, blocks, c.smooth)
		}
	}
}

// TestE2EWaveformSpliceGate checks the gate's decision (smoothShare against maxSmoothShare) on the
// still each render makes (stillArgs) of pictures of the classes it was measured on: flat colour,
// cover art drawn with boxes and text (also as a JPEG of another shape, on the blurred
// background), a clean test picture (a JPEG on the blurred background too), noise and random
// pixels splice (the check passed on each); a diagonal gradient, the Mandelbrot set and blurred
// noise (a soft photo's texture) do not (the check failed on each).
func TestE2EWaveformSpliceGate(t *testing.T) {
	t.Parallel()
	rd := &renderer{tools: ffmpeg.Tools{FFmpeg: "ffmpeg"}, now: time.Now, progress: map[string]*jobProgress{}}
	landscape, portrait := platformSizes["landscape"], platformSizes["portrait"]
	for _, c := range []struct {
		class, ext string
		picture    frameSize // the picture's own size
		size       string    // the job's
		splice     bool
	}{
		{"flat", "png", landscape, "landscape", true},
		{"cover", "png", landscape, "landscape", true},
		{"cover", "jpg", landscape, "portrait", true},
		{"testsrc2", "jpg", landscape, "portrait", true},
		{"noise", "png", landscape, "landscape", true},
		{"random", "png", portrait, "portrait", true},
		{"gradient", "png", landscape, "landscape", false},
		{"mandel", "png", landscape, "landscape", false},
		{"mandel", "png", portrait, "portrait", false},
		{"soft", "png", landscape, "landscape", false},
	} {
		name := fmt.Sprintf("%s %s %dx%d at %s", c.class, c.ext, c.picture.W, c.picture.H, c.size)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			image := spliceTestPicture(t, dir, c.class, c.picture, c.ext)
			job := Job{ID: "j", ImageType: media.PNG, Options: Options{Size: c.size}}
			if c.ext == "jpg" {
				job.ImageType = media.JPEG
			}
			still := filepath.Join(dir, "still.mkv")
			if err := rd.ffmpegRun(context.Background(), job.ID, 0, stillArgs(job, image, still, filepath.Join(dir, "poster.jpg"))...); err != nil {
				t.Fatal(err)
			}
			smooth, err := rd.smoothShare(context.Background(), job, still, dir, platformSizes[c.size])
			if err != nil {
				t.Fatal(err)
			}
			if got := smooth <= maxSmoothShare; got != c.splice {
				t.Errorf("smooth share %.3f (limit %.2f): splices %v, want %v", smooth, maxSmoothShare, got, c.splice)
			}
			t.Logf("%s: smooth share %.3f", name, smooth)
		})
	}
}

// TestE2EWaveformSplice renders 2 s waveforms at size=landscape through the service with
// splicing on. Over cover art (flat colour, boxes, text) the job splices: the log says so, no
// ffmpeg run encodes whole frames, the picture is fitted into the frame once, and the video is
// what every render makes (checkVideo), decodes without an error (-xerror), has the audio's
// frames to within one, and its band (the rows the band's encode covers) matches the full
// encode's of the same job to at least spliceBandPSNR in every frame. Over a gradient the gate
// refuses before any band is encoded (INFO, with the measure) and the job encodes every frame,
// fitting the picture once. With x264's picture keyframe in one slice, which h264.SpliceBand
// refuses, the job still completes, by the full encode from the same still, and the log says
// once, at WARN, why.
func TestE2EWaveformSplice(t *testing.T) {
	t.Parallel()
	f := platformSizes["landscape"]
	pictures := t.TempDir()
	cover, gradient := spliceTestPicture(t, pictures, "cover", f, "png"), spliceTestPicture(t, pictures, "gradient", f, "png")
	audio := fixture(t, "speech.wav")
	// render renders picture with the waveform, splicing or not, through a stand-in ffmpeg (see
	// spliceFFmpeg), and returns the video, the ffmpeg runs and the job's log lines.
	render := func(t *testing.T, picture string, splice, oneSlice bool) (video []byte, runs string, logs []string) {
		cfg := testConfig(t.TempDir())
		var runsFile string
		cfg.FFmpeg, runsFile = spliceFFmpeg(t, t.TempDir(), oneSlice)
		e := newTestEnv(t, &cfg, func(s *server) { s.renderer.spliceWaveforms = splice })
		key := e.newKey(t, "wave")
		code, body := e.submit(t, key, picture, audio, map[string]string{"size": "landscape", "waveform": "bars"})
		if code != 201 {
			t.Fatalf("submit: %d %v", code, body)
		}
		id := body["jobId"].(string)
		st := e.wait(t, key, id, StatusCompleted)
		video, _ = download(t, st["outputVideo"].(string))
		if p := checkVideo(t, video, audio); p.Width != f.W || p.Height != f.H {
			t.Errorf("%dx%d, want %dx%d", p.Width, p.Height, f.W, f.H)
		}
		b, err := os.ReadFile(runsFile)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), "-c:v ffv1"); n != 1 {
			t.Errorf("the picture was fitted into the frame %d times, want once; ffmpeg ran:\n%s", n, b)
		}
		for line := range strings.Lines(e.logs.String()) {
			if strings.Contains(line, "job="+id) && strings.Contains(line, "splice") {
				logs = append(logs, line)
			}
		}
		return video, string(b), logs
	}
	bandEncoded := func(runs string) bool { return strings.Contains(runs, "band.h264") }
	fullEncoded := func(runs string) bool { return strings.Contains(runs, "-map [v]") }

	t.Run("cover art splices", func(t *testing.T) {
		t.Parallel()
		video, runs, logs := render(t, cover, true, false)
		if !bandEncoded(runs) || fullEncoded(runs) || len(logs) != 1 || !strings.Contains(logs[0], "level=INFO") ||
			!strings.Contains(logs[0], "was spliced") {
			t.Fatalf("want the band spliced and one INFO line saying so; ffmpeg ran:\n%s\nlog: %q", runs, logs)
		}
		path := writeFixture(t, "spliced.mp4", video)
		if out, err := exec.Command("ffmpeg", "-v", "error", "-xerror", "-i", path, "-f", "null", "-").CombinedOutput(); err != nil {
			t.Errorf("decoding the spliced video: %v\n%s", err, out)
		}
		out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v",
			"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).Output()
		if err != nil {
			t.Fatal(err)
		}
		frames, want := strings.TrimSpace(string(out)), stillVideoFrames(mediaDuration(t, audio), 30)
		if n, err := strconv.Atoi(frames); err != nil || n < want-1 || n > want+1 {
			t.Errorf("%s frames, want %d within one", frames, want)
		}
		full, _, _ := render(t, cover, false, false)
		if psnr := bandPSNR(t, path, writeFixture(t, "full.mp4", full), f); psnr < spliceBandPSNR {
			t.Errorf("the spliced band's worst frame is %.1f dB from the full encode's, want at least %.0f", psnr, spliceBandPSNR)
		}
	})
	t.Run("a gradient encodes every frame", func(t *testing.T) {
		t.Parallel()
		_, runs, logs := render(t, gradient, true, false)
		if bandEncoded(runs) || !fullEncoded(runs) || len(logs) != 1 || !strings.Contains(logs[0], "level=INFO") ||
			!strings.Contains(logs[0], "too smooth") || !strings.Contains(logs[0], "smooth=") {
			t.Errorf("want no band encoded, the full encode and one INFO line with the measure; ffmpeg ran:\n%s\nlog: %q", runs, logs)
		}
	})
	t.Run("a picture in one slice falls back", func(t *testing.T) {
		t.Parallel()
		_, runs, logs := render(t, cover, true, true)
		if !bandEncoded(runs) || !fullEncoded(runs) || len(logs) != 1 || !strings.Contains(logs[0], "level=WARN") ||
			!strings.Contains(logs[0], "encoding every frame") || !strings.Contains(logs[0], "one I slice per row") {
			t.Errorf("want one WARN line saying the picture is not one slice per row and a full encode; ffmpeg ran:\n%s\nlog: %q", runs, logs)
		}
	})
}

// spliceBandPSNR is the least PSNR, in dB, of any frame's band in a spliced video against the full
// encode's (both x264 at CRF 19 from the same still): 53.3 dB measured over the cover art.
const spliceBandPSNR = 45.0

// bandPSNR is the PSNR of the worst frame of the band's rows (bandRows) of the video at a against
// the one at b, both of frame size f.
func bandPSNR(t testing.TB, a, b string, f frameSize) float64 {
	t.Helper()
	top, rows := bandRows(f)
	crop := fmt.Sprintf("crop=%d:%d:0:%d", f.W, rows, top)
	stats := filepath.Join(t.TempDir(), "psnr.log")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-i", a, "-i", b, "-lavfi",
		"[0:v]"+crop+"[a];[1:v]"+crop+"[b];[a][b]psnr=stats_file="+stats, "-f", "null", "-").CombinedOutput(); err != nil {
		t.Fatalf("psnr: %v\n%s", err, out)
	}
	b2, err := os.ReadFile(stats)
	if err != nil {
		t.Fatal(err)
	}
	worst := 1000.0
	for line := range strings.Lines(string(b2)) {
		for _, field := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(field, "psnr_avg:"); ok && v != "inf" {
				if p, err := strconv.ParseFloat(v, 64); err == nil {
					worst = min(worst, p)
				}
			}
		}
	}
	t.Logf("band PSNR, worst frame: %.2f dB", worst)
	return worst
}

// TestWorstPSNR: the least PSNR of any plane of any frame in the psnr filter's stats, where it is,
// and the frames counted; identical frames are +Inf, and a value that is no number never passes.
func TestWorstPSNR(t *testing.T) {
	t.Parallel()
	line := func(n int, y, u, v string) string {
		return fmt.Sprintf("n:%d mse_avg:0.00 mse_y:0.00 mse_u:0.00 mse_v:0.00 psnr_avg:inf psnr_y:%s psnr_u:%s psnr_v:%s \n", n, y, u, v)
	}
	for _, c := range []struct {
		stats        string
		worst        float64
		frame, count int
	}{
		{"", math.Inf(1), 0, 0},
		{line(1, "inf", "inf", "inf") + line(2, "inf", "inf", "inf"), math.Inf(1), 0, 2},
		{line(1, "inf", "inf", "inf") + line(2, "102.71", "inf", "inf") + line(3, "inf", "78.20", "inf"), 78.2, 2, 3},
		{line(1, "inf", "inf", "inf") + line(2, "nan", "inf", "inf"), math.Inf(-1), 1, 2},
	} {
		worst, frame, n := worstPSNR([]byte(c.stats))
		if worst != c.worst || frame != c.frame || n != c.count {
			t.Errorf("%q: %v dB at frame %d of %d, want %v at %d of %d", c.stats, worst, frame, n, c.worst, c.frame, c.count)
		}
	}
}

// TestE2EWaveformSpliceDrift: over a photo whose band's first rows drift by a code value (x264's
// motion vectors leave the band there), the job still splices rather than paying for the band and
// the full encode; and a damaged audio file met while the band is encoded ends the job with the
// audio's message, not a retry for a passing reason.
func TestE2EWaveformSpliceDrift(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	photo, audio := filepath.Join(dir, "photo.jpg"), filepath.Join(dir, "tone.m4a")
	for _, args := range [][]string{
		{"-f", "lavfi", "-i", "testsrc2=s=640x480", "-frames:v", "1", "-q:v", "3", photo},
		{"-f", "lavfi", "-i", "sine=f=300:d=3", "-c:a", "aac", audio},
	} {
		if out, err := exec.Command("ffmpeg", append([]string{"-v", "error", "-y"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	render := func(t *testing.T, out string, extra ...string) error {
		args := append([]string{"-image", photo, "-audio", audio, "-size", "x", "-waveform", "line", "-o", out, "-progress", "none"}, extra...)
		return runRender(t.Context(), args, io.Discard)
	}
	spliced, full := filepath.Join(dir, "spliced.mp4"), filepath.Join(dir, "full.mp4")
	if err := errors.Join(render(t, spliced), render(t, full, "-splice-waveforms=false")); err != nil {
		t.Fatal(err)
	}
	a, b := must(os.ReadFile(spliced))(t), must(os.ReadFile(full))(t)
	if bytes.Equal(a, b) {
		t.Error("the spliced job's video is the full encode's: it fell back over a drift of a code value")
	}
	if psnr := bandPSNR(t, spliced, full, platformSizes["x"]); psnr < spliceBandPSNR {
		t.Errorf("the spliced band's worst frame is %.1f dB from the full encode's, want at least %.0f", psnr, spliceBandPSNR)
	}

	// An ffmpeg that fails the audio's encode as a damaged file does.
	real, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(dir, "ffmpeg")
	script := fmt.Sprintf("#!/bin/sh\nfor a do case $a in *audio.aac) echo 'Error while decoding stream #0:0: Invalid data found when processing input' >&2; exit 1;; esac; done\nexec %q \"$@\"\n", real)
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	err = render(t, filepath.Join(dir, "damaged.mp4"), "-ffmpeg", fake)
	if err == nil || !strings.Contains(err.Error(), audioFailure) {
		t.Errorf("a damaged audio file: %v, want %q", err, audioFailure)
	}
}

// TestSpliceLongAudio: a waveform over more than maxSpliceSeconds of audio is not spliced (the
// splicer would hold its band's stream in memory), before anything runs.
func TestSpliceLongAudio(t *testing.T) {
	t.Parallel()
	rd := &renderer{spliceWaveforms: true, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	job := Job{ID: "j", AudioDuration: maxSpliceSeconds + 2, Options: Options{Size: "landscape", Waveform: "bars"}}
	// No still, no tools: anything past the length check would fail.
	if spliced, err := rd.spliceWaveform(t.Context(), sizeRender{job: job, dir: t.TempDir()}, "", "", platformSizes["landscape"], 10); spliced || err != nil {
		t.Errorf("spliced %v, %v; want the full encode", spliced, err)
	}
}
