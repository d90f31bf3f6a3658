package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is one server's Prometheus metrics, in a registry of its own: servers running side by side
// (tests) never share a counter.
type metrics struct {
	reg *prometheus.Registry

	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	rateLimited    *prometheus.CounterVec
	renderSeconds  prometheus.Histogram
	realtime       prometheus.Histogram
	ffmpegFailures *prometheus.CounterVec
	webhooks       *prometheus.CounterVec
	jobsFinished   *prometheus.CounterVec
	queue          *prometheus.CounterVec
}

// finishOutcomes are the outcome labels of vidgen_jobs_finished_total, one for each way a job ends.
var finishOutcomes = map[JobStatus]string{StatusCompleted: "completed", StatusFailed: "failed", StatusCancelled: "cancelled"}

// newMetrics registers every metric, and the collectors that read job and delivery counts from st at
// scrape time (the database is the truth; counting in memory would drift across restarts), with now
// the clock the age of the oldest pending job is read by. Every counter's label values exist from the
// start, at zero: rate() and increase() need a series before the first event, or an alert on the
// first 429 or the first failed job never fires.
func newMetrics(st *Store, now func() time.Time) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vidgen_http_requests_total", Help: "HTTP requests answered, by method, route pattern and status.",
	}, []string{"method", "route", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vidgen_http_request_duration_seconds", Help: "Time to answer an HTTP request (uploads and downloads included), by method, route pattern and status.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	}, []string{"method", "route", "status"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vidgen_rate_limited_total", Help: "Requests refused with 429 by the per-IP rate limits, by route pattern.",
	}, []string{"route"})
	m.renderSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "vidgen_render_duration_seconds", Help: "Wall time of renders that completed, from the claim to the published video.",
		Buckets: []float64{.25, .5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600},
	})
	m.realtime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "vidgen_render_realtime_ratio", Help: "Seconds of audio rendered per second of render time, for renders that completed.",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
	})
	m.ffmpegFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vidgen_ffmpeg_failures_total",
		Help: "Render attempts that failed: cause=bad_input (the job failed at once with a message for the user) or cause=passing (ffmpeg crashed, was killed or timed out; the job is tried again).",
	}, []string{"cause"})
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vidgen_webhook_attempts_total",
		Help: "Webhook delivery attempts by outcome: delivered (2xx), retrying (failed, another attempt is scheduled), gave_up (failed for good: 410 Gone or the schedule used up).",
	}, []string{"outcome"})
	m.jobsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vidgen_jobs_finished_total",
		Help: "Jobs that ended, by outcome: completed, failed (the job's error says why) or cancelled by its owner.",
	}, []string{"outcome"})
	for _, o := range finishOutcomes {
		m.jobsFinished.WithLabelValues(o)
	}
	m.queue = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vidgen_queue_events_total",
		Help: "This node's part in the job queue: event=claim (a PENDING job taken), renewal (a lease renewed while rendering), lapsed_reclaimed (a job whose node stopped renewing its lease, taken over), delivery_claim (a due webhook delivery taken to send).",
	}, []string{"event"})
	for _, e := range []string{"claim", "renewal", "lapsed_reclaimed", "delivery_claim"} {
		m.queue.WithLabelValues(e)
	}
	for _, c := range []string{"bad_input", "passing"} {
		m.ffmpegFailures.WithLabelValues(c)
	}
	for _, o := range []string{"delivered", "retrying", "gave_up"} {
		m.webhooks.WithLabelValues(o)
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vidgen_build_info", Help: "Always 1; the labels say which vidgen runs.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	build.Set(1)
	m.reg.MustRegister(m.requests, m.latency, m.rateLimited, m.renderSeconds, m.realtime, m.ffmpegFailures, m.webhooks, m.jobsFinished, m.queue, build,
		&storeCollector{store: st, now: now},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// request counts one answered request.
func (m *metrics) request(method, route string, status int, took time.Duration) {
	code := statusLabel(status)
	m.requests.WithLabelValues(method, route, code).Inc()
	m.latency.WithLabelValues(method, route, code).Observe(took.Seconds())
	if status == http.StatusTooManyRequests {
		m.rateLimited.WithLabelValues(route).Inc()
	}
}

// limitedRoute makes route's vidgen_rate_limited_total exist, at zero, before its first 429.
func (m *metrics) limitedRoute(route string) {
	if m != nil {
		m.rateLimited.WithLabelValues(route)
	}
}

// jobEnded counts a job that reached its final state (j as stored).
func (m *metrics) jobEnded(j Job) {
	if o, ok := finishOutcomes[j.Status]; ok {
		m.jobsFinished.WithLabelValues(o).Inc()
	}
}

// renderRun is what a render attempt did, for its log line and the metrics.
type renderRun struct {
	job Job // the job as rendered: what its inputs by URL turned out to be, once fetched
	// fetched says whether inputs were fetched by URL, which took fetch; fetchFailed that the
	// fetch ended the attempt, before any ffmpeg ran.
	fetched     bool
	fetch       time.Duration
	fetchFailed bool
	took        time.Duration // the render after the fetch
}

// renderEnded records a render attempt that ended with out. A shutdown's requeue (PENDING without
// a retry counted) is nobody's failure and is not counted, nor is an attempt whose fetch of its
// inputs by URL failed: no ffmpeg ran. The durations are the render's, after any fetch.
func (m *metrics) renderEnded(run renderRun, out Outcome) {
	switch {
	case out.Status == StatusCompleted:
		m.renderSeconds.Observe(run.took.Seconds())
		if run.took > 0 && run.job.AudioDuration > 0 {
			m.realtime.Observe(run.job.AudioDuration / run.took.Seconds())
		}
	case run.fetchFailed:
	case out.Status == StatusFailed:
		m.ffmpegFailures.WithLabelValues("bad_input").Inc()
	case out.CountRetry:
		m.ffmpegFailures.WithLabelValues("passing").Inc()
	}
}

// queueEvent counts one event of this node's part in the queue (see leasing.observe).
func (m *metrics) queueEvent(event string) { m.queue.WithLabelValues(event).Inc() }

// webhookAttempt records one delivery attempt whose result moved the delivery to state.
func (m *metrics) webhookAttempt(state DeliveryState) {
	switch state {
	case DeliveryDelivered:
		m.webhooks.WithLabelValues("delivered").Inc()
	case DeliveryPending:
		m.webhooks.WithLabelValues("retrying").Inc()
	default:
		m.webhooks.WithLabelValues("gave_up").Inc()
	}
}

// storeCollector reads the job and delivery counts, and the oldest pending job, from the database at
// each scrape.
type storeCollector struct {
	store *Store
	now   func() time.Time
}

var (
	jobsDesc    = prometheus.NewDesc("vidgen_jobs", "Jobs in the database by state.", []string{"state"}, nil)
	queueDesc   = prometheus.NewDesc("vidgen_queue_depth", "Jobs waiting for a render slot (PENDING).", nil, nil)
	pendingDesc = prometheus.NewDesc("vidgen_webhook_deliveries_pending", "Webhook deliveries not yet delivered nor given up.", nil, nil)
	oldestDesc  = prometheus.NewDesc("vidgen_oldest_pending_job_age_seconds", "Age of the oldest job waiting for a render slot (PENDING), from its submission; 0 when none waits.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- queueDesc
	ch <- pendingDesc
	ch <- oldestDesc
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.store.CountJobs(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(jobsDesc, err)
		ch <- prometheus.NewInvalidMetric(queueDesc, err)
	} else {
		for _, state := range jobStatuses {
			ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(counts[state]), string(state))
		}
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(counts[StatusPending]))
	}
	if oldest, err := c.store.OldestPending(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(oldestDesc, err)
	} else {
		age := 0.0
		if !oldest.IsZero() {
			age = max(c.now().Sub(oldest).Seconds(), 0) // a clock set back makes no negative age
		}
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age)
	}
	if pending, err := c.store.PendingDeliveries(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(pendingDesc, err)
	} else {
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(pending))
	}
}

