package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// fill is s repeated to n characters, cut at the last space or line break: text for a cue n
// characters long that does not end in white space.
func fill(s string, n int) string {
	r := []rune(strings.Repeat(s, n/utf8.RuneCountInString(s)+1))[:n]
	return strings.TrimRight(string(r), " \n")
}

// srtTime formats d as SRT does: 00:00:01,000.
func srtTime(d time.Duration) string {
	ms := d.Milliseconds()
	return fmt.Sprintf("%02d:%02d:%02d,%03d", ms/3600000, ms/60000%60, ms/1000%60, ms%1000)
}

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

// TestCaptionsLiteralTags: only a file's own <i>, <b> and <u> are drawn as italics, bold and
// underline. Text that reads like a tag once decoded (WebVTT's &lt;i&gt;, an author's literal "<i>")
// or a reference to the characters that stand for tags in a cue's text stays text.
func TestCaptionsLiteralTags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, file, want string }{
		{"escaped tags", "WEBVTT\n\n00:00.000 --> 00:01.000\n&lt;i&gt;x&lt;/i&gt; &LT;b&GT; <i>y</i> &#60;u&#62;\n",
			`<i>x</i> <b> {\i1}y{\i0} <u>`},
		{"escaped tags across lines", "WEBVTT\n\n00:00.000 --> 00:01.000\n&lt;i\n&gt;<b>z\n</b>&lt;/i&gt;\n",
			`<i\N>{\b1}z\N{\b0}</i>`},
		{"a tag's character as a reference", "WEBVTT\n\n00:00.000 --> 00:01.000\n&#xFDD0;a&#xFDD5;<u>b</u>\n", `a{\u1}b{\u0}`},
		{"a tag's character written", "1\n00:00:00,000 --> 00:00:01,000\n\uFDD2a\uFDD3 <B>b</B>\n", `a {\b1}b{\b0}`},
	} {
		cues, err := parseCaptions([]byte(c.file))
		if err != nil || len(cues) != 1 {
			t.Fatalf("%s: %+v %v, want one cue", c.name, cues, err)
		}
		if got := assText(cues[0].text); got != c.want {
			t.Errorf("%s: the cue's Dialogue text is %q, want %q", c.name, got, c.want)
		}
	}
}

// FuzzCaptions parses any file as captions and writes the script of what it accepts: a refusal is
// a 400, a cue's text holds no control character but the line breaks between its lines, and the
// script is exactly the header and style lines vidgen writes and one Dialogue line a cue, its
// text free of any ASS command but the italics, bold and underline vidgen writes, and those only
// for tags of the file (a decoded "&lt;i&gt;" stays text).
func FuzzCaptions(f *testing.F) {
	for _, s := range []string{
		scriptInjection("&#13;"), scriptInjection("&#10;"), scriptInjection("&#x2028;"),
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
				t.Fatalf("line %d: the control character %q survived in %q", c.line, c.text[i:i+1], c.text)
			}
			if c.end <= c.start || c.end >= (maxCueHours+1)*time.Hour {
				t.Fatalf("line %d: the cue runs from %v to %v", c.line, c.start, c.end)
			}
		}
		if fit, err := fitCaptions(cues, 60); err == nil && (len(fit) == 0 || len(fit) > len(cues)) {
			t.Fatalf("fitted %d cues of %d", len(fit), len(cues))
		} else if err != nil && kindOf(err) != kindInvalid {
			t.Fatalf("fitCaptions: %v, want a 400", err)
		}
		script := assScript(cues, frameSize{320, 240}, defaultOptions)
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

// srtCues is an SRT of n cues, cue i shown from at(i) for dur, each with the text text(i).
func srtCues(n int, at func(i int) time.Duration, dur time.Duration, text func(i int) string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%d\n%s --> %s\n%s\n\n", i+1, srtTime(at(i)), srtTime(at(i)+dur), text(i))
	}
	return b.String()
}

