package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

// httpError is an error with the status and message the client gets.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status, fmt.Sprintf(format, args...)}
}

// Messages of the seed's error table that more than one handler returns.
var (
	errMissingKey = errorf(http.StatusUnauthorized, "Missing X-API-Key header")
	errBadKey     = errorf(http.StatusUnauthorized, "API key not recognized or has been deactivated")
)

// writeError writes err as the JSON error response. It is the one place that maps errors to status
// codes: errors it does not know are internal, logged in full and answered with a bare 500.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	var me *mediaError
	var mbe *http.MaxBytesError
	status, msg := http.StatusInternalServerError, "Internal server error"
	switch {
	case errors.As(err, &he):
		status, msg = he.status, he.msg
	case errors.As(err, &me):
		status, msg = me.status, me.msg
	case errors.As(err, &mbe):
		status, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("Request too large: each file may be at most %d MB", maxFileSize>>20)
	case errors.Is(err, ErrNotFound):
		status, msg = http.StatusNotFound, "Job not found"
	case errors.Is(err, ErrActiveJob):
		status, msg = http.StatusConflict, "You already have an active job (PENDING or PROCESSING); wait for it to finish or cancel it first"
	case errors.Is(err, ErrNotCancelable):
		status, msg = http.StatusConflict, "Job is not in a cancellable state: only PENDING jobs can be cancelled"
	case errors.Is(err, ErrNotFinal):
		status, msg = http.StatusConflict, "Job has not finished yet; webhooks are sent when it reaches COMPLETED or FAILED"
	case errors.Is(err, ErrNoWebhook):
		status, msg = http.StatusConflict, "Job has no webhookUrl"
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err, "request_id", requestIDFrom(r))
	}
	body := map[string]string{"error": msg}
	if id := requestIDFrom(r); id != "" {
		body["requestId"] = id // so a user can quote it and the operator find the request's log line
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// routes returns the service's HTTP handler. Every route is registered here.
func (s *server) routes() http.Handler {
	r := httprouter.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.HandleOPTIONS = false // no CORS here: OPTIONS is a 405 like any other method a route lacks
	// Unknown routes and methods under /api/ spend from the client's bucket like any API request.
	r.NotFound = s.limitUnderAPI(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.writeError(w, req, errorf(http.StatusNotFound, "Not found"))
	}))
	r.MethodNotAllowed = s.limitUnderAPI(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.writeError(w, req, errorf(http.StatusMethodNotAllowed, "Method %s not allowed for %s", req.Method, req.URL.Path))
	}))
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		s.writeError(w, req, fmt.Errorf("panic: %v", v))
	}

	// api wraps a handler that needs a key: rate limit first, so unauthenticated floods are limited too.
	api := func(h http.HandlerFunc) http.Handler { return s.limitAPI(s.authenticate(h)) }
	// get registers a GET route and its HEAD (monitors and link unfurlers send HEAD).
	get := func(path string, h http.Handler) {
		r.Handler(http.MethodGet, path, h)
		r.Handler(http.MethodHead, path, h)
	}

	health := http.HandlerFunc(s.handleHealth)
	get("/health", health)
	get("/api/health", health)

	r.Handler("POST", "/api/jobs", s.limitAPI(s.limitSubmit(s.authenticate(http.HandlerFunc(s.handleSubmit)))))
	get("/api/jobs", api(s.handleList))
	get("/api/status/:jobId", api(s.handleStatus))
	get("/api/jobs/:jobId", api(s.handleStatus))
	r.Handler("POST", "/api/jobs/:jobId/cancel", api(s.handleCancel))
	r.Handler("DELETE", "/api/jobs/:jobId", api(s.handleCancel))
	get("/api/jobs/:jobId/deliveries", api(s.handleDeliveries))
	r.Handler("POST", "/api/jobs/:jobId/deliveries/redeliver", api(s.handleRedeliver))

	get("/v/:file", http.HandlerFunc(s.handleVideo))
	get("/s/:token", http.HandlerFunc(s.handleShare))
	s.opsRoutes(get) // the page, the OpenAPI document and /metrics
	return s.observed(r)
}

