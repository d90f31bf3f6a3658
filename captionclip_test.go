package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"vidgen/internal/captions"
	"vidgen/internal/media"
)

// TestCaptionShots checks how a captioned still's frames are cut into shots: where a cue starts or
// ends (at the first frame whose time reaches the cue's, in the script's whole centiseconds) and
// where a keyframe interval does, a cue that covers no frame changing nothing, cues back to back
// and overlapping.
func TestCaptionShots(t *testing.T) {
	t.Parallel()
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	cues := []captions.Cue{
		{Start: ms(300), End: ms(909), Text: "a"},  // frames 8 (320 ms) to 22 (880 ms): 909 is 900 in the script
		{Start: ms(900), End: ms(1500), Text: "b"}, // frames 23 to 37, back to back with a
		{Start: ms(1400), End: ms(2600), Text: "c"},
		{Start: ms(1010), End: ms(1030), Text: "d"}, // between frames 25 (1000 ms) and 26 (1040 ms): never drawn
	}
	got := captionShots(cues, 80, 25, 50)
	want := []captionShot{
		{start: 0, frames: 8, cues: nil, key: true},
		{start: 8, frames: 15, cues: []int{0}},
		{start: 23, frames: 12, cues: []int{1}},
		{start: 35, frames: 3, cues: []int{1, 2}},
		{start: 38, frames: 12, cues: []int{2}},
		{start: 50, frames: 15, cues: []int{2}, key: true},
		{start: 65, frames: 15, cues: nil},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("shots\n%+v\nwant\n%+v", got, want)
	}
	// Each shot's cues are drawn on its frame of the shots' stream and on no other.
	script := shotCues(cues, got, 25)
	for j := range got {
		at := ms(j * 40)
		var on []string
		for _, c := range script {
			if c.Start/(10*time.Millisecond)*10*time.Millisecond <= at && at < c.End {
				on = append(on, c.Text)
			}
		}
		var wantOn []string
		for _, i := range got[j].cues {
			wantOn = append(wantOn, cues[i].Text)
		}
		if fmt.Sprint(on) != fmt.Sprint(wantOn) {
			t.Errorf("frame %d of the shots' stream draws %v, want %v", j, on, wantOn)
		}
	}
}

