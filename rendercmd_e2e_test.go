//go:build e2e

package main

import (
	"bufio"
	"bytes"
	"errors"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runRenderCLI runs `vidgen render args…` in dir and returns its exit code and standard error.
func runRenderCLI(t testing.TB, dir string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(vidgenBinary(t), append([]string{"render"}, args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("vidgen render: %v", err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// TestE2ERenderCommand renders one video with the command, captions and a platform size included,
// and checks it plays as the API's do, that the poster is written when asked, that progress goes to
// a pipe as lines, and that nothing is left beside the output.
func TestE2ERenderCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srt := writeFixture(t, "ep.srt", []byte("1\n00:00:00,200 --> 00:00:02,000\nHello & welcome\n"))
	code, stderr := runRenderCLI(t, dir, "-image", fixture(t, "img.jpg"), "-audio", fixture(t, "tone.mp3"), "-captions", srt,
		"-size", "square", "-waveform", "bars", "-poster", "poster.jpg", "-o", "ep.mp4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	p := checkVideo(t, readFile(t, filepath.Join(dir, "ep.mp4")), fixture(t, "tone.mp3"))
	if p.Width != 1080 || p.Height != 1080 {
		t.Errorf("video %dx%d, want square 1080x1080", p.Width, p.Height)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(readFile(t, filepath.Join(dir, "poster.jpg"))))
	if err != nil || cfg.Width != 1080 || cfg.Height != 1080 {
		t.Errorf("poster: %+v, %v; want a 1080x1080 JPEG", cfg, err)
	}
	if !strings.Contains(stderr, "progress 100%\n") || strings.Contains(stderr, "\r") {
		t.Errorf("progress on a pipe should be plain lines ending at 100%%:\n%q", stderr)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("left in the output's directory: %v, want ep.mp4 and poster.jpg only", entries)
	}
}

// TestE2ERenderCommandOptions: the API's newer options reach the render as flags of the same name
// (a size, a loudness target), and the status's warnings are printed: 141 s at X's size.
func TestE2ERenderCommandOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	audio := filepath.Join(dir, "long.mp3")
	ffmpegMake(t, "-f", "lavfi", "-i", "sine=f=440:d=141", "-af", "volume=-20dB", "-c:a", "libmp3lame", "-b:a", "64k", audio)
	code, stderr := runRenderCLI(t, dir, "-image", fixture(t, "img.png"), "-audio", audio, "-size", "x", "-loudness", "-16", "-o", "x.mp4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	p := ffprobe(t, filepath.Join(dir, "x.mp4"))
	if p.Width != 1280 || p.Height != 720 {
		t.Errorf("video %dx%d, want X's 1280x720", p.Width, p.Height)
	}
	if got, _ := ebur128Summary(t, filepath.Join(dir, "x.mp4")); got < -16.5 || got > -15.5 {
		t.Errorf("loudness %.1f LUFS, want -16 ± 0.5", got)
	}
	if !strings.Contains(stderr, "vidgen: warning: The video lasts 0:02:21") || !strings.Contains(stderr, "X takes at most 2 minutes 20 seconds") {
		t.Errorf("no warning of X's limit in:\n%s", stderr)
	}
}

// TestE2ERenderCommandRefuses checks that each mistake ends with its exit code and, for a refused
// input, the very message the API gives the same files and options.
func TestE2ERenderCommandRefuses(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	key := e.newKey(t, "cli")
	img, audio := fixture(t, "img.png"), fixture(t, "tone.wav")
	for _, c := range []struct {
		name         string
		image, audio string
		fields       map[string]string
		code         int
		api          int // the API's status for the same request, 0 when it has no equivalent
		msg          string
	}{
		{"image is audio", audio, audio, nil, exitBadInput, 415, ""},
		{"audio is image", img, img, nil, exitBadInput, 415, ""},
		{"unknown size", img, audio, map[string]string{"size": "huge"}, exitBadInput, 400, ""},
		{"bad colour", img, audio, map[string]string{"waveformColor": "crimson"}, exitBadInput, 400, ""},
		{"missing file", "nope.png", audio, nil, exitBadInput, 0, "-image nope.png: no such file or directory"},
		{"missing -audio", img, "", nil, exitUsage, 0, "-audio is missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"-image", c.image, "-o", "out.mp4"}
			if c.audio != "" {
				args = append(args, "-audio", c.audio)
			}
			for k, v := range c.fields {
				args = append(args, "-"+k, v)
			}
			code, stderr := runRenderCLI(t, dir, args...)
			if code != c.code {
				t.Errorf("exit %d, want %d: %s", code, c.code, stderr)
			}
			want := c.msg
			if c.api != 0 {
				status, body := e.submit(t, key, c.image, c.audio, c.fields)
				if status != c.api {
					t.Fatalf("API answered %d, want %d: %v", status, c.api, body)
				}
				want = body["error"].(string)
			}
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr %q does not give %q", stderr, want)
			}
			if _, err := os.Stat(filepath.Join(dir, "out.mp4")); err == nil {
				t.Error("a refused render wrote its output")
			}
		})
	}
}

// TestE2ERenderCommandInterrupted sends SIGINT during a render and checks the command stops with
// exitInterrupted, leaving neither the output nor its scratch directory.
func TestE2ERenderCommandInterrupted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(vidgenBinary(t), "render", "-image", fixture(t, "img.jpg"), "-audio", fixture(t, "long.wav"),
		"-size", "landscape", "-waveform", "line", "-o", "out.mp4")
	cmd.Dir = dir
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The moving render of 30 s at 1080p takes several seconds: interrupt it once it is encoding.
	lines := bufio.NewScanner(pipe)
	var seen []string
	for lines.Scan() {
		seen = append(seen, lines.Text())
		if l := lines.Text(); strings.HasPrefix(l, "progress ") && l != "progress 0%" && l != "progress 2%" {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		seen = append(seen, lines.Text())
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatal("vidgen render did not stop within a minute of SIGINT")
	}
	if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, exitInterrupted, strings.Join(seen, "\n"))
	}
	if !strings.Contains(strings.Join(seen, "\n"), "interrupted") {
		t.Errorf("no word of the interruption on stderr:\n%s", strings.Join(seen, "\n"))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left behind after SIGINT: %v", entries)
	}
}