// limitUnderAPI applies the API rate limit to requests under /api/ only.
func (s *server) limitUnderAPI(h http.Handler) http.Handler {
	limited := s.limitAPI(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			limited.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

type keyCtxKey struct{}

// authenticate resolves X-API-Key to an active account and puts it in the request context.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiKey := r.Header.Get("X-API-Key")
		if apiKey == "" {
			s.writeError(w, r, errMissingKey)
			return
		}
		k, err := s.store.KeyByHash(r.Context(), hashKey(apiKey))
		if errors.Is(err, ErrNotFound) || (err == nil && !k.Active) {
			s.writeError(w, r, errBadKey)
			return
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyCtxKey{}, k)))
	})
}

func keyFrom(r *http.Request) Key { return r.Context().Value(keyCtxKey{}).(Key) }

func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// apiTime formats t as the API does: UTC, milliseconds, Z.
func apiTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// statusBody is the body of GET /api/status/:jobId and of every webhook.
type statusBody struct {
	JobID           string  `json:"jobId"`
	Status          string  `json:"status"`
	Progress        int     `json:"progress"`
	EtaSeconds      *int    `json:"etaSeconds"`
	OutputVideo     *string `json:"outputVideo"`
	OutputShareLink *string `json:"outputShareLink"`
	ErrorMessage    *string `json:"errorMessage"`
	CreatedAt       string  `json:"createdAt"`
	UpdatedAt       string  `json:"updatedAt"`
}

func (s *server) outputURLs(j Job) (video, share *string) {
	if j.Status != StatusCompleted || j.OutputToken == "" {
		return nil, nil
	}
	return strPtr(s.cfg.PublicURL + "/v/" + j.OutputToken + ".mp4"), strPtr(s.cfg.PublicURL + "/s/" + j.OutputToken)
}

func (s *server) statusOf(j Job) statusBody {
	b := statusBody{JobID: j.ID, Status: j.Status, ErrorMessage: strPtr(j.ErrorMessage),
		CreatedAt: apiTime(j.CreatedAt), UpdatedAt: apiTime(j.UpdatedAt)}
	b.OutputVideo, b.OutputShareLink = s.outputURLs(j)
	switch j.Status {
	case StatusCompleted:
		b.Progress = 100
	case StatusProcessing:
		b.Progress, b.EtaSeconds = s.renderer.Progress(j.ID)
	}
	return b
}

// webhookPayload is the Payload for the store: the status body, as JSON.
func (s *server) webhookPayload(j Job) ([]byte, error) { return json.Marshal(s.statusOf(j)) }

// jobIDParam returns the route's :jobId, or ErrNotFound when it cannot be a job id, so malformed ids
// never reach the database.
func jobIDParam(r *http.Request) (string, error) {
	id := httprouter.ParamsFromContext(r.Context()).ByName("jobId")
	if !isJobID(id) {
		return "", ErrNotFound
	}
	return id, nil
}

// jobParam returns the route's job if it belongs to the request's key, else ErrNotFound.
func (s *server) jobParam(r *http.Request) (Job, error) {
	id, err := jobIDParam(r)
	if err != nil {
		return Job{}, err
	}
	return s.store.Job(r.Context(), keyFrom(r).ID, id)
}

func (s *server) handleStatus(w http.ResponseWriter, r *http.Request) {
	j, err := s.jobParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.statusOf(j))
}

type listItem struct {
	ID              string  `json:"id"`
	Status          string  `json:"status"`
	OutputVideo     *string `json:"outputVideo"`
	OutputShareLink *string `json:"outputShareLink"`
	ErrorMessage    *string `json:"errorMessage"`
	Retries         int     `json:"retries"`
	CreatedAt       string  `json:"createdAt"`
	UpdatedAt       string  `json:"updatedAt"`
	WebhookURL      *string `json:"webhookUrl"`
}