// TestCaptionStill renders captioned stills on both still paths (the audio encoded, and copied) at
// the picture's own size and at a platform size, where one ffmpeg makes the picture with the shots
// (no lossless still first: originalFrame gives the frame's size); and the same jobs by encoding every frame (the fallback, forced
// as TestStillClipFallback forces it, which the log names). The fast video has the output every
// render has; the caption rows of each frame differ from the uncaptioned picture exactly on the
// frames the cues cover (the first frame at or after a cue's start to the last before its end);
// and each frame is the one the full encode made, within the encoder's noise.
func TestCaptionStill(t *testing.T) {
	t.Parallel()
	srt := writeFixture(t, "edges.srt", []byte("1\n00:00:00,300 --> 00:00:00,900\nFirst\n\n"+
		"2\n00:00:00,900 --> 00:00:01,500\nSecond, back to back\n\n3\n00:00:01,700 --> 00:00:02,200\nThird\n"))
	cues, err := captions.Parse(readFile(t, srt))
	if err != nil {
		t.Fatal(err)
	}
	fastCfg := testConfig(t.TempDir())
	var stillRuns string
	fastCfg.FFmpeg, stillRuns = countingFFmpegOf(t, t.TempDir(), "-c:v ffv1")
	fast := newTestEnv(t, &fastCfg)
	t.Cleanup(func() {
		if b, err := os.ReadFile(stillRuns); err == nil && len(b) > 0 {
			t.Errorf("the captioned stills made the lossless still %d times, want none: one ffmpeg makes picture and shots", len(b))
		}
	})
	cfg := testConfig(t.TempDir())
	cfg.FFmpeg = refusedClipFFmpeg(t, t.TempDir())
	full := newTestEnv(t, &cfg)
	for _, c := range sampled([]struct {
		audio, size string
		w, h, fps   int
		scale       int // the frames are compared this many times smaller
	}{
		{"tone.mp3", sizeOriginal, 320, 240, 25, 1},
		{"tone.m4a", "portrait", 1080, 1920, 30, 4}, // make e2e only (sampled): its full encode costs seconds
		{"tone.m4a", sizeOriginal, 320, 240, 25, 1},
	}, 2) {
		t.Run(c.audio+"/"+c.size, func(t *testing.T) {
			t.Parallel()
			videos := map[*testEnv]string{}
			for _, e := range []*testEnv{fast, full} {
				key := e.newKey(t, c.audio+c.size)
				body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, c.audio), "captions": srt},
					map[string]string{"size": c.size})
				resp, b := e.do(t, "POST", "/api/jobs", key, body, "Content-Type", ctype)
				if resp.StatusCode != 201 {
					t.Fatalf("submit: %d %s", resp.StatusCode, b)
				}
				id := decodeJSON(t, resp, b)["jobId"].(string)
				st := e.wait(t, key, id, StatusCompleted)
				video, _ := download(t, st["outputVideo"].(string))
				p := checkVideo(t, video, fixture(t, c.audio))
				if p.Width != c.w || p.Height != c.h {
					t.Errorf("%dx%d, want %dx%d", p.Width, p.Height, c.w, c.h)
				}
				checkPoster(t, st["outputThumbnail"].(string), c.w, c.h)
				videos[e] = writeFixture(t, fmt.Sprintf("%p.mp4", e), video)
				warned := strings.Contains(e.logs.String(), "job="+id) && strings.Contains(e.logs.String(), "encoding every frame")
				if warned != (e == full) {
					t.Errorf("the log says the job %s was encoded frame by frame: %v, want %v", id, warned, e == full)
				}
			}
			w, h := c.w/c.scale, c.h/c.scale
			got, want := rgbFrames(t, videos[fast], w, h), rgbFrames(t, videos[full], w, h)
			// The full encode rounds the frames to the audio's length, the still path keeps those that
			// start within it (stillVideoFrames): they may differ by one.
			if d := len(got) - len(want); float64(len(got)) < 2.4*float64(c.fps) || d < -1 || d > 1 {
				t.Fatalf("%d frames, the full encode %d; want %d fps for 2.5 s", len(got), len(want), c.fps)
			}
			box := captionLayout(frameSize{c.w, c.h}, Options{Size: c.size})
			top, bottom := (c.h-box.MarginV-2*box.FontSize)/c.scale, (c.h-box.MarginV+box.FontSize/2)/c.scale
			for k := range got {
				on := false
				for _, cue := range cues {
					on = on || cueFrame(cue.Start, c.fps) <= k && k < cueFrame(cue.End, c.fps)
				}
				at := float64(k) / float64(c.fps)
				drawn := frameDiff(got[0], got[k], w, top, bottom)
				if drawn > 100 != on {
					t.Errorf("frame %d (%.2f s): %d pixels of the caption rows changed, want a caption drawn: %v", k, at, drawn, on)
				}
				// A caption missing or misplaced differs in about every pixel it draws; the encoders'
				// noise, measured, in up to 3% of them (near the outline's edges).
				if n := frameDiff(got[k], want[min(k, len(want)-1)], w, 0, h); n > 20+drawn/10 {
					t.Errorf("frame %d (%.2f s): %d pixels differ from the full encode's frame", k, at, n)
				}
			}
		})
	}
}

// rgbFrames decodes every video frame of the MP4 at path to RGB, scaled to w by h.
func rgbFrames(t testing.TB, path string, w, h int) [][]byte {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-xerror", "-i", path, "-map", "0:v:0", "-s", fmt.Sprintf("%dx%d", w, h),
		"-f", "rawvideo", "-pix_fmt", "rgb24", "-").Output()
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	var frames [][]byte
	for size := w * h * 3; len(out) >= size; out = out[size:] {
		frames = append(frames, out[:size])
	}
	return frames
}

// TestOriginalFrame: the frame size pictureGraph makes of an image at its own size, from its
// header: even, at least 2, shrunk to fit maxSide; a header that does not read gives none.
func TestOriginalFrame(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		w, h int
		want frameSize
	}{{1001, 777, frameSize{1000, 776}}, {4000, 3000, frameSize{1920, 1440}}, {777, 4001, frameSize{372, 1920}}, {3, 3, frameSize{2, 2}}} {
		path := filepath.Join(dir, fmt.Sprintf("%dx%d.png", c.w, c.h))
		if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", fmt.Sprintf("color=c=red:s=%dx%d", c.w, c.h),
			"-frames:v", "1", path).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got, ok := originalFrame(path, media.PNG); !ok || got != c.want {
			t.Errorf("%dx%d: %v %v, want %v", c.w, c.h, got, ok, c.want)
		}
	}
	if _, ok := originalFrame(writeFixture(t, "junk.png", []byte("not a png")), media.PNG); ok {
		t.Error("a header that does not read gave a frame size")
	}
}
