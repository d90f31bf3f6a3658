package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

// writeError writes err as the JSON error response. It is the one place that turns errors into
// status codes: an *Error's kind chooses it, and anything else is internal, logged in full and
// answered with a bare 500 that shows nothing of the service's insides.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	isError := errors.As(err, &e)
	switch {
	case r.Context().Err() != nil && errors.Is(err, context.Canceled):
		// The client left mid-request (most often during an upload's checks): nobody reads this
		// answer, and it is no failure of the service to alert on.
		e = errorf(kindClientGone, "Client closed the request")
	case !isError || e.Kind == kindInternal:
		// No path: an output's holds its token. The request's own line, with the same request_id,
		// names its route.
		s.log.Error("request failed", "method", r.Method, "err", err, "request_id", requestIDFrom(r))
		e = &Error{Kind: kindInternal, Msg: "Internal server error"}
	case e.Kind == kindUnavailable && e.Err != nil:
		// The client may try again; the operator must know why the service could not serve it.
		s.log.Error("request failed", "method", r.Method, "err", e.Err, "request_id", requestIDFrom(r))
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "60")
		}
	}
	if e.Kind == kindUnauthorized {
		w.Header().Set("WWW-Authenticate", apiKeyChallenge)
	}
	body := map[string]string{"error": e.Msg}
	if id := requestIDFrom(r); id != "" {
		body["requestId"] = id // so a user can quote it and the operator find the request's log line
	}
	writeJSON(w, e.Kind.statusCode(), body)
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
		s.writeError(w, req, ErrNotFound)
	}))
	r.MethodNotAllowed = s.limitUnderAPI(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// httprouter lists OPTIONS in Allow, but no route answers it.
		allow := strings.Split(w.Header().Get("Allow"), ", ")
		w.Header().Set("Allow", strings.Join(slices.DeleteFunc(allow, func(m string) bool { return m == http.MethodOptions }), ", "))
		s.writeError(w, req, errorf(kindMethodNotAllowed, "Method %s not allowed for %s", quotable(req.Method), quotable(req.URL.Path)))
	}))
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		s.writeError(w, req, fmt.Errorf("panic: %v", v))
	}

	// limited notes that the route at path is rate limited: its 429 counter exists, at zero, from the
	// start. So does that of unknown routes under /api/, which spend from the API's bucket.
	limited := func(path string, h http.Handler) http.Handler {
		s.metrics.limitedRoute(path)
		return h
	}
	limited("unmatched", nil)
	// api wraps a handler that needs a key: rate limit first, so unauthenticated floods are limited too.
	api := func(path string, h http.HandlerFunc) http.Handler {
		return limited(path, s.limitAPI(s.authenticate(h)))
	}
	// get registers a GET route and its HEAD (monitors and link unfurlers send HEAD).
	get := func(path string, h http.Handler) {
		r.Handler(http.MethodGet, path, h)
		r.Handler(http.MethodHead, path, h)
	}

	health := http.HandlerFunc(s.handleHealth)
	get("/health", health)
	get("/api/health", health)

	r.Handler("POST", "/api/jobs", limited("/api/jobs", s.limitAPI(s.limitSubmit(s.authenticate(http.HandlerFunc(s.handleSubmit))))))
	get("/api/jobs", api("/api/jobs", s.handleList))
	get("/api/status/:jobId", api("/api/status/:jobId", s.handleStatus))
	get("/api/jobs/:jobId", api("/api/jobs/:jobId", s.handleStatus))
	r.Handler("POST", "/api/jobs/:jobId/cancel", api("/api/jobs/:jobId/cancel", s.handleCancel))
	r.Handler("DELETE", "/api/jobs/:jobId", api("/api/jobs/:jobId", s.handleCancel))
	get("/api/jobs/:jobId/deliveries", api("/api/jobs/:jobId/deliveries", s.handleDeliveries))
	r.Handler("POST", "/api/jobs/:jobId/deliveries/redeliver", api("/api/jobs/:jobId/deliveries/redeliver", s.handleRedeliver))

	// Videos, posters and share pages need no key: they are limited per address, with their own
	// higher rate, and in how many one address may be receiving at once.
	media := func(path string, h http.HandlerFunc) http.Handler {
		return limited(path, s.limit(s.downloadLimit)(s.limitDownloads(h)))
	}
	get("/v/:file", media("/v/:file", s.handleVideo))
	get("/s/:token", media("/s/:token", s.handleShare))

	get("/", http.HandlerFunc(s.handlePage))
	// Browsers ask every page's origin for an icon; an empty answer keeps 404s out of their consoles
	// and of the request log.
	get("/favicon.ico", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.WriteHeader(http.StatusNoContent)
	}))
	get("/api/openapi.yaml", limited("/api/openapi.yaml", s.limitAPI(http.HandlerFunc(s.handleOpenAPI))))
	// No /metrics here, whoever asks: a proxy on this machine, even one that forwards raw TCP and
	// adds no header, would hand them to the world. They have a listener of their own (-metrics-addr).
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
			s.writeError(w, r, ErrMissingKey)
			return
		}
		k, err := s.store.KeyByHash(r.Context(), hashKey(apiKey))
		if errors.Is(err, ErrNotFound) || (err == nil && !k.Active) {
			s.writeError(w, r, ErrBadKey)
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

// jobIDParam returns the route's :jobId, or ErrNotFound when it cannot be a job id, so malformed ids
// never reach the database.
func jobIDParam(r *http.Request) (string, error) {
	id := httprouter.ParamsFromContext(r.Context()).ByName("jobId")
	if !isJobID(id) {
		return "", ErrJobNotFound
	}
	return id, nil
}

// jobParam returns the route's job if it belongs to the request's key, else ErrJobNotFound.
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
	writeJSON(w, http.StatusOK, statusOf(j, s.cfg.PublicURL, s.renderer.Progress))
}

