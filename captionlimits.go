package main

import (
	"cmp"
	"fmt"
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
// ~50 µs against ~2 µs for a character the font draws (320×240, whatever the frame's size and
// whether the text repeats). So the text on screen at once is weighed, such a character counting as
// missingGlyphWeight, against maxScreenWeight: room for three cues of two 20-character CJK lines (or four),
// or two of two 40-character Hindi lines, while Latin text stays bounded by the other limits. The
// worst file within them (TestE2ECaptionsCost, random text of each script, 20 s at 320×240) costs
// 2.2–2.4 times the CPU time of the same render without captions in Latin, with or without stacked
// marks, and 6.4–7.2 times in CJK, Devanagari, emoji, mixed scripts and random Arabic (a few of its
// letters the font lacks): the smallest frames are the worst, for the lookups cost the same in a
// larger frame, whose render costs more. It is a bound on this host's fontconfig with its few fonts;
// one with many may take longer over each lookup.
const (
	maxCueRunes        = 300 // characters in a cue, its line breaks and kept tags included
	maxCueMarks        = 150 // combining marks (Unicode Mn, Me) in a cue
	maxMarksOnOne      = 8   // combining marks in a row, on one character
	maxCuesOnScreen    = 6
	maxScreenWeight    = 4000 // characters on screen at once, weighed (cueWeight)
	missingGlyphWeight = 25   // what a character the captions' font lacks counts toward maxScreenWeight
	maxCuesPerMinute   = 300  // of the audio's length, counting only the cues it reaches
	minCuesPerFile     = 30   // whatever the audio's length: a 5 s clip may have a cue a word
	maxCueHours        = 99   // SRT's two digits: no cue of a file for an hour of audio is near it
)

// captionLimits is the limits in a sentence, as --help, the README and the API's description give
// them.
func captionLimits() string {
	return fmt.Sprintf("at most %d cues a minute of audio (%d whatever its length), %d on screen at once, "+
		"%d characters and %d combining marks a cue (%d on one character), %d characters on screen at once "+
		"(one the captions' font, DejaVu Sans Bold, lacks counting as %d), times before %d:00:00",
		maxCuesPerMinute, minCuesPerFile, maxCuesOnScreen, maxCueRunes, maxCueMarks, maxMarksOnOne,
		maxScreenWeight, missingGlyphWeight, maxCueHours+1)
}

// captionGlyphs is the captions' font, parsed once, to know which characters it draws.
var captionGlyphs = sync.OnceValue(func() *sfnt.Font {
	f, err := sfnt.Parse(captionFont)
	if err != nil {
		panic("the embedded captions font: " + err.Error()) // TestCaptionWeight parses it
	}
	return f
})

// cueWeight is what a cue's text counts toward maxScreenWeight: one a character the captions' font
// draws (or a line break, or a kept tag), missingGlyphWeight one it lacks.
func cueWeight(text string) int {
	var buf sfnt.Buffer
	w := 0
	for _, r := range text {
		if r >= ' ' && r < utf8.RuneSelf || r == '\n' || isCueTag(r) {
			w++
		} else if g, err := captionGlyphs().GlyphIndex(&buf, r); err == nil && g != 0 {
			w++
		} else {
			w += missingGlyphWeight
		}
	}
	return w
}

// checkCueText checks the limits on one cue's text: characters and combining marks.
func checkCueText(c cue) error {
	if n := utf8.RuneCountInString(c.text); n > maxCueRunes {
		return captionsError(c.line, fmt.Sprintf("a cue of %d characters; the most is %d, split it into shorter cues", n, maxCueRunes))
	}
	marks, run := 0, 0
	for _, r := range c.text {
		switch {
		case unicode.Is(unicode.Cf, r):
			continue // a joiner between marks still stacks them on one character
		case !unicode.In(r, unicode.Mn, unicode.Me):
			run = 0
			continue
		}
		if marks, run = marks+1, run+1; run > maxMarksOnOne {
			return captionsError(c.line, fmt.Sprintf("more than %d combining marks on one character (the most is %d)", maxMarksOnOne, maxMarksOnOne))
		}
	}
	if marks > maxCueMarks {
		return captionsError(c.line, fmt.Sprintf("a cue with %d combining marks; the most is %d", marks, maxCueMarks))
	}
	return nil
}

// fitCaptions fits the cues of a captions file to audio of the given length and checks the limits
// that depend on it. A cue that starts at or after the audio's end is dropped, for it would never be
// drawn (real files often run on past a clip of their audio), and one that runs past the end is cut
// there. It returns the cues to draw, or a kindInvalid error that names the limit: too many cues for
// the audio's length, too many on screen at once or too much text, or no cue left to draw.
func fitCaptions(cues []cue, audioSeconds float64) ([]cue, error) {
	end := time.Duration(audioSeconds * float64(time.Second))
	kept := make([]cue, 0, len(cues))
	for _, c := range cues {
		if c.start < end {
			c.end = min(c.end, end)
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		return nil, errorf(kindInvalid, "captions: every cue starts after the audio ends (at %s); send the captions of this audio", fmtLimit(audioSeconds))
	}
	if most := max(minCuesPerFile, int(audioSeconds*maxCuesPerMinute/60)); len(kept) > most {
		return nil, errorf(kindInvalid, "captions: %d cues for %s of audio; the most is %d a minute (%d for this audio)",
			len(kept), fmtLimit(audioSeconds), maxCuesPerMinute, most)
	}
	if err := checkOnScreen(kept); err != nil {
		return nil, err
	}
	return kept, nil
}

// checkOnScreen sweeps over the cues' starts and ends in time order and checks that no more than
// maxCuesOnScreen, weighing no more than maxScreenWeight together, are shown at any moment; when more
// are, the error names the cue whose start is one too many. A cue that ends as another starts is not
// on screen with it.
func checkOnScreen(cues []cue) error {
	type edge struct {
		at    time.Duration
		delta int // +1 at a start, -1 at an end
		i     int
	}
	edges := make([]edge, 0, 2*len(cues))
	weights := make([]int, len(cues))
	for i, c := range cues {
		edges = append(edges, edge{c.start, 1, i}, edge{c.end, -1, i})
		weights[i] = cueWeight(c.text)
	}
	slices.SortFunc(edges, func(a, b edge) int {
		// Ends first, then in the file's order, so the cue named is the same on every run.
		return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.delta, b.delta), cmp.Compare(a.i, b.i))
	})
	shown, weight := 0, 0
	for _, e := range edges {
		shown, weight = shown+e.delta, weight+e.delta*weights[e.i]
		switch {
		case shown > maxCuesOnScreen:
			return captionsError(cues[e.i].line, fmt.Sprintf("more than %d cues on screen at once (the most is %d)", maxCuesOnScreen, maxCuesOnScreen))
		case weight > maxScreenWeight:
			return captionsError(cues[e.i].line, fmt.Sprintf("%d characters on screen at once, counting %d for each one the captions' font "+
				"lacks (CJK, Devanagari, Thai, most emoji); the most is %d, show fewer cues at once or split them", weight, missingGlyphWeight, maxScreenWeight))
		}
	}
	return nil
}
