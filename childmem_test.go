package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
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
	ops := string(readFile(t, "docs/operations.md"))
	if !strings.Contains(ops, fmt.Sprintf("at least %d (%d GiB)", least, least>>30)) {
		t.Errorf("docs/operations.md does not state the minimum %d", least)
	}
}

// TestRenderOutOfMemory: a render whose ffmpeg runs out of memory under -child-memory (here the real
// x264 at a limit the upload's probes fit under and a 1920x1920 clip does not) FAILS at once, with
// a message that names -child-memory and does not blame the image or the audio: the same render
// under the same limit would fail again.
func TestRenderOutOfMemory(t *testing.T) {
	t.Parallel()
	square := filepath.Join(t.TempDir(), "square.jpg")
	ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=3000x3000", "-frames:v", "1", "-q:v", "2", square)
	cfg := testConfig(t.TempDir())
	// Under the flag's minimum, as only a test sets it: the probes take ~280 MiB, the clip ~550 MiB.
	cfg.ChildMemory = 400 << 20
	e := newTestEnv(t, &cfg)
	id := e.mustSubmit(t, e.key, square, fixture(t, "tone.m4a"))
	st := e.wait(t, e.key, id, StatusFailed)
	checkNotBlamed(t, "out of memory", st["errorMessage"])
	if msg, _ := st["errorMessage"].(string); !strings.Contains(msg, "-child-memory") {
		t.Errorf("errorMessage %q does not name -child-memory", msg)
	}
	if j := waitStored(t, e.srv.store, id, StatusFailed); j.Retries != 0 {
		t.Errorf("retries %d, want 0: a fixed limit fails the same way again", j.Retries)
	}
}

// checkNotBlamed fails when a job's errorMessage names one of its files or calls it undecodable.
func checkNotBlamed(t testing.TB, name string, msg any) {
	t.Helper()
	s, _ := msg.(string)
	if s == "" || strings.Contains(s, "image") || strings.Contains(s, "audio") || strings.Contains(s, "caption") || strings.Contains(s, "decoded") {
		t.Errorf("%s: errorMessage %q blames the user's file", name, s)
	}
}

// TestRenderFailureBlame: a render step's ffmpeg that exits with an error gets a message naming the
// job's image or audio only when that file is at fault. A stand-in prints what the real ffmpeg
// prints for failures no real input produces (out of memory, the server's own filter graph or
// encoder), and exits 1; the files themselves are fine.
func TestRenderFailureBlame(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		log    string
		memory int64
		final  bool // FAILED at once, with a message naming -child-memory; else tried MaxAttempts times
	}{
		{"x264 malloc under the limit", "x264 [error]: malloc of size 6526080 failed\nError submitting video frame to the encoder", defaultChildMemory, true},
		{"FFV1 packet under the limit", "[ffv1 @ 0x55d6ca41cac0] Failed to allocate packet of size 545603584\nError submitting video frame to the encoder", defaultChildMemory, true},
		{"ENOMEM under the limit", "Error while filtering: Cannot allocate memory", defaultChildMemory, true},
		{"ENOMEM without a limit (a busy machine)", "Error while filtering: Cannot allocate memory", 0, false},
		{"the server's filter graph", "[Parsed_scale_4 @ 0x560c4843ea00] Failed to configure output pad on Parsed_scale_4\nError reinitializing filters!\nFailed to inject frame into filter network: Resource temporarily unavailable", defaultChildMemory, false},
		{"the encoder would not open", "Error initializing output stream 0:0 -- Error while opening encoder for output stream #0:0 - maybe incorrect parameters such as bit_rate, rate, width or height", defaultChildMemory, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			script := filepath.Join(dir, "ffmpeg")
			// Render steps (they ask for -progress) fail; -version and the upload's checks run ffmpeg.
			body := "#!/bin/sh\nfor a; do [ \"$a\" = -progress ] && { cat \"$0.log\" >&2; exit 1; }; done\nexec ffmpeg \"$@\"\n"
			if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(script+".log", []byte(c.log+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(t.TempDir())
			cfg.FFmpeg, cfg.ChildMemory = script, c.memory
			e := newTestEnv(t, &cfg)
			// AAC audio is copied: the picture step is the one render step before the mux.
			id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.m4a"))
			st := e.wait(t, e.key, id, StatusFailed)
			checkNotBlamed(t, c.name, st["errorMessage"])
			msg, _ := st["errorMessage"].(string)
			j := waitStored(t, e.srv.store, id, StatusFailed)
			if c.final && (j.Retries != 0 || !strings.Contains(msg, "-child-memory")) {
				t.Errorf("retries %d, errorMessage %q: want FAILED at once, naming -child-memory", j.Retries, msg)
			}
			if !c.final && j.Retries != MaxAttempts-1 {
				t.Errorf("retries %d, errorMessage %q: want the server's failure tried %d times", j.Retries, msg, MaxAttempts)
			}
		})
	}
}