// TestCaptionsHostile submits hostile captions files and real ones near the limits with 2.5 s of
// audio: each over a limit is a 400 that names the limit, each within them renders.
func TestCaptionsHostile(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	every := func(d time.Duration) func(int) time.Duration {
		return func(i int) time.Duration { return time.Duration(i) * d }
	}
	same := func(s string) func(int) string { return func(int) string { return s } }
	atOnce := func(n int) string { return srtCues(n, every(0), 2*time.Second, same("overlap")) }
	arabic := "بِسْمِ ٱللَّهِ ٱلرَّحْمَٰنِ ٱلرَّحِيمِ ٱلْحَمْدُ لِلَّهِ رَبِّ ٱلْعَٰلَمِينَ" // vocalised: a mark on nearly every letter
	cases := []struct {
		name, file string
		want       string // a fragment of the 400's message, or "" when accepted
	}{
		{"&#13; writes a script", scriptInjection("&#13;"), ""},
		{"&#10; writes a script", scriptInjection("&#10;"), ""},
		{"control characters", "1\n00:00:00,000 --> 00:00:02,000\n\x1b[31mred\x07\u2028two\n", ""},
		{"7 cues at once", atOnce(7), "line 26: more than 6 cues on screen at once (the most is 6)"},
		{"6 cues at once", atOnce(6), ""},
		{"6 at once, a 7th as one ends", atOnce(6) + "7\n00:00:02,000 --> 00:00:02,400\nnext\n", ""},
		{"31 cues for 2.5 s", srtCues(31, every(80*time.Millisecond), 80*time.Millisecond, same("w")),
			"31 cues for 0:00:02.5 of audio; the most is 300 a minute (30 for this audio)"},
		{"30 cues for 2.5 s, word by word", srtCues(30, every(80*time.Millisecond), 80*time.Millisecond, same("w")), ""},
		{"301 characters", srtCues(1, every(0), time.Second, same(fill("WWWWWWW ", 301))), "line 2: a cue of 301 characters; the most is 300"},
		{"300 characters", srtCues(1, every(0), time.Second, same(fill("WWWWWWW ", 300))), ""},
		{"151 combining marks", srtCues(1, every(0), time.Second, same(strings.Repeat("e\u0301\u0302", 75)+"e\u0301")), "a cue with 151 combining marks; the most is 150"},
		{"9 marks on one letter", srtCues(1, every(0), time.Second, same("Z"+strings.Repeat("\u0336", 9)+"algo")), "more than 8 combining marks on one character"},
		{"9 marks on one letter, joined", srtCues(1, every(0), time.Second, same("Z"+strings.Repeat("\u0336\u200d", 9))), "more than 8 combining marks on one character"},
		{"vocalised Arabic, two lines", srtCues(1, every(0), time.Second, same(arabic+"\n"+arabic)), ""},
		{"Vietnamese decomposed", srtCues(1, every(0), time.Second, same("Tie\u0302\u0301ng Vie\u0323\u0302t")), ""},
		{"99999 hours", "1\n99999:00:00.000 --> 99999:00:01.000\nlate\n", `line 2: "99999:00:00.000 --> 99999:00:01.000" is past 99:59:59.999`},
		{"hours past an int", "WEBVTT\n\n123456789012345678901234567890:00:00.000 --> 123456789012345678901234567890:00:01.000\nlate\n", "is past 99:59:59.999"},
		{"100 hours", "1\n99:59:59,000 --> 100:00:00,000\nlate\n", "is past 99:59:59.999"},
		{"every cue after the audio", "1\n00:00:05,000 --> 00:00:06,000\nlate\n", "every cue starts after the audio ends (at 0:00:02.5)"},
		{"a cue after the audio, one before", "1\n00:00:01,000 --> 00:00:09,000\nin\n\n2\n00:00:03,000 --> 00:00:04,000\nout\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav"), "captions": writeFixture(t, "c.srt", []byte(c.file))}
			body, ctype := multipartBody(t, files, nil)
			key := e.newKey(t, c.name) // a key has one job at a time
			resp, b := e.do(t, "POST", "/api/jobs", key, body, "Content-Type", ctype)
			if c.want != "" {
				if msg := errorBody(t, resp, b, 400); !strings.Contains(msg, "captions: ") || !strings.Contains(msg, c.want) {
					t.Errorf("%q, want %q", msg, c.want)
				}
				return
			}
			if resp.StatusCode != 201 {
				t.Fatalf("submit: %d %s", resp.StatusCode, b)
			}
			e.wait(t, key, decodeJSON(t, resp, b)["jobId"].(string), StatusCompleted)
		})
	}
}

