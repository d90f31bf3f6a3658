package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The options rendered for real: one job per size, each checked for several properties at once
// (its dimensions and codec parameters, the image unstretched, its background, the waveform moving
// and the captions showing only during their cue), so the whole costs four short renders.

// updateDocs regenerates docs/api.md's pictures of each size (docs/size-*.png) from these renders.
var updateDocs = os.Getenv("VIDGEN_UPDATE_DOCS") == "1"

func init() {
	// 2 s of speech-like sound: noise in syllables, so the spectrum and the waveform change.
	fixtureRecipes["speech.wav"] = []string{"-f", "lavfi", "-i", "anoisesrc=c=pink:r=44100:a=0.5:d=2:seed=3",
		"-af", "volume='0.2+0.8*abs(sin(2*PI*3.3*t))':eval=frame,lowpass=f=4000", "-ac", "2"}
}

// streamInfo is what ffprobe says of the first stream of type kind ("v" or "a") of the file at path.
func streamInfo(t testing.TB, path, kind string) map[string]string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", kind+":0", "-show_entries",
		"stream=codec_name,profile,level,width,height,pix_fmt,r_frame_rate,avg_frame_rate,sample_rate", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var res struct{ Streams []map[string]any }
	if err := json.Unmarshal(out, &res); err != nil || len(res.Streams) != 1 {
		t.Fatalf("ffprobe %s: %v %s", path, err, out)
	}
	info := map[string]string{}
	for k, v := range res.Streams[0] {
		b, _ := json.Marshal(v)
		info[k] = strings.Trim(string(b), `"`)
	}
	return info
}

// framesAt decodes the video's frame at each of the times (the first at or after it, as
// decodeFrameAt's -ss seeks) with one ffmpeg, an input for each time, and returns their size and
// RGB bytes.
func framesAt(t testing.TB, path string, at ...float64) (int, int, [][]byte) {
	t.Helper()
	dir := t.TempDir()
	args := []string{"-v", "error"}
	for _, s := range at {
		args = append(args, "-ss", strconv.FormatFloat(s, 'f', 3, 64), "-i", path)
	}
	for i := range at {
		args = append(args, "-map", itoa(i)+":v:0", "-frames:v", "1", "-c:v", "ppm", "-f", "image2", filepath.Join(dir, itoa(i)+".ppm"))
	}
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("decode frames: %v %s", err, out)
	}
	var w, h int
	frames := make([][]byte, len(at))
	for i := range at {
		ppm := readFile(t, filepath.Join(dir, itoa(i)+".ppm"))
		var magic string
		var fw, fh, maxval int
		if n, err := fmt.Fscan(bytes.NewReader(ppm), &magic, &fw, &fh, &maxval); err != nil || n != 4 || magic != "P6" ||
			maxval != 255 || len(ppm) < fw*fh*3 || (i > 0 && (fw != w || fh != h)) {
			t.Fatalf("decode frames: frame %d is not an 8-bit PPM of the others' size: %q", i, ppm[:min(len(ppm), 20)])
		}
		w, h, frames[i] = fw, fh, ppm[len(ppm)-fw*fh*3:]
	}
	return w, h, frames
}

// frameDiff counts the pixels in rows [y0, y1) of two RGB frames of width w that differ by more
// than 40 in some channel.
func frameDiff(a, b []byte, w, y0, y1 int) int {
	n := 0
	for i := y0 * w * 3; i < y1*w*3; i += 3 {
		for c := range 3 {
			if d := int(a[i+c]) - int(b[i+c]); d > 40 || d < -40 {
				n++
				break
			}
		}
	}
	return n
}

func pixel(rgb []byte, w, x, y int) color.NRGBA {
	i := (y*w + x) * 3
	return color.NRGBA{rgb[i], rgb[i+1], rgb[i+2], 255}
}

func near(a, b color.NRGBA, tol int) bool {
	d := func(x, y uint8) bool { return int(x)-int(y) <= tol && int(y)-int(x) <= tol }
	return d(a.R, b.R) && d(a.G, b.G) && d(a.B, b.B)
}

