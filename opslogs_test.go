package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// allJSONLogs points every part of the server's logs (requests, jobs, renders, webhooks) at a JSON
// buffer, as under systemd.
func allJSONLogs(buf *syncBuffer) func(*server) {
	return func(s *server) {
		l := slog.New(slog.NewJSONHandler(buf, nil))
		s.log, s.jobs.log, s.renderer.log, s.hooks.log = l, l, l, l
	}
}

// logLines are the JSON log lines in buf, each decoded.
func logLines(t testing.TB, buf *syncBuffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

// TestJobLogLines: a job submitted with a W3C traceparent has the trace id on every log line of the
// job, from the submission's request line through its state changes and render to each webhook
// attempt (stored with the job, so it outlives the request); its options are attributes of their
// own, not a JSON string; a failed webhook attempt is a WARN.
func TestJobLogLines(t *testing.T) {
	t.Parallel()
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	recv := newHookReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(http.StatusInternalServerError) })
	logs := &syncBuffer{}
	e := newTestEnv(t, hookConfig(t.TempDir(), recv), hookTrust(recv), allJSONLogs(logs))

	body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav")},
		map[string]string{"webhookUrl": recv.url(), "size": "square", "waveform": "bars"})
	resp, b := e.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype, "traceparent", "00-"+trace+"-00f067aa0ba902b7-01")
	id := decodeJSON(t, resp, b)["jobId"].(string)
	e.wait(t, e.key, id, StatusCompleted)
	recv.waitFor(t, 1)

	var lines []map[string]any
	want := map[string]bool{"request": false, "job created": false, "job state changed": false, "render ended": false, "webhook attempt": false}
	eventually(t, 10*time.Second, func() error { // the attempt's line follows the receiver's answer
		lines = logLines(t, logs)
		for _, l := range lines {
			if l["job"] == id {
				want[l["msg"].(string)] = true
			}
		}
		for msg, seen := range want {
			if !seen {
				return fmt.Errorf("no %q line for the job", msg)
			}
		}
		return nil
	})
	for _, l := range lines {
		if l["job"] != id || (l["msg"] == "request" && l["method"] != "POST") {
			continue // a status poll's line carries its own request's traceparent (none here)
		}
		if l["trace_id"] != trace {
			t.Errorf("a line of the job has trace_id %v, want %s: %v", l["trace_id"], trace, l)
		}
		switch l["msg"] {
		case "job created":
			opts, ok := l["options"].(map[string]any)
			if !ok || opts["size"] != "square" || opts["waveform"] != "bars" || opts["captions"] != false {
				t.Errorf("job created: options %#v, want attributes (size square, waveform bars, captions false)", l["options"])
			}
		case "webhook attempt":
			if l["level"] != "WARN" {
				t.Errorf("an attempt the receiver answered 500 is logged at %v, want WARN: %v", l["level"], l)
			}
		}
	}
}

// TestTraceparent: only a well-formed W3C traceparent yields a trace id; anything else is ignored,
// never logged.
func TestTraceparent(t *testing.T) {
	t.Parallel()
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, c := range []struct {
		headers []string
		want    string
	}{
		{[]string{"00-" + tid + "-00f067aa0ba902b7-01"}, tid},
		{[]string{" 00-" + tid + "-00f067aa0ba902b7-00 "}, tid},
		{[]string{"01-" + tid + "-00f067aa0ba902b7-01-future"}, tid}, // a later version may add fields
		{nil, ""},
		{[]string{"00-" + tid + "-00f067aa0ba902b7-01-extra"}, ""}, // version 00 has exactly four
		{[]string{"ff-" + tid + "-00f067aa0ba902b7-01"}, ""},
		{[]string{"00-" + strings.ToUpper(tid) + "-00f067aa0ba902b7-01"}, ""},
		{[]string{"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, ""},
		{[]string{"00-" + tid + "-0000000000000000-01"}, ""},
		{[]string{"00-" + tid[:31] + "-00f067aa0ba902b7-01"}, ""},
		{[]string{"00-" + tid + "-00f067aa0ba902b7-01", "00-" + tid + "-00f067aa0ba902b7-01"}, ""},
		{[]string{"00-" + tid + "\"x-00f067aa0ba902b7-01"}, ""},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		for _, h := range c.headers {
			r.Header.Add("traceparent", h)
		}
		if got := traceID(r); got != c.want {
			t.Errorf("traceparent %q: %q, want %q", c.headers, got, c.want)
		}
	}
}

// TestUnauthorizedChallenge: every 401, a missing key and a wrong one, carries the WWW-Authenticate
// challenge HTTP requires, naming the X-API-Key header the API reads.
func TestUnauthorizedChallenge(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	for _, key := range []string{"", "vg_wrong"} {
		for _, path := range []string{"/api/jobs", "/api/status/c0mx1lgwgsnrq4avl98w5fi6x"} {
			resp, b := e.do(t, "GET", path, key, nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("GET %s with key %q: %d %s", path, key, resp.StatusCode, b)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != `ApiKey realm="vidgen", header="X-API-Key"` {
				t.Errorf("GET %s with key %q: WWW-Authenticate %q", path, key, got)
			}
		}
	}
	if resp, _ := e.do(t, "GET", "/api/jobs", e.key, nil); resp.Header.Get("WWW-Authenticate") != "" {
		t.Error("a 200 carries WWW-Authenticate")
	}
}
