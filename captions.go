package main

import (
	"bytes"
	_ "embed"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Captions: an SRT or WebVTT file uploaded with a job, checked at upload and burned into the video
// with libass, in a font shipped inside the binary so the picture does not depend on the host.

// maxCaptionsSize is the most a captions file may hold: an hour of dense subtitles is ~100 KB.
const maxCaptionsSize = 1 << 20

// cue is one caption: its text (lines joined by "\n", markup already reduced to what the burn-in
// draws: <i>, <b>, <u> as the characters of cueTags, and no control character but the line breaks)
// shown from start to end; line is where its time range is in the file, for the messages that name
// it.
type cue struct {
	start, end time.Duration
	text       string
	line       int
}

// cueTiming is a cue's time range: SRT's 00:00:01,000 --> 00:00:04,000 or WebVTT's
// 00:01.000 --> 00:04.000 (hours optional, either decimal mark); WebVTT cue settings may follow.
var cueTiming = regexp.MustCompile(`^(?:(\d+):)?([0-5]\d):([0-5]\d)[,.](\d{3})[ \t]+-->[ \t]+(?:(\d+):)?([0-5]\d):([0-5]\d)[,.](\d{3})(?:[ \t].*)?$`)

// parseCaptions reads an SRT or WebVTT file (WebVTT when it starts with the WEBVTT line). It returns
// the cues with text, in the file's order, or a kindInvalid error that names the line at fault.
func parseCaptions(b []byte) ([]cue, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		line := 1 + bytes.Count(b[:firstInvalid(b)], []byte("\n"))
		return nil, captionsError(line, "the file is not UTF-8 text")
	}
	text := strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\r", "\n")
	lines := strings.Split(text, "\n")
	vtt := strings.HasPrefix(lines[0], "WEBVTT") && (len(lines[0]) == 6 || lines[0][6] == ' ' || lines[0][6] == '\t')
	i := 0
	if vtt {
		for i < len(lines) && strings.TrimSpace(lines[i]) != "" { // the header block
			i++
		}
	}
	var cues []cue
	for i < len(lines) {
		if strings.TrimSpace(lines[i]) == "" {
			i++
			continue
		}
		// A block runs to the next blank line.
		first := i
		for i < len(lines) && strings.TrimSpace(lines[i]) != "" {
			i++
		}
		block := lines[first:i]
		if vtt && (block[0] == "NOTE" || strings.HasPrefix(block[0], "NOTE ") || strings.HasPrefix(block[0], "NOTE\t") ||
			block[0] == "STYLE" || block[0] == "REGION") {
			continue
		}
		t := 0
		if !strings.Contains(block[0], "-->") { // a cue number (SRT) or identifier (WebVTT)
			t = 1
		}
		if t >= len(block) {
			return nil, captionsError(first+1, "a cue number or identifier without a time range after it")
		}
		c, err := parseTiming(strings.TrimSpace(block[t]))
		if err != nil {
			return nil, captionsError(first+t+1, err.Error())
		}
		c.line = first + t + 1
		c.text = cueText(block[t+1:], vtt)
		if err := checkCueText(c); err != nil {
			return nil, err
		}
		if strings.TrimSpace(c.text) != "" {
			cues = append(cues, c)
		}
	}
	if len(cues) == 0 {
		return nil, errorf(kindInvalid, "captions: the file has no cue with text; send SRT or WebVTT")
	}
	return cues, nil
}

func captionsError(line int, msg string) error {
	return errorf(kindInvalid, "captions: line %d: %s", line, msg)
}

// firstInvalid is the offset of the first byte of b that is not part of valid UTF-8 text, or a NUL.
func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 || r == 0 {
			return i
		}
		i += n
	}
	return len(b)
}

