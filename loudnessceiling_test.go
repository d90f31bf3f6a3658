package main

import (
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestLoudnessCeiling renders dense sound asked for loud targets, over the API, and measures the
// video's AAC as users download it with ffmpeg's ebur128: its true peak never passes the ceiling,
// and the audio is either within 0.5 LU of the target, with no warning, or the status warns of the
// loudness reached, which the video has (within 0.5 LU). Pink noise has a tenth of its loudness in
// peaks: at -21 LUFS with peaks at -11 dBTP, -12 is within reach of the limiter and -9 and -5 are
// not (the AAC encode lifts the peaks of sound flattened that far past the ceiling); a quiet mono
// sine has its peaks 3.7 dB over its loudness, so -5 would put them at -1.3 dBTP.
func TestLoudnessCeiling(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	// A server that encodes audio in 2 segments at once, as it does on 2 cores.
	inSegments := newTestEnv(t, nil, func(s *server) { splitAudio(s, 2) })
	picture := fixture(t, "img.png")
	pink := []string{"-f", "lavfi", "-i", "anoisesrc=c=pink:r=44100:a=1:d=6:seed=1",
		"-f", "lavfi", "-i", "anoisesrc=c=pink:r=44100:a=1:d=6:seed=2",
		"-filter_complex", "[0][1]join=inputs=2:channel_layout=stereo,volume=-9.3dB"}
	sine := []string{"-f", "lavfi", "-i", "aevalsrc=0.0079*sin(2*PI*440*t):s=44100:d=6"}
	// Quiet chords under loud low drum hits, twice a second: a limiter's work at every hit.
	drums := []string{"-f", "lavfi", "-i", "aevalsrc='0.05*sin(2*PI*220*t)+0.05*sin(2*PI*330*t+1)+0.04*sin(2*PI*495*t)+" +
		"0.6*exp(-30*mod(t,0.5))*sin(2*PI*80*t)|0.05*sin(2*PI*277*t)+0.04*sin(2*PI*415*t)+" +
		"0.6*exp(-30*mod(t+0.25,0.5))*sin(2*PI*90*t)':s=44100:d=30"}
	type ceilingCase struct {
		name     string
		recipe   []string
		target   float64
		warns    bool // whether the target is out of reach under the ceiling
		either   bool // the target may or may not be in reach: only the warning's truth is checked
		segments bool // rendered by a server that encodes audio in segments
	}
	for _, c := range sampled([]ceilingCase{
		{"dense noise to -5", pink, -5, true, false, false},
		{"dense noise to -9", pink, -9, true, false, false},
		{"dense noise to -12", pink, -12, false, false, false},
		{"quiet sine to -5", sine, -5, true, false, false},
		{"drums to -9 on a server that encodes in segments", drums, -9, false, true, true},
	}, 2) { // the fast suite renders -5, -12 and the drums (see sampled)
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			in := filepath.Join(t.TempDir(), "in.mp3")
			ffmpegMake(t, append(append([]string{}, c.recipe...), "-c:a", "libmp3lame", "-b:a", "192k", in)...)
			before, beforePeak := ebur128Summary(t, in)
			e := e
			if c.segments {
				e = inSegments
			}
			key := e.newKey(t, t.Name())
			fields := map[string]string{"loudness": strconv.FormatFloat(c.target, 'f', -1, 64)}
			if c.segments {
				fields["size"] = "landscape" // its audio resampled to 48 kHz
			}
			status, body := e.submit(t, key, picture, in, fields)
			if status != 201 {
				t.Fatalf("submit: %d %v", status, body)
			}
			st := e.wait(t, key, body["jobId"].(string), StatusCompleted)
			video, _ := download(t, st["outputVideo"].(string))
			got, peak := ebur128Summary(t, writeFixture(t, "out.mp4", video))
			t.Logf("input %.1f LUFS (peak %.1f dBTP), output %.1f LUFS, true peak %.1f dBTP, warnings %q", before, beforePeak, got, peak, st["warnings"])
			if peak > truePeakCeiling {
				t.Errorf("true peak %.1f dBTP, want at most %.1f", peak, truePeakCeiling)
			}
			reached, err := loudnessWarned(st["warnings"])
			switch {
			case err != nil:
				t.Error(err)
			case math.IsNaN(reached):
				if math.Abs(got-c.target) > 0.5 {
					t.Errorf("integrated loudness %.1f LUFS, want %.1f ± 0.5 or a warning of the loudness reached", got, c.target)
				}
				if c.warns && !c.either {
					t.Errorf("no warning that %.0f LUFS is out of reach (output %.1f LUFS)", c.target, got)
				}
			default:
				if math.Abs(got-reached) > 0.5 {
					t.Errorf("the warning says %.1f LUFS reached, the video has %.1f", reached, got)
				}
				if math.Abs(reached-c.target) <= 0.5 || !c.warns && !c.either {
					t.Errorf("a warning of %.1f LUFS reached, for a target of %.1f within reach", reached, c.target)
				}
			}
		})
	}
}

// loudnessWarned is the loudness (LUFS) a status's warnings (the JSON array) say the render
// reached short of the target, NaN when none says so.
func loudnessWarned(warnings any) (float64, error) {
	list, ok := warnings.([]any)
	if !ok {
		return 0, fmt.Errorf("warnings %#v, want an array", warnings)
	}
	reached := math.NaN()
	for _, w := range list {
		s, _ := w.(string)
		if m := regexp.MustCompile(`^loudness: reached (-?[0-9.]+) LUFS, not -?[0-9.]+: .*peak ceiling`).FindStringSubmatch(s); m != nil {
			reached, _ = strconv.ParseFloat(m[1], 64)
		} else if regexp.MustCompile(`(?i)loudness`).MatchString(s) {
			return 0, fmt.Errorf("warning %q does not name the loudness reached", s)
		}
	}
	return reached, nil
}

// TestLoudnessWarningAdvice: the target a warning suggests is one the render reached, a whole
// number at or under the level reached, never a louder one.
func TestLoudnessWarningAdvice(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		reached float64
		advice  string
	}{{-8.4, "ask for -9 or quieter"}, {-10.9, "ask for -11 or quieter"}, {-12, "ask for -12 or quieter"}} {
		j := Job{LoudnessReached: c.reached}
		j.Options.Loudness = -5
		msg, ok := loudnessWarning(j)
		if !ok || !strings.Contains(msg, c.advice) {
			t.Errorf("reached %.1f: %q, want it to say %q", c.reached, msg, c.advice)
		}
	}
}