type pagination struct {
	Limit       int     `json:"limit"`
	NextCursor  *string `json:"nextCursor"`
	HasNextPage bool    `json:"hasNextPage"`
}

var validStatus = map[string]bool{StatusPending: true, StatusProcessing: true, StatusCompleted: true, StatusFailed: true, StatusCancelled: true}

// parseListQuery validates GET /api/jobs's parameters.
func parseListQuery(q map[string][]string) (limit int, cursor, status string, err error) {
	get := func(name string) (string, bool, error) {
		v, ok := q[name]
		if !ok {
			return "", false, nil
		}
		if len(v) != 1 {
			return "", false, errorf(http.StatusBadRequest, "%s may be given once", name)
		}
		return v[0], true, nil
	}
	limit = 20
	if v, ok, err := get("limit"); err != nil {
		return 0, "", "", err
	} else if ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return 0, "", "", errorf(http.StatusBadRequest, "limit must be an integer from 1 to 100")
		}
		limit = n
	}
	if v, ok, err := get("cursor"); err != nil {
		return 0, "", "", err
	} else if ok {
		if !isJobID(v) {
			return 0, "", "", errorf(http.StatusBadRequest, "cursor must be the nextCursor of a previous page")
		}
		cursor = v
	}
	if v, ok, err := get("status"); err != nil {
		return 0, "", "", err
	} else if ok {
		if !validStatus[v] {
			return 0, "", "", errorf(http.StatusBadRequest, "status must be one of PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED")
		}
		status = v
	}
	return limit, cursor, status, nil
}

