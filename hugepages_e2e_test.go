//go:build e2e

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EChildrenWithoutHugePages: every ffmpeg that `vidgen serve` and `vidgen render` start runs
// with transparent huge pages off (its /proc status says THP_enabled: 0), so x264 does not pay for
// zeroing 2 MB pages it asks for (noHugePagesForChildren).
func TestE2EChildrenWithoutHugePages(t *testing.T) {
	t.Parallel()
	own, err := os.ReadFile("/proc/self/status")
	if err != nil || !bytes.Contains(own, []byte("THP_enabled:")) {
		t.Skip("this kernel does not report THP_enabled in /proc/PID/status")
	}
	if !bytes.Contains(own, []byte("THP_enabled:\t1")) {
		t.Skip("huge pages are off for this test already: a child would say 0 whatever vidgen does")
	}
	// thpLines runs the job's ffmpegs through a stand-in that records what each one's status says.
	thpLines := func(t testing.TB, dir string) (ffmpeg, record string) {
		record = filepath.Join(dir, "thp")
		return wrappedFFmpeg(t, dir, fmt.Sprintf("grep THP_enabled /proc/self/status >>%q", record)), record
	}
	check := func(t testing.TB, record string) {
		t.Helper()
		lines := strings.Fields(strings.ReplaceAll(string(readFile(t, record)), "THP_enabled:", ""))
		if len(lines) < 2 {
			t.Fatalf("the stand-in ffmpeg recorded %d runs, want the checks and the render's: %q", len(lines), lines)
		}
		for i, v := range lines {
			if v != "0" {
				t.Errorf("ffmpeg run %d of %d had THP_enabled %s, want 0", i+1, len(lines), v)
			}
		}
	}

	t.Run("serve", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		ffmpeg, record := thpLines(t, t.TempDir())
		k := createKeyCLI(t, dir, "x")
		p := startVidgen(t, dir, ffmpeg, nil)
		p.waitStatus(t, k.APIKey, p.submit(t, k.APIKey), StatusCompleted)
		check(t, record)
	})
	t.Run("render", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		ffmpeg, record := thpLines(t, t.TempDir())
		code, stderr := runRenderCLI(t, dir, "-image", fixture(t, "img.jpg"), "-audio", fixture(t, "tone.mp3"),
			"-ffmpeg", ffmpeg, "-o", "v.mp4")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		check(t, record)
	})
}
