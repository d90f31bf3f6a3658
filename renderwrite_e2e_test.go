//go:build e2e

package main

import (
	"bytes"
	"fmt"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestE2ERenderPosterReplaced: vidgen render replaces a poster already at -poster as it does a
// video, by a new file moved over it whole, so -poster holds the old poster or the new one, never
// part of one (a full disk, a kill mid-write). A hard link to the old poster keeps it: the file
// was not rewritten in place. When the new one cannot be put there (its directory turned
// immutable during the render) the old poster is left whole, the exit is 4 naming the poster and
// not the render's own files, and nothing of the render's is left beside it.
func TestE2ERenderPosterReplaced(t *testing.T) {
	t.Parallel()
	old := []byte("last week's poster")
	args := []string{"-image", fixture(t, "img.jpg"), "-audio", fixture(t, "tone.wav"), "-progress", "none", "-o", "out.mp4"}
	t.Run("replaced", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "p.jpg"), old, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(dir, "p.jpg"), filepath.Join(dir, "keep.jpg")); err != nil {
			t.Fatal(err)
		}
		code, stderr := runRenderCLI(t, dir, append(args, "-poster", "p.jpg")...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if _, err := jpeg.DecodeConfig(bytes.NewReader(readFile(t, filepath.Join(dir, "p.jpg")))); err != nil {
			t.Errorf("p.jpg is not the new poster: %v", err)
		}
		if got := readFile(t, filepath.Join(dir, "keep.jpg")); !bytes.Equal(got, old) {
			t.Errorf("the old poster was rewritten in place: its other link holds %d bytes, not %q", len(got), old)
		}
		if got, want := dirListing(t, dir), []string{"keep.jpg", "out.mp4", "p.jpg"}; !slices.Equal(got, want) {
			t.Errorf("left in the directory: %v, want %v", got, want)
		}
	})
	t.Run("not replaced", func(t *testing.T) {
		makeImmutable(t, t.TempDir()) // skips where no directory can be made immutable
		chattr, err := exec.LookPath("chattr")
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		posters := filepath.Join(dir, "posters")
		if err := os.Mkdir(posters, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(posters, "p.jpg"), old, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { exec.Command(chattr, "-i", posters).Run() })
		ffmpeg := wrappedFFmpeg(t, t.TempDir(), fmt.Sprintf("%q +i %q", chattr, posters))
		code, stderr := runRenderCLI(t, dir, append(args, "-ffmpeg", ffmpeg, "-poster", "posters/p.jpg")...)
		if code != exitRenderFail {
			t.Fatalf("exit %d, want %d: %s", code, exitRenderFail, stderr)
		}
		want := "render: could not write posters/p.jpg: operation not permitted; written before it: out.mp4"
		if !strings.Contains(stderr, want) || strings.Contains(stderr, ".vidgen-") {
			t.Errorf("stderr does not say %q, or names the render's own files:\n%s", want, stderr)
		}
		if got := readFile(t, filepath.Join(posters, "p.jpg")); !bytes.Equal(got, old) {
			t.Errorf("the old poster holds %d bytes, not %q", len(got), old)
		}
		if got := dirListing(t, posters); !slices.Equal(got, []string{"p.jpg"}) {
			t.Errorf("left beside the poster: %v", got)
		}
	})
}
