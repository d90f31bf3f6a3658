package main

import (
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// ebur128Summary is the integrated loudness (LUFS) and true peak (dBTP) of the first audio stream
// at path, from ffmpeg's ebur128 summary.
func ebur128Summary(t testing.TB, path string) (loudness, peak float64) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", path, "-map", "0:a:0",
		"-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ebur128 of %s: %v\n%s", filepath.Base(path), err, out)
	}
	summary := out[strings.LastIndex(string(out), "Summary:"):]
	num := func(re string) float64 {
		m := regexp.MustCompile(re).FindSubmatch(summary)
		if m == nil {
			t.Fatalf("ebur128 of %s: no %s in\n%s", filepath.Base(path), re, summary)
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	return num(`I:\s+(-?[0-9.]+) LUFS`), num(`Peak:\s+(-?[0-9.inf]+) dBFS`)
}

// TestLoudnessTarget renders quiet and loud sound with the loudness option, over the API, and
// measures the video's audio with ffmpeg's ebur128: within 0.5 LU of the target and under the true
// peak ceiling. The quiet speech needs 20 dB more, and from -14 LUFS its peaks would come within
// the dB of the ceiling the AAC encode may take (the limiter holds them); the loud music needs
// less; in segments (split over four cores) every segment must get the same gain; the moving
// picture encodes its audio in the same run as the picture.
func TestLoudnessTarget(t *testing.T) {
	t.Parallel()
	whole := newTestEnv(t, nil, func(s *server) { s.renderer.audioCores = 1 })
	segmented := newTestEnv(t, nil, func(s *server) { splitAudio(s, 4) }) // a segment a core
	picture := fixture(t, "img.png")
	type loudnessCase struct {
		name    string
		e       *testEnv
		recipe  []string
		gain    string // applied to the recipe's sound, making it quiet or loud
		fields  map[string]string
		limiter bool // whether the gain lifts the peaks past the ceiling
	}
	for _, c := range sampled([]loudnessCase{
		{"quiet speech, peaks limited, in segments", segmented, loudnessSignals["speech"], "-8dB", map[string]string{"loudness": "-10"}, true},
		{"quiet speech", whole, loudnessSignals["speech"], "-8dB", map[string]string{"loudness": "-16"}, false},
		{"quiet speech, peaks limited", whole, loudnessSignals["speech"], "-8dB", map[string]string{"loudness": "-11"}, true},
		{"loud music", whole, loudnessSignals["music"], "6dB", map[string]string{"loudness": "-14"}, false},
		{"quiet speech in segments", segmented, loudnessSignals["speech"], "-8dB", map[string]string{"loudness": "-14"}, true},
		{"loud music in segments", segmented, loudnessSignals["music"], "6dB", map[string]string{"loudness": "-16"}, false},
		{"loud music, moving", whole, loudnessSignals["music"], "3dB", map[string]string{"loudness": "-23", "waveform": "bars"}, false},
	}, 3) { // the fast suite renders the first, the fourth and the seventh (see sampled)
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src, in := filepath.Join(dir, "src.wav"), filepath.Join(dir, "in.mp3")
			ffmpegMake(t, append(append([]string{}, c.recipe...), "-c:a", "pcm_f32le", src)...)
			ffmpegMake(t, "-i", src, "-af", "volume="+c.gain, "-c:a", "libmp3lame", "-b:a", "192k", in)
			before, _ := ebur128Summary(t, in)
			e := c.e
			key := e.newKey(t, t.Name())
			status, body := e.submit(t, key, picture, in, c.fields)
			if status != 201 {
				t.Fatalf("submit: %d %v", status, body)
			}
			st := e.wait(t, key, body["jobId"].(string), StatusCompleted)
			video, _ := download(t, st["outputVideo"].(string))
			out := writeFixture(t, "out.mp4", video)
			target, _ := strconv.ParseFloat(c.fields["loudness"], 64)
			got, peak := ebur128Summary(t, out)
			if math.Abs(got-target) > 0.5 {
				t.Errorf("integrated loudness %.1f LUFS, want %.1f ± 0.5 (input %.1f)", got, target, before)
			}
			if peak > truePeakCeiling {
				t.Errorf("true peak %.1f dBTP, want at most %.1f", peak, truePeakCeiling)
			}
			if d, a := mediaDuration(t, out), mediaDuration(t, in); math.Abs(d-a) > 0.1 {
				t.Errorf("video lasts %.3f s, audio %.3f s", d, a)
			}
			if opts := st["options"].(map[string]any); opts["loudness"] != target {
				t.Errorf("status options %v: want loudness %v", opts, target)
			}
			id := body["jobId"].(string)
			if logs := e.logs.String(); !strings.Contains(logs, "job="+id) || !regexp.MustCompile(`loudness measured" job=`+id+`.* limiter=`+strconv.FormatBool(c.limiter)).MatchString(logs) {
				t.Errorf("no log of the measurement with limiter=%v", c.limiter)
			}
			t.Logf("input %.1f LUFS, output %.1f LUFS, true peak %.1f dBTP", before, got, peak)
		})
	}
}

