package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"vidgen/internal/captions"
	"vidgen/internal/captions/captionstest"
)

// TestCaptionsHostile submits hostile captions files and real ones near the limits with 2.5 s of
// audio: each over a limit is a 400 that names the limit, each within them renders.
func TestCaptionsHostile(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	every, same := captionstest.Every, captionstest.Same
	atOnce := func(n int) string { return captionstest.SRT(n, every(0), 2*time.Second, same("overlap")) }
	arabic := "بِسْمِ ٱللَّهِ ٱلرَّحْمَٰنِ ٱلرَّحِيمِ ٱلْحَمْدُ لِلَّهِ رَبِّ ٱلْعَٰلَمِينَ" // vocalised: a mark on nearly every letter
	cases := []struct {
		name, file string
		want       string // a fragment of the 400's message, or "" when accepted
	}{
		{"&#13; writes a script", captionstest.ScriptInjection("&#13;"), ""},
		{"&#10; writes a script", captionstest.ScriptInjection("&#10;"), ""},
		{"control characters", "1\n00:00:00,000 --> 00:00:02,000\n\x1b[31mred\x07\u2028two\n", ""},
		{"7 cues at once", atOnce(7), "line 26: more than 6 cues on screen at once (the most is 6)"},
		{"6 cues at once", atOnce(6), ""},
		{"6 at once, a 7th as one ends", atOnce(6) + "7\n00:00:02,000 --> 00:00:02,400\nnext\n", ""},
		{"31 cues for 2.5 s", captionstest.SRT(31, every(80*time.Millisecond), 80*time.Millisecond, same("w")),
			"31 cues for 0:00:02.5 of audio; the most is 300 a minute (30 for this audio)"},
		{"30 cues for 2.5 s, word by word", captionstest.SRT(30, every(80*time.Millisecond), 80*time.Millisecond, same("w")), ""},
		{"301 characters", captionstest.SRT(1, every(0), time.Second, same(captionstest.Fill("WWWWWWW ", 301))), "line 2: a cue of 301 characters; the most is 300"},
		{"300 characters", captionstest.SRT(1, every(0), time.Second, same(captionstest.Fill("WWWWWWW ", 300))), ""},
		{"151 combining marks", captionstest.SRT(1, every(0), time.Second, same(strings.Repeat("e\u0301\u0302", 75)+"e\u0301")), "a cue with 151 combining marks; the most is 150"},
		{"9 marks on one letter", captionstest.SRT(1, every(0), time.Second, same("Z"+strings.Repeat("\u0336", 9)+"algo")), "more than 8 combining marks on one character"},
		{"9 marks on one letter, joined", captionstest.SRT(1, every(0), time.Second, same("Z"+strings.Repeat("\u0336\u200d", 9))), "more than 8 combining marks on one character"},
		{"vocalised Arabic, two lines", captionstest.SRT(1, every(0), time.Second, same(arabic+"\n"+arabic)), ""},
		{"Vietnamese decomposed", captionstest.SRT(1, every(0), time.Second, same("Tie\u0302\u0301ng Vie\u0323\u0302t")), ""},
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

// TestCaptionLimitsDocumented: --help, serve -h, the formats page and the API's description give
// the limits the service checks.
func TestCaptionLimitsDocumented(t *testing.T) {
	t.Parallel()
	var help, serveHelp bytes.Buffer
	printUsage(&help)
	if _, err := parseServeFlags([]string{"-h"}, func(string) string { return "" }, &serveHelp); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve -h: %v", err)
	}
	docs := map[string]string{"--help": help.String(), "serve -h": serveHelp.String(), "docs/formats.md": string(readFile(t, "docs/formats.md")), "openapi.yaml": string(readFile(t, "openapi.yaml"))}
	for name, text := range docs {
		if !strings.Contains(text, captions.Limits()) {
			t.Errorf("%s does not give the captions' limits: %q", name, captions.Limits())
		}
	}
}
