//go:build e2e

package main

import (
	"os"
	"path/filepath"
	"testing"
)

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
