//go:build e2e

package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"vidgen/internal/media"
)

// TestE2EPlatformVideos is docs/api.md's one curl per platform, at a realistic length: 20 s of
// speech-like MP3 over a 1080p photo, with a waveform and two captions, for each platform size. Each
// video must be ready to post: its size, a constant 30 fps for the whole length, H.264 High 4.0, a
// keyframe at least every 10 s, AAC-LC 48 kHz, the audio's length, the index first, and the second
// caption still shown near the end.
func TestE2EPlatformVideos(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	dir := t.TempDir()
	photo, audio := noisyPhoto(t, dir, 20), filepath.Join(dir, "speech.mp3")
	ffmpegMake(t, "-f", "lavfi", "-i", "anoisesrc=c=pink:r=44100:a=0.5:d=20:seed=3",
		"-af", "volume='0.2+0.8*abs(sin(2*PI*3.3*t))*gt(sin(2*PI*0.4*t),-0.3)':eval=frame,lowpass=f=4000",
		"-ac", "1", "-c:a", "libmp3lame", "-b:a", "128k", audio)
	srt := writeFixture(t, "c.srt", []byte("1\n00:00:01,000 --> 00:00:05,000\nFirst caption\n\n2\n00:00:17,000 --> 00:00:19,500\nThe second one, near the end\n"))
	for _, size := range []string{"landscape", "portrait", "square"} {
		t.Run(size, func(t *testing.T) {
			t.Parallel()
			key := e.newKey(t, size)
			body, ctype := multipartBody(t, map[string]string{"image": photo, "audio": audio, "captions": srt},
				map[string]string{"size": size, "waveform": "bars"})
			resp, b := e.do(t, "POST", "/api/jobs", key, body, "Content-Type", ctype)
			if resp.StatusCode != 201 {
				t.Fatalf("submit: %d %s", resp.StatusCode, b)
			}
			st := e.wait(t, key, decodeJSON(t, resp, b)["jobId"].(string), StatusCompleted)
			video, _ := download(t, st["outputVideo"].(string))
			checkVideo(t, video, audio)
			path := writeFixture(t, "out.mp4", video)
			f := platformSizes[size]
			v, a := streamInfo(t, path, "v"), streamInfo(t, path, "a")
			if v["width"] != strconv.Itoa(f.W) || v["height"] != strconv.Itoa(f.H) || v["profile"] != "High" || v["level"] != "40" ||
				v["r_frame_rate"] != "30/1" || v["avg_frame_rate"] != "30/1" {
				t.Errorf("video %v, want %dx%d High 4.0 at 30 fps", v, f.W, f.H)
			}
			if a["profile"] != "LC" || a["sample_rate"] != "48000" {
				t.Errorf("audio %v, want AAC-LC 48 kHz", a)
			}
			frames := frameTimes(t, path)
			for i := 1; i < len(frames); i++ {
				if d := frames[i] - frames[i-1]; math.Abs(d-1.0/30) > 0.002 {
					t.Fatalf("frame %d at %.4f s, %.4f s after the previous one: not a constant 30 fps", i, frames[i], d)
				}
			}
			// The frames last as long as the audio, within checkVideo's 0.1 s.
			if want := mediaDuration(t, audio) * 30; math.Abs(float64(len(frames))-want) > 3 {
				t.Errorf("%d frames, want %.1f (30 fps for the audio's length)", len(frames), want)
			}
			keys := keyframeTimes(t, path)
			for i := range keys {
				next := mediaDuration(t, path)
				if i+1 < len(keys) {
					next = keys[i+1]
				}
				if next-keys[i] > 10.05 {
					t.Errorf("keyframes at %v: a gap over 10 s", keys)
				}
			}
			w, h, outside := decodeFrameAt(t, path, 12)
			_, _, during := decodeFrameAt(t, path, 18)
			box := captionLayout(frameSize{w, h}, Options{Size: size, Waveform: "bars"})
			fs, marginV := box.FontSize, box.MarginV
			if n := frameDiff(outside, during, w, h-marginV-3*fs, h-marginV+fs/2); n < w*fs/20 {
				t.Errorf("the caption at 18 s changed only %d pixels of its rows", n)
			}
			t.Logf("%s: %d bytes (%.0f kbit/s)", size, len(video), float64(len(video))*8/1000/mediaDuration(t, path))
		})
	}
}

