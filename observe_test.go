package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// jsonLogs points the server's request log at a JSON buffer and returns it.
func jsonLogs(buf *syncBuffer) func(*server) {
	return func(s *server) { s.log = slog.New(slog.NewJSONHandler(buf, nil)) }
}

// requestLines returns the "request" log lines in buf, decoded.
func requestLines(t testing.TB, buf *syncBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if v["msg"] == "request" {
			out = append(out, v)
		}
	}
	return out
}

// requestLine waits for the request line that match accepts: a line is written once the handler
// has returned, which can be just after the client has read the whole response.
func requestLine(t testing.TB, buf *syncBuffer, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	var line map[string]any
	eventually(t, 10*time.Second, func() error {
		lines := requestLines(t, buf)
		for i := len(lines) - 1; i >= 0; i-- {
			if match(lines[i]) {
				line = lines[i]
				return nil
			}
		}
		return fmt.Errorf("no request line for %s in\n%s", what, buf.String())
	})
	return line
}

// routeLine waits for a request line of route with the given status.
func routeLine(t testing.TB, buf *syncBuffer, route string, status int) map[string]any {
	t.Helper()
	return requestLine(t, buf, fmt.Sprintf("%s (%d)", route, status), func(l map[string]any) bool {
		return l["route"] == route && l["status"] == float64(status)
	})
}

// TestRequestLogAndIDs: one line per request with the route pattern (not the path), the status, the
// bytes, the client and the request id; the id is echoed or made, and JSON errors carry it; the API
// key, the webhook secret and output tokens never reach the log.
func TestRequestLogAndIDs(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	e := newTestEnv(t, nil, jsonLogs(&logs))

	missing := "c000000000000000000000000"
	resp, b := e.do(t, "GET", "/api/status/"+missing, e.key, nil, "X-Request-Id", "trace-42.a")
	errorBody(t, resp, b, http.StatusNotFound)
	if got := decodeJSON(t, resp, b)["requestId"]; got != "trace-42.a" || resp.Header.Get("X-Request-Id") != "trace-42.a" {
		t.Errorf("a sane X-Request-Id is not echoed: header %q, body %v", resp.Header.Get("X-Request-Id"), got)
	}
	line := requestLine(t, &logs, "the trace-42.a request", func(l map[string]any) bool { return l["request_id"] == "trace-42.a" })
	want := map[string]any{"route": "/api/status/:jobId", "method": "GET", "status": float64(404), "bytes": float64(len(b)), "client": "127.0.0.1", "request_id": "trace-42.a", "job": missing}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("request line %s = %v, want %v (%v)", k, line[k], v, line)
		}
	}
	if _, ok := line["duration_ms"].(float64); !ok {
		t.Errorf("no duration_ms in %v", line)
	}

	// An id that is too long or has odd characters is replaced, never echoed or logged.
	generated := regexp.MustCompile(`^[0-9a-f]{16}$`)
	for _, bad := range []string{strings.Repeat("x", 200), "two words", `quote"d`, "new\tline"} {
		resp, b := e.do(t, "GET", "/api/jobs/"+missing, "", nil, "X-Request-Id", bad)
		id := resp.Header.Get("X-Request-Id")
		if !generated.MatchString(id) || decodeJSON(t, resp, b)["requestId"] != id {
			t.Errorf("X-Request-Id %q: answered %q, body %s", bad, id, b)
		}
		if strings.Contains(logs.String(), bad) {
			t.Errorf("X-Request-Id %q reached the log", bad)
		}
	}
	// Every response gets an id, successes included.
	if resp, _ := e.do(t, "GET", "/api/health", "", nil); !generated.MatchString(resp.Header.Get("X-Request-Id")) {
		t.Errorf("health: X-Request-Id %q", resp.Header.Get("X-Request-Id"))
	}

	// A submission's line names the new job; the video's names the route, not the token.
	id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.m4a"))
	if l := routeLine(t, &logs, "/api/jobs", 201); l["job"] != id || l["method"] != "POST" {
		t.Errorf("submission line %v, want job %s", l, id)
	}
	st := e.wait(t, e.key, id, StatusCompleted)
	// Each change of the job's state has its line, the claim included.
	// (The renderer and the lifecycle keep the server's first logger, the env's text log.)
	change := regexp.MustCompile(`msg="job state changed" job=` + id + ` key=\S+ from=(\w+) status=(\w+)`)
	changes := func() (got []string) {
		for _, m := range change.FindAllStringSubmatch(e.logs.String(), -1) {
			got = append(got, m[1]+">"+m[2])
		}
		return got
	}
	eventually(t, 10*time.Second, func() error {
		if got, want := changes(), []string{"PENDING>PROCESSING", "PROCESSING>COMPLETED"}; !slices.Equal(got, want) {
			return fmt.Errorf("job state lines %v, want %v", got, want)
		}
		return nil
	})
	video := st["outputVideo"].(string)
	token := strings.TrimSuffix(path.Base(video), ".mp4")
	resp, b = e.do(t, "GET", "/v/"+token+".mp4", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("video: %d", resp.StatusCode)
	}
	if l := routeLine(t, &logs, "/v/:file", 200); l["bytes"] != float64(len(b)) {
		t.Errorf("video line %v, want %d bytes", l, len(b))
	}
	e.do(t, "GET", "/api/nothing/here", e.key, nil)
	routeLine(t, &logs, "unmatched", 404)

	k, err := e.srv.store.KeyByHash(t.Context(), hashKey(e.key))
	if err != nil {
		t.Fatal(err)
	}
	all := logs.String() + e.logs.String()
	for name, secret := range map[string]string{"API key": e.key, "webhook secret": k.WebhookSecret, "output token": token} {
		if strings.Contains(all, secret) {
			t.Errorf("the %s appears in the log", name)
		}
	}
}

