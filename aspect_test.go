package main

import (
	"errors"
	"image"
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
