package main

import (
	"io"
	"math"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestWaveformFrames renders a waveform in full (no splice) over 2 s of audio at 25 fps (the
// picture's own size) and at 30 fps (x), and counts the frames: the video ends within half a frame
// of its audio. showwaves' frames hold a whole number of samples a column, so its last frame could
// start before the video's last and end the video early: "bars" over 44.1 kHz at 25 fps gave 49
// frames for 50, "line" over 8 kHz at 30 fps 58 for 60.
func TestWaveformFrames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	photo := filepath.Join(dir, "photo.jpg")
	inputs := [][]string{{"-f", "lavfi", "-i", "testsrc2=s=320x240", "-frames:v", "1", "-q:v", "3", photo}}
	for name, args := range map[string][]string{
		"44k.wav": {"-f", "lavfi", "-i", "sine=f=440:r=44100:d=2"},
		"44k.mp3": {"-f", "lavfi", "-i", "sine=f=440:r=44100:d=2", "-c:a", "libmp3lame", "-b:a", "128k"},
		"8k.wav":  {"-f", "lavfi", "-i", "sine=f=440:r=8000:d=2"},
	} {
		inputs = append(inputs, append(args, filepath.Join(dir, name)))
	}
	for _, args := range inputs {
		ffmpegMake(t, args...)
	}
	// The fast suite renders the first and the seventh: bars over 44.1 kHz at 25 fps and line over
	// 8 kHz at 30 fps, which came out short.
	cases := []struct{ waveform, audio, size string }{
		{"bars", "44k.wav", sizeOriginal}, {"line", "44k.wav", sizeOriginal},
		{"bars", "44k.mp3", sizeOriginal}, {"line", "44k.mp3", sizeOriginal},
		{"bars", "8k.wav", sizeOriginal}, {"line", "8k.wav", sizeOriginal},
		{"line", "8k.wav", "x"}, {"bars", "8k.wav", "x"},
		{"bars", "44k.wav", "x"}, {"line", "44k.wav", "x"},
		{"bars", "44k.mp3", "x"}, {"line", "44k.mp3", "x"},
	}
	for _, c := range sampled(cases, 6) {
		t.Run(c.waveform+"/"+c.audio+"/"+c.size, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "out.mp4")
			args := []string{"-image", photo, "-audio", filepath.Join(dir, c.audio), "-size", c.size, "-waveform", c.waveform,
				"-splice-waveforms=false", "-o", out, "-progress", "none"}
			if err := runRender(t.Context(), args, io.Discard); err != nil {
				t.Fatal(err)
			}
			fps := 30.0
			if c.size == sizeOriginal {
				fps = 25
			}
			v, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
				"stream=nb_read_frames", "-of", "csv=p=0", out).Output()
			if err != nil {
				t.Fatal(err)
			}
			a, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=duration", "-of", "csv=p=0", out).Output()
			if err != nil {
				t.Fatal(err)
			}
			frames, err1 := strconv.Atoi(strings.TrimSpace(string(v)))
			seconds, err2 := strconv.ParseFloat(strings.TrimSpace(string(a)), 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("ffprobe: %q frames, %q s of audio", v, a)
			}
			if want := int(math.Round(seconds * fps)); frames != want {
				t.Errorf("%d frames (%.3f s) over %.3f s of audio, want %d", frames, float64(frames)/fps, seconds, want)
			}
		})
	}
}
