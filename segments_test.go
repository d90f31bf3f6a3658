package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"vidgen/internal/aac"
)

// TestSegmentedAudioJoin: long audio is encoded in segments side by side and joined at AAC frame
// boundaries. The joined track has exactly the samples one encode of the whole has, and around
// each join it is as close to the source as that one encode is: no gap, no repeated frame, no
// click. The source has a burst of noise every quarter second, so the encoder switches to short
// windows at and beside the joins. A job of one size encodes the first segment in its picture
// step's ffmpeg (audioRide); one of two sizes has two picture steps, beside all three segments.
func TestSegmentedAudioJoin(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		fields map[string]string
		rides  int // the runs that encode a segment and a picture
	}{
		{"riding the picture step", nil, 1},
		{"beside two picture steps", map[string]string{"sizes": "original,square"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			testSegmentedAudioJoin(t, c.fields, c.rides)
		})
	}
}

func testSegmentedAudioJoin(t *testing.T, fields map[string]string, rides int) {
	const seconds, segments = 6.0, 3
	dir := t.TempDir()
	src := filepath.Join(dir, "music.wav")
	if out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error",
		"-f", "lavfi", "-i", "aevalsrc=0.25*sin(2*PI*220*t)+0.2*sin(2*PI*277.2*t)+0.2*sin(2*PI*329.6*t)|0.2*sin(2*PI*220*t)+0.25*sin(2*PI*440*t):s=48000:d=6",
		"-f", "lavfi", "-i", "anoisesrc=c=white:r=48000:a=0.4:d=6:seed=5",
		"-filter_complex", "[1]volume='gt(mod(t,0.25),0.22)':eval=frame,highpass=f=2000,aformat=channel_layouts=stereo[h];[0][h]amix=inputs=2:normalize=0",
		"-c:a", "pcm_s16le", src).CombinedOutput(); err != nil {
		t.Fatalf("make source: %v\n%s", err, out)
	}
	wrapper, calls := countingFFmpeg(t, dir)
	cfg := testConfig(t.TempDir())
	cfg.FFmpeg = wrapper
	e := newTestEnv(t, &cfg, func(s *server) { splitAudio(s, segments) })
	code, body := e.submit(t, e.key, fixture(t, "img.png"), src, fields)
	if code != http.StatusCreated {
		t.Fatalf("submit: %d %v", code, body)
	}
	st := e.wait(t, e.key, body["jobId"].(string), StatusCompleted)
	video, _ := download(t, st["outputVideo"].(string))
	checkVideo(t, video, src)
	if n := countLines(t, calls); n != segments {
		t.Fatalf("%d segment encodes, want %d", n, segments)
	}
	if n := countLines(t, calls+".rides"); n != rides {
		t.Fatalf("%d segments encoded by a picture step, want %d", n, rides)
	}

	whole := filepath.Join(dir, "whole.m4a")
	if out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", src,
		"-c:a", "aac", "-aac_coder", aacCoder, "-b:a", audioRate, whole).CombinedOutput(); err != nil {
		t.Fatalf("encode whole: %v\n%s", err, out)
	}
	ref, one, got := decodePCM(t, src), decodePCM(t, whole), decodePCM(t, writeFixture(t, "out.mp4", video))
	if len(got) != len(one) {
		t.Fatalf("joined track has %d samples, one encode %d: a gap or a repeated frame", len(got)/2, len(one)/2)
	}
	if g, o := snr(ref, got, 0, len(ref)), snr(ref, one, 0, len(ref)); g < o-1 {
		t.Errorf("joined track: SNR %.1f dB against the source, one encode %.1f dB", g, o)
	}
	shares, _ := splitCosts.plan(seconds, segments)
	for k, s := range aac.PlanWeighted(seconds, 48000, shares)[1:] {
		cut := int(shareFrom(s)) * aac.FrameSamples * 2 // interleaved stereo
		lo, hi := cut-4*aac.FrameSamples, cut+4*aac.FrameSamples
		g, o := maxError(ref, got, lo, hi), maxError(ref, one, lo, hi)
		if g > 1.5*o+0.002 {
			t.Errorf("join %d at %.3f s: error up to %.4f, one encode's %.4f (a click)", k+1, float64(cut/2)/48000, g, o)
		}
		if gs, os := snr(ref, got, lo, hi), snr(ref, one, lo, hi); gs < os-1 {
			t.Errorf("join %d at %.3f s: SNR %.1f dB, one encode's %.1f dB", k+1, float64(cut/2)/48000, gs, os)
		}
	}
}

