package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/julienschmidt/httprouter"
)

// loadSpec loads and validates the embedded openapi.yaml as OpenAPI 3.1.
func loadSpec(t testing.TB) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openapiYAML)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi.yaml is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml does not validate: %v", err)
	}
	return doc
}

// registeredRoutes walks the router's trees and returns every "METHOD /pattern" it serves.
// httprouter has no listing API, so this reads its radix trees (pinned at v1.3.0 in go.mod).
func registeredRoutes(t testing.TB, r *httprouter.Router) []string {
	t.Helper()
	trees := reflect.ValueOf(r).Elem().FieldByName("trees")
	if !trees.IsValid() || trees.Kind() != reflect.Map {
		t.Fatal("httprouter.Router has no trees map: update registeredRoutes for this httprouter version")
	}
	var out []string
	var walk func(method, prefix string, n reflect.Value)
	walk = func(method, prefix string, n reflect.Value) {
		if n.IsNil() {
			return
		}
		n = n.Elem()
		p := prefix + n.FieldByName("path").String()
		if !n.FieldByName("handle").IsNil() {
			out = append(out, method+" "+p)
		}
		children := n.FieldByName("children")
		for i := 0; i < children.Len(); i++ {
			walk(method, p, children.Index(i))
		}
	}
	iter := trees.MapRange()
	for iter.Next() {
		walk(iter.Key().String(), "", iter.Value())
	}
	sort.Strings(out)
	return out
}

// specPath turns an httprouter pattern (/api/jobs/:jobId) into an OpenAPI path (/api/jobs/{jobId}).
func specPath(pattern string) string {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			segs[i] = "{" + name + "}"
		}
	}
	return strings.Join(segs, "/")
}

// TestOpenAPICoversRoutes fails when a registered route is missing from openapi.yaml, or the spec
// describes one the server does not have. HEAD is covered by its GET (the spec says every GET
// answers HEAD).
func TestOpenAPICoversRoutes(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	e := newTestEnv(t, nil)
	h, ok := e.srv.routes().(routedHandler)
	if !ok {
		t.Fatalf("routes() is %T, want routedHandler", e.srv.routes())
	}
	routes := registeredRoutes(t, h.router)
	if len(routes) < 20 {
		t.Fatalf("found only %d routes: %v", len(routes), routes)
	}
	served := map[string]bool{}
	for _, rt := range routes {
		method, pattern, _ := strings.Cut(rt, " ")
		served[method+" "+specPath(pattern)] = true
		if method == http.MethodHead {
			if !slices.Contains(routes, "GET "+pattern) {
				t.Errorf("%s has no GET", rt)
			}
			continue
		}
		item := doc.Paths.Value(specPath(pattern))
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("%s is served but missing from openapi.yaml", rt)
		} else if onMetricsListener(item) {
			t.Errorf("%s is served on the public listener, but openapi.yaml puts it on the metrics listener", rt)
		}
	}
	metrics := httptest.NewServer(e.srv.metricsRoutes())
	defer metrics.Close()
	for p, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if onMetricsListener(item) {
				if resp, b := mustRequest(t, method, metrics.URL+p, "", nil); resp.StatusCode != http.StatusOK {
					t.Errorf("openapi.yaml puts %s %s on the metrics listener, which answers %d %.200s", method, p, resp.StatusCode, b)
				}
			} else if !served[method+" "+p] {
				t.Errorf("openapi.yaml describes %s %s, which the server does not serve", method, p)
			}
		}
	}
}

// onMetricsListener says whether openapi.yaml puts the path on the metrics listener (a servers entry
// of its own, at -metrics-addr's default) rather than on the public one.
func onMetricsListener(item *openapi3.PathItem) bool {
	return len(item.Servers) == 1 && item.Servers[0].URL == "http://"+defaultMetricsAddr
}

// htmlDecoder registers, once, kin-openapi's decoder for the HTML pages (its registry is global).
var htmlDecoder sync.Once

// specChecker validates requests and their real responses against openapi.yaml.
type specChecker struct {
	doc  *openapi3.T
	name func(*http.Request) requestRoute
	base string
	seen map[string]bool // "METHOD /path STATUS" checked
	ctx  context.Context
}

// do sends a request to the test server, after checking it against the spec, and checks the
// response: its status must be documented for the operation and its headers and body must match.
func (c *specChecker) do(t testing.TB, method, p, key string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	return c.send(t, true, method, p, key, body, header...)
}

// refused is do for a request made on purpose against the spec (a missing part, a bad limit): only
// the response is checked.
func (c *specChecker) refused(t testing.TB, method, p, key string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	return c.send(t, false, method, p, key, body, header...)
}

