package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestRenderOutputPaths: vidgen render refuses, as a usage error (exit 2) and before rendering, an
// -o or -poster that is an input (by name or by a hard link), a directory, "-", in a directory that
// does not exist, or another output (with -sizes, a further size's too); the input is left as it was
// and nothing is written.
func TestRenderOutputPaths(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // "-o -" would write a file named "-" in the working directory
	img, audio := filepath.Join(dir, "img.jpg"), filepath.Join(dir, "tone.mp3")
	imgBytes := readFile(t, fixture(t, "img.jpg"))
	if err := os.WriteFile(img, imgBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(audio, readFile(t, fixture(t, "tone.mp3")), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.mp4")
	if err := os.Link(img, link); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "videos")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.mp4")
	if err := os.Mkdir(filepath.Join(dir, "blk.x.mp4"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A pipe stands for every file that is not a regular one (as root, /dev/null was replaced).
	fifo := filepath.Join(dir, "pipe.jpg")
	for _, p := range []string{fifo, filepath.Join(dir, "pipe.square.x.jpg")} {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kept := filepath.Join(dir, "kept.mp4")
	if err := os.WriteFile(kept, []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	symlink := filepath.Join(dir, "latest.mp4")
	if err := os.Symlink(kept, symlink); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"-o the image", []string{"-o", img}, "is the -image file"},
		{"-o a hard link to the image", []string{"-o", link}, "is the -image file"},
		{"-o a directory", []string{"-o", sub}, "is a directory"},
		{"-o -", []string{"-o", "-"}, "not standard output"},
		{"-o in a missing directory", []string{"-o", filepath.Join(dir, "nope", "x.mp4")}, "does not exist"},
		{"-poster in a missing directory", []string{"-o", out, "-poster", "/nonexistent/p.jpg"}, "does not exist"},
		{"-poster the audio", []string{"-o", out, "-poster", audio}, "is the -audio file"},
		{"-poster the video", []string{"-o", out, "-poster", out}, "is the -o file"},
		{"-poster a further size's video", []string{"-sizes", "square,x", "-o", out, "-poster", filepath.Join(dir, "out.x.mp4")}, "is where -sizes writes the x video"},
		{"-poster a pipe", []string{"-o", out, "-poster", fifo}, "is not a regular file"},
		{"-o a symbolic link", []string{"-o", symlink}, "is a symbolic link"},
		{"a further size's poster a pipe", []string{"-sizes", "square,x", "-o", out, "-poster", filepath.Join(dir, "pipe.square.jpg")}, "x poster (-poster with .x before its extension), is not a regular file"},
		{"a further size's video a directory", []string{"-sizes", "square,x", "-o", filepath.Join(dir, "blk.mp4")}, "blk.x.mp4, where -sizes writes the x video (-o with .x before its extension), is a directory"},
	} {
		var stderr bytes.Buffer
		args := append([]string{"-image", img, "-audio", audio, "-progress", "none"}, c.args...)
		err := runRender(context.Background(), args, &stderr)
		if code := exitCode(err); code != exitUsage || err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: exit %d, %v; want exit %d, one line with %q", c.name, code, err, exitUsage, c.want)
		}
	}
	if b, _ := os.ReadFile(img); !bytes.Equal(b, imgBytes) {
		t.Error("the image was overwritten")
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("the pipe was replaced: %v %v", fi, err)
	}
	if fi, err := os.Lstat(symlink); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi, err)
	}
	for _, p := range []string{"-", "out.mp4", "out.x.mp4", "blk.mp4"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			t.Errorf("%s was written", p)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*", ".vidgen-render-*")); len(left) > 0 {
		t.Errorf("scratch directories left: %v", left)
	}
}
