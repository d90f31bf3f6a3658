package captions

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"vidgen/internal/captions/captionstest"
)

// testBox is the box the service gives a 320×240 frame without a waveform.
var testBox = Box{W: 320, H: 240, FontSize: 13, MarginV: 19, MarginH: 19}

// refused says whether err is the package's refusal of a file, an *Error.
func refused(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

func TestParse(t *testing.T) {
	t.Parallel()
	srt := "1\n00:00:00,500 --> 00:00:01,250\nHello <i>there</i>\n{braces} \\N stay\n\n2\n00:00:02,000 --> 00:00:03,000\n<font color=\"red\">Second</font> a < b\n"
	vtt := "\ufeffWEBVTT - a title\nKind: captions\n\nNOTE a comment\nthat runs on\n\nSTYLE\n::cue { color: red }\n\nintro\n00:00.500 --> 00:01.250 align:start line:0\n<v Bob>Hello</v> &amp; <c.loud>welcome</c>\n\n01:00:02.000 --> 01:00:03.000\nLater\n"
	cases := []struct {
		name, file string
		want       []Cue
		err        string // a substring of the error, when refused
	}{
		{name: "srt", file: srt, want: []Cue{
			{500 * time.Millisecond, 1250 * time.Millisecond, "Hello \uFDD0there\uFDD1\n{braces} \\N stay", 2},
			{2 * time.Second, 3 * time.Second, "Second a < b", 7}}},
		{name: "srt crlf", file: strings.ReplaceAll(srt, "\n", "\r\n"), want: []Cue{
			{500 * time.Millisecond, 1250 * time.Millisecond, "Hello \uFDD0there\uFDD1\n{braces} \\N stay", 2},
			{2 * time.Second, 3 * time.Second, "Second a < b", 7}}},
		{name: "srt without numbers", file: "00:00:01,000 --> 00:00:02,000\nHi\n", want: []Cue{{time.Second, 2 * time.Second, "Hi", 1}}},
		{name: "vtt", file: vtt, want: []Cue{
			{500 * time.Millisecond, 1250 * time.Millisecond, "Hello & welcome", 11},
			{time.Hour + 2*time.Second, time.Hour + 3*time.Second, "Later", 14}}},
		{name: "bad time", file: "1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:0x,000 --> 00:00:04,000\nbad\n", err: "line 6: "},
		{name: "text without time", file: "1\n00:00:01,000 --> 00:00:02,000\nok\n\nHello\nworld\n", err: "line 6: "},
		{name: "number alone", file: "1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n", err: "line 5: "},
		{name: "ends before it starts", file: "\n\n1\n00:00:05,000 --> 00:00:02,000\nx\n", err: "line 4: the cue ends"},
		{name: "minutes over 59", file: "1\n00:61:00,000 --> 00:62:00,000\nx\n", err: "line 2: "},
		{name: "not utf-8", file: "1\n00:00:01,000 --> 00:00:02,000\ncaf\xe9\n", err: "line 3: the file is not UTF-8"},
		{name: "binary", file: "\x00\x01\x02", err: "line 1: the file is not UTF-8"},
		{name: "empty", file: "", err: "no cue"},
		{name: "vtt header only", file: "WEBVTT\n\n", err: "no cue"},
	}
	for _, c := range cases {
		got, err := Parse([]byte(c.file))
		if c.err != "" {
			if err == nil || !refused(err) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v %v, want a 400 with %q", c.name, got, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: %+v %v, want %+v", c.name, got, err, c.want)
		}
	}
	if got := assText("Hello \uFDD0there\uFDD1\n{x} \\N"); got != "Hello {\\i1}there{\\i0}\\N\\{x\\} \\\u2060N" {
		t.Errorf("assText: %q", got)
	}
}

