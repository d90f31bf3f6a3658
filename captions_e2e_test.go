//go:build e2e

package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

func init() {
	fixtureRecipes["minute.wav"] = []string{"-f", "lavfi", "-i", "sine=f=440:d=60", "-ac", "1", "-ar", "16000"}
}

// worstCaptions is an SRT for audio of the given seconds as costly as the limits allow: the most
// cues the audio's length takes, maxCuesOnScreen of them on screen at every moment, each with the
// text text(i).
func worstCaptions(seconds float64, text func(i int) string) []byte {
	n := max(minCuesPerFile, int(seconds*maxCuesPerMinute/60))
	step := time.Duration(seconds * float64(time.Second) / float64(n))
	return []byte(srtCues(n, func(i int) time.Duration { return time.Duration(i) * step }, maxCuesOnScreen*step, text))
}

// childCPU is the CPU time, user and system, of every child process the test binary has waited for.
func childCPU(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// renderCost submits a job, waits for it to complete, and returns the CPU time its processes
// (ffprobe at the upload, ffmpeg at the render) took and the wall time from submission to the end.
// CPU time, unlike wall time, does not depend on what else the machine runs; but it is every
// child's of the test binary, so the test must not run in parallel with others.
func renderCost(t testing.TB, e *testEnv, files, fields map[string]string) (cpu, wall time.Duration) {
	t.Helper()
	cpu0, wall0 := childCPU(t), time.Now()
	body, ctype := multipartBody(t, files, fields)
	resp, b := e.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype)
	if resp.StatusCode != 201 {
		t.Fatalf("submit: %d %s", resp.StatusCode, b)
	}
	id := decodeJSON(t, resp, b)["jobId"].(string)
	// A minute of video may take longer than e.wait's deadline on a loaded machine: the render's own
	// timeout (2 minutes plus 4× the audio) is the bound.
	eventually(t, 7*time.Minute, func() error {
		st := e.status(t, e.key, id)
		if s := JobStatus(st["status"].(string)); s == StatusCompleted {
			return nil
		} else if s.Final() {
			t.Fatalf("job %s: %v", id, st)
		}
		return fmt.Errorf("job %s: %v", id, st)
	})
	return childCPU(t) - cpu0, time.Since(wall0)
}

// TestE2ECaptionsCost renders a minute of audio with the worst captions files the limits allow (the
// most cues, the most on screen at once, the most characters in each; in one the most combining
// marks, stacked as high as they may be) and the same job without captions, and holds the ratio of
// their CPU times to a small multiple: within the limits, captions cannot hold a worker much
// longer than the job's own render. The picture's own small size is the worst case: the text's
// cost is the same share of a larger frame, and the render of the frame itself is cheaper.
func TestE2ECaptionsCost(t *testing.T) {
	e := newTestEnv(t, nil)
	img, audio := fixture(t, "img.jpg"), fixture(t, "minute.wav")
	fields := map[string]string{"waveform": "bars"}
	without, wall := renderCost(t, e, map[string]string{"image": img, "audio": audio}, fields)
	t.Logf("without captions: %.1f s of CPU (%.1f s)", without.Seconds(), wall.Seconds())
	stacked := strings.Repeat("e"+strings.Repeat("\u0301", maxMarksOnOne)+" ", maxCueMarks/maxMarksOnOne)
	for name, text := range map[string]string{
		"words": fill("WWWWWWW ", maxCueRunes),
		"marks": stacked + fill("WWWWWWW ", maxCueRunes-utf8.RuneCountInString(stacked)),
	} {
		srt := writeFixture(t, name+".srt", worstCaptions(60, func(int) string { return text }))
		with, wall := renderCost(t, e, map[string]string{"image": img, "audio": audio, "captions": srt}, fields)
		ratio := with.Seconds() / without.Seconds()
		t.Logf("the worst captions (%s): %.1f s of CPU (%.1f s), %.2fx", name, with.Seconds(), wall.Seconds(), ratio)
		if ratio > 4 {
			t.Errorf("the worst captions (%s) cost %.1fx the render without them, want at most 4x", name, ratio)
		}
	}
}