// metricValue is the value of the sample named exactly series (name and labels as printed) in a
// Prometheus text exposition, or "" when absent.
func metricValue(text, series string) string {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// metricsListener serves the test server's metrics listener and returns its URL.
func metricsListener(t testing.TB, e *testEnv) string {
	t.Helper()
	hs := httptest.NewServer(e.srv.metricsRoutes())
	t.Cleanup(hs.Close)
	return hs.URL
}

// scrape GETs /metrics from the metrics listener at base and returns the exposition.
func scrape(t testing.TB, base string) string {
	t.Helper()
	resp, b := mustRequest(t, "GET", base+"/metrics", "", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return string(b)
}

// TestMetrics scrapes /metrics after a job with a webhook and a rate-limited submission.
func TestMetrics(t *testing.T) {
	t.Parallel()
	recv := newHookReceiver(t, nil)
	cfg := hookConfig(t.TempDir(), recv)
	cfg.RateSubmit = 1
	e := newTestEnv(t, cfg, hookTrust(recv))

	code, body := e.submit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.m4a"), map[string]string{"webhookUrl": recv.url()})
	if code != http.StatusCreated {
		t.Fatalf("submit: %d %v", code, body)
	}
	id := body["jobId"].(string)
	if code, body := e.submit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.m4a"), nil); code != http.StatusTooManyRequests {
		t.Fatalf("second submission within the minute: %d %v, want 429", code, body)
	}
	e.wait(t, e.key, id, StatusCompleted)
	recv.waitFor(t, 1)

	var text string
	want := map[string]string{
		`vidgen_http_requests_total{method="POST",route="/api/jobs",status="201"}`:                 "1",
		`vidgen_http_requests_total{method="POST",route="/api/jobs",status="429"}`:                 "1",
		`vidgen_http_request_duration_seconds_count{method="POST",route="/api/jobs",status="201"}`: "1",
		`vidgen_rate_limited_total{route="/api/jobs"}`:                                             "1",
		`vidgen_jobs{state="COMPLETED"}`:                                                           "1",
		`vidgen_jobs{state="PENDING"}`:                                                             "0",
		`vidgen_queue_depth`:                                                                       "0",
		`vidgen_render_duration_seconds_count`:                                                     "1",
		`vidgen_render_realtime_ratio_count`:                                                       "1",
		`vidgen_webhook_attempts_total{outcome="delivered"}`:                                       "1",
		`vidgen_webhook_deliveries_pending`:                                                        "0",
		`vidgen_ffmpeg_failures_total{cause="passing"}`:                                            "0",
	}
	// A request is counted once its handler returned, and the webhook attempt once recorded, both
	// just after the client saw the answer: scrape until everything is in, then report what is not.
	mismatches := func() []string {
		var bad []string
		for series, v := range want {
			if got := metricValue(text, series); got != v {
				bad = append(bad, fmt.Sprintf("%s = %q, want %s", series, got, v))
			}
		}
		return bad
	}
	metrics := metricsListener(t, e)
	eventually(t, 10*time.Second, func() error {
		text = scrape(t, metrics)
		if bad := mismatches(); len(bad) != 0 {
			return errors.New(strings.Join(bad, "\n"))
		}
		return nil
	})
	for _, name := range []string{"vidgen_build_info", "go_goroutines", "vidgen_http_request_duration_seconds_bucket"} {
		if !strings.Contains(text, name) {
			t.Errorf("no %s in the scrape", name)
		}
	}
	if strings.Contains(text, id) || strings.Contains(text, e.key) {
		t.Error("a job id or a key appears in the metrics")
	}
}

// TestRenderMetrics: the outcomes a render attempt can have land in the right series.
func TestRenderMetrics(t *testing.T) {
	t.Parallel()
	m := newMetrics(nil, time.Now)
	run := renderRun{job: Job{AudioDuration: 60}, took: time.Second}
	m.renderEnded(renderRun{job: run.job, took: 2 * time.Second}, Outcome{Status: StatusCompleted})
	m.renderEnded(run, Outcome{Status: StatusFailed, ErrorMessage: "audio: cannot be decoded"})
	m.renderEnded(run, Outcome{Status: StatusPending, CountRetry: true})
	m.renderEnded(run, Outcome{Status: StatusPending}) // shutdown: not a failure
	m.webhookAttempt("pending")
	m.webhookAttempt("failed")
	w := httptest.NewRecorder()
	m.reg.Unregister(&storeCollector{}) // no store here
	m.handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	text := w.Body.String()
	for series, v := range map[string]string{
		`vidgen_render_duration_seconds_sum`:                "2",
		`vidgen_render_realtime_ratio_sum`:                  "30",
		`vidgen_ffmpeg_failures_total{cause="bad_input"}`:   "1",
		`vidgen_ffmpeg_failures_total{cause="passing"}`:     "1",
		`vidgen_webhook_attempts_total{outcome="retrying"}`: "1",
		`vidgen_webhook_attempts_total{outcome="gave_up"}`:  "1",
	} {
		if got := metricValue(text, series); got != v {
			t.Errorf("%s = %q, want %s", series, got, v)
		}
	}
}