func parseTiming(line string) (cue, error) {
	m := cueTiming.FindStringSubmatch(line)
	if m == nil {
		return cue{}, fmt.Errorf("%q is not a time range like 00:00:01,000 --> 00:00:04,000", echo(line))
	}
	// Hours are digits without a bound in the syntax: more than maxCueHours is refused before any
	// arithmetic, so no number of digits overflows into a small or negative time.
	for _, h := range []string{m[1], m[5]} {
		if n, err := strconv.Atoi(h); h != "" && (err != nil || n > maxCueHours) {
			return cue{}, fmt.Errorf("%q is past %d:59:59.999, the latest time a caption may have", echo(line), maxCueHours)
		}
	}
	at := func(h, mi, s, ms string) time.Duration {
		n := func(v string) time.Duration { d, _ := strconv.Atoi(v); return time.Duration(d) }
		return n(h)*time.Hour + n(mi)*time.Minute + n(s)*time.Second + n(ms)*time.Millisecond
	}
	c := cue{start: at(m[1], m[2], m[3], m[4]), end: at(m[5], m[6], m[7], m[8])}
	if c.end <= c.start {
		return cue{}, fmt.Errorf("the cue ends (%s) before it starts (%s)", m[0][strings.Index(m[0], "-->")+4:], strings.TrimSpace(line[:strings.Index(line, "-->")]))
	}
	return c, nil
}

// cueMarkup is a tag in a cue's text: SRT's <i>, <b>, <u>, <font …> and WebVTT's <c.x>, <v Name>,
// <00:00:01.000> and the like. A "<" not followed by a tag name ("a < b") is text.
var cueMarkup = regexp.MustCompile(`<(/?)(?:([A-Za-z][A-Za-z0-9]*)(?:[.\s][^<>]*)?|\d[\d:.]*)>`)

// cueTags are the tags a caption keeps, "i", "/i", "b", "/b", "u", "/u": in its text, the tag at
// index n is the character U+FDD0+n, a Unicode noncharacter (which no text interchanges), so that
// only a tag of the file, never text that reads like one, is drawn as italics, bold or underline:
// WebVTT's "&lt;i&gt;" is the author's literal "<i>", and stays that text.
const cueTags = "i /i b /b u /u"

// cueTag is the character that stands for the kept tag name (closing with a "/"), if it is one.
func cueTag(name string) (rune, bool) {
	i := slices.Index(strings.Fields(cueTags), name)
	return '\uFDD0' + rune(i), i >= 0
}

// isCueTag says whether r is one of cueTags' characters, or another noncharacter of their block.
func isCueTag(r rune) bool { return r >= '\uFDD0' && r <= '\uFDEF' }

// cueText joins a cue's lines, keeping italics, bold and underline (as cueTags) and dropping every
// other tag. The text between tags is decoded apart from them, WebVTT's character references line by
// line, so no reference becomes a tag, and no line holds a control character (cleanLine) or a
// tag's character it did not get from a tag: its only control characters are the "\n" between the lines.
func cueText(lines []string, vtt bool) string {
	s := strings.Join(lines, "\n")
	var b strings.Builder
	text := func(t string) {
		// A tag may span lines: the "\n" left in text between tags are only the file's own line
		// breaks, for nothing has been decoded yet.
		for i, l := range strings.Split(t, "\n") {
			if i > 0 {
				b.WriteByte('\n')
			}
			if vtt {
				l = html.UnescapeString(l)
			}
			b.WriteString(strings.Map(func(r rune) rune {
				if isCueTag(r) {
					return -1
				}
				return r
			}, cleanLine(l)))
		}
	}
	at := 0
	for _, m := range cueMarkup.FindAllStringSubmatchIndex(s, -1) {
		text(s[at:m[0]])
		at = m[1]
		if m[4] >= 0 {
			if r, ok := cueTag(s[m[2]:m[3]] + strings.ToLower(s[m[4]:m[5]])); ok {
				b.WriteRune(r)
			}
		}
	}
	text(s[at:])
	return b.String()
}

// cleanLine is a line of caption text without control characters (C0, DEL, C1) or Unicode's line
// and paragraph separators. Those that separate words (tab, line feed, vertical tab, form feed,
// carriage return, NEL, U+2028, U+2029) become a space: only the file's own line breaks break a
// caption's lines, for a break decoded from WebVTT's &#13; or &#10; is how a cue would write lines
// of its own into the subtitle script, and a space keeps the words around it apart. The others
// (NUL, BEL, ESC and the like) draw nothing in a caption, so they are dropped.
func cleanLine(s string) string {
	if !strings.ContainsFunc(s, isCaptionControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case !isCaptionControl(r):
			return r
		case unicode.IsSpace(r):
			return ' '
		}
		return -1
	}, s)
}