// TestScriptInjection: a cue whose character references decode to line breaks is one
// caption, drawn as the text it holds, in one Dialogue line of the script vidgen writes; none of its
// lines becomes a line of the script.
func TestScriptInjection(t *testing.T) {
	t.Parallel()
	for _, sep := range []string{"&#13;", "&#10;", "&#x0D;", "&#xA;&#xD;", "&#x2028;"} {
		cues, err := Parse([]byte(captionstest.ScriptInjection(sep)))
		if err != nil || len(cues) != 1 {
			t.Fatalf("%s: %+v %v, want one cue", sep, cues, err)
		}
		words := strings.Join(strings.Fields(cues[0].Text), " ")
		if strings.ContainsAny(cues[0].Text, "\r\n\u2028") || !strings.HasPrefix(words, "Hi [Script Info] PlayResX: 4 PlayResY: 4 [Events] Format: ") {
			t.Errorf("%s: the cue's text is %q, want its lines on one line, apart", sep, cues[0].Text)
		}
		header := string(Script(nil, testBox))
		script := string(Script(cues, testBox))
		lines := strings.FieldsFunc(strings.TrimPrefix(script, header), func(r rune) bool { return r == '\r' || r == '\n' })
		if !strings.HasPrefix(script, header) || len(lines) != 1 || !strings.HasPrefix(lines[0], "Dialogue: 0,0:00:00.00,0:00:02.00,Default,,0,0,0,,Hi ") ||
			!strings.Contains(lines[0], " PlayResX: 4 ") {
			t.Errorf("%s: the script after its header is %q, want one Dialogue line", sep, lines)
		}
		if !strings.Contains(lines[0], `\{\`+"\u2060"+`fscx10000\`+"\u2060"+`fs400\}HELLO`) {
			t.Errorf("%s: the injected override tag is not text: %q", sep, lines[0])
		}
	}
}

// TestControlCharacters: no control character of a file's text, written as it is (SRT,
// WebVTT) or as a character reference (WebVTT), reaches a cue: those that separate words are a
// space, the others are dropped. The file's own line breaks still break the caption's lines.
func TestControlCharacters(t *testing.T) {
	t.Parallel()
	const raw = "a\tb\vc\fd\u0085e\u2028f\u2029g|\x01\x07\x1b[31m\x7f\u0080\u009b|end\nline two"
	const want = "a b c d e f g|[31m|end\nline two"
	for _, c := range []struct{ name, file, want string }{
		{"srt", "1\n00:00:00,000 --> 00:00:01,000\n" + raw + "\n", want},
		{"vtt", "WEBVTT\n\n00:00.000 --> 00:01.000\n" + raw + "\n", want},
		{"vtt references", "WEBVTT\n\n00:00.000 --> 00:01.000\n" +
			"a&#9;b&#11;c&#12;d&#13;e&#10;f&#x2028;g&#x2029;h|&#1;&#x1B;&#127;&#x9b;|&#0;&amp;&lt;&#x7B;\\N&#x7D;\n",
			// HTML maps &#x9b; to the Windows-1252 character it stands for, and &#0; to U+FFFD.
			"a b c d e f g h|\u203a|\ufffd&<{\\N}"},
	} {
		cues, err := Parse([]byte(c.file))
		if err != nil || len(cues) != 1 || cues[0].Text != c.want {
			t.Errorf("%s: %+v %v, want the text %q", c.name, cues, err, c.want)
		}
	}
	// assText writes no control character whatever text it is given, even text that did not come
	// from Parse.
	if got := assText("a\rb\u2028c\x00d\ne\u0085f"); got != `a b cd\Ne f` {
		t.Errorf("assText: %q", got)
	}
}

// TestLiteralTags: only a file's own <i>, <b> and <u> are drawn as italics, bold and
// underline. Text that reads like a tag once decoded (WebVTT's &lt;i&gt;, an author's literal "<i>")
// or a reference to the characters that stand for tags in a cue's text stays text.
func TestLiteralTags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, file, want string }{
		{"escaped tags", "WEBVTT\n\n00:00.000 --> 00:01.000\n&lt;i&gt;x&lt;/i&gt; &LT;b&GT; <i>y</i> &#60;u&#62;\n",
			`<i>x</i> <b> {\i1}y{\i0} <u>`},
		{"escaped tags across lines", "WEBVTT\n\n00:00.000 --> 00:01.000\n&lt;i\n&gt;<b>z\n</b>&lt;/i&gt;\n",
			`<i\N>{\b1}z\N{\b0}</i>`},
		{"a tag's character as a reference", "WEBVTT\n\n00:00.000 --> 00:01.000\n&#xFDD0;a&#xFDD5;<u>b</u>\n", `a{\u1}b{\u0}`},
		{"a tag's character written", "1\n00:00:00,000 --> 00:00:01,000\n\uFDD2a\uFDD3 <B>b</B>\n", `a {\b1}b{\b0}`},
	} {
		cues, err := Parse([]byte(c.file))
		if err != nil || len(cues) != 1 {
			t.Fatalf("%s: %+v %v, want one cue", c.name, cues, err)
		}
		if got := assText(cues[0].Text); got != c.want {
			t.Errorf("%s: the cue's Dialogue text is %q, want %q", c.name, got, c.want)
		}
	}
}

// FuzzParse parses any file as captions and writes the script of what it accepts: a refusal is
// a 400, a cue's text holds no control character but the line breaks between its lines, and the
// script is exactly the header and style lines vidgen writes and one Dialogue line a cue, its
// text free of any ASS command but the italics, bold and underline vidgen writes, and those only
// for tags of the file (a decoded "&lt;i&gt;" stays text).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		captionstest.ScriptInjection("&#13;"), captionstest.ScriptInjection("&#10;"), captionstest.ScriptInjection("&#x2028;"),
		"1\n00:00:00,000 --> 00:00:01,000\n<i>a</i> {\\b1}b\\N\\n\\h \x1b\x07\u0085\u2028\tc\n\n2\n00:00:00,500 --> 00:00:02,000\nd\r\ne\n",
		"WEBVTT\n\n00:00.000 --> 00:01.000\n&#0;&#1;&#127;&#x9f;&#xD800;&#x110000;&amp;lt;i&amp;gt; &lt;b&gt;x&lt;/b&gt;<c.a\nb>y</c>\n",
		"1\n99999:00:00.000 --> 99999:00:01.000\nfar\n",
		"1\n123456789012345678901234567890:00:00,000 --> 123456789012345678901234567890:00:01,000\nfar\n",
		"1\n00:00:00,000 --> 00:00:01,000\ne" + strings.Repeat("\u0301", 20) + "\n",
		strings.Repeat("1\n00:00:00,000 --> 00:00:09,000\noverlap\n\n", 10),
		"WEBVTT\n\n00:00.000 --> 00:01.000\n&lt;i&gt;a&lt;/i&gt;&#xFDD0;<b>b</b>\uFDD4\n",
	} {
		f.Add([]byte(s))
	}
	header := Script(nil, testBox)
	f.Fuzz(func(t *testing.T, b []byte) {
		cues, err := Parse(b)
		if err != nil {
			if !refused(err) {
				t.Fatalf("refused with %v, want a 400", err)
			}
			return
		}
		for _, c := range cues {
			if i := strings.IndexFunc(c.Text, func(r rune) bool {
				return r < 0x20 && r != '\n' || r >= 0x7f && r <= 0x9f || r == '\u2028' || r == '\u2029'
			}); i >= 0 {
				t.Fatalf("line %d: the control character %q survived in %q", c.Line, c.Text[i:i+1], c.Text)
			}
			if c.End <= c.Start || c.End >= (MaxCueHours+1)*time.Hour {
				t.Fatalf("line %d: the cue runs from %v to %v", c.Line, c.Start, c.End)
			}
		}
		if fit, err := Fit(cues, 60); err == nil && (len(fit) == 0 || len(fit) > len(cues)) {
			t.Fatalf("fitted %d cues of %d", len(fit), len(cues))
		} else if err != nil && !refused(err) {
			t.Fatalf("Fit: %v, want a 400", err)
		}
		script := Script(cues, testBox)
		checkScript(t, header, script, cues)
		// Only a tag of the file draws italics, bold or underline: text that decodes to "<i>" stays
		// text, so the script has no more override blocks than the file has tags.
		blocks := 0
		for _, o := range []string{`{\i1}`, `{\i0}`, `{\b1}`, `{\b0}`, `{\u1}`, `{\u0}`} {
			blocks += bytes.Count(script, []byte(o))
		}
		if tags := len(cueMarkup.FindAll(b, -1)); blocks > tags {
			t.Fatalf("%d override blocks from a file of %d tags:\n%s", blocks, tags, script)
		}
	})
}

// checkScript fails unless script is header and then one Dialogue line for each cue, in order: the
// cue's times and its text with no line break, no control character, and no ASS command but
// vidgen's own: \N for the cue's own line breaks, escaped braces, and the override blocks of <i>,
// <b> and <u>.
func checkScript(t testing.TB, header, script []byte, cues []Cue) {
	t.Helper()
	events, ok := bytes.CutPrefix(script, header)
	if !ok {
		t.Fatalf("the script does not start with the header vidgen writes:\n%s", script)
	}
	// libass ends a script's line at a CR, an LF or a NUL; no other control character belongs in one.
	if i := bytes.IndexFunc(events, func(r rune) bool { return unicode.IsControl(r) && r != '\n' }); i >= 0 {
		t.Fatalf("a control character %q in the events: %q", events[i:i+1], events)
	}
	lines := strings.Split(string(events), "\n")
	if len(lines) != len(cues)+1 || lines[len(cues)] != "" {
		t.Fatalf("%d lines of events for %d cues: %q", len(lines)-1, len(cues), lines)
	}
	for i, c := range cues {
		text, ok := strings.CutPrefix(lines[i], "Dialogue: 0,"+assTime(c.Start)+","+assTime(c.End)+",Default,,0,0,0,,")
		if !ok {
			t.Fatalf("event %d is %q for the cue %+v", i, lines[i], c)
		}
		breaks := 0
		for j := 0; j < len(text); j++ {
			switch text[j] {
			case '\\':
				switch next := text[j+1:]; {
				case strings.HasPrefix(next, "N"):
					breaks++
				case strings.HasPrefix(next, "{"), strings.HasPrefix(next, "}"), strings.HasPrefix(next, "\u2060"):
				default:
					t.Fatalf("event %d: an ASS command at %q", i, text[j:])
				}
				j++
			case '{':
				end := strings.IndexByte(text[j:], '}')
				if end < 0 || !slices.Contains([]string{`{\i1}`, `{\i0}`, `{\b1}`, `{\b0}`, `{\u1}`, `{\u0}`}, text[j:j+end+1]) {
					t.Fatalf("event %d: an override block that is not vidgen's at %q", i, text[j:])
				}
				j += end
			case '}':
				t.Fatalf("event %d: a brace that is not escaped at %q", i, text[j:])
			}
		}
		if want := strings.Count(c.Text, "\n"); breaks != want {
			t.Fatalf("event %d: %d line breaks for the cue's %d: %q", i, breaks, want, text)
		}
	}
}

// TestWeight: a character the captions' font draws counts one toward the text on screen at
// once, one it lacks MissingGlyphWeight; real subtitles in scripts it lacks fit, and a file that
// shows more such text at once than MaxScreenWeight is a 400 that names the cue and the limit.
func TestWeight(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		text string
		want int
	}{
		{"Hello, world", 12},
		{"Ελληνικά Кириллица עברית العربية Tiếng Việt", 43}, // scripts DejaVu Sans Bold draws
		{"a\n\uFDD0b\uFDD1", 5},
		{"字幕", 2 * MissingGlyphWeight},
		{"नमस्ते", 6 * MissingGlyphWeight}, // its vowel signs and virama too
		{"🍕", MissingGlyphWeight},
	} {
		if got := Weight(c.text); got != c.want {
			t.Errorf("Weight(%q) = %d, want %d", c.text, got, c.want)
		}
	}
	cjk := captionstest.Fill("私たちは字幕を読みます、", 20) + "\n" + captionstest.Fill("今日はいい天気ですね。", 20)
	hindi := captionstest.Fill("हम उपशीर्षक पढ़ते हैं। ", 42) + "\n" + captionstest.Fill("आज मौसम बहुत अच्छा है। ", 42)
	every, same := captionstest.Every, captionstest.Same
	for _, c := range []struct {
		name, file string
		want       string // a fragment of the error, or "" when accepted
	}{
		{"three CJK cues at once", captionstest.SRT(3, every(0), 2*time.Second, same(cjk)), ""},
		{"two Hindi cues at once", captionstest.SRT(2, every(0), 2*time.Second, same(hindi)), ""},
		{"CJK word by word, 4 at once", captionstest.SRT(60, every(time.Second/4), time.Second, same("字幕を読みます")), ""},
		{"a cue of 161 CJK characters", captionstest.SRT(1, every(0), time.Second, same(strings.Repeat("字", 161))),
			fmt.Sprintf("line 2: %d characters on screen at once, counting 25 for each one the captions' font lacks", 161*MissingGlyphWeight)},
		{"three Hindi cues at once", captionstest.SRT(3, every(0), 2*time.Second, same(hindi)), "line 12: "},
		{"six cues of 27 emoji", captionstest.SRT(6, every(0), 2*time.Second, same(strings.Repeat("🍕", 27))), "the most is 4000, show fewer cues"},
	} {
		cues, err := Parse([]byte(c.file))
		if err == nil {
			_, err = Fit(cues, 20)
		}
		if c.want == "" && err != nil || c.want != "" && (err == nil || !refused(err) || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestQuote: a line a message quotes is cut to maxQuote characters, "…" marking the cut, and each
// character that does not print is a "?", so the message stays short and printable.
func TestQuote(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", maxQuote)
	for _, c := range []struct{ in, want string }{
		{"00:00:0x,000 --> 00:00:04,000", "00:00:0x,000 --> 00:00:04,000"},
		{"a\tb\x1b[31m\u0085\u2028c", "a?b?[31m??c"},
		{long, long},
		{long + "字", long + "…"},
		{"", ""},
	} {
		if got := quote(c.in); got != c.want {
			t.Errorf("quote(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// The quoted line reaches the message as Go quotes it.
	_, err := Parse([]byte("1\n\x1b[2J" + strings.Repeat("9", 100) + " --> x\ny\n"))
	if want := `captions: line 2: "?[2J` + strings.Repeat("9", maxQuote-4) + `…" is not a time range`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("%v, want %q…", err, want)
	}
}
