package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"vidgen/internal/captions"
)

// A title (a show's or an episode's name over the picture) and a progress bar (a thin bar along the
// bottom edge that fills as the audio plays): both are drawn on the moving picture's frames, the
// title by libass in the captions' script and font (internal/captions), the bar by ffmpeg's overlay.

var (
	titlePositions = []string{"top", "bottom"}
	titleSizes     = []string{"small", "medium", "large"}
)

// titleSizeShare is each title size's font height, in thousandths of the frame's short side: 43, 65
// and 97 px in a 1080 px side (the captions' is 59).
var titleSizeShare = map[string]int{"small": 40, "medium": 60, "large": 90}

// parseTitle reads the title fields into o: the text, checked as captions are (captions.CheckTitle),
// and its position, size and colour (parseTitleColour), which default to top, medium and white and
// are kept only with a title. A value it does not know is a kindInvalid error.
func parseTitle(fields map[string]string, o *Options) error {
	pos, size, colour := "top", "medium", "white"
	for _, f := range []struct {
		name    string
		dst     *string
		parse   func(string) (string, bool)
		allowed string
	}{
		{"titlePosition", &pos, oneOf(titlePositions), strings.Join(titlePositions, ", ")},
		{"titleSize", &size, oneOf(titleSizes), strings.Join(titleSizes, ", ")},
		{"titleColor", &colour, parseTitleColour, colourAllowed},
	} {
		v, ok := fields[f.name]
		if !ok {
			continue
		}
		if *f.dst, ok = f.parse(strings.TrimSpace(v)); !ok {
			return optionError(f.name, v, f.allowed)
		}
	}
	text := strings.TrimSpace(fields["title"])
	if text == "" {
		return nil
	}
	if err := captions.CheckTitle(text); err != nil {
		if ce := (*captions.Error)(nil); errors.As(err, &ce) {
			return errorf(kindInvalid, "title: %s", ce.Reason)
		}
		return err
	}
	o.Title, o.TitlePosition, o.TitleSize, o.TitleColor = text, pos, size, colour
	return nil
}

// parseProgressBar accepts true (a white bar), false or off (none), or a colour.
func parseProgressBar(v string) (string, bool) {
	switch strings.ToLower(v) {
	case "true", "on", "yes":
		return "#FFFFFF", true
	case "false", "off", "no", "":
		return "", true
	}
	return parseColour(v)
}

// titleLayout is where a job's title goes in a frame of size f: centred, titleMarginV in from the
// top or the bottom edge, wrapped within the captions' side margins, in titleFontSize.
func titleLayout(f frameSize, job Job) captions.Title {
	o := job.Options
	return captions.Title{Text: o.Title, Top: o.TitlePosition != "bottom", FontSize: titleFontSize(f, o),
		MarginV: titleMarginV(f, o), End: time.Duration((job.AudioDuration + 1) * float64(time.Second)),
		Colour: colourRGB(o.TitleColor)}
}

// titleFontSize is the title's font height in a frame of size f (titleSizeShare).
func titleFontSize(f frameSize, o Options) int {
	return max(8, min(f.W, f.H)*titleSizeShare[o.TitleSize]/1000)
}

// titleMarginV is how far the title is from its edge of a frame of size f: a twentieth of the
// height; at the bottom, above the progress bar, and above the waveform when there is one.
func titleMarginV(f frameSize, o Options) int {
	m := f.H * 5 / 100
	if o.TitlePosition != "bottom" {
		return m
	}
	if o.ProgressBar != "" {
		m += progressBarHeight(f)
	}
	if o.waveform() {
		top, _ := waveformBand(f)
		m = f.H - top + f.H*2/100
	}
	return m
}

// progressBarHeight is the progress bar's height in a frame of size f: 8 px in 1080, even.
func progressBarHeight(f frameSize) int { return max(2, f.H/135&^1) }

// progressBarGraph draws the progress bar over the frames in (a filter graph label) as out: a bar of
// the frame's width along its bottom edge, slid in from the left so that at time t it covers
// t/duration of the width.
func progressBarGraph(o Options, f frameSize, fps int, duration float64, in, out string) string {
	h := progressBarHeight(f)
	return fmt.Sprintf("color=c=0x%s:s=%dx%d:r=%d:d=%.3f[pbar];%s[pbar]overlay=x=(t/%.3f-1)*w:y=%d:eval=frame:shortest=1:format=yuv420%s;",
		o.ProgressBar[1:], f.W, h, fps, duration+1, in, max(duration, 0.001), f.H-h, out)
}
