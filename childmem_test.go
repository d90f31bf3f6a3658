package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// leastChildMemory is the least -child-memory that serve accepts (other than 0, no limit): the
// documented minimum as the flag's check holds it.
func leastChildMemory(t testing.TB) int64 {
	t.Helper()
	accepts := func(n int64) bool {
		_, err := parseServeFlags([]string{"-child-memory", strconv.FormatInt(n, 10)}, func(string) string { return "" }, io.Discard)
		return err == nil
	}
	lo, hi := int64(1), int64(1)<<40 // lo refused, hi accepted
	if accepts(lo) || !accepts(hi) {
		t.Fatalf("-child-memory accepts 1 (%v) or refuses 1 TiB (%v)", accepts(lo), !accepts(hi))
	}
	for hi-lo > 1 {
		if mid := lo + (hi-lo)/2; accepts(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// TestChildMemoryMinimumFlag: -child-memory refuses less than what an ordinary render needs (a
// 1080p waveform took 1087 MiB as on a 32-core machine) with one line naming the flag and the
// minimum, and the help text states the same minimum.
func TestChildMemoryMinimumFlag(t *testing.T) {
	t.Parallel()
	least := leastChildMemory(t)
	if least < 1536<<20 {
		t.Errorf("-child-memory accepts %d (%d MiB): a 1080p waveform needs 1087 MiB, a 1920x1920 one with captions 1381 MiB", least, least>>20)
	}
	_, err := parseServeFlags([]string{"-child-memory", strconv.FormatInt(least-1, 10)}, func(string) string { return "" }, io.Discard)
	if msg := fmt.Sprint(err); err == nil || strings.Contains(msg, "\n") || !strings.Contains(msg, "-child-memory") || !strings.Contains(msg, strconv.FormatInt(least, 10)) {
		t.Errorf("one byte under the minimum: %q, want one line naming -child-memory and %d", msg, least)
	}
	if _, err := parseServeFlags([]string{"-child-memory", "0"}, func(string) string { return "" }, io.Discard); err != nil {
		t.Errorf("-child-memory 0 (no limit): %v", err)
	}
	var help strings.Builder
	parseServeFlags([]string{"-h"}, func(string) string { return "" }, &help)
	if !strings.Contains(help.String(), "at least "+strconv.FormatInt(least, 10)) {
		t.Errorf("the help text does not state the minimum %d: %s", least, help.String())
	}
	readme := string(readFile(t, "README.md"))
	if !strings.Contains(readme, fmt.Sprintf("at least %d (%d GiB)", least, least>>30)) {
		t.Errorf("README.md does not state the minimum %d", least)
	}
}

// TestE2EChildMemoryMinimumRenders: at the least -child-memory the flag accepts, every ordinary job
// renders: a 1080p still, a 960x540 waveform, a 1920x1920 picture with a line waveform, captions and
// FLAC audio, a 16-bit PNG at a platform size. ffmpeg runs with -cpucount 32, so every thread count
// it picks by itself is a 32-core machine's. At the old minimum, 512 MiB, the first two failed.
func TestE2EChildMemoryMinimumRenders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	jpeg1080, jpeg540, square, png16 := filepath.Join(dir, "1080.jpg"), filepath.Join(dir, "540.jpg"), filepath.Join(dir, "square.jpg"), filepath.Join(dir, "16bit.png")
	ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=1920x1080", "-frames:v", "1", "-q:v", "2", jpeg1080)
	ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=960x540", "-frames:v", "1", "-q:v", "2", jpeg540)
	ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=3000x3000", "-frames:v", "1", "-q:v", "2", square)
	ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=1920x1080", "-frames:v", "1", "-pix_fmt", "rgb48be", png16)
	flac := filepath.Join(dir, "tone.flac")
	ffmpegMake(t, "-f", "lavfi", "-i", "sine=f=440:d=2", "-ac", "2", flac)
	captions := writeFixture(t, "c.srt", []byte("1\n00:00:00,000 --> 00:00:01,500\nA caption of ordinary length\n"))
	wide := filepath.Join(dir, "ffmpeg")
	if err := os.WriteFile(wide, []byte("#!/bin/sh\nexec ffmpeg -cpucount 32 \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t.TempDir())
	cfg.FFmpeg, cfg.ChildMemory = wide, leastChildMemory(t)
	e := newTestEnv(t, &cfg)
	jobs := []struct {
		name, image, audio string
		fields             map[string]string
		captions           bool
	}{
		{"1080p still", jpeg1080, fixture(t, "tone.m4a"), nil, false},
		{"960x540 waveform", jpeg540, fixture(t, "tone.m4a"), map[string]string{"waveform": "bars"}, false},
		{"1920x1920 line waveform and captions", square, flac, map[string]string{"waveform": "line"}, true},
		{"16-bit PNG portrait", png16, fixture(t, "tone.wav"), map[string]string{"size": "portrait"}, false},
	}
	ids := map[string]string{}
	for _, j := range jobs {
		files := map[string]string{"image": j.image, "audio": j.audio}
		if j.captions {
			files["captions"] = captions
		}
		key := e.newKey(t, j.name)
		body, ctype := multipartBody(t, files, j.fields)
		resp, b := e.do(t, "POST", "/api/jobs", key, body, "Content-Type", ctype)
		if resp.StatusCode != 201 {
			t.Fatalf("%s at -child-memory %d: %d %s", j.name, cfg.ChildMemory, resp.StatusCode, b)
		}
		ids[key] = decodeJSON(t, resp, b)["jobId"].(string)
	}
	for key, id := range ids {
		e.wait(t, key, id, StatusCompleted)
	}
}
