package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vidgen/internal/captions"
	"vidgen/internal/captions/captionstest"
)

var updateCaptionScripts = flag.Bool("update-captions", false, "rewrite testdata/captions/*.ass from the current code")

// captionsRefusal is the error the service gives a captions file and audio of the given length:
// the file's parse, or its fitting to the audio.
func captionsRefusal(file string, audioSeconds float64) error {
	cues, err := captions.Parse([]byte(file))
	if err == nil {
		_, err = captions.Fit(cues, audioSeconds)
	}
	return invalidCaptions(err)
}

// captionScript is the ASS script a render writes for a captions file, audio of the given length
// and a frame of size f: the file parsed, fitted to the audio and laid out in the frame.
func captionScript(t testing.TB, file string, audioSeconds float64, f frameSize, o Options) []byte {
	t.Helper()
	if err := captionsRefusal(file, audioSeconds); err != nil {
		t.Fatalf("the captions are refused: %v", err)
	}
	cues, _ := captions.Parse([]byte(file))
	cues, _ = captions.Fit(cues, audioSeconds)
	return captions.Script(cues, captionLayout(f, o))
}

// TestCaptionScriptGolden: the ASS script written for normal and hostile captions files, in
// frames of each shape with and without a waveform, is byte for byte the one in
// testdata/captions, saved from the code that first burned captions in: what users get on screen
// does not change as the code moves.
func TestCaptionScriptGolden(t *testing.T) {
	t.Parallel()
	with := func(size, waveform string) Options {
		o := defaultOptions
		o.Size, o.Waveform, o.Captions = size, waveform, true
		return o
	}
	cases := []struct {
		name  string
		file  string
		audio float64
		f     frameSize
		o     Options
	}{
		{"srt", "1\r\n00:00:00,500 --> 00:00:01,250\r\nHello <i>there</i>, <b>bold</b> and <u>under</u>\r\n<font color=\"red\">two</font> a < b\r\n\r\n" +
			"2\r\n00:00:02,000 --> 00:00:03,000\r\nSecond\r\n\r\n3\r\n00:00:03,500 --> 00:00:09,000\r\nruns past the audio\r\n\r\n4\r\n00:00:09,000 --> 00:00:10,000\r\nafter it\r\n",
			5, frameSize{1920, 1080}, with("landscape", "none")},
		{"vtt", "\ufeffWEBVTT - a title\nKind: captions\n\nNOTE a comment\nthat runs on\n\nSTYLE\n::cue { color: red }\n\n" +
			"intro\n00:00.500 --> 00:01.250 align:start line:0\n<v Bob>Hello</v> &amp; <c.loud>welcome</c> &lt;i&gt;\n\n" +
			"01:00:02.000 --> 01:00:03.000\nLater\n\n00:01.000 --> 00:02.000\n<i>over\nlines</i> &#x7B;\\N&#x7D;\n",
			3700, frameSize{1080, 1920}, with("portrait", "bars")},
		{"injection", captionstest.ScriptInjection("&#13;") + "\n" + strings.TrimPrefix(captionstest.ScriptInjection("&#10;"), "WEBVTT\n"),
			2.5, frameSize{320, 240}, with("original", "line")},
		{"controls", "1\n00:00:00,000 --> 00:00:01,000\na\tb\vc\fd\u0085e\u2028f\u2029g|\x01\x07\x1b[31m\x7f\u0080\u009b|end\nline two {\\b1}\\h\n\n" +
			"2\n00:00:00,000 --> 00:00:01,000\n\uFDD2a\uFDD3 <B>b</B> \\\\N {}\n",
			1, frameSize{1080, 1080}, with("square", "line")},
		{"scripts", "1\n00:00:00,000 --> 00:00:02,000\nبِسْمِ ٱللَّهِ ٱلرَّحْمَٰنِ\n字幕を読みます 🍕\n\n2\n00:00:01,000 --> 00:00:02,000\nTie\u0302\u0301ng Vie\u0323\u0302t नमस्ते\n",
			2, frameSize{641, 359}, with("original", "bars")},
		{"tiny", "1\n00:00:00,000 --> 00:00:00,010\nx\n", 0.5, frameSize{16, 16}, with("original", "none")},
	}
	for _, c := range cases {
		got := captionScript(t, c.file, c.audio, c.f, c.o)
		path := filepath.Join("testdata", "captions", c.name+".ass")
		if *updateCaptionScripts {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if want := readFile(t, path); string(got) != string(want) {
			t.Errorf("%s: the script changed:\n%s\nwant:\n%s", c.name, got, want)
		}
	}
}

// TestCaptionRefusalsGolden: the message of each refusal of a captions file, whether parsing it or
// fitting it to the audio, is a 400 that reads byte for byte as testdata/captions/refusals.txt,
// saved from the code that first checked captions.
func TestCaptionRefusalsGolden(t *testing.T) {
	t.Parallel()
	at := func(n int, dur time.Duration, text string) string {
		return captionstest.SRT(n, func(int) time.Duration { return 0 }, dur, func(int) string { return text })
	}
	cases := []struct {
		name  string
		file  string
		audio float64
	}{
		{"not utf-8", "1\n00:00:01,000 --> 00:00:02,000\ncaf\xe9\n", 5},
		{"nul", "1\n00:00:01,000 --> 00:00:02,000\nab\x00\n", 5},
		{"empty", "", 5},
		{"number alone", "1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n", 5},
		{"bad time", "1\n00:00:0x,000 --> 00:00:04,000\nbad \"quoted\"\n", 5},
		{"long bad time", "1\n" + strings.Repeat("9", 300) + " --> 00:00:04,000\nbad\n", 5},
		{"ends before it starts", "\n\n1\n00:00:05,000 --> 00:00:02,000\nx\n", 5},
		{"past 99 hours", "1\n99:59:59,000 --> 100:00:00,000\nlate\n", 5},
		{"301 characters", at(1, time.Second, captionstest.Fill("WWWWWWW ", 301)), 5},
		{"151 marks", at(1, time.Second, strings.Repeat("e\u0301\u0302", 75)+"e\u0301"), 5},
		{"9 marks on one", at(1, time.Second, "Z"+strings.Repeat("\u0336", 9)), 5},
		{"7 at once", at(7, time.Second, "overlap"), 5},
		{"too heavy", at(6, time.Second, strings.Repeat("🍕", 27)), 5},
		{"after the audio", "1\n00:00:05,000 --> 00:00:06,000\nlate\n", 2.5},
		{"after whole seconds", "1\n00:00:05,000 --> 00:00:06,000\nlate\n", 3},
		{"too many", captionstest.SRT(31, func(i int) time.Duration { return time.Duration(i) * 80 * time.Millisecond }, 80*time.Millisecond,
			func(int) string { return "w" }), 2.5},
		{"too many for a minute", captionstest.SRT(310, func(i int) time.Duration { return time.Duration(i) * 190 * time.Millisecond }, 100*time.Millisecond,
			func(int) string { return "w" }), 61.25},
	}
	var b strings.Builder
	for _, c := range cases {
		err := captionsRefusal(c.file, c.audio)
		if err == nil || kindOf(err) != kindInvalid {
			t.Fatalf("%s: %v, want a 400", c.name, err)
		}
		fmt.Fprintf(&b, "%s: %s\n", c.name, err)
	}
	path := filepath.Join("testdata", "captions", "refusals.txt")
	if *updateCaptionScripts {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want := readFile(t, path); b.String() != string(want) {
		t.Errorf("the messages changed:\n%s\nwant:\n%s", b.String(), want)
	}
}
