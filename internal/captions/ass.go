package captions

import (
	"bytes"
	_ "embed"
	"fmt"
	"strings"
	"time"
)

// Box is where the captions are drawn: a frame W by H pixels (the script's own coordinates), the
// text FontSize pixels high, MarginV pixels above the frame's bottom and MarginH pixels in from
// either side, where libass wraps it. The caller chooses it, knowing what else is in the frame.
type Box struct {
	W, H, FontSize, MarginV, MarginH int
}

// Script is cues as an ASS script for the box b: white bold text in the embedded font (Font) with
// a dark outline, centred at the bottom of the box, wrapped by libass to its width. Its lines are
// the header and style lines it writes for no cue and one Dialogue line a cue, whatever the cues'
// text (assText): no cue writes lines of its own or an ASS command but italics, bold and underline.
// Each title (title.go) adds its style line and one Dialogue line, drawn over the cues.
func Script(cues []Cue, b Box, titles ...Title) []byte {
	var s bytes.Buffer
	fmt.Fprintf(&s, "[Script Info]\nScriptType: v4.00+\nPlayResX: %d\nPlayResY: %d\nWrapStyle: 0\nScaledBorderAndShadow: yes\n\n", b.W, b.H)
	s.WriteString("[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, " +
		"Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n")
	fmt.Fprintf(&s, "Style: Default,%s,%d,&H00FFFFFF,&H00FFFFFF,&H00000000,&H80000000,-1,0,0,0,100,100,0,0,1,%.1f,%.1f,2,%d,%d,%d,1\n",
		fontName, b.FontSize, float64(b.FontSize)/14, float64(b.FontSize)/30, b.MarginH, b.MarginH, b.MarginV)
	var dialogues []string
	for _, t := range titles {
		style, dialogue := titleLines(t, b)
		s.WriteString(style)
		dialogues = append(dialogues, dialogue)
	}
	s.WriteString("\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")
	for _, d := range dialogues {
		s.WriteString(d)
	}
	for _, c := range cues {
		s.WriteString("Dialogue: 0," + assTime(c.Start) + "," + assTime(c.End) + ",Default,,0,0,0,,")
		s.WriteString(assText(c.Text))
		s.WriteByte('\n')
	}
	return s.Bytes()
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

// font is the captions' typeface, DejaVu Sans Bold (see fonts/LICENSE), which Script names.
//
//go:embed fonts/DejaVuSans-Bold.ttf
var font []byte

const fontName = "DejaVu Sans"

// FontFile is a name for the file of Font, for a fonts directory given to libass.
const FontFile = "DejaVuSans-Bold.ttf"

// Font is the TrueType file of the font Script names, a copy of the one embedded in the package:
// given to libass as the only font of its fonts directory, so the text looks the same on every
// host, whatever fonts it has, and Weight counts what it draws.
func Font() []byte { return bytes.Clone(font) }