// noisyPhoto writes a detailed 1920x1080 JPEG into dir, the kind of photo whose keyframes are costly:
// a test picture under uniform noise of the given strength (0-100).
func noisyPhoto(t testing.TB, dir string, strength int) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("noisy%d.jpg", strength))
	ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=1920x1080", "-vf", fmt.Sprintf("noise=alls=%d:allf=u", strength), "-frames:v", "1", "-q:v", "2", path)
	return path
}

// frameTimes lists the presentation times of the video frames of the MP4 at path, in order.
func frameTimes(t testing.TB, path string) []float64 {
	t.Helper()
	out := ffprobeOut(t, "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0", path)
	var ts []float64
	for _, l := range strings.Fields(string(out)) {
		v, err := strconv.ParseFloat(strings.TrimSuffix(l, ","), 64)
		if err != nil {
			t.Fatalf("frame time %q: %v", l, err)
		}
		ts = append(ts, v)
	}
	return ts
}

func ffprobeOut(t testing.TB, args ...string) []byte {
	t.Helper()
	out, err := exec.Command("ffprobe", append([]string{"-v", "error"}, args...)...).Output()
	if err != nil {
		t.Fatalf("ffprobe %v: %v", args, err)
	}
	return out
}

// TestE2EMovingOutputSize renders moving pictures of a detailed (noisy) 1080p photo over 4 s of loud
// pink noise (the costliest waveform) and checks that estimateMovingSize, given the picture's
// lossless frame, is never under the video's size (the disk budget must not let a render fill the
// disk) and at most 2.5x it. On 10 s a clean picture's line was 5.7 MB, estimated 1.9x that.
func TestE2EMovingOutputSize(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	dir := t.TempDir()
	noisy := noisyPhoto(t, dir, 35)
	audio := filepath.Join(dir, "speech.wav")
	ffmpegMake(t, "-f", "lavfi", "-i", "anoisesrc=c=pink:r=44100:a=0.5:d=4:seed=3",
		"-af", "volume='0.2+0.8*abs(sin(2*PI*3.3*t))':eval=frame", "-ac", "1", audio)
	srt := "1\n00:00:01,000 --> 00:00:02,000\nA caption of two lines, long enough to wrap on a phone\n\n2\n00:00:02,500 --> 00:00:03,500\nAnd another\n"
	for _, c := range []struct {
		name, image string
		o           Options
	}{
		{"noisy portrait bars captions", noisy, Options{Size: "portrait", Background: "blur", Waveform: "bars", WaveformColor: "#FFFFFF", Captions: true}},
		{"noisy original line", noisy, Options{Size: sizeOriginal, Background: "blur", Waveform: "line", WaveformColor: "#FFFFFF"}},
	} {
		id, err := newJobID(time.Now(), e.srv.rand)
		if err != nil {
			t.Fatal(err)
		}
		copyFile(t, c.image, e.srv.dirs.input(id, inputImage))
		copyFile(t, audio, e.srv.dirs.input(id, inputAudio))
		os.WriteFile(e.srv.dirs.input(id, inputCaptions), []byte(srt), 0o600)
		job := Job{ID: id, ImageType: media.JPEG, AudioType: media.WAV, AudioCodec: "pcm_s16le//1/44100", AudioDuration: 4, Options: c.o}
		token, _, err := e.srv.renderer.renderFiles(t.Context(), job)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		fi, err := os.Stat(e.srv.dirs.output(token, "mp4"))
		if err != nil {
			t.Fatal(err)
		}
		still := filepath.Join(dir, "still.mkv")
		args := append([]string{"-nostdin", "-v", "error", "-y", "-protocol_whitelist", "file"}, stillArgs(job, c.image, still, filepath.Join(dir, "p.jpg"))...)
		if msg, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
			t.Fatalf("still: %v: %s", err, msg)
		}
		si, err := os.Stat(still)
		if err != nil {
			t.Fatal(err)
		}
		f, err := jpegSize(filepath.Join(dir, "p.jpg"))
		if err != nil {
			t.Fatal(err)
		}
		est := estimateMovingSize(si.Size(), f, c.o, 4, 192000)
		if r := float64(est) / float64(fi.Size()); r < 1 || r > 2.5 {
			t.Errorf("%s: output %d bytes, estimate %d (still %d bytes): %.2fx", c.name, fi.Size(), est, si.Size(), r)
		}
		t.Logf("%s: output %d bytes, estimate %d, still %d", c.name, fi.Size(), est, si.Size())
	}
}