// isCaptionControl says whether r is a character cleanLine takes out of caption text.
func isCaptionControl(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}

// captionLayout is where captions go in a frame of size f: the font size and the margin under the
// text, in pixels. They sit in the lower third, above the waveform when there is one, in a font
// sized to the frame's short side so a phone's 9:16 frame gets the same text as a 16:9 one.
func captionLayout(f frameSize, o Options) (fontSize, marginV, marginH int) {
	short := min(f.W, f.H)
	fontSize = max(8, short*11/200) // 59 px in a 1080 px side
	marginV = f.H * 8 / 100
	if o.waveform() {
		top, _ := waveformBand(f)
		marginV = f.H - top + f.H*3/100
	}
	return fontSize, marginV, f.W * 6 / 100
}

// writeASS writes cues as an ASS script for a frame of size f (assScript) to path.
func writeASS(path string, cues []cue, f frameSize, o Options) error {
	return os.WriteFile(path, assScript(cues, f, o), 0o600)
}

// assScript is cues as an ASS script for a frame of size f: white bold text with a dark outline,
// centred at the bottom of the lower third, wrapped by libass to the frame's width. Its lines are
// the header and style lines it writes for no cue and one Dialogue line a cue, whatever the cues'
// text (assText).
func assScript(cues []cue, f frameSize, o Options) []byte {
	size, marginV, marginH := captionLayout(f, o)
	var b bytes.Buffer
	fmt.Fprintf(&b, "[Script Info]\nScriptType: v4.00+\nPlayResX: %d\nPlayResY: %d\nWrapStyle: 0\nScaledBorderAndShadow: yes\n\n", f.W, f.H)
	b.WriteString("[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, " +
		"Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n")
	fmt.Fprintf(&b, "Style: Default,%s,%d,&H00FFFFFF,&H00FFFFFF,&H00000000,&H80000000,-1,0,0,0,100,100,0,0,1,%.1f,%.1f,2,%d,%d,%d,1\n\n",
		captionFontName, size, float64(size)/14, float64(size)/30, marginH, marginH, marginV)
	b.WriteString("[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")
	for _, c := range cues {
		b.WriteString("Dialogue: 0," + assTime(c.start) + "," + assTime(c.end) + ",Default,,0,0,0,,")
		b.WriteString(assText(c.text))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// assTime formats d as ASS does, in centiseconds: H:MM:SS.cc.
func assTime(d time.Duration) string {
	cs := int64(d / (10 * time.Millisecond))
	return fmt.Sprintf("%d:%02d:%02d.%02d", cs/360000, cs/6000%60, cs/100%60, cs%100)
}

// assText turns a cue's text into the text of one Dialogue line: drawn as written (braces and
// backslashes are not taken as ASS commands), line breaks as ASS's \N, and the characters of cueTags
// as ASS's italics, bold and underline. It is the only way cue text reaches the script, and whatever
// text it is given, it writes no line break or other control character (cleanLine), so a cue can
// never write lines of its own.
func assText(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = assEscape.Replace(cleanLine(l))
	}
	return strings.Join(lines, "\\N")
}

var assEscape = strings.NewReplacer(
	"\\", "\\\u2060", // a word joiner after each backslash: \N or \h in a caption stays text
	"{", "\\{", "}", "\\}",
	"\uFDD0", "{\\i1}", "\uFDD1", "{\\i0}", "\uFDD2", "{\\b1}", "\uFDD3", "{\\b0}", "\uFDD4", "{\\u1}", "\uFDD5", "{\\u0}",
)

// captionFont is the captions' typeface, DejaVu Sans Bold (see fonts/LICENSE): written into each
// render's directory and given to libass as its fonts directory, so the text looks the same on
// every host, whatever fonts it has.
//
//go:embed fonts/DejaVuSans-Bold.ttf
var captionFont []byte

const captionFontName = "DejaVu Sans"

// writeCaptionFont writes captionFont into a new directory fonts/ under dir and returns that
// directory.
func writeCaptionFont(dir string) (string, error) {
	fonts := filepath.Join(dir, "fonts")
	if err := os.Mkdir(fonts, 0o700); err != nil {
		return "", err
	}
	return fonts, os.WriteFile(filepath.Join(fonts, "DejaVuSans-Bold.ttf"), captionFont, 0o600)
}
