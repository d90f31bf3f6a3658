package main

import (
	"bytes"
	"fmt"
	"image/color"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestColourOptions submits each colour option in each spelling the API takes, #RRGGBB in any case
// and the names in any case, and some it does not: a 201 whose status echoes each colour in its one
// stored spelling (#RRGGBB in upper case, a title's name as its name, as they always were), or a 400
// whose message says what to send. The accepted ones go four options to a job: each job's media is
// decoded at upload, the refused ones are not.
func TestColourOptions(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, hangConfig(t, 1)) // the jobs wait: what is checked is the submission
	type colours struct{ background, waveformColor, titleColor, progressBar string }
	accepted := []struct{ sent, echoed colours }{
		{colours{"blur", "white", "#FF8800", "true"}, colours{"blur", "#FFFFFF", "#FF8800", "#FFFFFF"}},
		{colours{"#10a0Ff", "#1d9bf0", "#ff8a0c", "green"}, colours{"#10A0FF", "#1D9BF0", "#FF8A0C", "#43A047"}},
		{colours{"Red", "ORANGE", "yellow", "#00ff00"}, colours{"#E53935", "#FF8C00", "yellow", "#00FF00"}},
		{colours{"black", "Blue", " Pink ", "Pink"}, colours{"#000000", "#1E88E5", "pink", "#FF4FA0"}},
	}
	for i, c := range accepted {
		key := e.newKey(t, fmt.Sprint("accepted", i)) // a key has one active job at a time
		status, body := e.submit(t, key, fixture(t, "img.png"), fixture(t, "tone.wav"), map[string]string{
			"size": "square", "waveform": "bars", "title": "Show", "background": c.sent.background,
			"waveformColor": c.sent.waveformColor, "titleColor": c.sent.titleColor, "progressBar": c.sent.progressBar})
		if status != 201 {
			t.Errorf("%+v: %d %v, want 201", c.sent, status, body)
			continue
		}
		o := e.status(t, key, body["jobId"].(string))["options"].(map[string]any)
		if got := (colours{o["background"].(string), o["waveformColor"].(string), o["titleColor"].(string), o["progressBar"].(string)}); got != c.echoed {
			t.Errorf("%+v: options echo %+v, want %+v", c.sent, got, c.echoed)
		}
	}
	const allowed = "a colour #RRGGBB or one of white, black, yellow, orange, red, pink, blue, green"
	refused := []struct{ field, value, want string }{
		{"titleColor", "purple", `titleColor "purple" is not allowed: use ` + allowed},
		{"titleColor", "FF8800", `titleColor "FF8800" is not allowed: use ` + allowed},
		{"titleColor", "#FF880", `titleColor "#FF880" is not allowed: use ` + allowed},
		{"titleColor", "", `titleColor "" is not allowed: use ` + allowed},
		{"background", "purple", `background "purple" is not allowed: use blur or ` + allowed},
		{"background", "#12345g", `background "#12345g" is not allowed: use blur or ` + allowed},
		{"waveformColor", "transparent", `waveformColor "transparent" is not allowed: use ` + allowed},
		{"progressBar", "maybe", `progressBar "maybe" is not allowed: use true, false or ` + allowed},
		{"progressBar", "#ff00001", `progressBar "#ff00001" is not allowed: use true, false or ` + allowed},
	}
	for _, c := range refused {
		body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav")},
			map[string]string{"size": "square", "waveform": "bars", "title": "Show", c.field: c.value})
		resp, b := e.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype)
		if msg := errorBody(t, resp, b, 400); msg != c.want {
			t.Errorf("%s=%q: %q, want %q", c.field, c.value, msg, c.want)
		}
	}
}

// TestNamedTitleColours: a title in a named colour is drawn in the colour that name always had
// (the same subtitle script, so the same video bytes), and the name's #RRGGBB draws the same script.
func TestNamedTitleColours(t *testing.T) {
	t.Parallel()
	f := frameSize{1080, 1080}
	for name, rgb := range map[string]string{"white": "FFFFFF", "black": "000000", "yellow": "FFD700", "orange": "FF8C00",
		"red": "E53935", "pink": "FF4FA0", "blue": "1E88E5", "green": "43A047"} {
		script := func(colour string) []byte {
			o, err := parseOptions(map[string]string{"title": "Show", "titleColor": colour}, false)
			if err != nil {
				t.Fatalf("titleColor %q: %v", colour, err)
			}
			job := Job{Options: o, AudioDuration: 2}
			if got := titleLayout(f, job).Colour; got != rgb {
				t.Errorf("titleColor %q is drawn in %s, want %s", colour, got, rgb)
			}
			path := filepath.Join(t.TempDir(), "t.ass")
			if err := writeASS(path, nil, f, job); err != nil {
				t.Fatal(err)
			}
			return readFile(t, path)
		}
		if named, hex := script(name), script("#"+rgb); !bytes.Equal(named, hex) {
			t.Errorf("%s and #%s make different scripts:\n%s\n%s", name, rgb, named, hex)
		}
	}
}

// TestTitleColourHex renders a title in a colour given as #RRGGBB, one no name has, over a black
// picture at its own size, and decodes a frame: it holds the glyphs' insides in that colour and no
// white (the default a colour the renderer did not know would leave).
func TestTitleColourHex(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	const w, h = 640, 360
	black := writeFixture(t, "black.png", encodePNG(t, quadrants(w, h, color.Black, color.Black, color.Black, color.Black)))
	status, body := e.submit(t, e.key, black, fixture(t, "tone.wav"), map[string]string{"title": "Episode 12", "titleSize": "large", "titleColor": "#00ffff"})
	if status != 201 {
		t.Fatalf("submit: %d %v", status, body)
	}
	st := e.wait(t, e.key, body["jobId"].(string), StatusCompleted)
	video, _ := download(t, st["outputVideo"].(string))
	out := writeFixture(t, "out.mp4", video)
	frame, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-ss", "1", "-i", out, "-frames:v", "1",
		"-f", "rawvideo", "-pix_fmt", "rgb24", "-").Output()
	if err != nil || len(frame) != w*h*3 {
		t.Fatalf("decode a frame: %d bytes, want %dx%d: %v", len(frame), w, h, err)
	}
	cyan, white := 0, 0
	for y := range h {
		for x := range w {
			switch p := pixel(frame, w, x, y); {
			case near(p, color.NRGBA{0, 255, 255, 255}, 40):
				cyan++
			case near(p, color.NRGBA{255, 255, 255, 255}, 40):
				white++
			}
		}
	}
	if cyan < 500 || white > cyan/20 {
		t.Errorf("the frame has %d pixels of #00FFFF and %d white, want the title drawn in #00FFFF", cyan, white)
	}
	t.Logf("%d pixels of #00FFFF, %d white", cyan, white)
}
