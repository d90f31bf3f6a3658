package main

import (
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// grayFrame decodes the frame of the video at path shown at sec seconds as 8-bit luma, w×h.
func grayFrame(t testing.TB, path string, sec float64, w, h int) []byte {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-ss", strconv.FormatFloat(sec, 'f', 3, 64),
		"-i", path, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-").Output()
	if err != nil {
		t.Fatalf("decode a frame of %s at %.2f s: %v", path, sec, err)
	}
	if len(out) != w*h {
		t.Fatalf("frame at %.2f s: %d bytes, want %dx%d", sec, len(out), w, h)
	}
	return out
}

// bright counts the pixels brighter than 128 in rows [from, to) of a w-wide luma frame.
func bright(frame []byte, w, from, to int) int {
	n := 0
	for _, v := range frame[from*w : to*w] {
		if v > 128 {
			n++
		}
	}
	return n
}

// TestTitleAndProgressBar renders a square video of a 4:3 picture over black (the picture leaves a
// band of background above and below it) with a title and a progress bar, and decodes its frames:
// the title's band holds bright text where the same video without a title is black, and the bar's
// filled width along the bottom edge grows with time, at t/duration of the frame's width.
func TestTitleAndProgressBar(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	audio := fixture(t, "tone.wav") // 2.5 s
	duration := mediaDuration(t, audio)
	render := func(t *testing.T, fields map[string]string) string {
		key := e.newKey(t, t.Name()+fields["title"]+fields["waveform"])
		status, body := e.submit(t, key, fixture(t, "img.png"), audio, fields)
		if status != 201 {
			t.Fatalf("submit: %d %v", status, body)
		}
		st := e.wait(t, key, body["jobId"].(string), StatusCompleted)
		video, _ := download(t, st["outputVideo"].(string))
		return writeFixture(t, "out.mp4", video)
	}
	const side, band = 1080, 135 // the picture is 1080×810, centred: 135 rows of background above and below
	base := map[string]string{"size": "square", "background": "#000000"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	t.Run("top title and bar", func(t *testing.T) {
		t.Parallel()
		out := render(t, with("title", "Episode 1: {hello}", "progressBar", "true"))
		plain := render(t, with("waveform", "bars")) // moving too, without title or bar
		titled, untitled := grayFrame(t, out, 1, side, side), grayFrame(t, plain, 1, side, side)
		if n := bright(untitled, side, 0, band); n != 0 {
			t.Fatalf("the top band is not plain background without a title: %d bright pixels", n)
		}
		if n := bright(titled, side, 0, band); n < 2000 {
			t.Errorf("the title's band has %d bright pixels, want the title's text", n)
		}
		// The bar's colour source outlasts the audio, so that it covers the last frame: the video
		// still ends with the audio.
		if v, a := streamSeconds(t, out); math.Abs(v-duration) > 1.0/30 || math.Abs(a-duration) > 1.0/30 {
			t.Errorf("video %.3f s and audio %.3f s, want both within a frame of the audio's %.3f s", v, a, duration)
		}
		barRow := side - progressBarHeight(frameSize{side, side})/2 // the middle of the bar
		var last int
		for _, at := range []float64{0.5, 1.25, 2.0} {
			filled := bright(grayFrame(t, out, at, side, side), side, barRow, barRow+1)
			want := int(at / duration * side)
			if filled < want-side/20 || filled > want+side/20 {
				t.Errorf("at %.2f s the bar covers %d px, want about %d (%.0f%% of %d)", at, filled, want, 100*at/duration, side)
			}
			if filled <= last {
				t.Errorf("at %.2f s the bar covers %d px, no more than before (%d)", at, filled, last)
			}
			last = filled
		}
	})
	t.Run("bottom title", func(t *testing.T) {
		t.Parallel()
		out := render(t, with("title", "Bottom", "titlePosition", "bottom", "titleSize", "large", "titleColor", "yellow"))
		frame := grayFrame(t, out, 1, side, side)
		if n := bright(frame, side, 0, band); n != 0 {
			t.Errorf("the top band has %d bright pixels; the title is at the bottom", n)
		}
		if n := bright(frame, side, side-band, side); n < 2000 {
			t.Errorf("the bottom band has %d bright pixels, want the title's text", n)
		}
	})
}

// TestTitleRefused: a title over the limits, or a title option or progress bar the API does not
// know, is a 400 that says what is allowed; the title's text is limited as a caption's is.
func TestTitleRefused(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	for _, c := range []struct {
		fields map[string]string
		want   []string
	}{
		{map[string]string{"title": strings.Repeat("x", 121)}, []string{"title: a title of 121 characters; the most is 120"}},
		{map[string]string{"title": "a" + strings.Repeat("\u0301", 9)}, []string{"title: more than 8 combining marks"}},
		{map[string]string{"title": strings.Repeat("中", 41)}, []string{"title: a title that weighs 1025, the most is 1000"}},
		{map[string]string{"title": "\x01\x02"}, []string{"title: the title has no text to draw"}},
		{map[string]string{"title": "x", "titlePosition": "middle"}, []string{"titlePosition", "top, bottom"}},
		{map[string]string{"title": "x", "titleSize": "huge"}, []string{"titleSize", "small, medium, large"}},
		{map[string]string{"title": "x", "titleColor": "crimson"}, []string{"titleColor", "#RRGGBB or one of white, black, yellow"}},
		{map[string]string{"progressBar": "maybe"}, []string{"progressBar", "true, false or a colour #RRGGBB"}},
	} {
		body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav")}, c.fields)
		resp, b := e.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype)
		msg := errorBody(t, resp, b, 400)
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%v: %q lacks %q", c.fields, msg, w)
			}
		}
	}
	o, err := parseOptions(map[string]string{"title": " Show ", "progressBar": "#00ff00"}, false)
	if err != nil || o.Title != "Show" || o.TitlePosition != "top" || o.TitleSize != "medium" || o.TitleColor != "white" || o.ProgressBar != "#00FF00" || !o.moving() {
		t.Errorf("title defaults: %+v, %v", o, err)
	}
	if o, _ := parseOptions(map[string]string{"titlePosition": "bottom", "progressBar": "false"}, false); encodeOptions(o) != "" {
		t.Errorf("no title and no bar stored as %q, want the default's empty options", encodeOptions(o))
	}
}

// TestBottomTitleLayout: a title at the bottom stays clear of what shares the lower part of the
// frame: above the progress bar and the waveform, under the captions (one line of it, the
// captions' box starting above it).
func TestBottomTitleLayout(t *testing.T) {
	for _, f := range []frameSize{{1080, 1920}, {1920, 1080}, {1080, 1080}, {1280, 720}, {320, 240}} {
		for _, waveform := range []string{"none", "bars"} {
			o := defaultOptions
			o.Captions, o.Waveform, o.ProgressBar = true, waveform, "#FFFFFF"
			o.Title, o.TitlePosition, o.TitleSize, o.TitleColor = "Show", "bottom", "large", "white"
			title := titleLayout(f, Job{Options: o, AudioDuration: 1})
			box := captionLayout(f, o)
			floor := progressBarHeight(f)
			if o.waveform() {
				top, _ := waveformBand(f)
				floor = f.H - top
			}
			if title.Top || title.MarginV <= floor {
				t.Errorf("%v %s: the title %d px from the bottom, on what is under it (%d px)", f, waveform, title.MarginV, floor)
			}
			if line := title.MarginV + title.FontSize*6/5; box.MarginV <= line {
				t.Errorf("%v %s: the captions %d px from the bottom, within the title's line (up to %d px)", f, waveform, box.MarginV, line)
			}
		}
	}
}