type listItem struct {
	ID     string    `json:"id"`
	Status JobStatus `json:"status"`
	jobLinks
	ErrorMessage *string      `json:"errorMessage"`
	Retries      int          `json:"retries"`
	CreatedAt    string       `json:"createdAt"`
	UpdatedAt    string       `json:"updatedAt"`
	WebhookURL   *string      `json:"webhookUrl"`
	Options      Options      `json:"options"` // as in the status body
	Outputs      []sizeOutput `json:"outputs"` // as in the status body
}

type pagination struct {
	Limit       int     `json:"limit"`
	NextCursor  *string `json:"nextCursor"`
	HasNextPage bool    `json:"hasNextPage"`
}

// parseListQuery validates GET /api/jobs's parameters into the filter for its page.
func parseListQuery(q map[string][]string) (JobFilter, error) {
	get := func(name string) (string, bool, error) {
		v, ok := q[name]
		if !ok {
			return "", false, nil
		}
		if len(v) != 1 {
			return "", false, errorf(kindInvalid, "%s may be given once", name)
		}
		return v[0], true, nil
	}
	f := JobFilter{Limit: 20}
	if v, ok, err := get("limit"); err != nil {
		return JobFilter{}, err
	} else if ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return JobFilter{}, errorf(kindInvalid, "limit must be an integer from 1 to 100")
		}
		f.Limit = n
	}
	if v, ok, err := get("cursor"); err != nil {
		return JobFilter{}, err
	} else if ok {
		if !isJobID(v) {
			return JobFilter{}, errorf(kindInvalid, "cursor must be the nextCursor of a previous page")
		}
		f.Before = v
	}
	if v, ok, err := get("status"); err != nil {
		return JobFilter{}, err
	} else if ok {
		if !slices.Contains(jobStatuses, JobStatus(v)) {
			return JobFilter{}, errorf(kindInvalid, "status must be one of PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED")
		}
		f.Status = JobStatus(v)
	}
	return f, nil
}

func (s *server) handleList(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		s.writeError(w, r, errorf(kindInvalid, "Malformed query string"))
		return
	}
	f, err := parseListQuery(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit := f.Limit
	f.Limit++ // one more than the page, to know whether another follows
	jobs, err := s.store.ListJobs(r.Context(), keyFrom(r).ID, f)
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
			CreatedAt: apiTime(j.CreatedAt), UpdatedAt: apiTime(j.UpdatedAt), WebhookURL: strPtr(j.WebhookURL), Options: j.Options}
		out := outputURLs(j, s.cfg.PublicURL)
		it.jobLinks, it.Outputs = out.jobLinks, out.sizes
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
	if _, err := s.jobs.cancel(r.Context(), keyFrom(r).ID, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "Job cancelled successfully"})
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
		db := deliveryBody{ID: d.ID, URL: d.URL, State: string(d.State), CreatedAt: apiTime(d.CreatedAt), Attempts: []attemptBody{}}
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

