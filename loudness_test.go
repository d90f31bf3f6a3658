package main

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// loudnessSignals are lavfi sources (stereo, 48 kHz, 8 s) of the three kinds of sound whose level
// must survive the render: speech-like (band-limited noise in syllables and pauses), music-like (a
// chord with harmonics and noise hats) and loud steady tones, at -1 dBFS and at -3 dBFS (the level of
// the ISO MP3 compliance tone).
var loudnessSignals = map[string][]string{
	"speech": {"-f", "lavfi", "-i", "anoisesrc=c=pink:r=48000:a=0.5:d=8:seed=3",
		"-af", "volume='0.2+0.8*abs(sin(2*PI*3.3*t))*gt(sin(2*PI*0.4*t),-0.3)':eval=frame,lowpass=f=4000,highpass=f=100,aformat=channel_layouts=stereo"},
	"music": {"-f", "lavfi", "-i", "aevalsrc=0.25*sin(2*PI*220*t)+0.2*sin(2*PI*277.2*t)+0.2*sin(2*PI*329.6*t)+0.1*sin(2*PI*440*t)+0.1*sin(2*PI*1760*t)*abs(sin(2*PI*0.5*t)):s=48000:d=8",
		"-f", "lavfi", "-i", "anoisesrc=c=white:r=48000:a=0.3:d=8:seed=5",
		"-filter_complex", "[1]volume='gt(mod(t,0.5),0.45)':eval=frame,highpass=f=2000[h];[0][h]amix=inputs=2:normalize=0,aformat=channel_layouts=stereo"},
	"tone-1dBFS": {"-f", "lavfi", "-i", "aevalsrc=0.891*sin(2*PI*1000*t)|0.891*sin(2*PI*1000*t):s=48000:d=8"},
	"tone-3dBFS": {"-f", "lavfi", "-i", "aevalsrc=0.708*sin(2*PI*1000*t)|0.708*sin(2*PI*1000*t):s=48000:d=8"},
}

// TestLoudness renders each signal, as WAV (encoded to AAC by the render) and as MP3, and checks that
// the output is as loud as the input (EBU R128 integrated loudness within 0.2 LU), steady where the
// input is (every half second within 0.2 dB of the input's level there) and no more clipped (no
// decoded sample at or past full scale that the input lacks).
func TestLoudness(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	picture := filepath.Join(t.TempDir(), "picture.png")
	os.WriteFile(picture, encodePNG(t, quad(64, 32)), 0o644)
	var cases [][2]string // signal, extension; the fast suite renders the first (see sampled)
	for _, name := range []string{"tone-1dBFS", "speech", "music", "tone-3dBFS"} {
		cases = append(cases, [2]string{name, "wav"}, [2]string{name, "mp3"})
	}
	for _, c := range sampled(cases, matrixSample) {
		name, ext, recipe := c[0], c[1], loudnessSignals[c[0]]
		t.Run(name+"."+ext, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(dir, "src.wav")
			ffmpegMake(t, append(append([]string{}, recipe...), "-c:a", "pcm_f32le", src)...)
			in := src
			if ext == "mp3" {
				// The reference is the MP3's own decode: its coding is the user's, not vidgen's.
				in = filepath.Join(dir, "in.mp3")
				ffmpegMake(t, "-i", src, "-c:a", "libmp3lame", "-b:a", "320k", in)
			}
			key := e.newKey(t, t.Name())
			id := e.mustSubmit(t, key, picture, in)
			st := e.wait(t, key, id, StatusCompleted)
			video, _ := download(t, st["outputVideo"].(string))
			out := writeFixture(t, "out.mp4", video)

			li, lo := integratedLoudness(t, in), integratedLoudness(t, out)
			if math.Abs(lo-li) > 0.2 {
				t.Errorf("integrated loudness %.2f LUFS, input %.2f LUFS (%+.2f LU)", lo, li, lo-li)
			}
			pin, pout := decodePCM(t, in), decodePCM(t, out)
			if cin, cout := clipped(pin), clipped(pout); cout > cin {
				t.Errorf("%d samples at or past full scale, input %d", cout, cin)
			}
			bin, bout := blockLevels(pin), blockLevels(pout)
			for i := 1; i < min(len(bin), len(bout))-1; i++ { // the first and last blocks hold the edges
				if d := bout[i] - bin[i]; math.Abs(d) > 0.2 && bin[i] > -60 {
					t.Errorf("level at %.1f s: %.2f dB, input %.2f dB", float64(i)/2, bout[i], bin[i])
				}
			}
			t.Logf("%s: input %.2f LUFS, output %.2f LUFS", name, li, lo)
		})
	}
}

// integratedLoudness is the EBU R128 integrated loudness of the first audio stream at path, per
// ffmpeg's loudnorm analysis (two decimals; ebur128's summary rounds to one).
func integratedLoudness(t testing.TB, path string) float64 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-i", path, "-map", "0:a:0",
		"-af", "loudnorm=print_format=json", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("loudness of %s: %v", filepath.Base(path), err)
	}
	i := bytesLastIndex(out, '{')
	var res struct {
		InputI string `json:"input_i"`
	}
	if i < 0 || json.Unmarshal(out[i:], &res) != nil {
		t.Fatalf("loudness of %s: %s", filepath.Base(path), out)
	}
	v, err := strconv.ParseFloat(res.InputI, 64)
	if err != nil {
		t.Fatalf("loudness %q: %v", res.InputI, err)
	}
	return v
}

func bytesLastIndex(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// decodePCM decodes the first audio stream at path to 48 kHz interleaved stereo floats.
func decodePCM(t testing.TB, path string) []float32 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0",
		"-ac", "2", "-ar", "48000", "-f", "f32le", "-c:a", "pcm_f32le", "-").Output()
	if err != nil {
		t.Fatalf("decode %s: %v", filepath.Base(path), err)
	}
	s := make([]float32, len(out)/4)
	for i := range s {
		s[i] = math.Float32frombits(binary.LittleEndian.Uint32(out[4*i:]))
	}
	return s
}

func clipped(s []float32) int {
	n := 0
	for _, v := range s {
		if v >= 1 || v <= -1 {
			n++
		}
	}
	return n
}

// blockLevels is the RMS level (dBFS) of each half second of 48 kHz stereo samples.
func blockLevels(s []float32) []float64 {
	const block = 48000 // half a second of stereo frames: 24000 × 2 samples
	var levels []float64
	for i := 0; i+block <= len(s); i += block {
		var sum float64
		for _, v := range s[i : i+block] {
			sum += float64(v) * float64(v)
		}
		levels = append(levels, 10*math.Log10(sum/block+1e-20))
	}
	return levels
}