// TestPlatformSizes renders one job per size, with the options each size is most used with, and
// checks the video, its poster, the status body and (for one) the webhook.
func TestPlatformSizes(t *testing.T) {
	t.Parallel()
	recv := newHookReceiver(t, nil)
	e := newTestEnv(t, hookConfig(t.TempDir(), recv), hookTrust(recv))
	src := quad(320, 240) // 4:3: bars left and right in 16:9, above and below in 9:16 and 1:1
	img := writeFixture(t, "quad.jpg", encodeJPEG(t, src))
	// The cue is shown from 0.9 s to 1.5 s; frames are compared at 0.3 s (before), 1.2 s (during)
	// and 1.8 s (after).
	srt := writeFixture(t, "captions.srt", []byte("1\n00:00:00,900 --> 00:00:01,500\nHello captions,\nwrapped {if} long enough to wrap\n"))
	cases := []struct {
		fields   map[string]string
		captions bool
		audio    string
		w, h     int
		fps      string
		rate     string // the audio's sample rate in the output
	}{
		{map[string]string{"waveform": "line"}, true, "tone.m4a", 320, 240, "25/1", "44100"},
		{map[string]string{"size": "landscape", "waveform": "bars"}, true, "speech.wav", 1920, 1080, "30/1", "48000"},
		{map[string]string{"size": "square", "background": "#102030"}, false, "tone.m4a", 1080, 1080, "30/1", "48000"},
		{map[string]string{"size": "portrait", "waveform": "bars", "waveformColor": "#FF0000"}, true, "speech.wav", 1080, 1920, "30/1", "48000"},
		{map[string]string{"size": "x", "waveform": "line", "waveformColor": "#1D9BF0"}, false, "tone.m4a", 1280, 720, "30/1", "48000"},
	}
	// The fast suite renders the first (moving, with captions and a webhook, at the picture's own
	// small size), square (still, on a colour) and x (moving, 720p); make e2e all five.
	for i, c := range sampled(cases, 2) {
		size := c.fields["size"]
		if size == "" {
			size = sizeOriginal
		}
		t.Run(size, func(t *testing.T) {
			t.Parallel()
			key := e.newKey(t, size)
			files := map[string]string{"image": img, "audio": fixture(t, c.audio)}
			if c.captions {
				files["captions"] = srt
			}
			fields := map[string]string{"webhookUrl": recv.url()}
			for k, v := range c.fields {
				fields[k] = v
			}
			if i != 0 {
				delete(fields, "webhookUrl")
			}
			body, ctype := multipartBody(t, files, fields)
			resp, b := e.do(t, "POST", "/api/jobs", key, body, "Content-Type", ctype)
			if resp.StatusCode != 201 {
				t.Fatalf("submit: %d %s", resp.StatusCode, b)
			}
			id := decodeJSON(t, resp, b)["jobId"].(string)
			st := e.wait(t, key, id, StatusCompleted)
			eventually(t, 10*time.Second, func() error {
				if _, err := os.Stat(e.srv.dirs.input(id, inputCaptions)); !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("the captions upload is still there after the job ended: %v", err)
				}
				return nil
			})

			// The options as chosen, defaults filled in.
			o, _ := parseOptions(c.fields, c.captions)
			want := map[string]any{}
			j, _ := json.Marshal(o)
			json.Unmarshal(j, &want)
			if !reflect.DeepEqual(st["options"], want) {
				t.Errorf("options %v, want %v", st["options"], want)
			}

			video, _ := download(t, st["outputVideo"].(string))
			checkVideo(t, video, fixture(t, c.audio))
			path := writeFixture(t, "out.mp4", video)
			v, a := streamInfo(t, path, "v"), streamInfo(t, path, "a")
			if v["width"] != itoa(c.w) || v["height"] != itoa(c.h) || v["r_frame_rate"] != c.fps || v["avg_frame_rate"] != c.fps || v["profile"] != "High" {
				t.Errorf("video %v, want %dx%d High at a constant %s fps", v, c.w, c.h, c.fps)
			}
			if o.platform() && v["level"] != "40" {
				t.Errorf("level %s, want 40 (4.0)", v["level"])
			}
			if a["codec_name"] != "aac" || a["profile"] != "LC" || a["sample_rate"] != c.rate {
				t.Errorf("audio %v, want AAC-LC at %s Hz", a, c.rate)
			}
			checkPoster(t, st["outputThumbnail"].(string), c.w, c.h)

			w, h, frames := framesAt(t, path, 0.3, 1.2, 1.8)
			before, during, after := frames[0], frames[1], frames[2]
			checkFitted(t, src, o, w, h, before)
			top, _ := waveformBand(frameSize{w, h})
			if !o.waveform() {
				top = h
			}
			// Above the waveform and the captions the picture never changes (a pixel in 10,000 may,
			// by the encoder's rounding).
			if n := frameDiff(before, during, w, 0, h/2); n > w*h/2/10000 {
				t.Errorf("%d pixels of the picture's top half changed", n)
			}
			if moved := frameDiff(before, during, w, top, h); o.waveform() != (moved > w*(h-top)/100) {
				t.Errorf("waveform %q: %d pixels of the band changed between 0.3 s and 1.2 s", o.Waveform, moved)
			}
			if o.WaveformColor == "#FF0000" && !hasColour(during, w, top, h, color.NRGBA{255, 0, 0, 255}) {
				t.Errorf("no pixel of the waveform in its colour #FF0000")
			}
			if c.captions {
				box := captionLayout(frameSize{w, h}, o)
				fs, marginV := box.FontSize, box.MarginV
				y0, y1 := h-marginV-3*fs, h-marginV+fs/2
				if n := frameDiff(before, during, w, y0, y1); n < w*(y1-y0)/100 {
					t.Errorf("only %d pixels of the captions' rows changed during the cue", n)
				}
				if n := frameDiff(before, after, w, y0, y1); n > w*(y1-y0)/10000 {
					t.Errorf("%d pixels of the captions' rows differ after the cue from before it", n)
				}
			}
			if updateDocs {
				doc := filepath.Join("docs", "size-"+size+".png")
				if out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-ss", "1.2", "-i", path, "-frames:v", "1",
					"-vf", "scale=320:-2:flags=lanczos", doc).CombinedOutput(); err != nil {
					t.Fatalf("write %s: %v %s", doc, err, out)
				}
			}
			if i == 0 {
				var event map[string]any
				if err := json.Unmarshal(recv.waitFor(t, 1)[0].Body, &event); err != nil {
					t.Fatal(err)
				}
				if event["outputThumbnail"] != st["outputThumbnail"] || !reflect.DeepEqual(event["options"], want) {
					t.Errorf("webhook outputThumbnail %v options %v, want %v %v", event["outputThumbnail"], event["options"], st["outputThumbnail"], want)
				}
			}
			resp, b = e.do(t, "GET", "/api/jobs", key, nil)
			items := decodeJSON(t, resp, b)["jobs"].([]any)
			if len(items) != 1 || items[0].(map[string]any)["outputThumbnail"] != st["outputThumbnail"] ||
				!reflect.DeepEqual(items[0].(map[string]any)["options"], want) {
				t.Errorf("list items %v, want outputThumbnail %v and options %v", items, st["outputThumbnail"], want)
			}
		})
	}
}