// handler serves the registry in the Prometheus text format. A scrape that cannot read the
// database still gets every other metric.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// metricsRoutes is the metrics listener's handler: GET /metrics and nothing else, but on a
// render-only node (-api=false), which has no other listener, GET /health too, for its monitor.
func (s *server) metricsRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.handler())
	if !s.cfg.API {
		mux.HandleFunc("GET /health", s.handleHealth)
	}
	return mux
}

// startMetricsListener serves GET /metrics on -metrics-addr, for anyone who can reach that address
// (loopback by default; the operator chose any other). It returns where it listens ("off" when
// -metrics-addr is off) and the function that closes it. An address it cannot listen on stops
// start-up with the fix, the usual cause being a second vidgen on the same machine.
func (s *server) startMetricsListener() (where string, stop func(), err error) {
	if s.cfg.MetricsAddr == "" {
		s.log.Info("metrics off (-metrics-addr off)")
		return metricsOff, func() {}, nil
	}
	ln, err := net.Listen("tcp", s.cfg.MetricsAddr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return "", nil, badSetting("metrics-addr", "%s is in use (by another vidgen on this machine, or this one's -addr?): give this one another address, like 127.0.0.1:9465, or off for no metrics", s.cfg.MetricsAddr)
	}
	if err != nil {
		return "", nil, badSetting("metrics-addr", "cannot listen on %s (%v): give another address, or off for no metrics", s.cfg.MetricsAddr, errors.Unwrap(err))
	}
	hs := &http.Server{Handler: s.metricsRoutes(), ReadHeaderTimeout: headerTimeout, ReadTimeout: requestReadTimeout, WriteTimeout: time.Minute, IdleTimeout: idleTimeout}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener", "err", err)
		}
	}()
	where = ln.Addr().String()
	s.log.Info("metrics listening", "addr", where)
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		s.log.Warn("metrics listen beyond this machine (-metrics-addr): let the firewall keep the port to your scraper", "addr", where)
	}
	return where, func() { hs.Close() }, nil
}
