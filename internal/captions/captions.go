// Package captions reads SRT and WebVTT captions files, checks them against limits that bound what
// burning them in costs, and writes them as an ASS script for libass in a box the caller chooses,
// in a font embedded in the package. A refused file is an *Error that says which line is at fault
// and what to do, in words for the file's author. It knows no file system, job or HTTP request:
// it reads the bytes and the audio length it is given and returns bytes.
package captions

import (
	"bytes"
	"fmt"
	"html"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxSize is the most a captions file may hold: an hour of dense subtitles is ~100 KB. The caller
// bounds its read of the file by it.
const MaxSize = 1 << 20

// Error is a captions file refused: Line is the file's line at fault (from 1; 0 when it is the file
// as a whole) and Reason what is wrong and what to do about it.
type Error struct {
	Line   int
	Reason string
}

// Error is the refusal as users read it: "captions: line 4: …", or "captions: …" without a line.
func (e *Error) Error() string {
	if e.Line == 0 {
		return "captions: " + e.Reason
	}
	return fmt.Sprintf("captions: line %d: %s", e.Line, e.Reason)
}

func lineError(line int, reason string) error { return &Error{Line: line, Reason: reason} }

// Cue is one caption: its Text (lines joined by "\n", markup already reduced to what the burn-in
// draws: <i>, <b>, <u> as the noncharacters U+FDD0 to U+FDD5 of cueTags, which Script draws as
// italics, bold and underline, and no control character but the line breaks)
// shown from Start to End; Line is where its time range is in the file, for the messages that name
// it.
type Cue struct {
	Start, End time.Duration
	Text       string
	Line       int
}

// cueTiming is a cue's time range: SRT's 00:00:01,000 --> 00:00:04,000 or WebVTT's
// 00:01.000 --> 00:04.000 (hours optional, either decimal mark); WebVTT cue settings may follow.
var cueTiming = regexp.MustCompile(`^(?:(\d+):)?([0-5]\d):([0-5]\d)[,.](\d{3})[ \t]+-->[ \t]+(?:(\d+):)?([0-5]\d):([0-5]\d)[,.](\d{3})(?:[ \t].*)?$`)

// Parse reads an SRT or WebVTT file (WebVTT when it starts with the WEBVTT line). It returns the
// cues with text, in the file's order, or an *Error that names the line at fault: text that is not
// UTF-8, a block without a valid time range, a cue over the limits on its own text (MaxCueRunes,
// MaxCueMarks, MaxMarksOnOne, MaxCueHours), or no cue with text at all.
func Parse(b []byte) ([]Cue, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		line := 1 + bytes.Count(b[:firstInvalid(b)], []byte("\n"))
		return nil, lineError(line, "the file is not UTF-8 text")
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
	var cues []Cue
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
			return nil, lineError(first+1, "a cue number or identifier without a time range after it")
		}
		c, err := parseTiming(strings.TrimSpace(block[t]))
		if err != nil {
			return nil, lineError(first+t+1, err.Error())
		}
		c.Line = first + t + 1
		c.Text = cueText(block[t+1:], vtt)
		if err := checkCueText(c); err != nil {
			return nil, err
		}
		if strings.TrimSpace(c.Text) != "" {
			cues = append(cues, c)
		}
	}
	if len(cues) == 0 {
		return nil, &Error{Reason: "the file has no cue with text; send SRT or WebVTT"}
	}
	return cues, nil
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

func parseTiming(line string) (Cue, error) {
	m := cueTiming.FindStringSubmatch(line)
	if m == nil {
		return Cue{}, fmt.Errorf("%q is not a time range like 00:00:01,000 --> 00:00:04,000", quote(line))
	}
	// Hours are digits without a bound in the syntax: more than MaxCueHours is refused before any
	// arithmetic, so no number of digits overflows into a small or negative time.
	for _, h := range []string{m[1], m[5]} {
		if n, err := strconv.Atoi(h); h != "" && (err != nil || n > MaxCueHours) {
			return Cue{}, fmt.Errorf("%q is past %d:59:59.999, the latest time a caption may have", quote(line), MaxCueHours)
		}
	}
	at := func(h, mi, s, ms string) time.Duration {
		n := func(v string) time.Duration { d, _ := strconv.Atoi(v); return time.Duration(d) }
		return n(h)*time.Hour + n(mi)*time.Minute + n(s)*time.Second + n(ms)*time.Millisecond
	}
	c := Cue{Start: at(m[1], m[2], m[3], m[4]), End: at(m[5], m[6], m[7], m[8])}
	if c.End <= c.Start {
		return Cue{}, fmt.Errorf("the cue ends (%s) before it starts (%s)", m[0][strings.Index(m[0], "-->")+4:], strings.TrimSpace(line[:strings.Index(line, "-->")]))
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

// untagged is s without the characters of cueTags' block: text a file or a client wrote holds no
// tag, whatever characters it sends, so it can never draw as italics, bold or underline.
func untagged(s string) string {
	if !strings.ContainsFunc(s, isCueTag) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isCueTag(r) {
			return -1
		}
		return r
	}, s)
}

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
			b.WriteString(untagged(cleanLine(l)))
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

// maxQuote is the most of a file's text a message quotes back.
const maxQuote = 64

// quote is a line of the file (valid UTF-8, as Parse checks first) made safe to quote in a
// message, as the service quotes a client's text: its first maxQuote characters, then "…" when it
// has more, each one that does not print a "?", so a megabyte of junk yields a short message.
func quote(s string) string {
	cut := 0
	for n := 0; n < maxQuote && cut < len(s); n++ {
		_, size := utf8.DecodeRuneInString(s[cut:])
		cut += size
	}
	if cut < len(s) {
		s = s[:cut] + "…"
	}
	return strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
}
