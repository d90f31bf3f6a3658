//go:build e2e

package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReleaseArchives: `make release` (as `make check-release` runs it) writes, for linux amd64 and arm64,
// an archive of one folder holding a static binary of that architecture that prints the release's
// version, the unit and the proxy configurations, LICENSE, the README, openapi.yaml and docs/, the bare
// binary beside it, and a SHA256SUMS that `sha256sum -c` accepts; and the default version is
// `git describe --tags`.
func TestReleaseArchives(t *testing.T) {
	const version = "v0.0.0-check"
	dist := t.TempDir()
	if out, err := exec.Command("make", "-s", "release", "DIST="+dist, "VERSION="+version).CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}

	sums := checkSums(t, dist)
	want := []string{"LICENSE", "README.md", "openapi.yaml", "vidgen", "deploy/vidgen.service", "deploy/vidgen.env", "deploy/Caddyfile", "deploy/nginx.conf"}
	docs, err := filepath.Glob("docs/*")
	if err != nil || len(docs) == 0 {
		t.Fatalf("docs/: %v %v", docs, err)
	}
	want = append(want, docs...)
	slices.Sort(want)

	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		name := "vidgen-" + version + "-linux-" + arch
		for _, f := range []string{name, name + ".tar.gz"} {
			if _, ok := sums[f]; !ok {
				t.Errorf("SHA256SUMS does not list %s", f)
			}
		}
		files := unpackRelease(t, filepath.Join(dist, name+".tar.gz"), name)
		got := make([]string, 0, len(files))
		for f := range files {
			got = append(got, f)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s.tar.gz holds %q, want %q", name, got, want)
		}
		bin := filepath.Join(dist, name)
		if b, err := os.ReadFile(bin); err != nil || string(b) != string(files["vidgen"]) {
			t.Errorf("%s/vidgen is not the bare binary %s (%v)", name, bin, err)
		}
		checkStaticELF(t, bin, machine)
		for _, f := range []string{"LICENSE", "deploy/vidgen.service"} {
			if b := readFile(t, f); string(b) != string(files[f]) {
				t.Errorf("%s/%s is not the checkout's", name, f)
			}
		}
		if arch == "amd64" {
			out, err := exec.Command(bin, "-version", "-ffmpeg", "/nonexistent/ffmpeg").Output()
			if err != nil || !strings.HasPrefix(string(out), "vidgen "+version+" (") {
				t.Errorf("%s -version: %v %q, want it to print %s", bin, err, out, version)
			}
		}
	}

	// Without VERSION, the version is the git tag the commit is at (or after).
	described, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		t.Fatalf("git describe: %v", err)
	}
	dry, err := exec.Command("make", "-n", "release").Output()
	if err != nil {
		t.Fatalf("make -n release: %v", err)
	}
	if stamp := "-X main.version=" + strings.TrimSpace(string(described)); !strings.Contains(string(dry), stamp) {
		t.Errorf("make release does not stamp %q:\n%s", stamp, dry)
	}
}

// checkSums runs `sha256sum -c` on dir's SHA256SUMS, checks it lists every file beside it, and
// returns its names and sums.
func checkSums(t testing.TB, dir string) map[string]string {
	t.Helper()
	cmd := exec.Command("sha256sum", "--strict", "-c", "SHA256SUMS")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c SHA256SUMS: %v\n%s", err, out)
	}
	f, err := os.Open(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sums := map[string]string{}
	for sc := bufio.NewScanner(f); sc.Scan(); {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", sc.Text())
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if h := sha256.Sum256(b); err != nil || hex.EncodeToString(h[:]) != sum {
			t.Errorf("SHA256SUMS: %s: %v, sum does not match", name, err)
		}
		sums[name] = sum
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if _, ok := sums[e.Name()]; !ok && e.Name() != "SHA256SUMS" {
			t.Errorf("SHA256SUMS does not list %s", e.Name())
		}
	}
	return sums
}

// unpackRelease reads a release archive whose every entry is under the folder top, and returns its
// regular files by their path under top; the binary must be executable and nothing writable by others.
func unpackRelease(t testing.TB, path, top string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rel, ok := strings.CutPrefix(h.Name, top+"/")
		if !ok && h.Name != top+"/" {
			t.Errorf("%s: %s is outside %s/", path, h.Name, top)
		}
		if h.Mode&0o002 != 0 || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: %s has mode %o, owner %d:%d", path, h.Name, h.Mode, h.Uid, h.Gid)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if rel == "vidgen" && h.Mode&0o111 != 0o111 {
			t.Errorf("%s: vidgen has mode %o, want executable", path, h.Mode)
		}
		if files[rel], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// checkStaticELF: the binary at path is for machine and needs no dynamic loader (CGO_ENABLED=0).
func checkStaticELF(t testing.TB, path string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s is for %v, want %v", path, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked (%v)", path, p.Type)
		}
	}
}