// TestCaptionLimitsDocumented: --help, serve -h, the README and the API's description give the
// limits the service checks.
func TestCaptionLimitsDocumented(t *testing.T) {
	t.Parallel()
	var help, serveHelp bytes.Buffer
	printUsage(&help)
	if _, err := parseServeFlags([]string{"-h"}, func(string) string { return "" }, &serveHelp); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve -h: %v", err)
	}
	docs := map[string]string{"--help": help.String(), "serve -h": serveHelp.String(), "README.md": string(readFile(t, "README.md")), "openapi.yaml": string(readFile(t, "openapi.yaml"))}
	for name, text := range docs {
		if !strings.Contains(text, captionLimits()) {
			t.Errorf("%s does not give the captions' limits: %q", name, captionLimits())
		}
	}
}

// TestCaptionWeight: a character the captions' font draws counts one toward the text on screen at
// once, one it lacks missingGlyphWeight; real subtitles in scripts it lacks fit, and a file that
// shows more such text at once than maxScreenWeight is a 400 that names the cue and the limit.
func TestCaptionWeight(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		text string
		want int
	}{
		{"Hello, world", 12},
		{"Ελληνικά Кириллица עברית العربية Tiếng Việt", 43}, // scripts DejaVu Sans Bold draws
		{"a\n\uFDD0b\uFDD1", 5},
		{"字幕", 2 * missingGlyphWeight},
		{"नमस्ते", 6 * missingGlyphWeight}, // its vowel signs and virama too
		{"🍕", missingGlyphWeight},
	} {
		if got := cueWeight(c.text); got != c.want {
			t.Errorf("cueWeight(%q) = %d, want %d", c.text, got, c.want)
		}
	}
	cjk := fill("私たちは字幕を読みます、", 20) + "\n" + fill("今日はいい天気ですね。", 20)
	hindi := fill("हम उपशीर्षक पढ़ते हैं। ", 42) + "\n" + fill("आज मौसम बहुत अच्छा है। ", 42)
	every := func(d time.Duration) func(int) time.Duration {
		return func(i int) time.Duration { return time.Duration(i) * d }
	}
	same := func(s string) func(int) string { return func(int) string { return s } }
	for _, c := range []struct {
		name, file string
		want       string // a fragment of the error, or "" when accepted
	}{
		{"three CJK cues at once", srtCues(3, every(0), 2*time.Second, same(cjk)), ""},
		{"two Hindi cues at once", srtCues(2, every(0), 2*time.Second, same(hindi)), ""},
		{"CJK word by word, 4 at once", srtCues(60, every(time.Second/4), time.Second, same("字幕を読みます")), ""},
		{"a cue of 161 CJK characters", srtCues(1, every(0), time.Second, same(strings.Repeat("字", 161))),
			fmt.Sprintf("line 2: %d characters on screen at once, counting 25 for each one the captions' font lacks", 161*missingGlyphWeight)},
		{"three Hindi cues at once", srtCues(3, every(0), 2*time.Second, same(hindi)), "line 12: "},
		{"six cues of 27 emoji", srtCues(6, every(0), 2*time.Second, same(strings.Repeat("🍕", 27))), "the most is 4000, show fewer cues"},
	} {
		cues, err := parseCaptions([]byte(c.file))
		if err == nil {
			_, err = fitCaptions(cues, 20)
		}
		if c.want == "" && err != nil || c.want != "" && (err == nil || kindOf(err) != kindInvalid || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
