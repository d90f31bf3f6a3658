//go:build e2e

package main

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"vidgen/internal/captions"
	"vidgen/internal/captions/captionstest"
)

func init() {
	fixtureRecipes["twenty.wav"] = []string{"-f", "lavfi", "-i", "sine=f=440:d=20", "-ac", "1", "-ar", "16000"}
}

// worstCaptions is an SRT for audio of the given seconds as costly as the limits allow: the most
// cues the audio's length takes, captions.MaxCuesOnScreen of them on screen at every moment, each with the
// text text(i).
func worstCaptions(seconds float64, text func(i int) string) []byte {
	n := max(captions.MinCuesPerFile, int(seconds*captions.MaxCuesPerMinute/60))
	step := time.Duration(seconds * float64(time.Second) / float64(n))
	return []byte(captionstest.SRT(n, func(i int) time.Duration { return time.Duration(i) * step }, captions.MaxCuesOnScreen*step, text))
}

// randomCue is a cue's text of random characters of pool and spaces (about one in seven), as much
// as the limits let each of captions.MaxCuesOnScreen cues on screen together hold: captions.MaxCueRunes characters,
// and its share of captions.MaxScreenWeight. Random text is the worst case: no two glyphs alike.
func randomCue(rng *rand.Rand, pool []rune) string {
	var b strings.Builder
	for n, w := 0, 0; n < captions.MaxCueRunes; n++ {
		r := ' '
		if n > 0 && n < captions.MaxCueRunes-1 && rng.IntN(7) > 0 || n == 0 {
			r = pool[rng.IntN(len(pool))]
		}
		if w += captions.Weight(string(r)); w > captions.MaxScreenWeight/captions.MaxCuesOnScreen {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// runes is every character from lo to hi.
func runes(lo, hi rune) []rune {
	var rs []rune
	for r := lo; r <= hi; r++ {
		rs = append(rs, r)
	}
	return rs
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

// TestE2ECaptionsCost renders 20 s of audio with the worst captions files the limits allow (the
// most cues, the most on screen at once, each as long as the limits allow, of random characters of
// one script or of several: Latin and Arabic the captions' font draws, CJK, Devanagari and emoji it
// lacks, so libass looks for them among the host's fonts on every frame; and Latin with the most
// combining marks, stacked as high as they may be) and the same job without captions, and holds
// the ratio of their CPU times to a small multiple: within the limits, captions cannot hold a
// worker much longer than the job's own render. The picture's own small size is the worst case:
// the text's cost is the same in a larger frame, whose render costs more.
func TestE2ECaptionsCost(t *testing.T) {
	e := newTestEnv(t, nil)
	img, audio := fixture(t, "img.jpg"), fixture(t, "twenty.wav")
	fields := map[string]string{"waveform": "bars"}
	without, wall := renderCost(t, e, map[string]string{"image": img, "audio": audio}, fields)
	t.Logf("without captions: %.2f s of CPU (%.1f s)", without.Seconds(), wall.Seconds())
	latin := append(runes('a', 'z'), runes('A', 'Z')...)
	arabic := runes('\u0621', '\u064a') // a few of its letters the font lacks
	cjk, devanagari, emoji := runes('\u4e00', '\u9fff'), runes('\u0905', '\u094d'), runes('\U0001f300', '\U0001f64f')
	stacked := strings.Repeat("e"+strings.Repeat("\u0301", captions.MaxMarksOnOne)+" ", captions.MaxCueMarks/captions.MaxMarksOnOne)
	pools := map[string][]rune{
		"latin": latin, "arabic": arabic, "cjk": cjk, "devanagari": devanagari, "emoji": emoji,
		"mixed": slices.Concat(latin, arabic, cjk, devanagari, emoji),
	}
	texts := map[string]func(rng *rand.Rand) string{
		"marks": func(*rand.Rand) string {
			return stacked + captionstest.Fill("WWWWWWW ", captions.MaxCueRunes-utf8.RuneCountInString(stacked))
		},
	}
	for name, pool := range pools {
		texts[name] = func(rng *rand.Rand) string { return randomCue(rng, pool) }
	}
	names := slices.Sorted(maps.Keys(texts))
	for _, name := range names {
		rng := rand.New(rand.NewPCG(1, uint64(len(name))))
		srt := writeFixture(t, name+".srt", worstCaptions(20, func(int) string { return texts[name](rng) }))
		with, wall := renderCost(t, e, map[string]string{"image": img, "audio": audio, "captions": srt}, fields)
		ratio := with.Seconds() / without.Seconds()
		t.Logf("the worst captions (%s): %.2f s of CPU (%.1f s), %.2fx", name, with.Seconds(), wall.Seconds(), ratio)
		if ratio > 9 { // about 7× at most, measured; the rest is for a loaded machine
			t.Errorf("the worst captions (%s) cost %.1fx the render without them, want at most 9x", name, ratio)
		}
	}
}
