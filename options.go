package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
)

// Options are the optional form fields of a submission that change what its video looks like. A
// submission that gives none of them gets defaultOptions, whose video is the one vidgen has always
// made: the image at its own size, still. The zero value renders like defaultOptions.
type Options struct {
	// Size is "original" (the image's own size) or a platform size (platformSizes): the first
	// video's, when the job makes several.
	Size string `json:"size"`
	// Sizes are the sizes of a job that makes one video per size (the sizes field), in the order
	// asked, Size the first; nil for a job of one size, as every job was before.
	Sizes []string `json:"sizes,omitempty"`
	// Background fills a platform size around the image: "blur" (a blurred, darkened, enlarged copy
	// of the image) or a colour "#RRGGBB" (a name of namedColours is stored as its #RRGGBB).
	Background string `json:"background"`
	// Waveform is "none", "bars" (the audio's spectrum) or "line" (its waveform), drawn across the
	// lower part of the frame in WaveformColor ("#RRGGBB").
	Waveform      string `json:"waveform"`
	WaveformColor string `json:"waveformColor"`
	// Captions says the job has a captions file (SRT or WebVTT) to burn in.
	Captions bool `json:"captions"`
	// Loudness is the integrated loudness, in LUFS, the audio is brought to (loudness.go); 0 leaves
	// its level as it is.
	Loudness float64 `json:"loudness,omitempty"`
	// Title is a line of text drawn over the whole video, "" for none, at TitlePosition ("top" or
	// "bottom") in TitleSize ("small", "medium", "large") and TitleColor (a name of namedColours,
	// as titles always had, or "#RRGGBB"); those are "" without a title.
	Title         string `json:"title,omitempty"`
	TitlePosition string `json:"titlePosition,omitempty"`
	TitleSize     string `json:"titleSize,omitempty"`
	TitleColor    string `json:"titleColor,omitempty"`
	// ProgressBar is the colour ("#RRGGBB") of a thin bar along the bottom edge that fills as the
	// audio plays, "" for none.
	ProgressBar string `json:"progressBar,omitempty"`

	// level is the gain the render measured for Loudness; never stored.
	level audioLevel
}

// LogValue logs the options as attributes of their own (options.size, options.waveform…), which a
// log query can select on, not as one JSON string; options.sizes ("landscape,portrait") only for a
// job of several sizes, and the options a job may leave off (loudness, the title and its position,
// size and colour, progress_bar) only when it set them.
func (o Options) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("size", o.Size), slog.String("background", o.Background),
		slog.String("waveform", o.Waveform), slog.String("waveform_color", o.WaveformColor), slog.Bool("captions", o.Captions)}
	if len(o.Sizes) > 0 {
		attrs = append(attrs, slog.String("sizes", strings.Join(o.Sizes, ",")))
	}
	if o.Loudness != 0 {
		attrs = append(attrs, slog.Float64("loudness", o.Loudness))
	}
	for _, a := range []struct{ key, v string }{{"title", o.Title}, {"title_position", o.TitlePosition},
		{"title_size", o.TitleSize}, {"title_color", o.TitleColor}, {"progress_bar", o.ProgressBar}} {
		if a.v != "" {
			attrs = append(attrs, slog.String(a.key, a.v))
		}
	}
	return slog.GroupValue(attrs...)
}

const sizeOriginal = "original"

// frameSize is a video's width and height in pixels.
type frameSize struct{ W, H int }

// platformSizes are the sizes social platforms ask for, by name: 16:9, 9:16 and 1:1 at 1080p, and
// 16:9 at 720p, the size X recommends (its largest is 1280×1024). platformLimits has each one's
// platforms and their limits.
var platformSizes = map[string]frameSize{
	"landscape": {1920, 1080},
	"portrait":  {1080, 1920},
	"square":    {1080, 1080},
	"x":         {1280, 720},
}

