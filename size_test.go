//go:build e2e

package main

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"vidgen/internal/media"
)

// TestE2EOutputSize renders a detailed (noisy) 1080p photo over 25 s of audio and checks what makes the
// output small: a keyframe every 10 s and no more (each keyframe of such a photo weighs ~1 MB), and
// that estimateOutputSize, given the clip, predicts the video's size within 10%. The comparison with
// the tutorial command's output (0.71x on this kind of photo) is bench/render.sh's: that command
// takes a minute of CPU. It costs 9 s of CPU itself, so it runs under make e2e.
func TestE2EOutputSize(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	dir := t.TempDir()
	photo := noisyPhoto(t, dir, 35)
	audio := filepath.Join(dir, "speech.wav")
	ffmpegMake(t, "-f", "lavfi", "-i", "anoisesrc=c=pink:r=44100:a=0.1:d=25:seed=2", "-ac", "1", audio)

	key := e.newKey(t, "size")
	id := e.mustSubmit(t, key, photo, audio)
	st := e.wait(t, key, id, StatusCompleted)
	video, _ := download(t, st["outputVideo"].(string))
	out := writeFixture(t, "out.mp4", video)
	checkVideo(t, video, audio)

	keys := keyframeTimes(t, out)
	if len(keys) != 3 {
		t.Errorf("keyframes at %v, want 3 (every 10 s of 25 s)", keys)
	}
	for i := 1; i < len(keys); i++ {
		if gap := keys[i] - keys[i-1]; gap < 9.9 || gap > 10.1 {
			t.Errorf("keyframes %.2f s apart, want 10 s: %v", gap, keys)
		}
	}

	// The clip as step 1 makes it, to feed the estimate.
	stream, poster := filepath.Join(dir, "clip.h264"), filepath.Join(dir, "poster.jpg")
	job := Job{ImageType: media.JPEG}
	args := append([]string{"-nostdin", "-v", "error", "-y", "-protocol_whitelist", "file"}, clipArgs(job, photo, stream, poster)...)
	if msg, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("clip: %v: %s", err, msg)
	}
	b, err := os.ReadFile(stream)
	if err != nil {
		t.Fatal(err)
	}
	clip, err := newStillClip(b, clipFrameCount(job), job.Options.fps())
	if err != nil {
		t.Fatal(err)
	}
	est := estimateOutputSize(clip.Size(), clipFrames/clipFPS, 25, 192000)
	if r := float64(len(video)) / float64(est); math.Abs(r-1) > 0.1 {
		t.Errorf("output %d bytes, estimate %d (clip %d bytes): off by %.0f%%", len(video), est, clip.Size(), (r-1)*100)
	}
	t.Logf("output %d bytes, estimate %d, clip %d", len(video), est, clip.Size())
}

// keyframeTimes lists the times of the video keyframes of the MP4 at path.
func keyframeTimes(t testing.TB, path string) []float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var keys []float64
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, ",")
		if len(f) >= 2 && strings.Contains(f[1], "K") {
			v, _ := strconv.ParseFloat(f[0], 64)
			keys = append(keys, v)
		}
	}
	return keys
}
