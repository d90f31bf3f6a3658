//go:build e2e

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// renderLogLines are the lines of `vidgen render`'s stderr that come from the renderer's log (or
// the status's warnings): every "vidgen: " line but the one naming the file written.
func renderLogLines(stderr string) []string {
	var lines []string
	for _, row := range terminalRows(stderr) {
		// From where it starts on its row: a line drawn into a bar is still found (and refused
		// by the check of the rows).
		if i := strings.Index(row, "vidgen: "); i >= 0 && !strings.HasPrefix(row[i:], "vidgen: wrote ") {
			lines = append(lines, row[i:])
		}
	}
	return lines
}

// checkRenderLogLine fails unless lines is one line beginning with prefix and holding each of
// also, a line for a person: no slog key=value pairs, no JSON, no job ID.
func checkRenderLogLine(t testing.TB, lines []string, prefix string, also ...string) {
	t.Helper()
	if len(lines) != 1 || !strings.HasPrefix(lines[0], prefix) {
		t.Fatalf("log lines %q, want one beginning %q", lines, prefix)
	}
	for _, s := range also {
		if !strings.Contains(lines[0], s) {
			t.Errorf("%q does not say %q", lines[0], s)
		}
	}
	for _, s := range []string{"level=", "msg=", "job", "trace", "=", "{"} {
		if strings.Contains(lines[0], s) {
			t.Errorf("%q holds %q: not a line for a person", lines[0], s)
		}
	}
}

// TestE2ERenderLogFallbacks: when a render falls back to the full encode, `vidgen render` says so on
// stderr as the server's log would, as a short warning with the reason: a still clip the clip writer
// refuses (printed among progress lines), and a waveform's band that cannot be spliced (printed
// while a bar is drawn: the bar cleared off the warning's row and drawn again below it, every row
// of the terminal a bar or a line of its own). The video is made and the exit code is 0.
func TestE2ERenderLogFallbacks(t *testing.T) {
	t.Parallel()
	t.Run("still clip", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		code, stderr := runRenderCLI(t, dir, "-image", fixture(t, "img.png"), "-audio", fixture(t, "tone.mp3"),
			"-ffmpeg", refusedClipFFmpeg(t, t.TempDir()), "-o", "out.mp4")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		checkVideo(t, readFile(t, filepath.Join(dir, "out.mp4")), fixture(t, "tone.mp3"))
		checkRenderLogLine(t, renderLogLines(stderr), "vidgen: warning: the still clip writer cannot extend x264's stream, encoding every frame", "interlaced")
		if !strings.Contains(stderr, "progress 100%\n") || strings.Contains(stderr, "\r") {
			t.Errorf("progress on a pipe should stay plain lines ending at 100%%:\n%q", stderr)
		}
	})
	t.Run("waveform splice, under a bar", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		ffmpeg, _ := spliceFFmpeg(t, t.TempDir(), true)
		picture := spliceTestPicture(t, t.TempDir(), "flat", platformSizes["landscape"], "png")
		code, stderr := runRenderCLI(t, dir, "-image", picture, "-audio", fixture(t, "tone.mp3"), "-size", "landscape",
			"-waveform", "bars", "-ffmpeg", ffmpeg, "-progress", "bar", "-o", "out.mp4")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		checkVideo(t, readFile(t, filepath.Join(dir, "out.mp4")), fixture(t, "tone.mp3"))
		lines := renderLogLines(stderr)
		checkRenderLogLine(t, lines, "vidgen: warning: the waveform's band cannot be spliced into the picture, encoding every frame",
			"one I slice per row", "(smooth 0.")
		rows := terminalRows(stderr)
		i := slices.Index(rows, lines[0])
		if i < 0 || i+1 >= len(rows) || !strings.HasPrefix(rows[i+1], "[") {
			t.Errorf("the bar was not drawn again below the warning; the terminal shows:\n%s", strings.Join(rows, "\n"))
		}
		bar := regexp.MustCompile(`^\[[#.]{30}\] +\d+%(  \d+:\d\d:\d\d left)?$`)
		for _, row := range rows {
			if !bar.MatchString(row) && (!strings.HasPrefix(row, "vidgen: ") || strings.Contains(row, "%")) {
				t.Errorf("the terminal shows %q: a bar and a line drawn into each other", row)
			}
		}
		if !strings.Contains(rows[len(rows)-2], "] 100%") {
			t.Errorf("the bar did not end at 100%% above the written line; the terminal shows:\n%s", strings.Join(rows, "\n"))
		}
	})
}

// TestE2ERenderLogVerbose: with -v, `vidgen render` says that a waveform's band was spliced (the
// renderer's INFO line, as the server logs it); without -v it prints no INFO line, only the file
// written. Both make the same video.
func TestE2ERenderLogVerbose(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	picture := spliceTestPicture(t, t.TempDir(), "flat", platformSizes["landscape"], "png")
	args := []string{"-image", picture, "-audio", fixture(t, "tone.mp3"), "-size", "landscape", "-waveform", "bars"}
	code, stderr := runRenderCLI(t, dir, append(args, "-v", "-o", "verbose.mp4")...)
	if code != 0 {
		t.Fatalf("-v: exit %d: %s", code, stderr)
	}
	checkRenderLogLine(t, renderLogLines(stderr), "vidgen: the waveform's band was spliced into the picture", "(smooth 0.")
	code, stderr = runRenderCLI(t, dir, append(args, "-o", "quiet.mp4")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if lines := renderLogLines(stderr); len(lines) != 0 || strings.Contains(stderr, "spliced") {
		t.Errorf("without -v, the renderer's INFO lines were printed: %q", lines)
	}
	if a, b := readFile(t, filepath.Join(dir, "verbose.mp4")), readFile(t, filepath.Join(dir, "quiet.mp4")); len(a) == 0 || string(a) != string(b) {
		t.Errorf("-v changed the video: %d bytes, %d without", len(a), len(b))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("left in the output's directory: %v, want the two videos", entries)
	}
}
