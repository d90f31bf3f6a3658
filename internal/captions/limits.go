package captions

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/image/font/sfnt"
)

// What a captions file may ask of a render. libass lays out every cue on screen again for every
// frame, so a render's cost grows with the text on screen at once (and more with combining marks
// stacked on one character); without bounds one file of a few hundred kilobytes held a worker for
// hours. Each limit is generous to real files: a dense subtitle track has 15–25 cues a minute of
// two lines of ~42 characters, a word-by-word (karaoke) WebVTT 3–4 cues a second, two or three of
// them on screen at once; the most vocalised scripts (Arabic with its harakat, Hebrew with niqqud,
// Vietnamese written decomposed) have about one combining mark a letter and three or four on one
// at most.
//
// A character the captions' font lacks (CJK, Devanagari, Thai, most emoji) costs far more: libass
// asks the host's fonts for it through fontconfig on every frame it is on screen, found or not,
// ~50 µs against ~2 µs for a character the font draws (320×240, whatever the frame's size and whether
// the text repeats). So the text on screen at once is weighed, such a character counting as
// MissingGlyphWeight, against MaxScreenWeight: room for three cues of two 20-character CJK lines
// (or four), or two of two 40-character Hindi lines, while Latin text stays bounded by the other
// limits. The worst file within them (the service's TestE2ECaptionsCost, random text of each
// script, 20 s at 320×240) costs 2.2–2.4 times the CPU time of the same render without captions in
// Latin, with or without stacked marks, and 6.4–7.2 times in CJK, Devanagari, emoji, mixed scripts
// and random Arabic (a few of its letters the font lacks): the smallest frames are the worst, for
// the lookups cost the same in a larger frame, whose render costs more. It is a bound on this
// host's fontconfig with its few fonts; one with many may take longer over each lookup.
const (
	MaxCueRunes        = 300 // characters in a cue, its line breaks and kept tags included
	MaxCueMarks        = 150 // combining marks (Unicode Mn, Me) in a cue
	MaxMarksOnOne      = 8   // combining marks in a row, on one character
	MaxCuesOnScreen    = 6
	MaxScreenWeight    = 4000 // characters on screen at once, weighed (Weight)
	MissingGlyphWeight = 25   // what a character the captions' font lacks counts toward MaxScreenWeight
	MaxCuesPerMinute   = 300  // of the audio's length, counting only the cues it reaches
	MinCuesPerFile     = 30   // whatever the audio's length: a 5 s clip may have a cue a word
	MaxCueHours        = 99   // SRT's two digits: no cue of a file for an hour of audio is near it
)

// Limits is the limits in a sentence, as the service's --help, README and API description give
// them.
func Limits() string {
	return fmt.Sprintf("at most %d cues a minute of audio (%d whatever its length), %d on screen at once, "+
		"%d characters and %d combining marks a cue (%d on one character), %d characters on screen at once "+
		"(one the captions' font, DejaVu Sans Bold, lacks counting as %d), times before %d:00:00",
		MaxCuesPerMinute, MinCuesPerFile, MaxCuesOnScreen, MaxCueRunes, MaxCueMarks, MaxMarksOnOne,
		MaxScreenWeight, MissingGlyphWeight, MaxCueHours+1)
}

// captionGlyphs is the captions' font, parsed once, to know which characters it draws.
var captionGlyphs = sync.OnceValue(func() *sfnt.Font {
	f, err := sfnt.Parse(font)
	if err != nil {
		panic("the embedded captions font: " + err.Error()) // TestWeight parses it
	}
	return f
})

// Weight is what a cue's text counts toward MaxScreenWeight: one a character the captions' font
// draws (or a line break, or a kept tag), MissingGlyphWeight one it lacks.
func Weight(text string) int {
	var buf sfnt.Buffer
	w := 0
	for _, r := range text {
		if r >= ' ' && r < utf8.RuneSelf || r == '\n' || isCueTag(r) {
			w++
		} else if g, err := captionGlyphs().GlyphIndex(&buf, r); err == nil && g != 0 {
			w++
		} else {
			w += MissingGlyphWeight
		}
	}
	return w
}

// checkCueText checks the limits on one cue's text: characters and combining marks.
func checkCueText(c Cue) error {
	if n := utf8.RuneCountInString(c.Text); n > MaxCueRunes {
		return lineError(c.Line, fmt.Sprintf("a cue of %d characters; the most is %d, split it into shorter cues", n, MaxCueRunes))
	}
	if reason := checkMarks(c.Text); reason != "" {
		return lineError(c.Line, reason)
	}
	return nil
}