func (c *specChecker) send(t testing.TB, validRequest bool, method, p, key string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, c.base+p, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rr := c.name(req)
	var input *openapi3filter.RequestValidationInput
	if rr.pattern != "unmatched" {
		sp := specPath(rr.pattern)
		item := c.doc.Paths.Value(sp)
		if item == nil || item.GetOperation(method) == nil {
			t.Fatalf("%s %s: no operation in openapi.yaml", method, sp)
		}
		params := map[string]string{}
		for i, seg := range strings.Split(rr.pattern, "/") {
			if name, ok := strings.CutPrefix(seg, ":"); ok {
				params[name] = strings.Split(req.URL.Path, "/")[i]
			}
		}
		input = &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params,
			Route:   &routers.Route{Spec: c.doc, Path: sp, PathItem: item, Method: method, Operation: item.GetOperation(method)},
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
		}
		if err := openapi3filter.ValidateRequest(c.ctx, input); err != nil && validRequest {
			t.Errorf("%s %s: the request does not match openapi.yaml: %v", method, p, err)
		}
		if len(body) > 0 {
			req.Body = io.NopCloser(bytes.NewReader(body)) // validation read it
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if input == nil {
		return resp, b
	}
	c.seen[method+" "+specPath(rr.pattern)+" "+resp.Status[:3]] = true
	err = openapi3filter.ValidateResponse(c.ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input, Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(b)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	if err != nil {
		t.Errorf("%s %s: %d response does not match openapi.yaml: %v\n%.300s", method, p, resp.StatusCode, err, b)
	}
	return resp, b
}

// TestOpenAPIResponses drives every route through its successes and its usual errors and checks
// each real request and response against the spec's schemas.
func TestOpenAPIResponses(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	htmlDecoder.Do(func() { openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder) })
	recv := newHookReceiver(t, nil)
	e := newTestEnv(t, hookConfig(t.TempDir(), recv), hookTrust(recv))
	h := e.srv.routes().(routedHandler)
	c := &specChecker{doc: doc, name: routeNamer(h.router), base: e.hs.URL, seen: map[string]bool{}, ctx: context.Background()}

	want := func(resp *http.Response, b []byte, status int) {
		t.Helper()
		if resp.StatusCode != status {
			t.Fatalf("%s %s: %d, want %d: %.300s", resp.Request.Method, resp.Request.URL, resp.StatusCode, status, b)
		}
	}
	submission := func(files map[string]string, fields map[string]string) ([]byte, string) {
		body, ctype := multipartBody(t, files, fields)
		b, _ := io.ReadAll(body)
		return b, ctype
	}

	for _, p := range []string{"/health", "/api/health", "/api/openapi.yaml", "/"} {
		resp, b := c.do(t, "GET", p, "", nil)
		want(resp, b, 200)
	}
	// /metrics, on the metrics listener alone.
	metrics := httptest.NewServer(e.srv.metricsRoutes())
	defer metrics.Close()
	mc := &specChecker{doc: doc, name: func(*http.Request) requestRoute { return requestRoute{pattern: "/metrics"} }, base: metrics.URL, seen: c.seen, ctx: c.ctx}
	resp, b := mc.do(t, "GET", "/metrics", "", nil)
	want(resp, b, 200)
	resp, b = c.do(t, "GET", "/favicon.ico", "", nil)
	want(resp, b, 204)
	good := map[string]string{"image": fixture(t, "img.jpg"), "audio": fixture(t, "tone.m4a")}
	// In two sizes, so the outputs array, options.sizes and a further size's URL meet the spec too.
	body, ctype := submission(good, map[string]string{"webhookUrl": recv.url(), "sizes": "x,square"})
	resp, b = c.do(t, "POST", "/api/jobs", "", body, "Content-Type", ctype)
	want(resp, b, 401)
	noAudio, ctype2 := submission(map[string]string{"image": fixture(t, "img.jpg")}, nil)
	resp, b = c.refused(t, "POST", "/api/jobs", e.key, noAudio, "Content-Type", ctype2)
	want(resp, b, 400)
	textImage, ctype3 := submission(map[string]string{"image": writeFixture(t, "notes.txt", []byte("just some text, not a picture at all")), "audio": fixture(t, "tone.m4a")}, nil)
	resp, b = c.do(t, "POST", "/api/jobs", e.key, textImage, "Content-Type", ctype3)
	want(resp, b, 415)
	resp, b = c.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype)
	want(resp, b, 201)
	id := decodeJSON(t, resp, b)["jobId"].(string)
	resp, b = c.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype)
	if resp.StatusCode != 409 && resp.StatusCode != 201 { // 201 only if the first job already ended
		t.Errorf("second submission: %d %s", resp.StatusCode, b)
	}
	resp, b = c.do(t, "GET", "/api/status/"+id, e.key, nil)
	want(resp, b, 200)
	e.wait(t, e.key, id, StatusCompleted)
	recv.waitFor(t, 1)
	e.settle(t) // the attempt recorded: a redelivery is refused while one is pending

	for _, p := range []string{"/api/status/" + id, "/api/jobs/" + id, "/api/jobs", "/api/jobs?limit=1&status=COMPLETED", "/api/jobs/" + id + "/deliveries"} {
		resp, b := c.do(t, "GET", p, e.key, nil)
		want(resp, b, 200)
	}
	resp, b = c.refused(t, "GET", "/api/jobs?limit=0", e.key, nil)
	want(resp, b, 400)
	resp, b = c.do(t, "GET", "/api/status/c000000000000000000000000", e.key, nil)
	want(resp, b, 404)
	resp, b = c.do(t, "GET", "/api/jobs/"+id, "vg_not_a_key", nil)
	want(resp, b, 401)
	resp, b = c.do(t, "POST", "/api/jobs/"+id+"/cancel", e.key, nil)
	want(resp, b, 409)
	resp, b = c.do(t, "DELETE", "/api/jobs/"+id, e.key, nil)
	want(resp, b, 409)
	resp, b = c.do(t, "POST", "/api/jobs/"+id+"/deliveries/redeliver", e.key, nil)
	want(resp, b, 202)

	st := e.status(t, e.key, id)
	token := strings.TrimSuffix(path.Base(st["outputVideo"].(string)), ".mp4")
	resp, b = c.do(t, "GET", "/v/"+token+".mp4", "", nil)
	want(resp, b, 200)
	resp, b = c.do(t, "GET", "/v/"+token+".square.jpg", "", nil)
	want(resp, b, 200)
	resp, b = c.do(t, "GET", "/v/"+token+".mp4", "", nil, "Range", "bytes=0-99")
	want(resp, b, 206)
	resp, b = c.refused(t, "GET", "/v/"+token+".mp4", "", nil, "Range", "bytes=999999999-")
	want(resp, b, 416)
	resp, b = c.do(t, "GET", "/v/"+token+".jpg", "", nil)
	want(resp, b, 200)
	resp, b = c.refused(t, "GET", "/v/nope.mp4", "", nil)
	want(resp, b, 404)
	resp, b = c.do(t, "GET", "/s/"+token, "", nil)
	want(resp, b, 200)

	// A PENDING job behind a render that never ends can be cancelled, both ways.
	hang := newTestEnv(t, hangConfig(t, 1))
	hc := &specChecker{doc: doc, name: c.name, base: hang.hs.URL, seen: c.seen, ctx: c.ctx}
	hang.mustSubmit(t, hang.key, fixture(t, "img.jpg"), fixture(t, "tone.m4a"))
	for _, cancel := range []struct{ method, suffix string }{{"POST", "/cancel"}, {"DELETE", ""}} {
		k := hang.newKey(t, "pending-"+cancel.method)
		pending := hang.mustSubmit(t, k, fixture(t, "img.jpg"), fixture(t, "tone.m4a"))
		resp, b := hc.do(t, cancel.method, "/api/jobs/"+pending+cancel.suffix, k, nil)
		want(resp, b, 200)
	}
	resp, b = hc.do(t, "POST", "/api/jobs/c000000000000000000000000/deliveries/redeliver", hang.key, nil)
	want(resp, b, 404)
	// Every option and the captions part, as the spec describes them; the status echoes them.
	opts := hang.newKey(t, "options")
	withOptions, ctype4 := submission(map[string]string{"image": fixture(t, "img.jpg"), "audio": fixture(t, "tone.m4a"),
		"captions": writeFixture(t, "c.srt", []byte("1\n00:00:00,000 --> 00:00:01,000\nHi\n"))},
		map[string]string{"size": "portrait", "background": "#102030", "waveform": "bars", "waveformColor": "#ffb000",
			"title": "Show", "titleColor": "#ff8800", "progressBar": "Green"})
	resp, b = hc.do(t, "POST", "/api/jobs", opts, withOptions, "Content-Type", ctype4)
	want(resp, b, 201)
	resp, b = hc.do(t, "GET", "/api/status/"+decodeJSON(t, resp, b)["jobId"].(string), opts, nil)
	want(resp, b, 200)

	// A rate-limited answer.
	cfg := testConfig(t.TempDir())
	cfg.RateAPI = 1
	limited := newTestEnv(t, &cfg)
	lc := &specChecker{doc: doc, name: c.name, base: limited.hs.URL, seen: c.seen, ctx: c.ctx}
	lc.do(t, "GET", "/api/jobs", limited.key, nil)
	resp, b = lc.do(t, "GET", "/api/jobs", limited.key, nil)
	want(resp, b, 429)

	if len(c.seen) < 25 {
		t.Errorf("only %d route/status pairs checked: %v", len(c.seen), c.seen)
	}
}