func (s *server) handleList(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.writeError(w, r, errorf(http.StatusBadRequest, "Malformed query string"))
		return
	}
	limit, cursor, status, err := parseListQuery(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	jobs, err := s.store.ListJobs(r.Context(), keyFrom(r).ID, status, cursor, limit+1)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page := pagination{Limit: limit}
	if len(jobs) > limit {
		jobs = jobs[:limit]
		page.HasNextPage = true
		page.NextCursor = &jobs[limit-1].ID
	}
	items := make([]listItem, 0, len(jobs))
	for _, j := range jobs {
		it := listItem{ID: j.ID, Status: j.Status, ErrorMessage: strPtr(j.ErrorMessage), Retries: j.Retries,
			CreatedAt: apiTime(j.CreatedAt), UpdatedAt: apiTime(j.UpdatedAt), WebhookURL: strPtr(j.WebhookURL)}
		it.OutputVideo, it.OutputShareLink = s.outputURLs(j)
		items = append(items, it)
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": items, "pagination": page})
}

func (s *server) handleCancel(w http.ResponseWriter, r *http.Request) {
	id, err := jobIDParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	j, err := s.store.CancelJob(r.Context(), keyFrom(r).ID, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.removeInputs(j)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Job cancelled successfully"})
}

// removeInputs deletes an ended job's uploaded files; they are never needed again.
func (s *server) removeInputs(j Job) {
	for _, p := range []string{j.ImagePath, j.AudioPath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("remove input", "job", j.ID, "err", err)
		}
	}
}

type deliveryBody struct {
	ID            string        `json:"id"`
	URL           string        `json:"url"`
	State         string        `json:"state"`
	CreatedAt     string        `json:"createdAt"`
	NextAttemptAt *string       `json:"nextAttemptAt"`
	Attempts      []attemptBody `json:"attempts"`
}

type attemptBody struct {
	At         string  `json:"at"`
	StatusCode *int    `json:"statusCode"`
	Error      *string `json:"error"`
}

func (s *server) handleDeliveries(w http.ResponseWriter, r *http.Request) {
	j, err := s.jobParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ds, err := s.store.Deliveries(r.Context(), j.ID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]deliveryBody, 0, len(ds))
	for _, d := range ds {
		db := deliveryBody{ID: d.ID, URL: d.URL, State: d.State, CreatedAt: apiTime(d.CreatedAt), Attempts: []attemptBody{}}
		if !d.NextAttemptAt.IsZero() {
			db.NextAttemptAt = strPtr(apiTime(d.NextAttemptAt))
		}
		for _, a := range d.History {
			ab := attemptBody{At: apiTime(a.At), Error: strPtr(a.Error)}
			if a.StatusCode != 0 {
				code := a.StatusCode
				ab.StatusCode = &code
			}
			db.Attempts = append(db.Attempts, ab)
		}
		out = append(out, db)
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobId": j.ID, "deliveries": out})
}

func (s *server) handleRedeliver(w http.ResponseWriter, r *http.Request) {
	jobID, err := jobIDParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id, err := s.newDeliveryID()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Redeliver checks ownership and state in its own transaction; no separate look-up first.
	if err := s.store.Redeliver(r.Context(), keyFrom(r).ID, jobID, s.webhookPayload, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.hooks.Notify()
	writeJSON(w, http.StatusAccepted, map[string]any{"success": true, "message": "Delivery queued", "deliveryId": id})
}

// outputJob resolves an output token to its finished job: 404 for no such output, 410 once it has
// passed the retention period.
func (s *server) outputJob(r *http.Request, token string) (Job, error) {
	if len(token) != 32 || strings.Trim(token, "0123456789abcdef") != "" {
		return Job{}, errorf(http.StatusNotFound, "Not found")
	}
	j, err := s.store.JobByToken(r.Context(), token)
	if errors.Is(err, ErrNotFound) {
		return Job{}, errorf(http.StatusNotFound, "Not found")
	}
	if err != nil {
		return Job{}, err
	}
	if s.cfg.Retention > 0 && s.now().Sub(j.FinishedAt) > s.cfg.Retention {
		return Job{}, errorf(http.StatusGone, "This video has expired and was deleted")
	}
	return j, nil
}

// handleVideo serves /v/TOKEN.mp4 (the video, with ranges) and /v/TOKEN.jpg (its poster).
func (s *server) handleVideo(w http.ResponseWriter, r *http.Request) {
	name := httprouter.ParamsFromContext(r.Context()).ByName("file")
	token, kind, _ := strings.Cut(name, ".")
	if kind != "mp4" && kind != "jpg" {
		s.writeError(w, r, errorf(http.StatusNotFound, "Not found"))
		return
	}
	j, err := s.outputJob(r, token)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	f, err := os.Open(outputPath(s.cfg.DataDir, token, kind))
	if errors.Is(err, os.ErrNotExist) {
		s.writeError(w, r, errorf(http.StatusGone, "This video has expired and was deleted"))
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer f.Close()
	ctype := "video/mp4"
	if kind == "jpg" {
		ctype = "image/jpeg"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, name, j.FinishedAt, f)
}

//go:embed share.html
var shareHTML string

var shareTmpl = template.Must(template.New("share").Parse(shareHTML))

func (s *server) handleShare(w http.ResponseWriter, r *http.Request) {
	token := httprouter.ParamsFromContext(r.Context()).ByName("token")
	j, err := s.outputJob(r, token)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	video, share := s.outputURLs(j)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; media-src 'self' "+s.cfg.PublicURL+"; img-src 'self' "+s.cfg.PublicURL+"; style-src 'unsafe-inline'")
	err = shareTmpl.Execute(w, map[string]any{
		"Video":    *video,
		"Page":     *share,
		"Poster":   s.cfg.PublicURL + "/v/" + token + ".jpg",
		"Title":    "Video " + j.ID,
		"Duration": int(j.AudioDuration + 0.5),
	})
	if err != nil {
		s.log.Debug("share page", "err", err) // the client went away mid-write
	}
}
