package captions

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestTitleScript: a title adds its own style (its colour in ASS's BGR order, top or bottom centre)
// and one Dialogue line over the whole video, its text drawn as written: no ASS command, no line of
// its own.
func TestTitleScript(t *testing.T) {
	b := Box{W: 1080, H: 1080, FontSize: 59, MarginV: 86, MarginH: 64}
	title := Title{Text: "Show {\\b1}\\N\n\ufdd4next", Top: true, FontSize: 65, MarginV: 54, Colour: "FFD700", End: 3 * time.Second}
	s := string(Script(nil, b, title))
	for _, want := range []string{
		"Style: Title,DejaVu Sans,65,&H0000D7FF,&H0000D7FF,&H00000000,&H80000000,-1,0,0,0,100,100,0,0,1,4.6,2.2,8,64,64,54,1\n",
		"Dialogue: 1,0:00:00.00,0:00:03.00,Title,,0,0,0,,Show \\{\\\u2060b1\\}\\\u2060N next\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	if n := strings.Count(s, "Dialogue:"); n != 1 {
		t.Errorf("%d Dialogue lines, want the title's alone", n)
	}
	title.Top = false
	if s := string(Script(nil, b, title)); !strings.Contains(s, ",1,4.6,2.2,2,64,64,54,1\n") {
		t.Errorf("a bottom title is not aligned bottom centre:\n%s", s)
	}
}

func TestCheckTitle(t *testing.T) {
	for text, want := range map[string]string{
		"The show":                        "",
		strings.Repeat("x", 120):          "",
		strings.Repeat("x", 121):          "a title of 121 characters; the most is 120",
		"e" + strings.Repeat("\u0301", 9): "more than 8 combining marks",
		strings.Repeat("中", 41):           "a title that weighs 1025, the most is 1000",
		" \x01 ":                          "the title has no text to draw",
		"\ufdd4 \ufdd5":                   "the title has no text to draw",
	} {
		err := CheckTitle(text)
		var ce *Error
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", text, err)
		case want != "" && (!errors.As(err, &ce) || !strings.Contains(ce.Reason, want) || ce.Line != 0):
			t.Errorf("%q: %v, want %q", text, err, want)
		}
	}
}

// FuzzTitle: whatever the title's text, CheckTitle refuses it with an *Error or the script holds
// the title as one Dialogue line after the header, with no line of its own, no ASS override block
// (every brace escaped) and no control character.
func FuzzTitle(f *testing.F) {
	for _, s := range []string{"Show", "{\\b1}x\\N\ny", "\r\nDialogue: 0,0:00:00.00,9:00:00.00,Default,,0,0,0,,x", "\u2028\x1b\u0085", "中文"} {
		f.Add(s)
	}
	b := Box{W: 320, H: 240, FontSize: 13, MarginV: 19, MarginH: 19}
	f.Fuzz(func(t *testing.T, text string) {
		if err := CheckTitle(text); err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("refused with %v, want an *Error", err)
			}
			return
		}
		s := string(Script(nil, b, Title{Text: text, FontSize: 20, MarginV: 12, Colour: "FFFFFF", End: time.Second}))
		_, events, ok := strings.Cut(s, "[Events]\n")
		lines := strings.Split(strings.TrimSuffix(events, "\n"), "\n")
		if !ok || len(lines) != 2 || !strings.HasPrefix(lines[1], "Dialogue: 1,0:00:00.00,0:00:01.00,Title,,0,0,0,,") {
			t.Fatalf("the title is not one Dialogue line:\n%s", s)
		}
		dialogue := strings.TrimPrefix(lines[1], "Dialogue: 1,0:00:00.00,0:00:01.00,Title,,0,0,0,,")
		for i, r := range dialogue {
			if r == '{' && (i == 0 || dialogue[i-1] != '\\') {
				t.Fatalf("an unescaped brace in %q", dialogue)
			}
			if r < 0x20 || r >= 0x7f && r <= 0x9f || r == '\u2028' || r == '\u2029' {
				t.Fatalf("the control character %q in %q", r, dialogue)
			}
		}
	})
}