// splitCosts are the costs of a render that is all encode.
var splitCosts = encodeCosts{Encode: 0.1}

// splitAudio makes s encode any audio it encodes in n segments, as on n cores with an encode
// that costs more than all else.
func splitAudio(s *server, n int) {
	s.renderer.audioCores = n
	s.renderer.costs = func(Job, float64) encodeCosts { return splitCosts }
}

// snr is the signal-to-noise ratio in dB of got against ref over samples [lo, hi).
func snr(ref, got []float32, lo, hi int) float64 {
	var s, n float64
	for i := lo; i < hi && i < len(ref) && i < len(got); i++ {
		d := float64(ref[i] - got[i])
		s += float64(ref[i]) * float64(ref[i])
		n += d * d
	}
	return 10 * math.Log10((s+1e-12)/(n+1e-12))
}

// maxError is the largest difference between ref and got over samples [lo, hi).
func maxError(ref, got []float32, lo, hi int) float64 {
	m := 0.0
	for i := lo; i < hi && i < len(ref) && i < len(got); i++ {
		m = max(m, math.Abs(float64(ref[i]-got[i])))
	}
	return m
}

// countingFFmpeg writes in dir a stand-in ffmpeg that runs the real one and adds a line to the file
// calls for each encode it runs to ADTS, one a segment, and to calls.rides for each of those that
// encodes a picture too (audioRide).
func countingFFmpeg(t testing.TB, dir string) (wrapper, calls string) {
	t.Helper()
	return countingFFmpegOf(t, dir, "-f adts")
}

// countingFFmpegOf is countingFFmpeg for the runs whose arguments, joined by spaces, hold args.
func countingFFmpegOf(t testing.TB, dir, args string) (wrapper, calls string) {
	t.Helper()
	real, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	calls, wrapper = filepath.Join(dir, "calls"), filepath.Join(dir, "ffmpeg")
	// A run that has the args and encodes a picture too is also counted in calls.rides.
	script := fmt.Sprintf("#!/bin/sh\ncase \"$*\" in *%q*) echo >> %q\n  case \"$*\" in *libx264*) echo >> %q;; esac;; esac\nexec %q \"$@\"\n",
		args, calls, calls+".rides", real)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper, calls
}