// checkMarks checks the combining marks of a text (a cue's, a title's) and says what is wrong, ""
// when nothing is.
func checkMarks(text string) string {
	marks, run := 0, 0
	for _, r := range text {
		switch {
		case unicode.Is(unicode.Cf, r):
			continue // a joiner between marks still stacks them on one character
		case !unicode.In(r, unicode.Mn, unicode.Me):
			run = 0
			continue
		}
		if marks, run = marks+1, run+1; run > MaxMarksOnOne {
			return fmt.Sprintf("more than %d combining marks on one character (the most is %d)", MaxMarksOnOne, MaxMarksOnOne)
		}
	}
	if marks > MaxCueMarks {
		return fmt.Sprintf("a cue with %d combining marks; the most is %d", marks, MaxCueMarks)
	}
	return ""
}

// Fit fits the cues of a captions file to audio of the given length and checks the limits
// that depend on it. A cue that starts at or after the audio's end is dropped, for it would never be
// drawn (real files often run on past a clip of their audio), and one that runs past the end is cut
// there. It returns the cues to draw, or an *Error that names the limit: too many cues for the
// audio's length (MaxCuesPerMinute, MinCuesPerFile), too many on screen at once or too much text
// (MaxCuesOnScreen, MaxScreenWeight), or no cue left to draw.
func Fit(cues []Cue, audioSeconds float64) ([]Cue, error) {
	end := time.Duration(audioSeconds * float64(time.Second))
	kept := make([]Cue, 0, len(cues))
	for _, c := range cues {
		if c.Start < end {
			c.End = min(c.End, end)
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		return nil, &Error{Reason: fmt.Sprintf("every cue starts after the audio ends (at %s); send the captions of this audio", clock(audioSeconds))}
	}
	if most := max(MinCuesPerFile, int(audioSeconds*MaxCuesPerMinute/60)); len(kept) > most {
		return nil, &Error{Reason: fmt.Sprintf("%d cues for %s of audio; the most is %d a minute (%d for this audio)",
			len(kept), clock(audioSeconds), MaxCuesPerMinute, most)}
	}
	if err := checkOnScreen(kept); err != nil {
		return nil, err
	}
	return kept, nil
}

// checkOnScreen sweeps over the cues' starts and ends in time order and checks that no more than
// MaxCuesOnScreen, weighing no more than MaxScreenWeight together, are shown at any moment; when more
// are, the error names the cue whose start is one too many. A cue that ends as another starts is not
// on screen with it.
func checkOnScreen(cues []Cue) error {
	type edge struct {
		at    time.Duration
		delta int // +1 at a start, -1 at an end
		i     int
	}
	edges := make([]edge, 0, 2*len(cues))
	weights := make([]int, len(cues))
	for i, c := range cues {
		edges = append(edges, edge{c.Start, 1, i}, edge{c.End, -1, i})
		weights[i] = Weight(c.Text)
	}
	slices.SortFunc(edges, func(a, b edge) int {
		// Ends first, then in the file's order, so the cue named is the same on every run.
		return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.delta, b.delta), cmp.Compare(a.i, b.i))
	})
	shown, weight := 0, 0
	for _, e := range edges {
		shown, weight = shown+e.delta, weight+e.delta*weights[e.i]
		switch {
		case shown > MaxCuesOnScreen:
			return lineError(cues[e.i].Line, fmt.Sprintf("more than %d cues on screen at once (the most is %d)", MaxCuesOnScreen, MaxCuesOnScreen))
		case weight > MaxScreenWeight:
			return lineError(cues[e.i].Line, fmt.Sprintf("%d characters on screen at once, counting %d for each one the captions' font "+
				"lacks (CJK, Devanagari, Thai, most emoji); the most is %d, show fewer cues at once or split them", weight, MissingGlyphWeight, MaxScreenWeight))
		}
	}
	return nil
}

// clock writes a length of audio as the service's messages write a limit: H:MM:SS, with its tenths
// (rounded down) when it is not whole seconds, 0:00:02.5.
func clock(sec float64) string {
	if sec == math.Trunc(sec) {
		s := int(sec)
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	tenths := int(math.Floor(sec*10 + 1e-6))
	s := tenths / 10
	return fmt.Sprintf("%d:%02d:%02d.%d", s/3600, s/60%60, s%60, tenths%10)
}
