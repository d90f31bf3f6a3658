package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vidgen/internal/aac"
)

// TestSegmentedAudioJoin: long audio is encoded in segments side by side and joined at AAC frame
// boundaries. The joined track has exactly the samples one encode of the whole has, and around
// each join it is as close to the source as that one encode is: no gap, no repeated frame, no
// click. The source has a burst of noise every quarter second, so the encoder switches to short
// windows at and beside the joins.
func TestSegmentedAudioJoin(t *testing.T) {
	t.Parallel()
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
	// A stand-in ffmpeg counts the segment encodes (their output is ADTS) and runs the real one.
	calls := filepath.Join(dir, "adts-calls")
	real, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "ffmpeg")
	script := fmt.Sprintf("#!/bin/sh\ncase \"$*\" in *\"-f adts\"*) echo >> %q;; esac\nexec %q \"$@\"\n", calls, real)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t.TempDir())
	cfg.FFmpeg = wrapper
	e := newTestEnv(t, &cfg, func(s *server) {
		s.renderer.minSegment, s.renderer.audioCores = seconds/segments, segments
	})
	id := e.mustSubmit(t, e.key, fixture(t, "img.png"), src)
	st := e.wait(t, e.key, id, StatusCompleted)
	video, _ := download(t, st["outputVideo"].(string))
	checkVideo(t, video, src)
	if n := strings.Count(string(readFile(t, calls)), "\n"); n != segments {
		t.Fatalf("%d segment encodes, want %d", n, segments)
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
	for k, s := range aac.Plan(seconds, 48000, segments)[1:] {
		cut := int(s.Start/aac.FrameSamples+int64(s.Keep-aac.Lag)) * aac.FrameSamples * 2 // interleaved stereo
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

// TestAudioSegments: a job gets one segment a minute of its audio, at most one a core and
// maxSegments in all.
func TestAudioSegments(t *testing.T) {
	if n := audioSegments(600, defaultMinSegment, 2); n != 2 {
		t.Errorf("600 s on 2 cores: %d segments", n)
	}
	if n := audioSegments(90, defaultMinSegment, 8); n != 1 {
		t.Errorf("90 s on 8 cores: %d segments", n)
	}
	if n := audioSegments(3600, defaultMinSegment, 64); n != maxSegments {
		t.Errorf("an hour on 64 cores: %d segments", n)
	}
}
