package ffmpeg

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestRenderInvalid: a render whose filters ask for a frame size ffmpeg refuses fails as Invalid,
// also under a memory limit, where the scaler's "Cannot allocate memory" for that size once read
// as OutOfMemory (a 0-pixel frame, which ffmpeg only refuses when it converts: the RGB here); a render that fails for its input stays Failed.
func TestRenderInvalid(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("no ffmpeg")
	}
	for _, c := range []struct {
		name string
		args []string
		want Reason
	}{
		{"too tall", []string{"-f", "lavfi", "-i", "color=s=2x1920:d=0.04", "-vf", "scale=1920:1080:force_original_aspect_ratio=increase", "-f", "null", "-"}, Invalid},
		{"0 wide", []string{"-f", "lavfi", "-i", "color=s=2x1920:d=0.04", "-vf", "format=rgb24,scale=1920:1080:force_original_aspect_ratio=decrease:force_divisible_by=2", "-f", "null", "-"}, Invalid},
		{"missing input", []string{"-i", "file:/nonexistent.png", "-f", "null", "-"}, Failed},
	} {
		for _, memory := range []int64{0, 3 << 30} {
			err := Tools{FFmpeg: "ffmpeg", Memory: memory}.Render(t.Context(), nil, c.args...)
			if e := (*Error)(nil); !errors.As(err, &e) || e.Reason != c.want {
				t.Errorf("%s under %d bytes: %v, want reason %d", c.name, memory, err, c.want)
			}
		}
	}
	for log, want := range map[string]bool{
		"[IMGUTILS @ 0x7ffd] Picture size 1920x1843200 is invalid\n":                              true,
		"[swscaler @ 0x558] Value 0.000000 for parameter 'dstw' out of range [1 - 2.14748e+09]\n": true,
		"Error while filtering: Cannot allocate memory\n":                                         false,
		"Picture size\nis invalid\n":                                                              false,
	} {
		if got := InvalidLog([]byte(log)); got != want {
			t.Errorf("InvalidLog(%q) = %v, want %v", log, got, want)
		}
	}
}

// TestKilledAfterInvalidLog: an ffmpeg killed by a signal is Killed, even when its log already
// held a line that reads as a refused frame size: the signal, not the arguments, ended it.
func TestKilledAfterInvalidLog(t *testing.T) {
	t.Parallel()
	fake := filepath.Join(t.TempDir(), "ffmpeg")
	script := "#!/bin/sh\necho '[IMGUTILS @ 0x1] Picture size 1920x1843200 is invalid' >&2\nkill -9 $$\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	err := Tools{FFmpeg: fake}.Render(t.Context(), nil, "-f", "null", "-")
	if e := (*Error)(nil); !errors.As(err, &e) || e.Reason != Killed {
		t.Errorf("%v, want reason Killed", err)
	}
}
