package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMetricsAtZeroFromStart: a service that has answered nothing yet already has every counter
// series a dashboard or an alert reads, at zero (rate() needs a series before the first event), and
// the render speed under its conventional name, a _ratio.
func TestMetricsAtZeroFromStart(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	text := scrape(t, metricsListener(t, e))
	for _, series := range []string{
		`vidgen_rate_limited_total{route="/api/jobs"}`,
		`vidgen_rate_limited_total{route="/api/status/:jobId"}`,
		`vidgen_rate_limited_total{route="/v/:file"}`,
		`vidgen_rate_limited_total{route="unmatched"}`,
		`vidgen_jobs_finished_total{outcome="completed"}`,
		`vidgen_jobs_finished_total{outcome="failed"}`,
		`vidgen_jobs_finished_total{outcome="cancelled"}`,
		`vidgen_ffmpeg_failures_total{cause="passing"}`,
		`vidgen_webhook_attempts_total{outcome="gave_up"}`,
		`vidgen_oldest_pending_job_age_seconds`,
		`vidgen_render_realtime_ratio_count`,
	} {
		if got := metricValue(text, series); got != "0" {
			t.Errorf("%s = %q at start, want 0", series, got)
		}
	}
	if strings.Contains(text, "realtime_factor") {
		t.Error("the scrape still has vidgen_render_realtime_factor, renamed vidgen_render_realtime_ratio")
	}
	if strings.Contains(text, `route="/health"`) {
		t.Error("/health, which no limit applies to, has a rate_limited_total series")
	}
}

// TestJobsFinishedAndOldestPending: every way a job ends is counted by its outcome, and the age of
// the oldest PENDING job is read from the database against the service's clock (0 once none waits).
func TestJobsFinishedAndOldestPending(t *testing.T) {
	t.Parallel()
	st, k := testStore(t)
	ctx := context.Background()
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := created.Add(90 * time.Second)
	m := newMetrics(st, func() time.Time { return clock })
	dirs := dataDir{root: t.TempDir()}
	jobs := &lifecycle{store: st, dirs: dirs, files: diskFiles{dirs}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), rand: rand.Reader, observeEnd: m.jobEnded}
	scrapeM := func() string {
		w := httptest.NewRecorder()
		m.handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		return w.Body.String()
	}

	older := storeJob(t, st, k, "", created)
	if got := metricValue(scrapeM(), "vidgen_oldest_pending_job_age_seconds"); got != "90" {
		t.Errorf("one job pending for 90 s: age %q", got)
	}

	// The job ends three ways, one after the other (one active job per key).
	if _, err := jobs.cancel(ctx, k.ID, older.ID); err != nil {
		t.Fatal(err)
	}
	for _, out := range []Outcome{{Status: StatusCompleted, OutputToken: "tok"}, {Status: StatusFailed, ErrorMessage: "audio: cannot be decoded"}} {
		j := storeJob(t, st, k, "", created.Add(time.Second))
		claimed, err := jobs.claim(ctx)
		if err != nil || claimed.ID != j.ID {
			t.Fatalf("claim: %v %v", claimed.ID, err)
		}
		if _, err := jobs.finish(ctx, j.ID, "", StatusProcessing, out); err != nil {
			t.Fatal(err)
		}
	}
	text := scrapeM()
	for series, want := range map[string]string{
		`vidgen_jobs_finished_total{outcome="completed"}`: "1",
		`vidgen_jobs_finished_total{outcome="failed"}`:    "1",
		`vidgen_jobs_finished_total{outcome="cancelled"}`: "1",
		`vidgen_oldest_pending_job_age_seconds`:           "0",
	} {
		if got := metricValue(text, series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
}

// TestDashboardAndAlertsNameExportedMetrics: every metric docs/grafana-dashboard.json and
// docs/alerts.yml query is one a running vidgen exports (a histogram's _bucket, _sum and _count
// included), so a renamed metric cannot leave a panel empty or an alert silent.
func TestDashboardAndAlertsNameExportedMetrics(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	e.do(t, "GET", "/api/health", "", nil) // so the request counters have series
	text := scrape(t, metricsListener(t, e))
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(readFile(t, "docs/grafana-dashboard.json"), &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	sources := map[string]string{"docs/alerts.yml": string(readFile(t, "docs/alerts.yml"))}
	for _, p := range dash.Panels {
		for _, q := range p.Targets {
			sources["dashboard panel "+p.Title] += q.Expr + "\n"
		}
	}
	if len(sources) < 8 {
		t.Fatalf("the dashboard has %d panels with queries, want the queue, jobs, renders, webhooks, requests", len(sources)-1)
	}
	name := regexp.MustCompile(`\b(?:vidgen|process)_[a-z_]+`)
	for src, text2 := range sources {
		for _, n := range name.FindAllString(text2, -1) {
			base := n
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(n, suffix); ok && strings.Contains(text, "# TYPE "+b+" histogram") {
					base = b
				}
			}
			if !strings.Contains(text, "# TYPE "+base+" ") {
				t.Errorf("%s queries %s, which vidgen does not export", src, n)
			}
		}
	}
}

// TestEveryLimitedRouteCountedFromStart: every route that spends from a rate-limit bucket (all of
// /api/ but the health check, and the downloads) has its 429 counter at zero from the start, so a
// route added later without one fails here.
func TestEveryLimitedRouteCountedFromStart(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	text := scrape(t, metricsListener(t, e))
	n := 0
	for _, r := range registeredRoutes(t, e.srv.routes().(routedHandler).router) {
		_, path, _ := strings.Cut(r, " ")
		if path == "/api/health" || !(strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/v/") || strings.HasPrefix(path, "/s/")) {
			continue
		}
		n++
		if got := metricValue(text, `vidgen_rate_limited_total{route="`+path+`"}`); got != "0" {
			t.Errorf("%s: vidgen_rate_limited_total = %q at start, want 0", r, got)
		}
	}
	if n < 8 {
		t.Errorf("%d rate-limited routes, want the API's and the downloads'", n)
	}
}
