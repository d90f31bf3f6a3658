package main

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// barValue is a value a job's progress bar took; step when it is the bar as a step started.
type barValue struct {
	pct  int
	step bool
}

// followBars records, in order, every value each job's bar takes on the server's renderer
// (renderer.progressSeen) and returns a function that reads job id's so far.
func followBars(t testing.TB, s *server) func(id string) []barValue {
	t.Helper()
	var mu sync.Mutex
	bars := map[string][]barValue{}
	s.renderer.progressSeen = func(id string, pct int, step bool) {
		mu.Lock()
		bars[id] = append(bars[id], barValue{pct, step})
		mu.Unlock()
	}
	return func(id string) []barValue {
		mu.Lock()
		defer mu.Unlock()
		return append([]barValue(nil), bars[id]...)
	}
}

// waveformBarJob renders a bars waveform over a flat 640x360 picture through the service, with
// splicing on and ffmpeg wrapped by spliceFFmpeg (oneSlice: a picture keyframe in one slice, which
// h264.SpliceBand refuses), and returns every value its bar took, the ffmpeg runs' arguments and
// the completed job's status body.
func waveformBarJob(t testing.TB, oneSlice bool) (bar []barValue, runs string, st map[string]any) {
	t.Helper()
	cfg := testConfig(t.TempDir())
	var runsFile string
	cfg.FFmpeg, runsFile = spliceFFmpeg(t, t.TempDir(), oneSlice)
	var bars func(string) []barValue
	e := newTestEnv(t, &cfg, func(s *server) {
		s.renderer.spliceWaveforms = true
		bars = followBars(t, s)
	})
	picture := spliceTestPicture(t, t.TempDir(), "flat", frameSize{640, 360}, "png")
	code, body := e.submit(t, e.key, picture, fixture(t, "long.wav"), map[string]string{"waveform": "bars"})
	if code != 201 {
		t.Fatalf("submit: %d %v", code, body)
	}
	id := body["jobId"].(string)
	st = e.wait(t, e.key, id, StatusCompleted)
	b, err := os.ReadFile(runsFile)
	if err != nil {
		t.Fatal(err)
	}
	return bars(id), string(b), st
}

// TestWaveformFallbackProgress renders a waveform whose spliced band is refused (x264's picture
// keyframe in one slice, which h264.SpliceBand refuses, see spliceFFmpeg) through the service,
// following its progress bar: it never goes back, the full encode the job falls back to keeps
// moving it instead of leaving it still near the end while the slowest step runs, and the
// completed job reads 100.
func TestWaveformFallbackProgress(t *testing.T) {
	t.Parallel()
	bar, runs, st := waveformBarJob(t, true)
	if p, _ := st["progress"].(float64); p != 100 {
		t.Errorf("completed job's progress %v, want 100", st["progress"])
	}
	if !strings.Contains(runs, "band.h264") || !strings.Contains(runs, "-map [v]") {
		t.Fatalf("want the band encoded, then every frame; ffmpeg ran:\n%s", runs)
	}
	checkFallbackMoves(t, bar)
}

// checkFallbackMoves fails unless the bar never went back, and its last step, the encode of every
// frame a refused splice fell back to, kept moving it (three values or more) on its way to the end.
func checkFallbackMoves(t testing.TB, bar []barValue) {
	t.Helper()
	last := -1
	for i, v := range bar {
		if i > 0 && v.pct < bar[i-1].pct {
			t.Errorf("the bar went back from %d to %d: %v", bar[i-1].pct, v.pct, bar)
		}
		if v.step {
			last = i
		}
	}
	if last < 0 {
		t.Fatalf("no step started: %v", bar)
	}
	seen := map[int]bool{}
	for _, v := range bar[last:] {
		if v.pct < 100 {
			seen[v.pct] = true
		}
	}
	if len(seen) < 3 {
		t.Errorf("the encode after the fallback showed %d values of the bar, want it moving (3 or more): %v", len(seen), bar)
	}
}

// TestWaveformSplicedProgress: a spliced waveform, the usual outcome, fills its bar as its steps
// run: its last value before the video is written is in the nineties, so etaSeconds, which reads
// the bar, tells the time left rather than most of the job again.
func TestWaveformSplicedProgress(t *testing.T) {
	t.Parallel()
	bar, runs, _ := waveformBarJob(t, false)
	if strings.Contains(runs, "-map [v]") {
		t.Fatalf("want the band spliced, not every frame encoded; ffmpeg ran:\n%s", runs)
	}
	top := 0
	for _, v := range bar {
		if v.pct < 100 {
			top = max(top, v.pct)
		}
	}
	if top < 90 {
		t.Errorf("the bar reached %d before the video was written, want 90 or more: %v", top, bar)
	}
}

// TestBarAfterFallback: a step that starts behind the bar (work done again after a fallback) moves
// it from where it is with ffmpeg's first positions; a ceiling (holdBar) keeps the bar below it
// whatever the steps report, until the fast path's work is thrown away (fellBack), whose time then
// moves the bar no more, and the work after it fills the rest.
func TestBarAfterFallback(t *testing.T) {
	t.Parallel()
	now := time.Now()
	rd := &renderer{now: func() time.Time { return now }, progress: map[string]*jobProgress{}}
	bar := func(id string) int { p, _ := rd.Progress(id); return p }

	rd.progress["late"] = &jobProgress{started: now}
	rd.startStep("late", setupShare, 95, 1)
	rd.stepDone("late", 1)
	rd.startStep("late", 10, 100, 5) // a span the bar has mostly passed
	rd.stepDone("late", 0.5)
	if p := bar("late"); p < 96 {
		t.Errorf("a step started behind the bar, halfway: %d, want it moved from 94 (96 or more)", p)
	}

	rd.progress["held"] = &jobProgress{started: now}
	rd.holdBar("held", 20)
	rd.startStep("held", setupShare, 95, 1)
	rd.stepDone("held", 1)
	now = now.Add(time.Hour)
	if p := bar("held"); p != 19 {
		t.Errorf("held at 20, the step done and an hour gone: %d, want 19", p)
	}
	rd.fellBack("held")
	now = now.Add(time.Hour)
	if p := bar("held"); p != 19 {
		t.Errorf("fallen back, an hour later: %d, want 19", p)
	}
	rd.startStep("held", 10, 100, 5)
	rd.stepDone("held", 0.5)
	if p := bar("held"); p < 55 || p > 60 {
		t.Errorf("the step after the fallback, halfway: %d, want 55-60", p)
	}
}
