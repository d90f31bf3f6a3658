// Package captionstest writes captions files for the tests of the captions package and of the
// service that burns them in. Only tests import it.
package captionstest

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Fill is s repeated to n characters, cut at the last space or line break: text for a cue n
// characters long that does not end in white space.
func Fill(s string, n int) string {
	r := []rune(strings.Repeat(s, n/utf8.RuneCountInString(s)+1))[:n]
	return strings.TrimRight(string(r), " \n")
}

// srtTime formats d as SRT does: 00:00:01,000.
func srtTime(d time.Duration) string {
	ms := d.Milliseconds()
	return fmt.Sprintf("%02d:%02d:%02d,%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

// SRT is an SRT of n cues, cue i shown from at(i) for dur, each with the text text(i).
func SRT(n int, at func(i int) time.Duration, dur time.Duration, text func(i int) string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%d\n%s --> %s\n%s\n\n", i+1, srtTime(at(i)), srtTime(at(i)+dur), text(i))
	}
	return b.String()
}

// Every is cue i starting at i times d, for SRT.
func Every(d time.Duration) func(int) time.Duration {
	return func(i int) time.Duration { return time.Duration(i) * d }
}

// Same is the text s for every cue, for SRT.
func Same(s string) func(int) string { return func(int) string { return s } }

// ScriptInjection is a WebVTT cue that writes an ASS script of its own, its line breaks as
// character references (sep, &#13; or &#10;): a frame 4 pixels wide, so that every size in the
// script is scaled up 80 times over a frame 320 wide, and an event in letters 400 high and 100
// times as wide.
func ScriptInjection(sep string) string {
	lines := []string{"Hi", "", "[Script Info]", "PlayResX: 4", "PlayResY: 4", "", "[Events]",
		"Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
		"Dialogue: 0,0:00:00.00,9:00:00.00,Default,,0,0,0,,{\\fscx10000\\fs400}HELLO"}
	return "WEBVTT\n\n00:00.000 --> 00:02.000\n" + strings.Join(lines, sep) + "\n"
}
