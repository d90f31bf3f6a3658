//go:build e2e

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestE2ERenderSizesPaths: with -sizes, every file vidgen render would write (each size's video
// and poster, the further ones named OUT.SIZE.mp4 and POSTER.SIZE.jpg) is checked before the
// render as -o and -poster are: one that is another one, an input, or a directory is a usage error
// (exit 2) naming the path, and nothing is written nor changed.
func TestE2ERenderSizesPaths(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		setup func(t testing.TB, dir string) // makes what is in the way, beside img.jpg and a.wav
		args  []string
		want  []string // in the message, besides exit 2
	}{
		{"-poster is the x video", nil,
			[]string{"-sizes", "square,x", "-o", "c.mp4", "-poster", "c.x.mp4"},
			[]string{"-poster c.x.mp4 is where -sizes writes the x video"}},
		{"-poster is the square video, -o named for a size", nil,
			[]string{"-sizes", "x,square", "-o", "q.square.mp4", "-poster", "q.square.square.mp4"},
			[]string{"-poster q.square.square.mp4 is where -sizes writes the square video"}},
		{"the x poster is the image", func(t testing.TB, dir string) {
			if err := os.Link(filepath.Join(dir, "img.jpg"), filepath.Join(dir, "p.x.jpg")); err != nil {
				t.Fatal(err)
			}
		}, []string{"-sizes", "square,x", "-o", "c.mp4", "-poster", "p.jpg"},
			[]string{"p.x.jpg, where -sizes writes the x poster", "is the -image file"}},
		{"a directory at the x video", mkdirs("blk.x.mp4"),
			[]string{"-sizes", "square,x", "-o", "blk.mp4"},
			[]string{"blk.x.mp4, where -sizes writes the x video", "is a directory"}},
		{"a directory at the portrait poster", mkdirs("p.portrait.jpg"),
			[]string{"-sizes", "square,x,portrait", "-o", "c.mp4", "-poster", "p.jpg"},
			[]string{"p.portrait.jpg, where -sizes writes the portrait poster", "is a directory"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			copyFile(t, fixture(t, "img.jpg"), filepath.Join(dir, "img.jpg"))
			copyFile(t, fixture(t, "tone.wav"), filepath.Join(dir, "a.wav"))
			if c.setup != nil {
				c.setup(t, dir)
			}
			before := dirListing(t, dir)
			img := readFile(t, filepath.Join(dir, "img.jpg"))
			code, stderr := runRenderCLI(t, dir, append([]string{"-image", "img.jpg", "-audio", "a.wav", "-progress", "none"}, c.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d: %s", code, exitUsage, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
			if after := dirListing(t, dir); !slices.Equal(after, before) {
				t.Errorf("the directory went from %v to %v: a refused render writes nothing", before, after)
			}
			if !bytes.Equal(readFile(t, filepath.Join(dir, "img.jpg")), img) {
				t.Error("the image was overwritten")
			}
		})
	}
}

// TestE2ERenderSizesWriteFails: when a further size's video cannot be moved into place after the
// render (a directory appeared there while it ran), vidgen render fails with exit 4 naming that
// file and the files it wrote before it, and never the scratch directory or the output token,
// which name nothing the user can find; the scratch directory is gone.
func TestE2ERenderSizesWriteFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ffmpeg := blockingFFmpeg(t, t.TempDir(), filepath.Join(dir, "blk.x.mp4"))
	code, stderr := runRenderCLI(t, dir, "-image", fixture(t, "img.jpg"), "-audio", fixture(t, "tone.wav"), "-ffmpeg", ffmpeg,
		"-sizes", "square,x", "-o", "blk.mp4", "-poster", "p.jpg", "-progress", "none")
	if code != exitRenderFail {
		t.Fatalf("exit %d, want %d: %s", code, exitRenderFail, stderr)
	}
	want := "render: could not write blk.x.mp4: is a directory; written before it: blk.mp4, p.jpg"
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr does not say %q:\n%s", want, stderr)
	}
	if strings.Contains(stderr, ".vidgen-render-") || strings.Contains(stderr, "outputs/") {
		t.Errorf("stderr shows the scratch directory:\n%s", stderr)
	}
	// What it says it wrote is there, whole; the x poster after the failure is not.
	checkVideo(t, readFile(t, filepath.Join(dir, "blk.mp4")), fixture(t, "tone.wav"))
	if _, err := os.Stat(filepath.Join(dir, "p.jpg")); err != nil {
		t.Error(err)
	}
	if got, want := dirListing(t, dir), []string{"blk.mp4", "blk.x.mp4", "p.jpg"}; !slices.Equal(got, want) {
		t.Errorf("left in the directory: %v, want %v", got, want)
	}
}

// mkdirs is a setup that makes the directories names in dir.
func mkdirs(names ...string) func(t testing.TB, dir string) {
	return func(t testing.TB, dir string) {
		for _, n := range names {
			if err := os.Mkdir(filepath.Join(dir, n), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// blockingFFmpeg writes in dir a stand-in ffmpeg that makes the directory block when first run
// (vidgen render runs it after checking its outputs: it is in the way of a file written after the
// render) and then runs the real one.
func blockingFFmpeg(t testing.TB, dir, block string) string {
	t.Helper()
	return wrappedFFmpeg(t, dir, fmt.Sprintf("mkdir -p %q", block))
}

// wrappedFFmpeg writes in dir a stand-in ffmpeg that runs the shell command first, then the real
// ffmpeg, each time it runs: vidgen render runs it after checking its outputs, so first changes
// what the render finds when it writes them.
func wrappedFFmpeg(t testing.TB, dir, first string) string {
	t.Helper()
	real, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "ffmpeg")
	script := fmt.Sprintf("#!/bin/sh\n%s\nexec %q \"$@\"\n", first, real)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper
}
