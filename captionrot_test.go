package main

import (
	"encoding/binary"
	"fmt"
	"image"
	"strings"
	"testing"
)

// TestCaptionStillOrientation: a captioned job at the picture's own size makes picture and shots in
// one ffmpeg when the picture is turned by its metadata: a JPEG's EXIF orientation (a phone photo
// taken upright is stored on its side, orientation 6) is turned by ffmpeg, and the captions are laid
// out for the turned frame, so the picture is never made a second time to draw them again (which
// took twice as long). A PNG's eXIf orientation, which ffmpeg does not apply, keeps the stored size.
// (make test renders the quarter turns and the PNG, make e2e every case.) The video and the poster have the size of the picture a viewer sees, the video's first frame
// its quadrants where a viewer sees them.
func TestCaptionStillOrientation(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	var stillRuns string
	cfg.FFmpeg, stillRuns = countingFFmpegOf(t, t.TempDir(), "-c:v ffv1")
	e := newTestEnv(t, &cfg)
	srt := writeFixture(t, "cue.srt", []byte("1\n00:00:00,300 --> 00:00:01,500\nUpright\n"))
	jpg := encodeJPEG(t, corpusPicture)
	// The TIFF structure of an EXIF block that holds only the orientation.
	exifTIFF := func(o int) []byte { return withOrientation([]byte{0xff, 0xd8}, uint16(o), binary.BigEndian)[2+4+6:] }
	type pictureCase struct {
		name  string
		file  []byte
		shown image.Image // the picture as a viewer sees it, which the video shows
	}
	var cases []pictureCase
	for _, o := range []int{6, 3, 8, 1} { // sampled: the quarter turns, the PNG in make test; all in make e2e
		cases = append(cases, pictureCase{fmt.Sprintf("jpeg-orientation-%d", o), withOrientation(jpg, uint16(o), binary.BigEndian), oriented(corpusPicture, o)})
	}
	cases = append(cases, pictureCase{"png-exif-orientation-6", pngChunks(t, func(cs []pngChunk) []pngChunk {
		return append([]pngChunk{cs[0], withCRC("eXIf", exifTIFF(6))}, cs[1:]...)
	}), corpusPicture})
	t.Run("renders", func(t *testing.T) {
		for _, c := range sampled(cases, 2) {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				key := e.newKey(t, c.name)
				body, ctype := multipartBody(t, map[string]string{"image": writeFixture(t, c.name, c.file), "audio": fixture(t, "tone.mp3"), "captions": srt}, nil)
				resp, b := e.do(t, "POST", "/api/jobs", key, body, "Content-Type", ctype)
				if resp.StatusCode != 201 {
					t.Fatalf("submit: %d %s", resp.StatusCode, b)
				}
				id := decodeJSON(t, resp, b)["jobId"].(string)
				st := e.wait(t, key, id, StatusCompleted)
				w, h := c.shown.Bounds().Dx(), c.shown.Bounds().Dy()
				video, _ := download(t, st["outputVideo"].(string))
				if p := checkVideo(t, video, fixture(t, "tone.mp3")); p.Width != w || p.Height != h {
					t.Errorf("video %dx%d, want the picture as shown, %dx%d", p.Width, p.Height, w, h)
				}
				checkPoster(t, st["outputThumbnail"].(string), w, h)
				// The first frame, before the cue, is the picture as shown.
				comparePicture(t, c.shown, w, h, w, h, rgbFrames(t, writeFixture(t, "out.mp4", video), w, h)[0], 48)
				for _, line := range strings.Split(e.logs.String(), "\n") {
					if strings.Contains(line, "job="+id) && strings.Contains(line, "drawing the captions again") {
						t.Errorf("the picture was made twice: %s", line)
					}
				}
			})
		}
	})
	if n := countLines(t, stillRuns); n != 0 {
		t.Errorf("the captioned stills made the lossless still %d times, want none: one ffmpeg makes picture and shots", n)
	}
}
