package main

import (
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestE2EMovingAudioEncodedOnce: a moving job of three platform sizes (a waveform over MP3) encodes its
// audio once, spliced or every frame encoded: the later sizes copy the first one's. Each video is
// of its size, checkVideo's, its streams within a frame of the input's sound, and carries the same
// AAC at 48 kHz from the same start.
func TestE2EMovingAudioEncodedOnce(t *testing.T) {
	t.Parallel()
	for _, splice := range []bool{true, false} {
		t.Run("splice="+strconv.FormatBool(splice), func(t *testing.T) {
			t.Parallel()
			wrapper, encodes := countingFFmpegOf(t, t.TempDir(), "-c:a aac")
			cfg := testConfig(t.TempDir())
			cfg.FFmpeg = wrapper
			e := newTestEnv(t, &cfg, func(s *server) { s.renderer.spliceWaveforms = splice })
			audio := fixture(t, "tone.mp3")
			code, body := e.submit(t, e.key, fixture(t, "img.jpg"), audio,
				map[string]string{"sizes": "landscape,portrait,square", "waveform": "bars"})
			if code != http.StatusCreated {
				t.Fatalf("submit: %d %v", code, body)
			}
			outs := statusOutputs(t, e.wait(t, e.key, body["jobId"].(string), StatusCompleted))
			if n := countLines(t, encodes); n != 1 {
				t.Errorf("3 sizes: %d AAC encodes, want 1", n)
			}
			want := map[string]frameSize{"landscape": {1920, 1080}, "portrait": {1080, 1920}, "square": {1080, 1080}}
			sound := mediaDuration(t, fixture(t, "tone.wav")) // the MP3's sound, without its padding
			var first audioStream
			for i, o := range outs {
				video, _ := download(t, o.Video)
				if p := checkVideo(t, video, audio); p.Width != want[o.Size].W || p.Height != want[o.Size].H {
					t.Errorf("%s: %dx%d, want %v", o.Size, p.Width, p.Height, want[o.Size])
				}
				path := writeFixture(t, o.Size+".mp4", video)
				vs, as := streamSeconds(t, path)
				if frame := 1.0 / 30; vs < sound-frame || vs > sound+frame || as < sound-frame || as > sound+frame {
					t.Errorf("%s: video %.3f s, audio %.3f s; want both within a frame of the sound's %.3f s", o.Size, vs, as, sound)
				}
				a := probeAudioStream(t, path)
				if a.rate != 48000 || a.profile != "LC" || a.start != 0 {
					t.Errorf("%s: audio %+v, want AAC-LC at 48 kHz from 0", o.Size, a)
				}
				if i == 0 {
					first = a
				} else if a != first {
					t.Errorf("%s: audio %+v, want the first size's %+v", o.Size, a, first)
				}
			}
		})
	}
}

// TestMovingAudioOriginalCopied: a job of the image's own size and a platform size, over AAC-LC at
// 44.1 kHz, copies the audio into the original's video, as a job of that size alone does, and
// encodes it once, at 48 kHz, for the platform's: still or moving.
func TestMovingAudioOriginalCopied(t *testing.T) {
	t.Parallel()
	wrapper, encodes := countingFFmpegOf(t, t.TempDir(), "-c:a aac")
	cfg := testConfig(t.TempDir())
	cfg.FFmpeg = wrapper
	e := newTestEnv(t, &cfg)
	audio := fixture(t, "tone.m4a")
	in := probeAudioStream(t, audio)
	if in.rate != 44100 || in.profile != "LC" {
		t.Fatalf("tone.m4a: %+v, want AAC-LC at 44.1 kHz", in)
	}
	for i, fields := range []map[string]string{
		{"sizes": "original,landscape"},
		{"sizes": "x,original", "waveform": "bars"},
	} {
		code, body := e.submit(t, e.key, fixture(t, "img.jpg"), audio, fields)
		if code != http.StatusCreated {
			t.Fatalf("%v: submit: %d %v", fields, code, body)
		}
		outs := statusOutputs(t, e.wait(t, e.key, body["jobId"].(string), StatusCompleted))
		if n := countLines(t, encodes); n != i+1 {
			t.Errorf("%v: %d AAC encodes, want 1", fields, n-i)
		}
		for _, o := range outs {
			video, _ := download(t, o.Video)
			checkVideo(t, video, audio)
			a := probeAudioStream(t, writeFixture(t, o.Size+".mp4", video))
			switch {
			case o.Size == "original" && a.packets != in.packets:
				t.Errorf("%v: original's audio %+v, want the upload's copied %+v", fields, a, in)
			case o.Size != "original" && (a.rate != 48000 || a.profile != "LC"):
				t.Errorf("%v: %s's audio %+v, want AAC-LC at 48 kHz", fields, o.Size, a)
			}
		}
	}
}

// audioStream is what a test compares of a file's first audio stream: its sample rate, AAC
// profile, start, and the MD5 of its packets (the same when one was copied from the other).
type audioStream struct {
	rate    int
	profile string
	start   float64
	packets string
}

// probeAudioStream is the audioStream of the media file at path.
func probeAudioStream(t testing.TB, path string) audioStream {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "a:0",
		"-show_entries", "stream=sample_rate,profile,start_time", "-of", "default=nw=1", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var a audioStream
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "sample_rate":
			a.rate, _ = strconv.Atoi(v)
		case "profile":
			a.profile = v
		case "start_time":
			a.start, _ = strconv.ParseFloat(v, 64)
		}
	}
	sum, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0", "-c", "copy", "-f", "md5", "-").Output()
	if err != nil {
		t.Fatalf("ffmpeg md5 %s: %v", path, err)
	}
	a.packets = strings.TrimSpace(string(sum))
	return a
}
