package main

import (
	"cmp"
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"
)

// What a captions file may ask of a render. libass lays out every cue on screen again for every
// frame, so a render's cost grows with the text on screen at once (and more with combining marks
// stacked on one character); without bounds one file of a few hundred kilobytes held a worker for
// hours. Each limit is generous to real files: a dense subtitle track has 15–25 cues a minute of
// two lines of ~42 characters, a word-by-word (karaoke) WebVTT 3–4 cues a second, two or three of
// them on screen at once; the most vocalised scripts (Arabic with its harakat, Hebrew with niqqud,
// Vietnamese written decomposed) have about one combining mark a letter and three or four on one
// at most. The worst file within them costs 2.3–2.7 times the CPU time of the same minute rendered
// without captions, at 320×240 and at 1920×1080 alike (TestE2ECaptionsCost).
const (
	maxCueRunes      = 300 // characters in a cue, its line breaks and kept tags included
	maxCueMarks      = 150 // combining marks (Unicode Mn, Me) in a cue
	maxMarksOnOne    = 8   // combining marks in a row, on one character
	maxCuesOnScreen  = 6
	maxCuesPerMinute = 300 // of the audio's length, counting only the cues it reaches
	minCuesPerFile   = 30  // whatever the audio's length: a 5 s clip may have a cue a word
	maxCueHours      = 99  // SRT's two digits: no cue of a file for an hour of audio is near it
)

// captionLimits is the limits in a sentence, as --help, the README and the API's description give
// them.
func captionLimits() string {
	return fmt.Sprintf("at most %d cues a minute of audio (%d whatever its length), %d on screen at once, "+
		"%d characters and %d combining marks a cue (%d on one character), times before %d:00:00",
		maxCuesPerMinute, minCuesPerFile, maxCuesOnScreen, maxCueRunes, maxCueMarks, maxMarksOnOne, maxCueHours+1)
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
// the audio's length, too many on screen at once, or no cue left to draw.
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
	if c, ok := mostOnScreen(kept); !ok {
		return nil, captionsError(c.line, fmt.Sprintf("more than %d cues on screen at once (the most is %d)", maxCuesOnScreen, maxCuesOnScreen))
	}
	return kept, nil
}

// mostOnScreen sweeps over the cues' starts and ends in time order and reports whether no more than
// maxCuesOnScreen are shown at any moment; when more are, it returns the cue whose start is one
// too many. A cue that ends as another starts is not on screen with it.
func mostOnScreen(cues []cue) (cue, bool) {
	type edge struct {
		at    time.Duration
		delta int // +1 at a start, -1 at an end
		i     int
	}
	edges := make([]edge, 0, 2*len(cues))
	for i, c := range cues {
		edges = append(edges, edge{c.start, 1, i}, edge{c.end, -1, i})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		// Ends first, then in the file's order, so the cue named is the same on every run.
		return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.delta, b.delta), cmp.Compare(a.i, b.i))
	})
	shown := 0
	for _, e := range edges {
		if shown += e.delta; shown > maxCuesOnScreen {
			return cues[e.i], false
		}
	}
	return cue{}, true
}
