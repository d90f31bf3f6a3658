package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vidgen/internal/ffmpeg"
)

// spliceCheckFFmpeg writes into dir a stand-in for ffmpeg that appends each run's arguments, one
// run a line, to the file runs it returns and runs the real ffmpeg, except for the check of the
// spliced stream (the one run that reads spliced.h264), which runs the shell commands fail
// instead.
func spliceCheckFFmpeg(t testing.TB, dir, fail string) (path, runs string) {
	t.Helper()
	real, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	path, runs = filepath.Join(dir, "ffmpeg"), filepath.Join(dir, "runs")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >>%q\ncase \"$*\" in *spliced.h264*) %s;; esac\nexec %q \"$@\"\n", runs, fail, real)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, runs
}

// TestSpliceCheckFailure: the check of a spliced waveform falls back to the full encode only when
// the spliced stream is at fault, ffmpeg exiting with a decode error: the job then completes, and
// the log says at WARN why it encoded every frame. A check that ran out of memory under
// -child-memory, was killed (the kernel's OOM killer) or crashed is no drift: the full encode would
// meet the same fate, slower, so the job ends as any render step's failure ends it, without a full
// encode: FAILED at once naming -child-memory, or tried MaxAttempts times and FAILED with the cause.
func TestSpliceCheckFailure(t *testing.T) {
	t.Parallel()
	f := frameSize{320, 240}
	picture := spliceTestPicture(t, t.TempDir(), "flat", f, "png")
	audio := fixture(t, "tone.m4a")
	const decodeError = "[h264 @ 0x55d6ca41cac0] corrupted macroblock 3 7 (total_coeff=-1)\n" +
		"Error while decoding stream #0:0: Invalid data found when processing input"
	for _, c := range []struct {
		name, fail string
		status     JobStatus
		msg        string // the job's errorMessage, when FAILED
		checks     int    // how many times the check ran
	}{
		{"killed", "kill -KILL $$", StatusFailed, exhausted(passingCause(&ffmpeg.Error{Reason: ffmpeg.Killed}, 0)), MaxAttempts},
		{"crashed", "ulimit -c 0; kill -SEGV $$", StatusFailed, exhausted("the renderer crashed"), MaxAttempts},
		{"out of memory under -child-memory",
			"printf '%s\\n' '[h264 @ 0x55d6ca41cac0] get_buffer() failed' 'Error while decoding stream #0:0: Cannot allocate memory' >&2; exit 1",
			StatusFailed, childMemoryFailure, 1},
		{"a decode error", "printf '%s\\n' '" + strings.ReplaceAll(decodeError, "\n", "' '") + "' >&2; exit 1", StatusCompleted, "", 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t.TempDir())
			cfg.SpliceWaveforms = true
			var runsFile string
			cfg.FFmpeg, runsFile = spliceCheckFFmpeg(t, t.TempDir(), c.fail)
			e := newTestEnv(t, &cfg)
			code, body := e.submit(t, e.key, picture, audio, map[string]string{"waveform": "bars"})
			if code != 201 {
				t.Fatalf("submit: %d %v", code, body)
			}
			id := body["jobId"].(string)
			st := e.wait(t, e.key, id, StatusCompleted, StatusFailed)
			j := waitStored(t, e.srv.store, id, c.status)
			b, err := os.ReadFile(runsFile)
			if err != nil {
				t.Fatal(err)
			}
			runs := string(b)
			checks, full := 0, strings.Contains(runs, "-map [v]")
			for line := range strings.Lines(runs) {
				if strings.Contains(line, "spliced.h264") {
					checks++
				}
			}
			if checks != c.checks {
				t.Errorf("the check ran %d times, want %d; ffmpeg ran:\n%s", checks, c.checks, runs)
			}
			warned := false
			for line := range strings.Lines(e.logs.String()) {
				warned = warned || strings.Contains(line, "job="+id) && strings.Contains(line, "level=WARN") && strings.Contains(line, "encoding every frame")
			}
			if c.status == StatusCompleted {
				if !full || !warned {
					t.Errorf("full encode %v, WARN of the fallback %v: want both; ffmpeg ran:\n%s", full, warned, runs)
				}
				video, _ := download(t, st["outputVideo"].(string))
				if p := checkVideo(t, video, audio); p.Width != f.W || p.Height != f.H {
					t.Errorf("%dx%d, want %dx%d", p.Width, p.Height, f.W, f.H)
				}
				return
			}
			if full || warned {
				t.Errorf("full encode %v, WARN of a fallback %v: a failed check is no drift; ffmpeg ran:\n%s", full, warned, runs)
			}
			if wantRetries := c.checks - 1; j.ErrorMessage != c.msg || j.Retries != wantRetries {
				t.Errorf("retries %d, errorMessage %q; want %d, %q", j.Retries, j.ErrorMessage, wantRetries, c.msg)
			}
		})
	}
}
