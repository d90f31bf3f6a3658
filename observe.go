package main

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/julienschmidt/httprouter"
)

type requestIDKey struct{}

// requestIDFrom is the request's id (X-Request-Id), or "" outside withRequestID.
func requestIDFrom(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey{}).(string)
	return id
}

// maxRequestIDLen bounds a client's X-Request-Id: long enough for a UUID or a trace id.
const maxRequestIDLen = 128

// saneRequestID reports whether a client's X-Request-Id can be echoed and logged as it is: short,
// and only characters that need no quoting anywhere (letters, digits and - _ . : / + = @).
func saneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.:/+=@", c) >= 0) {
			return false
		}
	}
	return true
}

// traceID is the trace id of the request's W3C traceparent header (version-traceid-parentid-flags,
// https://www.w3.org/TR/trace-context/), or "" when it has none or one that is malformed: a trace id
// is 32 lower-case hex digits, not all zero, and is logged only when it is one.
func traceID(r *http.Request) string {
	h := r.Header.Values("traceparent")
	if len(h) != 1 {
		return "" // the spec's rule for a repeated header: none of them is believed
	}
	f := strings.Split(strings.TrimSpace(h[0]), "-")
	if len(f) < 4 || !lowerHex(f[0], 2) || f[0] == "ff" || (f[0] == "00" && len(f) != 4) ||
		!lowerHex(f[1], 32) || !lowerHex(f[2], 16) || !lowerHex(f[3], 2) ||
		strings.Trim(f[1], "0") == "" || strings.Trim(f[2], "0") == "" {
		return ""
	}
	return f[1]
}

// lowerHex reports whether s is n lower-case hexadecimal digits.
func lowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// withRequestID gives every request an id a user can quote and an operator can find in the log: the
// client's X-Request-Id when it is sane (a proxy's or the caller's own), else a new random one. The
// response carries it in X-Request-Id, and JSON errors in "requestId".
func (s *server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !saneRequestID(id) {
			var err error
			if id, err = randomHex(s.rand, 8); err != nil {
				id = "none"
			}
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

// statusRecorder notes the status and the body bytes of a response on its way out. It keeps what
// the handlers rely on: Unwrap for http.ResponseController (upload and download deadlines), and
// Flush. Videos are copied to the connection, not sent by sendfile: the connection is a
// countedConn, and on this service's scale sendfile measured no cheaper (BenchmarkDownload).
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// requestRoute names a request for logs and metrics.
type requestRoute struct {
	pattern string // the route as registered ("/api/jobs/:jobId"), or "unmatched"
	jobID   string // the job the request is about, when the route names one
}

// routeNamer returns how rt names a request: by its registered pattern, never the raw path, so
// tokens stay out of the logs and metrics keep a bounded set of labels.
func routeNamer(rt *httprouter.Router) func(*http.Request) requestRoute {
	return func(r *http.Request) requestRoute {
		h, ps, _ := rt.Lookup(r.Method, r.URL.Path)
		if h == nil {
			return requestRoute{pattern: "unmatched"}
		}
		var rr requestRoute
		segs := strings.Split(r.URL.Path, "/")
		i := 0
		for _, p := range ps {
			for ; i < len(segs); i++ {
				if segs[i] == p.Value {
					segs[i] = ":" + p.Key
					i++
					break
				}
			}
			if p.Key == "jobId" && isJobID(p.Value) {
				rr.jobID = p.Value
			}
		}
		rr.pattern = strings.Join(segs, "/")
		return rr
	}
}

// metricMethod bounds the method label: anything unusual counts as OTHER.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// observeRequests writes one log line per request (method, route pattern, status, duration, bytes,
// client IP, request id, and the job when there is one) and counts it in the metrics. It logs no
// header and no query: the API key, webhook secrets and output tokens never reach the log.
func (s *server) observeRequests(name func(*http.Request) requestRoute) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := s.now()
			rec := &statusRecorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			took := s.now().Sub(start)
			if rec.status == 0 {
				rec.status = http.StatusOK // a handler that wrote nothing
			}
			rr := name(r)
			if rr.jobID == "" && rec.status == http.StatusCreated {
				if loc := rec.Header().Get("Location"); strings.HasPrefix(loc, "/api/status/") {
					rr.jobID = path.Base(loc)
				}
			}
			if s.metrics != nil {
				s.metrics.request(metricMethod(r.Method), rr.pattern, rec.status, took)
			}
			attrs := []slog.Attr{
				slog.String("method", metricMethod(r.Method)),
				slog.String("route", rr.pattern),
				slog.Int("status", rec.status),
				slog.Float64("duration_ms", math.Round(float64(took.Microseconds()))/1000),
				slog.Int64("bytes", rec.bytes),
				slog.String("client", s.clients.clientAddr(r).String()),
				slog.String("request_id", requestIDFrom(r)),
			}
			if rr.jobID != "" {
				attrs = append(attrs, slog.String("job", rr.jobID))
			}
			if id := traceID(r); id != "" {
				attrs = append(attrs, slog.String("trace_id", id))
			}
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
		})
	}
}

// statusLabel is a status code as a metric label.
func statusLabel(code int) string { return strconv.Itoa(code) }

// routedHandler is the service's handler, and the router inside it so tests can list the routes.
type routedHandler struct {
	http.Handler
	router *httprouter.Router
}

// observed wraps the router in the request id, the request log and the metrics.
func (s *server) observed(r *httprouter.Router) routedHandler {
	return routedHandler{Handler: s.withRequestID(s.observeRequests(routeNamer(r))(r)), router: r}
}
