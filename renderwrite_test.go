package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRenderUnwritableDir: vidgen render refuses, as a usage error (exit 2) and before rendering, an
// -o or -poster whose directory exists but cannot take a file, as it refuses one that does not
// exist: the message names the directory, never the render's own scratch files, and nothing is
// written. Tests run as root, which permission bits do not stop: /proc takes no file from anyone,
// and an immutable directory (chattr +i) stops root too where the file system and the process's
// capabilities allow making one.
func TestRenderUnwritableDir(t *testing.T) {
	img, audio := fixture(t, "img.jpg"), fixture(t, "tone.mp3")
	// DIR in a case is a directory that takes files, RO one that does not.
	for _, c := range []struct {
		name      string
		immutable bool // RO is immutable, not /proc
		args      []string
		want      string
	}{
		{"-o in /proc", false, []string{"-o", "RO/out.mp4"}, "-o RO/out.mp4: the directory RO cannot be written"},
		{"-poster in /proc", false, []string{"-o", "DIR/out.mp4", "-poster", "RO/p.jpg"}, "-poster RO/p.jpg: the directory RO cannot be written"},
		{"-o in an immutable directory", true, []string{"-o", "RO/out.mp4"}, "-o RO/out.mp4: the directory RO cannot be written"},
		{"-poster in an immutable directory, with -sizes", true, []string{"-sizes", "square,x", "-o", "DIR/out.mp4", "-poster", "RO/p.jpg"},
			"-poster RO/p.jpg: the directory RO cannot be written"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ro := "/proc"
			if c.immutable {
				ro = filepath.Join(dir, "ro")
				if err := os.Mkdir(ro, 0o755); err != nil {
					t.Fatal(err)
				}
				makeImmutable(t, ro)
			}
			paths := strings.NewReplacer("DIR", dir, "RO", ro)
			before := dirListing(t, dir) // which holds RO when it is immutable
			args := []string{"-image", img, "-audio", audio, "-progress", "none"}
			for _, a := range c.args {
				args = append(args, paths.Replace(a))
			}
			var stderr bytes.Buffer
			err := runRender(context.Background(), args, &stderr)
			want := paths.Replace(c.want)
			if code := exitCode(err); code != exitUsage || err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("exit %d, %v; want exit %d, one line with %q", code, err, exitUsage, want)
			}
			if err != nil && strings.Contains(err.Error(), ".vidgen-") {
				t.Errorf("the message names the render's own files: %v", err)
			}
			if after := dirListing(t, dir); !slices.Equal(after, before) {
				t.Errorf("the output's directory went from %v to %v: a refused render writes nothing", before, after)
			}
			if c.immutable {
				if left := dirListing(t, ro); len(left) > 0 {
					t.Errorf("written in the immutable directory: %v", left)
				}
			}
		})
	}
}

// makeImmutable makes dir immutable (chattr +i) until t ends: no file can be made, removed or
// renamed in it, by root either. It skips t where that cannot be done: no chattr, a file system
// without the flag, a process without CAP_LINUX_IMMUTABLE (a container's default).
func makeImmutable(t testing.TB, dir string) {
	t.Helper()
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		t.Skip("no chattr to make a directory immutable")
	}
	if out, err := exec.Command(chattr, "+i", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot make a directory immutable here: chattr +i: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(chattr, "-i", dir).CombinedOutput(); err != nil {
			t.Errorf("chattr -i %s: %v %s", dir, err, out)
		}
	})
	probe := filepath.Join(dir, "probe")
	if err := os.WriteFile(probe, nil, 0o644); err == nil {
		os.Remove(probe)
		t.Skip("chattr +i did not stop a file being made in the directory")
	}
}

// dirListing is the sorted names in dir, hidden ones included.
func dirListing(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
