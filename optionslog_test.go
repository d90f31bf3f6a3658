package main

import (
	"testing"
)

// TestOptionsLogged: the "job created" line of a job submitted with every option names each one as
// an attribute of its own (loudness, title and its position, size and colour, progress bar beside
// size and waveform); a job of the defaults logs none of the options it left off.
func TestOptionsLogged(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	e := newTestEnv(t, nil, allJSONLogs(logs))
	fields := map[string]string{"size": "square", "loudness": "-14", "title": "Episode 12", "titlePosition": "bottom",
		"titleSize": "large", "titleColor": "yellow", "progressBar": "#FF0000"}
	var ids []string
	for i, f := range []map[string]string{fields, nil} {
		key := e.newKey(t, []string{"every option", "defaults"}[i])
		status, body := e.submit(t, key, fixture(t, "img.png"), fixture(t, "tone.wav"), f)
		if status != 201 {
			t.Fatalf("submit: %d %v", status, body)
		}
		ids = append(ids, body["jobId"].(string))
	}
	created := map[string]map[string]any{}
	for _, l := range logLines(t, logs) {
		if l["msg"] == "job created" {
			opts, _ := l["options"].(map[string]any)
			created[l["job"].(string)] = opts
		}
	}
	want := map[string]any{"size": "square", "loudness": -14.0, "title": "Episode 12", "title_position": "bottom",
		"title_size": "large", "title_color": "yellow", "progress_bar": "#FF0000"}
	all := created[ids[0]]
	for k, v := range want {
		if all[k] != v {
			t.Errorf("job created with every option: options.%s = %#v, want %#v (options %v)", k, all[k], v, all)
		}
	}
	defaults := created[ids[1]]
	if defaults == nil || defaults["size"] != "original" {
		t.Fatalf("job created with the defaults: options %v", defaults)
	}
	for k := range want {
		if _, ok := defaults[k]; ok && k != "size" {
			t.Errorf("job created with the defaults logs options.%s = %v", k, defaults[k])
		}
	}
}