// TestLoudnessRefused: a target out of range or not a number is a 400 that says what is allowed;
// "off" is the default.
func TestLoudnessRefused(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	for _, v := range []string{"-40", "0", "-4.9", "loud", "NaN", "-16 LUFS", "-Inf"} {
		body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav")},
			map[string]string{"loudness": v})
		resp, b := e.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype)
		msg := errorBody(t, resp, b, 400)
		if !strings.Contains(msg, "loudness") || !strings.Contains(msg, "-31 to -5") {
			t.Errorf("loudness %q: %q does not say what is allowed", v, msg)
		}
	}
	for v, want := range map[string]float64{"off": 0, "OFF": 0, "-16": -16, "-14.04": -14, " -31 ": -31, "-5": -5} {
		o, err := parseOptions(map[string]string{"loudness": v}, false)
		if err != nil || o.Loudness != want {
			t.Errorf("loudness %q: %v, %v; want %v", v, o.Loudness, err, want)
		}
	}
	if o, _ := parseOptions(map[string]string{"loudness": "off"}, false); encodeOptions(o) != "" {
		t.Errorf("loudness off stored as %q, want the default's empty options", encodeOptions(o))
	}
}

// TestLoudnessLevel: the gain is the target less the loudness; the limiter only when the gain lifts
// the true peak past the ceiling; silence is left alone.
func TestLoudnessLevel(t *testing.T) {
	for _, c := range []struct {
		loudness, peak, target float64
		want                   audioLevel
	}{
		{-30, -20, -16, audioLevel{gain: 14}},
		{-30, -10, -16, audioLevel{gain: 14, limit: limiterStart}},
		{-30, -17, -16, audioLevel{gain: 14}},                      // -3 dBTP: a dB and a half under the ceiling
		{-30, -16, -16, audioLevel{gain: 14, limit: limiterStart}}, // -2 dBTP: the encode could lift it past
		{-8, -0.1, -14, audioLevel{gain: -6}},
		{-70, -90, -16, audioLevel{}},
		{math.Inf(-1), math.Inf(-1), -16, audioLevel{}},
	} {
		if got := levelFor(c.loudness, c.peak, c.target); got != c.want {
			t.Errorf("levelFor(%v, %v, %v) = %+v, want %+v", c.loudness, c.peak, c.target, got, c.want)
		}
	}
	if f := (audioLevel{}).filters(48000); f != nil {
		t.Errorf("no level, filters %v", f)
	}
	// The limiter runs at four times the rate, so it holds the peaks between the samples too.
	if f := strings.Join((audioLevel{gain: 3, limit: -2.5}).filters(44100), ","); !strings.Contains(f, "aresample=176400,alimiter=limit=0.7499:") || !strings.HasSuffix(f, ",aresample=44100") {
		t.Errorf("limited level, filters %s", f)
	}
	// A job records the loudness reached only when it is further from the target than promised.
	for _, c := range [][3]float64{{-14, -14.4, 0}, {-14, -13.6, 0}, {-5, -10.64, -10.6}, {-16, -16.6, -16.6}, {0, -20, 0}} {
		if got := loudnessShort(c[0], c[1]); got != c[2] {
			t.Errorf("loudnessShort(%v, %v) = %v, want %v", c[0], c[1], got, c[2])
		}
	}
	// The fast path: AAC-LC that plays everywhere is copied unless a loudness is asked for.
	tag := "aac/LC/2/44100"
	if a := audioArgs(tag, defaultOptions); a[1] != "copy" {
		t.Errorf("no loudness: %v, want a copy", a)
	}
	o := defaultOptions
	o.Loudness, o.level = -16, audioLevel{gain: 3}
	if a := strings.Join(audioArgs(tag, o), " "); !strings.Contains(a, "-c:a aac") || !strings.Contains(a, "-af volume=3.00dB") {
		t.Errorf("loudness: %s, want an encode with the gain", a)
	}
}
