package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// scriptInjection is a WebVTT cue that writes an ASS script of its own, its line breaks as
// character references (sep, &#13; or &#10;): a frame 4 pixels wide, so that every size in the
// script is scaled up 80 times over a frame 320 wide, and an event in letters 400 high and 100
// times as wide.
func scriptInjection(sep string) string {
	lines := []string{"Hi", "", "[Script Info]", "PlayResX: 4", "PlayResY: 4", "", "[Events]",
		"Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
		"Dialogue: 0,0:00:00.00,9:00:00.00,Default,,0,0,0,,{\\fscx10000\\fs400}HELLO"}
	return "WEBVTT\n\n00:00.000 --> 00:02.000\n" + strings.Join(lines, sep) + "\n"
}

// TestCaptionsScriptInjection: a cue whose character references decode to line breaks is one
// caption, drawn as the text it holds, in one Dialogue line of the script vidgen writes; none of its
// lines becomes a line of the script.
func TestCaptionsScriptInjection(t *testing.T) {
	t.Parallel()
	for _, sep := range []string{"&#13;", "&#10;", "&#x0D;", "&#xA;&#xD;", "&#x2028;"} {
		cues, err := parseCaptions([]byte(scriptInjection(sep)))
		if err != nil || len(cues) != 1 {
			t.Fatalf("%s: %+v %v, want one cue", sep, cues, err)
		}
		words := strings.Join(strings.Fields(cues[0].text), " ")
		if strings.ContainsAny(cues[0].text, "\r\n\u2028") || !strings.HasPrefix(words, "Hi [Script Info] PlayResX: 4 PlayResY: 4 [Events] Format: ") {
			t.Errorf("%s: the cue's text is %q, want its lines on one line, apart", sep, cues[0].text)
		}
		f := frameSize{320, 240}
		header := string(assScript(nil, f, defaultOptions))
		script := string(assScript(cues, f, defaultOptions))
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

// TestCaptionsControlCharacters: no control character of a file's text, written as it is (SRT,
// WebVTT) or as a character reference (WebVTT), reaches a cue: those that separate words are a
// space, the others are dropped. The file's own line breaks still break the caption's lines.
func TestCaptionsControlCharacters(t *testing.T) {
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
		cues, err := parseCaptions([]byte(c.file))
		if err != nil || len(cues) != 1 || cues[0].text != c.want {
			t.Errorf("%s: %+v %v, want the text %q", c.name, cues, err, c.want)
		}
	}
	// assText writes no control character whatever text it is given, even text that did not come
	// from parseCaptions.
	if got := assText("a\rb\u2028c\x00d\ne\u0085f"); got != `a b cd\Ne f` {
		t.Errorf("assText: %q", got)
	}
}

// FuzzCaptions parses any file as captions and writes the script of what it accepts: a refusal is
// a 400, a cue's text holds no control character but the line breaks between its lines, and the
// script is exactly the header and style lines vidgen writes and one Dialogue line a cue, its
// text free of any ASS command but the italics, bold and underline vidgen writes.
func FuzzCaptions(f *testing.F) {
	for _, s := range []string{
		scriptInjection("&#13;"), scriptInjection("&#10;"), scriptInjection("&#x2028;"),
		"1\n00:00:00,000 --> 00:00:01,000\n<i>a</i> {\\b1}b\\N\\n\\h \x1b\x07\u0085\u2028\tc\n\n2\n00:00:00,500 --> 00:00:02,000\nd\r\ne\n",
		"WEBVTT\n\n00:00.000 --> 00:01.000\n&#0;&#1;&#127;&#x9f;&#xD800;&#x110000;&amp;lt;i&amp;gt; &lt;b&gt;x&lt;/b&gt;<c.a\nb>y</c>\n",
		"1\n99999:00:00.000 --> 99999:00:01.000\nfar\n",
		"1\n123456789012345678901234567890:00:00,000 --> 123456789012345678901234567890:00:01,000\nfar\n",
		"1\n00:00:00,000 --> 00:00:01,000\ne" + strings.Repeat("\u0301", 20) + "\n",
		strings.Repeat("1\n00:00:00,000 --> 00:00:09,000\noverlap\n\n", 10),
	} {
		f.Add([]byte(s))
	}
	header := assScript(nil, frameSize{320, 240}, defaultOptions)
	f.Fuzz(func(t *testing.T, b []byte) {
		cues, err := parseCaptions(b)
		if err != nil {
			if kindOf(err) != kindInvalid {
				t.Fatalf("refused with %v, want a 400", err)
			}
			return
		}
		for _, c := range cues {
			if i := strings.IndexFunc(c.text, func(r rune) bool {
				return r < 0x20 && r != '\n' || r >= 0x7f && r <= 0x9f || r == '\u2028' || r == '\u2029'
			}); i >= 0 {
				t.Fatalf("the control character %q survived in %q", c.text[i:i+1], c.text)
			}
			if c.end <= c.start {
				t.Fatalf("the cue runs from %v to %v", c.start, c.end)
			}
		}
		script := assScript(cues, frameSize{320, 240}, defaultOptions)
		checkScript(t, header, script, cues)
	})
}

// checkScript fails unless script is header and then one Dialogue line for each cue, in order: the
// cue's times and its text with no line break, no control character, and no ASS command but
// vidgen's own: \N for the cue's own line breaks, escaped braces, and the override blocks of <i>,
// <b> and <u>.
func checkScript(t testing.TB, header, script []byte, cues []cue) {
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
		text, ok := strings.CutPrefix(lines[i], "Dialogue: 0,"+assTime(c.start)+","+assTime(c.end)+",Default,,0,0,0,,")
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
		if want := strings.Count(c.text, "\n"); breaks != want {
			t.Fatalf("event %d: %d line breaks for the cue's %d: %q", i, breaks, want, text)
		}
	}
}