// TestSizeDocs checks docs/api.md's picture of each size is there (VIDGEN_UPDATE_DOCS=1 go test -tags e2e -run
// TestPlatformSizes regenerates them).
func TestSizeDocs(t *testing.T) {
	if updateDocs {
		t.Skip("TestPlatformSizes is writing them")
	}
	t.Parallel()
	for _, size := range sizeNames {
		f, err := os.Open(filepath.Join("docs", "size-"+size+".png"))
		if err != nil {
			t.Errorf("%v: run VIDGEN_UPDATE_DOCS=1 go test -tags e2e -run TestPlatformSizes .", err)
			continue
		}
		cfg, _, err := image.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width != 320 {
			t.Errorf("docs/size-%s.png: %v, %d px wide, want a 320 px PNG", size, err, cfg.Width)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// hasColour reports whether rows [y0, y1) of an RGB frame of width w hold a pixel near c.
func hasColour(rgb []byte, w, y0, y1 int, c color.NRGBA) bool {
	for y := y0; y < y1; y++ {
		for x := range w {
			if near(pixel(rgb, w, x, y), c, 50) {
				return true
			}
		}
	}
	return false
}

// checkFitted checks that the frame shows src whole and unstretched: src's colours where src's
// aspect, fitted into the frame and centred, puts them, and the background just outside that
// rectangle: the colour asked for, or the blurred copy, darker than the picture.
func checkFitted(t testing.TB, src image.Image, o Options, w, h int, rgb []byte) {
	t.Helper()
	sw, sh := src.Bounds().Dx(), src.Bounds().Dy()
	fw, fh := w, h
	if o.platform() {
		if sw*h > sh*w {
			fh = sh * w / sw
		} else {
			fw = sw * h / sh
		}
	}
	x0, y0 := (w-fw)/2, (h-fh)/2
	for _, fx := range []float64{0.1, 0.25, 0.75, 0.9} {
		for _, fy := range []float64{0.1, 0.25, 0.6, 0.7} {
			want := color.NRGBAModel.Convert(src.At(int(fx*float64(sw)), int(fy*float64(sh)))).(color.NRGBA)
			x, y := x0+int(fx*float64(fw)), y0+int(fy*float64(fh))
			if got := pixel(rgb, w, x, y); !near(got, want, 40) {
				t.Errorf("picture at (%d,%d): %v, want %v", x, y, got, want)
			}
		}
	}
	if !o.platform() {
		return
	}
	// 12 px outside the picture's left or top edge, level with its top-left quadrant.
	x, y := x0-12, y0+fh/4
	if fw == w {
		x, y = x0+fw/4, y0-12
	}
	got, inside := pixel(rgb, w, x, y), color.NRGBAModel.Convert(src.At(0, 0)).(color.NRGBA)
	if bg, ok := parseColour(o.Background); ok {
		want := color.NRGBA{hexByte(bg[1:3]), hexByte(bg[3:5]), hexByte(bg[5:7]), 255}
		if !near(got, want, 12) {
			t.Errorf("background at (%d,%d): %v, want %s", x, y, got, bg)
		}
	} else if near(got, inside, 40) || max(got.R, got.G, got.B) > 160 {
		t.Errorf("background at (%d,%d): %v, want the picture's blurred copy at half brightness (the picture: %v)", x, y, got, inside)
	}
}

func hexByte(s string) uint8 {
	var v uint8
	for _, c := range strings.ToLower(s) {
		v = v<<4 | uint8(strings.IndexRune("0123456789abcdef", c))
	}
	return v
}

// TestMovingOnColourEndsWithAudio: a waveform over a colour background ends with the sound. The
// colour's still frame once lasted a second, and ffmpeg's constant frame rate filled that second
// after the last frame: the video ran ~1 s past the audio.
func TestMovingOnColourEndsWithAudio(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	audio := fixture(t, "short.wav")
	body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.jpg"), "audio": audio},
		map[string]string{"size": "square", "background": "#102030", "waveform": "bars"})
	resp, b := e.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype)
	if resp.StatusCode != 201 {
		t.Fatalf("submit: %d %s", resp.StatusCode, b)
	}
	st := e.wait(t, e.key, decodeJSON(t, resp, b)["jobId"].(string), StatusCompleted)
	video, _ := download(t, st["outputVideo"].(string))
	path := writeFixture(t, "out.mp4", video)
	want := mediaDuration(t, audio)
	for _, kind := range []string{"v", "a"} {
		out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", kind+":0", "-show_entries", "stream=duration", "-of", "csv=p=0", path).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err != nil || math.Abs(got-want) > 0.05 {
			t.Errorf("%s stream lasts %s s, the audio %.3f s", kind, bytes.TrimSpace(out), want)
		}
	}
}
