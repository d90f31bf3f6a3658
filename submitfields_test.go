package main

import (
	"path/filepath"
	"testing"
)

// TestEveryOptionAtOnce submits a job with every option and the captions, as the try-it page can:
// the body's part count must allow every field the API has (it was capped at ten parts, which the
// newer options passed), and the status echoes each option as given.
func TestEveryOptionAtOnce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, hangConfig(t, 1))
	srt := writeFixture(t, "c.srt", []byte("1\n00:00:00,000 --> 00:00:01,000\nHi\n"))
	// sizes rather than size: the two exclude each other, and sizes makes the longer part.
	fields := map[string]string{"sizes": "square,portrait,landscape,x,original", "background": "#102030", "waveform": "bars", "waveformColor": "#FFB000",
		"loudness": "-16", "title": "Show", "titlePosition": "bottom", "titleSize": "large", "titleColor": "yellow", "progressBar": "#FF0000"}
	if len(fields) != len(optionFields)-1 {
		t.Fatalf("the test gives %d option fields, the API has %d (size and sizes are one choice)", len(fields), len(optionFields))
	}
	body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav"), "captions": srt}, fields)
	resp, b := e.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype)
	if resp.StatusCode != 201 {
		t.Fatalf("%d parts: %d %s", len(fields)+3, resp.StatusCode, b)
	}
	st := e.status(t, e.key, decodeJSON(t, resp, b)["jobId"].(string))
	opts := st["options"].(map[string]any)
	for k, v := range map[string]any{"size": "square", "loudness": -16.0, "title": "Show", "titlePosition": "bottom", "titleSize": "large",
		"titleColor": "yellow", "progressBar": "#FF0000", "captions": true} {
		if opts[k] != v {
			t.Errorf("options[%s] = %v, want %v", k, opts[k], v)
		}
	}
	if files := dirFiles(t, filepath.Join(e.srv.cfg.DataDir, "tmp")); len(files) != 0 {
		t.Errorf("files left in tmp: %v", files)
	}
}
