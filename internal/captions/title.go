package captions

import (
	"bytes"
	"fmt"
	"time"
	"unicode/utf8"
)

// A title is a line of text over the whole video (a show's or an episode's name), drawn by the same
// script as the captions, with the same cleaning and escaping as cue text, and limits of its own:
// it is on screen in every frame, so its cost (Weight) counts as a cue's would for the whole video.
const (
	MaxTitleRunes  = 120 // characters of a title
	MaxTitleWeight = 1000
)

// Title is a line drawn from the start of the video to End, FontSize pixels high, centred at the
// top of the box (Top) or at its bottom, MarginV pixels in from that edge, in Colour ("RRGGBB"),
// with the captions' dark outline. libass wraps it to the box's width less MarginH either side.
type Title struct {
	Text     string
	Top      bool
	FontSize int
	MarginV  int
	Colour   string
	End      time.Duration
}

// CheckTitle checks a title's text against the limits: at most MaxTitleRunes characters, weighing
// at most MaxTitleWeight, the combining marks bounded as a cue's are, and some text to draw. A
// refusal is an *Error without a line, its reason in words for the title's author.
func CheckTitle(text string) error {
	if n := utf8.RuneCountInString(text); n > MaxTitleRunes {
		return &Error{Reason: fmt.Sprintf("a title of %d characters; the most is %d", n, MaxTitleRunes)}
	}
	if len(bytes.TrimSpace([]byte(untagged(cleanLine(text))))) == 0 {
		return &Error{Reason: "the title has no text to draw"}
	}
	if reason := checkMarks(text); reason != "" {
		return &Error{Reason: reason}
	}
	if w := Weight(text); w > MaxTitleWeight {
		return &Error{Reason: fmt.Sprintf("a title that weighs %d, the most is %d (a character the font, DejaVu Sans Bold, lacks counts as %d)",
			w, MaxTitleWeight, MissingGlyphWeight)}
	}
	return nil
}

// titleLines are the style and the Dialogue line of title t in a script: a style of its own, so
// its size, colour, place and margins are its own. A title has no markup: the characters that
// stand for a caption's tags are dropped from it, as from the text between a caption's tags.
func titleLines(t Title, b Box) (style, dialogue string) {
	align := 2 // bottom centre, as the captions
	if t.Top {
		align = 8
	}
	colour := "&H00FFFFFF"
	if len(t.Colour) == 6 {
		colour = "&H00" + t.Colour[4:6] + t.Colour[2:4] + t.Colour[0:2] // ASS is BGR
	}
	style = fmt.Sprintf("Style: Title,%s,%d,%s,%s,&H00000000,&H80000000,-1,0,0,0,100,100,0,0,1,%.1f,%.1f,%d,%d,%d,%d,1\n",
		fontName, t.FontSize, colour, colour, float64(t.FontSize)/14, float64(t.FontSize)/30, align, b.MarginH, b.MarginH, t.MarginV)
	dialogue = "Dialogue: 1,0:00:00.00," + assTime(t.End) + ",Title,,0,0,0,," + assEscape.Replace(untagged(cleanLine(t.Text))) + "\n"
	return style, dialogue
}