// TestRenderBlamesDamagedInput: a render still names the file at fault when it is: an image or
// audio that no longer decodes (damaged on the server after its upload was checked) FAILS the job
// at once with that file's message, and never the other's.
func TestRenderBlamesDamagedInput(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	for _, c := range []struct {
		part         inputKind
		image, audio string
		want         string
	}{
		{inputImage, fixture(t, "tone.wav"), fixture(t, "tone.m4a"), imageFailure},
		{inputAudio, fixture(t, "img.jpg"), fixture(t, "img.png"), audioFailure},
	} {
		id, err := newJobID(time.Now(), e.srv.rand)
		if err != nil {
			t.Fatal(err)
		}
		copyFile(t, c.image, e.srv.dirs.input(id, inputImage))
		copyFile(t, c.audio, e.srv.dirs.input(id, inputAudio))
		j := Job{ID: id, KeyID: e.accountOf(t, e.key).ID, ImageType: media.JPEG, AudioType: media.M4A, AudioCodec: "aac/LC/2/44100",
			AudioDuration: 2.5, CreatedAt: time.Now()}
		if err := e.srv.store.CreateJob(t.Context(), j); err != nil {
			t.Fatal(err)
		}
		e.srv.renderer.Notify()
		if got := waitStored(t, e.srv.store, id, StatusFailed); got.ErrorMessage != c.want || got.Retries != 0 {
			t.Errorf("%s damaged: retries %d, errorMessage %q, want %q at once", c.part, got.Retries, got.ErrorMessage, c.want)
		}
	}
}

// TestRidingStepBlame: a picture step that encodes the audio's first segment too (audioRide) reads
// both files, and names the one at fault: the image (input 0) or the audio (input 1) FAILS the job
// at once with that file's message. An error that names neither, from an ffmpeg that stopped on
// its own, runs the picture and the segment again apart, and the job completes. A stand-in fails
// that step alone, with the log given, so no other step fails for the file.
func TestRidingStepBlame(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, log, want string // want "": COMPLETED
	}{
		{"the image", "[mjpeg @ 0x5611] overread 8\nError while decoding stream #0:0: Invalid data found when processing input", imageFailure},
		{"the audio", "[mp3float @ 0x5611] Header missing\nError while decoding stream #1:0: Invalid data found when processing input", audioFailure},
		{"neither", "Error initializing output stream 2:0 -- Error while opening encoder for output stream #2:0", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			script := filepath.Join(dir, "ffmpeg")
			body := fmt.Sprintf("#!/bin/sh\ncase \"$*\" in *libx264*adts*) echo ride >> %q; echo %q >&2; exit 1;; esac\nexec ffmpeg \"$@\"\n",
				script+".rides", c.log)
			if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(t.TempDir())
			cfg.FFmpeg = script
			e := newTestEnv(t, &cfg, func(s *server) { splitAudio(s, 2) })
			id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.mp3"))
			if c.want == "" {
				st := e.wait(t, e.key, id, StatusCompleted)
				video, _ := download(t, st["outputVideo"].(string))
				checkVideo(t, video, fixture(t, "tone.mp3"))
				if !strings.Contains(e.logs.String(), "running them apart") {
					t.Error("no WARN line for the picture step run apart")
				}
			} else {
				st := e.wait(t, e.key, id, StatusFailed)
				msg, _ := st["errorMessage"].(string)
				if j := waitStored(t, e.srv.store, id, StatusFailed); msg != c.want || j.Retries != 0 {
					t.Errorf("retries %d, errorMessage %q, want %q at once", j.Retries, msg, c.want)
				}
			}
			if n := countLines(t, script+".rides"); n != 1 {
				t.Errorf("%d picture steps encoded a segment, want 1", n)
			}
		})
	}
}

// TestAudioProbeOutOfMemory: an audio file whose decode runs out of memory under -child-memory is
// refused for needing more memory, like a picture, not called damaged.
func TestAudioProbeOutOfMemory(t *testing.T) {
	t.Parallel()
	script := filepath.Join(t.TempDir(), "ffprobe")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'Error while decoding stream #0:0: Cannot allocate memory' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := probeAudio(t.Context(), ffmpeg.Tools{FFprobe: script, Memory: defaultChildMemory}, fixture(t, "tone.mp3"), media.MP3)
	if msg := fmt.Sprint(err); kindOf(err) != kindInvalid || !strings.Contains(msg, "more memory") || strings.Contains(msg, "could not be decoded") {
		t.Errorf("audio decode out of memory: %v (kind %v), want a 400 for the memory it needs", err, kindOf(err))
	}
}