// redeliveriesPerMinute bounds how often one account may ask for webhooks again, whatever the
// addresses it asks from: each one is outbound work the service does for it.
const redeliveriesPerMinute = 30

func (s *server) handleRedeliver(w http.ResponseWriter, r *http.Request) {
	jobID, err := jobIDParam(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if ok, remaining, reset, retryAfter := s.redeliverLimit.take(keyFrom(r).ID); !ok {
		// The headers describe the policy that refused, not the API's per-address one that let the
		// request through with room to spare.
		p := s.redeliverLimit
		setRateHeaders(w.Header(), p.perMinute, remaining, reset, policyItem(p.perMinute, p.name+" per account"))
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		s.writeError(w, r, errorf(kindRateLimited, "Too many redeliveries: at most %d a minute for one account; retry in %d s", redeliveriesPerMinute, retryAfter))
		return
	}
	id, err := newDeliveryID(s.rand)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Redeliver checks ownership and state in its own transaction; no separate look-up first.
	if err := s.store.Redeliver(r.Context(), keyFrom(r).ID, jobID, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.hooks.Notify()
	writeJSON(w, http.StatusAccepted, map[string]any{"success": true, "message": "Delivery queued", "deliveryId": id})
}

// outputJob resolves an output token to its finished job: 404 for no such output, 410 once it has
// passed the retention period, with the job still, so that a caller can tell a name the job had
// (410) from one it never had (404).
func (s *server) outputJob(r *http.Request, token string) (Job, error) {
	if len(token) != 32 || strings.Trim(token, "0123456789abcdef") != "" {
		return Job{}, ErrNotFound
	}
	j, err := s.store.JobByToken(r.Context(), token)
	if err != nil {
		return Job{}, err
	}
	if s.cfg.Retention > 0 && s.now().Sub(j.FinishedAt) > s.cfg.Retention {
		return j, ErrExpired
	}
	return j, nil
}

// outputMaxAge is the longest a browser or a CDN may keep an output (video, poster, share page).
const outputMaxAge = 24 * time.Hour

// cacheOutput lets caches keep an output of j for outputMaxAge, and never past the moment it
// expires: a cache that outlived it would go on serving a video its owner was told is deleted.
func (s *server) cacheOutput(w http.ResponseWriter, j Job) {
	age := outputMaxAge
	if s.cfg.Retention > 0 {
		age = min(age, j.FinishedAt.Add(s.cfg.Retention).Sub(s.now()))
	}
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(max(0, int(age/time.Second))))
}

// handleVideo serves /v/TOKEN.mp4 (the video, with ranges) and /v/TOKEN.jpg (its poster), and
// /v/TOKEN.SIZE.mp4 and .jpg for each further size of a job that made several.
func (s *server) handleVideo(w http.ResponseWriter, r *http.Request) {
	name := httprouter.ParamsFromContext(r.Context()).ByName("file")
	token, kind, _ := strings.Cut(name, ".")
	size, kind, sized := strings.Cut(kind, ".")
	if !sized {
		size, kind = "", size
	}
	if !slices.Contains(outputExts, kind) {
		s.writeError(w, r, ErrNotFound)
		return
	}
	j, err := s.outputJob(r, token)
	if err != nil && !errors.Is(err, ErrExpired) {
		s.writeError(w, r, err)
		return
	}
	if sized {
		// Each size has its name, the first too (a client may build every URL from options.sizes);
		// the first's file is the token's. A size the job never had is 404, expired or not.
		switch i := slices.Index(j.Options.sizes(), size); {
		case i < 0:
			err = ErrNotFound
		case i > 0:
			token += "." + size
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctype := "video/mp4"
	if kind == "jpg" {
		ctype = "image/jpeg"
	}
	// A HEAD is answered here, from the object's size: a presigned URL is signed for GET alone, and
	// S3 answers a HEAD on it 403.
	if s.cfg.FilesRedirect && r.Method != http.MethodHead {
		s.redirectOutput(w, r, outputKey(token, kind), ctype)
		return
	}
	f, err := s.files.Open(r.Context(), outputKey(token, kind))
	if errors.Is(err, os.ErrNotExist) {
		s.writeError(w, r, ErrExpired)
		return
	}
	if err != nil {
		// Without the file's path, which holds the token.
		s.writeError(w, r, fmt.Errorf("open an output %s: %w", kind, withoutName(err)))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", ctype)
	s.cacheOutput(w, j)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if h := r.Header.Get("Range"); h != "" && !byteRanges(h) {
		// RFC 9110 (14.2): a range in another unit, or one that does not parse, is ignored and the
		// whole file served; ServeContent would answer 416 with no size to go on.
		r.Header.Del("Range")
	}
	http.ServeContent(&rangeErrorWriter{ResponseWriter: w, s: s, r: r}, r, name, j.FinishedAt, f)
}

// byteRanges says whether h is a Range header of byte ranges that parse: "bytes=" and specs
// "first-last", "first-" or "-suffix", with last ≥ first. Whether they overlap the file is
// ServeContent's to judge.
func byteRanges(h string) bool {
	specs, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return false
	}
	// Digits only, and within int64, as ServeContent parses them: a number it cannot read would
	// get its 416 again.
	num := func(s string) (int64, bool) {
		if s == "" || strings.Trim(s, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	seen := false
	for _, spec := range strings.Split(specs, ",") {
		spec = textproto.TrimString(spec)
		if spec == "" {
			continue
		}
		first, last, ok := strings.Cut(spec, "-")
		if !ok {
			return false
		}
		first, last = textproto.TrimString(first), textproto.TrimString(last)
		switch {
		case first == "":
			if _, ok := num(last); !ok {
				return false
			}
		case last == "":
			if _, ok := num(first); !ok {
				return false
			}
		default:
			f, ok1 := num(first)
			l, ok2 := num(last)
			if !ok1 || !ok2 || l < f {
				return false
			}
		}
		seen = true
	}
	return seen
}

// rangeErrorWriter passes http.ServeContent's answer through, except its plain-text 416 for a
// range past the end of the file, which it turns into the API's JSON error (the Content-Range
// header ServeContent set, with the file's size, stays).
type rangeErrorWriter struct {
	http.ResponseWriter
	s       *server
	r       *http.Request
	refused bool
}

func (w *rangeErrorWriter) WriteHeader(code int) {
	if code != http.StatusRequestedRangeNotSatisfiable {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.refused = true
	w.s.writeError(w.ResponseWriter, w.r, errorf(kindBadRange, "The range is past the end of the file; its size is in Content-Range"))
}

func (w *rangeErrorWriter) Write(b []byte) (int, error) {
	if w.refused {
		return len(b), nil // ServeContent's text, replaced by the JSON
	}
	return w.ResponseWriter.Write(b)
}

func (w *rangeErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.cacheOutput(w, j)
	// Nobody frames the page (sites that want the video embed the MP4 itself), and the token in its
	// URL never leaves in a Referer.
	// With -files-redirect the video and the poster come from the bucket's origin, after the 302: the
	// policy applies to where a redirect leads.
	media := s.cfg.PublicURL + s.redirectOrigin
	w.Header().Set("Content-Security-Policy", "default-src 'none'; media-src 'self' "+media+"; img-src 'self' "+media+
		"; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if err := shareTmpl.Execute(w, sharePage(j, s.cfg.PublicURL)); err != nil {
		s.log.Debug("share page", "err", err) // the client went away mid-write
	}
}

// sharePage is what the share page of the completed job j shows, under the public base URL.
func sharePage(j Job, base string) map[string]any {
	out := outputURLs(j, base)
	return map[string]any{
		"Video":    *out.OutputVideo,
		"Page":     *out.OutputShareLink,
		"Poster":   *out.OutputThumbnail,
		"More":     out.sizes[1:], // the further sizes, to download
		"Title":    "Video " + j.ID,
		"Duration": int(j.AudioDuration + 0.5),
		// og:video:secure_url promises HTTPS: only when the video is served over it.
		"Secure": strings.HasPrefix(*out.OutputVideo, "https://"),
	}
}