// countLines is the number of lines of the file at path, 0 when there is none.
func countLines(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// TestAudioSegments: the number of segments a job's audio is encoded in, from what its parts cost
// (about the measured costs of mono speech and of stereo music MP3 at 44.1 kHz, beside a 1080p
// JPEG's picture step) and the cores free for it. One core: one segment. Audio whose encode takes
// less than the picture step beside it: one segment, as a second would not win its start back. A
// minute of speech, whose encode takes about a second: both cores of two; beyond that, as many as
// bring the encode under the picture step, and every core for long audio, up to maxSegments.
func TestAudioSegments(t *testing.T) {
	speech := encodeCosts{Start: 0.07, Decode: 0.0015, Encode: 0.014, Picture: 0.38}
	music := speech
	music.Encode = 0.028
	slowPicture := music
	slowPicture.Picture = 1.93
	// A 1080p picture step that encodes the first segment (audioRide): a start fewer.
	riding := speech
	riding.Picture, riding.Ride = 0.22, true
	for _, c := range []struct {
		name    string
		costs   encodeCosts
		seconds float64
		want    [3]int // on 1, 2 and 8 cores
	}{
		{"speech", speech, 5, [3]int{1, 1, 1}},
		{"speech", speech, 15, [3]int{1, 1, 1}},
		{"speech", speech, 60, [3]int{1, 2, 3}},
		// Shares weighted by what each segment decodes: five take as long as the picture step.
		{"speech", speech, 90, [3]int{1, 2, 5}},
		{"speech", speech, 600, [3]int{1, 2, 8}},
		{"music", music, 5, [3]int{1, 1, 1}},
		{"music", music, 15, [3]int{1, 1, 2}},
		{"music", music, 60, [3]int{1, 2, 6}},
		// The eighth segment's start and decode cost more than it takes off the others.
		{"music", music, 90, [3]int{1, 2, 7}},
		{"music", music, 600, [3]int{1, 2, 8}},
		{"speech riding the picture step", riding, 5, [3]int{1, 1, 1}},
		{"speech riding the picture step", riding, 15, [3]int{1, 2, 3}},
		{"speech riding the picture step", riding, 60, [3]int{1, 2, 7}},
		// The picture step of a large picture outlasts a short encode: the encode stays whole.
		{"music beside a slow picture", slowPicture, 60, [3]int{1, 1, 1}},
		// Costs that are all encode: every core, at most maxSegments.
		{"encode alone", encodeCosts{Encode: 1}, 1, [3]int{1, 2, maxSegments}},
	} {
		for i, cores := range []int{1, 2, 8} {
			if n := audioSegments(c.seconds, c.costs, cores); n != c.want[i] {
				t.Errorf("%s, %.0f s on %d cores: %d segments, want %d", c.name, c.seconds, cores, n, c.want[i])
			}
		}
	}
	// More audio or more cores never means fewer segments, nor more segments than cores.
	for _, costs := range []encodeCosts{speech, music} {
		for cores := 1; cores <= 16; cores++ {
			last := 1
			for s := 1.0; s <= 3600; s *= 1.25 {
				n := audioSegments(s, costs, cores)
				if n < last || n > min(cores, maxSegments) || n < audioSegments(s, costs, max(cores-1, 1)) {
					t.Fatalf("%.1f s on %d cores: %d segments (%d for less audio, %d on a core less)",
						s, cores, n, last, audioSegments(s, costs, max(cores-1, 1)))
				}
				last = n
			}
		}
	}
}

// TestSegmentShares: the segments' shares make their work (the decode up to the end of the share
// and the encode of it, the picture's too in the first when it rides) the same, so that they end
// together. A minute of mono speech at 44.1 kHz in two is cut at ~31.6 s, not in the middle, and at
// ~24.1 s when the first segment rides in a 1080p picture step; an encode that costs all (nothing
// to decode) is cut evenly. No segment rides a picture step that outweighs its share, nor one that
// would hold its picture's memory for longer than maxRide (ten minutes of speech).
func TestSegmentShares(t *testing.T) {
	t.Parallel()
	const rate = 44100
	speech := jobEncodeCosts(Job{AudioCodec: "mp3//1/44100"}, pictureCostBase)
	riding := speech
	riding.Ride = true
	slow := riding
	slow.Picture = 10
	for _, c := range []struct {
		name    string
		costs   encodeCosts
		seconds float64
		rides   bool
		cut     float64 // where the first of two segments ends
	}{
		{"speech", speech, 60, false, 31.6}, {"speech riding", riding, 60, true, 24.1},
		{"all encode", splitCosts, 60, false, 30}, {"beside a slow picture", slow, 60, false, 31.6},
		{"ten minutes riding", riding, 600, false, 315.3},
	} {
		for _, n := range []int{2, 3, 8} {
			shares, rides := c.costs.plan(c.seconds, n)
			if sum := sumOf(shares); math.Abs(sum-c.seconds) > 1e-9 || slices.Min(shares) <= 0 {
				t.Fatalf("%s in %d: shares %.2f, want each above 0 and %v s in all", c.name, n, shares, c.seconds)
			}
			if n == 2 && rides != c.rides {
				t.Errorf("%s in %d: rides %v, want %v", c.name, n, rides, c.rides)
			}
			segs := aac.PlanWeighted(c.seconds, rate, shares)
			var works []float64
			var from float64
			for k := range segs {
				to := c.seconds
				if k < n-1 {
					to = float64(shareFrom(segs[k+1])) * aac.FrameSamples / rate
				}
				work := c.costs.Start + c.costs.Decode*to + c.costs.Encode*(to-from)
				if k == 0 && rides {
					work += c.costs.Picture
				}
				works = append(works, work)
				from = to
			}
			frame := (c.costs.Encode + c.costs.Decode) * aac.FrameSamples / rate
			if spread := slices.Max(works) - slices.Min(works); spread > 3*frame {
				t.Errorf("%s in %d: the segments' work %.4f s, %.4f s apart (more than 3 frames')", c.name, n, works, spread)
			}
			if cut := float64(shareFrom(segs[1])) * aac.FrameSamples / rate; n == 2 && math.Abs(cut-c.cut) > 0.1 {
				t.Errorf("%s in 2: cut at %.2f s, want ~%.1f", c.name, cut, c.cut)
			}
		}
	}
	// Work in the first segment that outweighs a share leaves it none.
	if shares := segmentShares(60, speech, 3, 10); shares[0] != 0 || !slices.Equal(shares[1:], segmentShares(60, speech, 2, 0)) {
		t.Errorf("10 s of work in the first of 3: shares %.2f, want none for it and the rest as in 2", shares)
	}
}

// shareFrom is the frame of the decoded sound that segment s (not the first) starts its share at:
// the cut before it.
func shareFrom(s aac.Segment) int64 {
	return s.Start/aac.FrameSamples + int64(s.Keep-aac.Lag)
}

// sumOf is the sum of v.
func sumOf(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s
}

// TestJobEncodeCosts: an encode costs in proportion to the channels and the sample rate it
// encodes; more than two channels are downmixed to two, and the picture step's estimate is kept.
func TestJobEncodeCosts(t *testing.T) {
	mono := jobEncodeCosts(Job{AudioCodec: "mp3//1/48000"}, 0.5)
	if mono.Encode != encodeCostPerChannel || mono.Start != startCost || mono.Decode != decodeCost || mono.Picture != 0.5 {
		t.Fatalf("mono at 48 kHz: %+v", mono)
	}
	for codec, want := range map[string]float64{
		"mp3//2/48000":   2 * encodeCostPerChannel,
		"mp3//2/24000":   encodeCostPerChannel,
		"flac//6/48000":  2 * encodeCostPerChannel, // downmixed
		"opus//2/48000":  2 * encodeCostPerChannel,
		"pcm_s16le//1/0": 0,
	} {
		if got := jobEncodeCosts(Job{AudioCodec: codec}, 0.5).Encode; math.Abs(got-want) > 1e-12 {
			t.Errorf("%s: encode %.5f s a second, want %.5f", codec, got, want)
		}
	}
}

// TestShortAudioUsesCores: through the service, 30 s of stereo sound, whose encode takes longer
// than the picture step, is encoded in two segments on two cores and renders to a video of its
// length; 4 s is encoded whole.
func TestShortAudioUsesCores(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	wrapper, calls := countingFFmpeg(t, dir)
	cfg := testConfig(t.TempDir())
	cfg.FFmpeg = wrapper
	e := newTestEnv(t, &cfg, func(s *server) { s.renderer.audioCores = 2 })
	for _, c := range []struct {
		seconds  int
		segments int
	}{{4, 1}, {30, 2}} {
		src := filepath.Join(dir, fmt.Sprintf("%d.wav", c.seconds))
		if out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi",
			"-i", fmt.Sprintf("aevalsrc=0.3*sin(2*PI*220*t)|0.3*sin(2*PI*330*t):s=44100:d=%d", c.seconds),
			"-c:a", "pcm_s16le", src).CombinedOutput(); err != nil {
			t.Fatalf("make source: %v\n%s", err, out)
		}
		before := countLines(t, calls)
		id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), src)
		st := e.wait(t, e.key, id, StatusCompleted)
		video, _ := download(t, st["outputVideo"].(string))
		checkVideo(t, video, src)
		if n := countLines(t, calls) - before; n != c.segments {
			t.Errorf("%d s: %d audio encodes, want %d", c.seconds, n, c.segments)
		}
	}
}
