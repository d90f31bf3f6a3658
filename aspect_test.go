package main

import (
	"errors"
	"image"
	"image/color"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
)

// stripPNG is a white w×h PNG: a picture far wider or taller than any frame.
func stripPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i++ {
		img.Pix[i] = 255
	}
	return encodePNG(t, img)
}

// TestExtremeAspectRatios renders a 1×4000 and a 4000×1 picture at every size, over the blurred
// copy and over a colour, in one job of five sizes each: every size is made at first try, the
// picture a thin white strip across the frame's middle, the background around it whole. A
// picture's side fitted under 2 pixels, or its blurred copy enlarged to cover the frame (1920×1843200
// for the tall one), once made ffmpeg refuse the render: the job failed after 3 attempts, or at
// once blaming the server's memory, and took every other size with it.
func TestExtremeAspectRatios(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	dir := t.TempDir()
	cases := []struct {
		image      string
		w, h       int
		background string
		original   frameSize // the original size: the long side fitted to 1920, the short one 2
	}{
		{"tall", 1, 4000, "blur", frameSize{2, 1920}},
		{"tall", 1, 4000, "#102030", frameSize{2, 1920}},
		{"wide", 4000, 1, "#102030", frameSize{1920, 2}},
		{"wide", 4000, 1, "blur", frameSize{1920, 2}},
	}
	// The fast suite renders the tall one over its blurred copy and the wide one over a colour.
	audio := fixture(t, "tone.wav")
	sizes := []string{sizeOriginal, "landscape", "portrait", "square", "x"}
	for _, c := range sampled(cases, 2) {
		t.Run(c.image+"/"+c.background, func(t *testing.T) {
			t.Parallel()
			img := filepath.Join(dir, c.image+strings.TrimPrefix(c.background, "#")+".png")
			if err := os.WriteFile(img, stripPNG(t, c.w, c.h), 0o644); err != nil {
				t.Fatal(err)
			}
			key := e.newKey(t, c.image+c.background)
			code, body := e.submit(t, key, img, audio, map[string]string{"sizes": strings.Join(sizes, ","), "background": c.background})
			if code != http.StatusCreated {
				t.Fatalf("submit: %d %v", code, body)
			}
			st := e.wait(t, key, body["jobId"].(string), StatusCompleted)
			resp, b := e.do(t, "GET", "/api/jobs", key, nil)
			if items := decodeJSON(t, resp, b)["jobs"].([]any); len(items) != 1 || items[0].(map[string]any)["retries"] != 0.0 {
				t.Errorf("jobs %v, want the one job done at its first attempt", items)
			}
			outputs := st["outputs"].([]any)
			if len(outputs) != len(sizes) {
				t.Fatalf("outputs %v, want one per size of %v", outputs, sizes)
			}
			for i, size := range sizes {
				out := outputs[i].(map[string]any)
				want, platform := platformSizes[size]
				if !platform {
					want = c.original
				}
				video, _ := download(t, out["video"].(string))
				p := checkVideo(t, video, audio)
				if out["size"] != size || p.Width != want.W || p.Height != want.H {
					t.Errorf("%s: %v is %dx%d, want %dx%d", size, out["size"], p.Width, p.Height, want.W, want.H)
					continue
				}
				if !platform {
					continue
				}
				w, h, frames := framesAt(t, writeFixture(t, size+".mp4", video), 1)
				// The strip crosses the frame's middle; 8 pixels beside it, and in the corner, is the
				// background: the colour, or the white picture blurred at half its brightness.
				bg := color.NRGBA{127, 127, 127, 255}
				if c.background != "blur" {
					bg = color.NRGBA{0x10, 0x20, 0x30, 255}
				}
				beside := pixel(frames[0], w, w/2+8, h/2)
				if c.w > c.h {
					beside = pixel(frames[0], w, w/2, h/2+8)
				}
				middle, corner := pixel(frames[0], w, w/2, h/2), pixel(frames[0], w, 0, 0)
				if int(middle.R)+int(middle.G)+int(middle.B) < 600 || !near(beside, bg, 16) || !near(corner, bg, 16) {
					t.Errorf("%s: middle %v, beside it %v, corner %v: want a white strip over %v", size, middle, beside, corner, bg)
				}
			}
		})
	}
}

// TestRefusedRenderIsFinal: a render that ffmpeg refuses for its own arguments (a frame size out
// of range, here the filters that once fitted a 2×1920 picture into a landscape frame) fails the
// job at once with a message that blames neither the files nor the server's memory; the scaler
// reports the size it refuses as "Cannot allocate memory". Retrying it ran the same arguments
// into the same refusal 3 times.
func TestRefusedRenderIsFinal(t *testing.T) {
	t.Parallel()
	img := writeFixture(t, "strip.png", stripPNG(t, 2, 1920))
	for _, c := range []struct{ name, filter string }{
		{"cover", "scale=1920:1080:force_original_aspect_ratio=increase,crop=1920:1080"},
		{"fit", "scale=1920:1080:force_original_aspect_ratio=decrease:force_divisible_by=2"},
	} {
		for _, memory := range []int64{0, defaultChildMemory} {
			rd := &renderer{tools: ffmpeg.Tools{FFmpeg: "ffmpeg", FFprobe: "ffprobe", Memory: memory}, now: time.Now, progress: map[string]*jobProgress{}}
			args := []string{"-f", demuxer[media.PNG], "-i", "file:" + img, "-vf", c.filter, "-f", "null", "-"}
			err := rd.ffmpegRun(t.Context(), "job", 0, args...)
			if err == nil {
				t.Fatalf("%s: ffmpeg took a frame size it refuses", c.name)
			}
			var f *renderFailure
			if !errors.As(rd.stepFailed(t.Context(), err, Job{ImageType: media.PNG}, inputImage, img, args), &f) ||
				!f.final || f.msg == childMemoryFailure || f.msg == imageFailure {
				t.Errorf("%s under %d bytes: %v classified as %+v, want a final failure that blames neither memory nor the image", c.name, memory, err, f)
			}
		}
	}
}