// optionFields are the form fields parseOptions reads, with the most bytes each may hold, in the
// order the usage texts list them; `vidgen render` takes each as a flag of the same name.
var optionFields = []struct {
	Name  string
	Limit int
	Usage string
}{
	{"size", 64, "original, landscape, portrait, square or x"},
	{"sizes", 256, "1 to 5 sizes, comma-separated or a JSON array, one video each (after the first: OUT.SIZE.mp4 beside -o)"},
	{"background", 64, "blur or a colour (#RRGGBB or a name), around the image in a platform size"},
	{"waveform", 64, "none, bars or line"},
	{"waveformColor", 64, "the waveform's colour: #RRGGBB or " + colourNames(" or ")},
	{"loudness", 64, "off, or a target in LUFS from -31 to -5 (-16, -14)"},
	{"title", 1024, "a line of text drawn over the whole video"},
	{"titlePosition", 64, "top or bottom"},
	{"titleSize", 64, "small, medium or large"},
	{"titleColor", 64, "the title's colour: #RRGGBB or " + colourNames(" or ")},
	{"progressBar", 64, "true, false or a colour (#RRGGBB or a name): a bar that fills as the audio plays"},
}

// optionNames lists the option fields' names, for messages.
func optionNames() string {
	names := make([]string, len(optionFields))
	for i, f := range optionFields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

// sizeNames and waveformNames list the accepted values in the order messages give them.
var (
	sizeNames     = []string{sizeOriginal, "landscape", "portrait", "square", "x"}
	waveformNames = []string{"none", "bars", "line"}
)

var defaultOptions = Options{Size: sizeOriginal, Background: "blur", Waveform: "none", WaveformColor: "#FFFFFF"}

// parseOptions reads the option fields of a submission (fields maps a form field's name to its
// value; others are ignored) over defaultOptions. Names are matched without regard to case, and a
// colour (#RRGGBB or a name) is given back as "#RRGGBB" in upper case, but for a title's named
// colour, which keeps its name. A value it does not know is a kindInvalid error naming the field and
// the values allowed.
func parseOptions(fields map[string]string, captions bool) (Options, error) {
	o := defaultOptions
	o.Captions = captions
	for _, f := range []struct {
		name    string
		dst     *string
		parse   func(string) (string, bool)
		allowed string
	}{
		{"size", &o.Size, oneOf(sizeNames), strings.Join(sizeNames, ", ")},
		{"background", &o.Background, blurOrColour, "blur or " + colourAllowed},
		{"waveform", &o.Waveform, oneOf(waveformNames), strings.Join(waveformNames, ", ")},
		{"waveformColor", &o.WaveformColor, parseColour, colourAllowed},
	} {
		v, ok := fields[f.name]
		if !ok {
			continue
		}
		if *f.dst, ok = f.parse(strings.TrimSpace(v)); !ok {
			return Options{}, optionError(f.name, v, f.allowed)
		}
	}
	if err := parseTitle(fields, &o); err != nil {
		return Options{}, err
	}
	if v, ok := fields["progressBar"]; ok {
		if o.ProgressBar, ok = parseProgressBar(strings.TrimSpace(v)); !ok {
			return Options{}, optionError("progressBar", v, "true, false or "+colourAllowed)
		}
	}
	if err := parseSizes(fields, &o); err != nil {
		return Options{}, err
	}
	if v, ok := fields["loudness"]; ok {
		if o.Loudness, ok = parseLoudness(strings.TrimSpace(v)); !ok {
			return Options{}, optionError("loudness", v, loudnessAllowed)
		}
	}
	return o, nil
}

// oneOf accepts a name of names, in any case, and returns it as listed.
func oneOf(names []string) func(string) (string, bool) {
	return func(v string) (string, bool) {
		i := slices.IndexFunc(names, func(n string) bool { return strings.EqualFold(n, v) })
		if i < 0 {
			return "", false
		}
		return names[i], true
	}
}

// blurOrColour accepts "blur" (in any case) or a colour.
func blurOrColour(v string) (string, bool) {
	if strings.EqualFold(v, "blur") {
		return "blur", true
	}
	return parseColour(v)
}

func optionError(field, value, allowed string) error {
	return errorf(kindInvalid, "%s %q is not allowed: use %s", field, quotable(value), allowed)
}

// namedColours are the colours every colour option takes by name as well as by "#RRGGBB", in the
// order messages list them: the title's colours, chosen to read well over a photo with the
// captions' dark outline.
var namedColours = []struct{ name, rgb string }{
	{"white", "FFFFFF"}, {"black", "000000"}, {"yellow", "FFD700"}, {"orange", "FF8C00"},
	{"red", "E53935"}, {"pink", "FF4FA0"}, {"blue", "1E88E5"}, {"green", "43A047"},
}

// colourAllowed says what a colour option takes, for messages.
var colourAllowed = "a colour #RRGGBB or one of " + colourNames(", ")

// colourNameList is the names of namedColours, in their order.
func colourNameList() []string {
	names := make([]string, len(namedColours))
	for i, c := range namedColours {
		names[i] = c.name
	}
	return names
}

// colourNames lists the names of namedColours, the last after last (", " or " or ").
func colourNames(last string) string {
	names := colourNameList()
	n := len(names) - 1
	return strings.Join(names[:n], ", ") + last + names[n]
}

// namedColour returns the index in namedColours of the name v, in any case, or -1.
func namedColour(v string) int {
	return slices.IndexFunc(namedColours, func(c struct{ name, rgb string }) bool { return strings.EqualFold(c.name, v) })
}

// parseColour accepts a colour, "#RRGGBB" (hex digits in either case) or a name of namedColours (in
// any case), and returns it as "#RRGGBB" in upper case: the spelling background, waveformColor and
// progressBar have always been stored and echoed in.
func parseColour(v string) (string, bool) {
	if i := namedColour(v); i >= 0 {
		return "#" + namedColours[i].rgb, true
	}
	if len(v) != 7 || v[0] != '#' || strings.Trim(strings.ToLower(v[1:]), "0123456789abcdef") != "" {
		return "", false
	}
	return strings.ToUpper(v), true
}

// parseTitleColour accepts what parseColour does, and keeps a name as a name (in lower case): a
// title's colour has always been stored and echoed by its name.
func parseTitleColour(v string) (string, bool) {
	if i := namedColour(v); i >= 0 {
		return namedColours[i].name, true
	}
	return parseColour(v)
}

// colourRGB is a stored colour, a name of namedColours or "#RRGGBB", as "RRGGBB".
func colourRGB(c string) string {
	if i := namedColour(c); i >= 0 {
		return namedColours[i].rgb
	}
	return strings.TrimPrefix(c, "#")
}

// platform reports whether the video has a platform size rather than the image's own.
func (o Options) platform() bool { _, ok := platformSizes[o.Size]; return ok }

// moving reports whether the video's frames change over time or carry text (a waveform, captions,
// a title, a progress bar), so each frame is encoded; otherwise one picture is encoded and repeated.
func (o Options) moving() bool {
	return o.waveform() || o.Captions || o.Title != "" || o.ProgressBar != ""
}

// everyFrame reports whether every frame of the video is encoded: a waveform and a progress bar
// change each frame, and a title is drawn by that encode too. Captions alone change only when a cue
// starts or ends, so a captioned still encodes one frame a change (captionclip.go).
func (o Options) everyFrame() bool { return o.waveform() || o.ProgressBar != "" || o.Title != "" }

// waveform reports whether the video draws the audio.
func (o Options) waveform() bool { return o.Waveform == "bars" || o.Waveform == "line" }

// fps is the video's frame rate: 30 for the platform sizes (their upload rules ask for a constant
// 30), 25 for a moving picture at the image's size, and the still clip's 10 otherwise.
func (o Options) fps() int {
	switch {
	case o.platform():
		return 30
	case o.moving():
		return 25
	}
	return clipFPS
}

// encodeOptions is how a job's options are stored: JSON, "" for defaultOptions, so every job made
// before options existed reads back as what it was.
func encodeOptions(o Options) string {
	if o.equal(defaultOptions) {
		return ""
	}
	b, _ := json.Marshal(o) // a struct of strings, numbers and a bool: cannot fail
	return string(b)
}

// decodeOptions reads what encodeOptions stored; missing keys keep their defaults.
func decodeOptions(s string) (Options, error) {
	o := defaultOptions
	if s == "" {
		return o, nil
	}
	if err := json.Unmarshal([]byte(s), &o); err != nil {
		return Options{}, fmt.Errorf("job options %q: %w", s, err)
	}
	return o, nil
}

// equal reports whether o and p are the same options.
func (o Options) equal(p Options) bool { return reflect.DeepEqual(o, p) }
