package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fileHost is the one address the fetch tests let stand for the public internet: their file
// server's. Every other loopback address, and every other rule, stays as the webhooks have it.
var fileHost = netip.MustParseAddr("127.0.0.1")

// fetchEnv is a vidgen under the address rules (no -webhook-allow-private) whose inputs by URL may
// reach files, a real HTTPS server on fileHost, on its port only. Names resolve as the webhook
// tests' ssrfResolver says, but for rebind.example.com, which is public when the redirect is
// checked and 127.0.0.2 (refused) when it is dialled.
type fetchEnv struct {
	*testEnv
	files  *httptest.Server
	port   string
	served atomic.Int64 // requests the file server answered
}

// newFetchEnv starts the file server with routes and a vidgen that fetches from it; cfg, when not
// nil, is the vidgen's config (its webhook ports are set here).
func newFetchEnv(t testing.TB, cfg *config, routes map[string]http.HandlerFunc, edit ...func(*server)) *fetchEnv {
	t.Helper()
	fe := &fetchEnv{}
	mux := http.NewServeMux()
	for p, h := range routes {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { fe.served.Add(1); h(w, r) })
	}
	fe.files = httptest.NewTLSServer(mux)
	t.Cleanup(fe.files.Close)
	_, fe.port, _ = net.SplitHostPort(fe.files.Listener.Addr().String())
	if cfg == nil {
		c := testConfig(t.TempDir())
		cfg = &c
	}
	cfg.WebhookPorts = []string{"443", fe.port}
	res := &ssrfResolver{}
	var rebinds atomic.Int32
	pool := x509.NewCertPool()
	pool.AddCert(fe.files.Certificate())
	edit = append([]func(*server){hookTrustPool(pool), func(s *server) {
		s.hooks.blocked = func(ip netip.Addr) bool { return ip != fileHost && isBlockedAddr(ip) }
		s.hooks.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			if host == "rebind.example.com" {
				if rebinds.Add(1) == 1 {
					return []netip.Addr{hookPublicIP}, nil
				}
				return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil
			}
			return res.lookup(ctx, host)
		}
	}}, edit...)
	fe.testEnv = newTestEnv(t, cfg, edit...)
	return fe
}

// url is the file server's URL of path.
func (fe *fetchEnv) url(path string) string { return "https://127.0.0.1:" + fe.port + path }

// serveFile serves the file at path.
func serveFile(t testing.TB, path string) http.HandlerFunc {
	b := readFile(t, path)
	return func(w http.ResponseWriter, _ *http.Request) { w.Write(b) }
}

// redirectTo answers 302 to target.
func redirectTo(target string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target, http.StatusFound) }
}

// submitURLs submits a job with a key of its own: files are file parts, fields the rest (the URLs).
func (fe *fetchEnv) submitURLs(t testing.TB, files, fields map[string]string) (string, string) {
	t.Helper()
	key := fe.newKey(t, fmt.Sprintf("fetch-%d", accountSeq.Add(1)))
	body, ctype := multipartBody(t, files, fields)
	resp, b := fe.do(t, "POST", "/api/jobs", key, body, "Content-Type", ctype)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("submit %v %v: %d %s", files, fields, resp.StatusCode, b)
	}
	return key, decodeJSON(t, resp, b)["jobId"].(string)
}

// TestInputsByURL: inputs given by URL are fetched after the 201, checked as uploads are, and
// rendered; a fetch that fails ends the job FAILED with a message that names the field, the URL
// without its query string, and what went wrong: a 404, a stream over the size limit, a file that
// is not media, a picture bomb, captions that do not parse, a host that does not resolve, redirects
// to addresses the webhook rules refuse (by name, by port, after DNS), a redirect loop. No secret of
// a URL's query string reaches a message or the log. Captions by URL rendered: make e2e.
func TestInputsByURL(t *testing.T) {
	t.Parallel()
	chunk := make([]byte, 1<<20)
	var fe *fetchEnv
	fe = newFetchEnv(t, nil, map[string]http.HandlerFunc{
		"/cover.jpg": serveFile(t, fixture(t, "img.jpg")),
		"/tone.wav":  serveFile(t, fixture(t, "tone.wav")),
		"/tone.m4a":  serveFile(t, fixture(t, "tone.m4a")),
		"/c.srt": func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "1\n00:00:00,000 --> 00:00:01,000\nHello\n")
		},
		"/bad.srt": func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "1\n00:00:01,000 --> 00:00:00,500\nBackwards\n")
		},
		"/moved":   redirectTo("/cover.jpg"),
		"/missing": http.NotFound,
		"/huge": func(w http.ResponseWriter, _ *http.Request) { // no Content-Length: the limit holds while it streams
			for range maxFileSize>>20 + 2 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		},
		"/notes.txt": func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "not a picture, just some words about one\n")
		},
		"/to-internal": redirectTo("https://internal.example.com/cover.jpg"),
		"/to-port":     func(w http.ResponseWriter, r *http.Request) { redirectTo("https://127.0.0.1:8443/cover.jpg")(w, r) },
		"/to-rebind": func(w http.ResponseWriter, r *http.Request) {
			redirectTo("https://rebind.example.com:"+fe.port+"/cover.jpg")(w, r)
		},
		"/loop":     redirectTo("/loop"),
		"/bomb.png": func(w http.ResponseWriter, _ *http.Request) { w.Write(pngHeader(20000, 20000)) },
	})

	type want struct {
		status JobStatus
		msg    string // in the errorMessage, after "Could not use FIELD URL: "
	}
	cases := []struct {
		name   string
		files  map[string]string
		fields map[string]string
		want   want
	}{
		{"image and audio by URL, the image through a redirect", nil,
			map[string]string{"imageUrl": fe.url("/moved?sig=SECRET1"), "audioUrl": fe.url("/tone.m4a")}, want{StatusCompleted, ""}},
		{"captions by URL that do not parse", map[string]string{"image": fixture(t, "img.jpg"), "audio": fixture(t, "tone.wav")},
			map[string]string{"captionsUrl": fe.url("/bad.srt")}, want{StatusFailed, "line 2: the cue ends (00:00:00,500) before it starts"}},
		{"a 404", map[string]string{"image": fixture(t, "img.jpg")},
			map[string]string{"audioUrl": fe.url("/missing?token=SECRET2")}, want{StatusFailed, "the server answered HTTP 404"}},
		{"an oversized stream", map[string]string{"audio": fixture(t, "tone.wav")},
			map[string]string{"imageUrl": fe.url("/huge")}, want{StatusFailed, "The image file is larger than 50 MB"}},
		{"not media", map[string]string{"audio": fixture(t, "tone.wav")},
			map[string]string{"imageUrl": fe.url("/notes.txt")}, want{StatusFailed, "the file is a text file"}},
		{"audio that is an image", map[string]string{"image": fixture(t, "img.jpg")},
			map[string]string{"audioUrl": fe.url("/cover.jpg")}, want{StatusFailed, "the file is a JPEG image"}},
		{"a host that does not resolve", map[string]string{"audio": fixture(t, "tone.wav")},
			map[string]string{"imageUrl": "https://nxdomain.example.com:" + fe.port + "/cover.jpg"}, want{StatusFailed, "unreachable (host not found)"}},
		{"a picture bomb", map[string]string{"audio": fixture(t, "tone.wav")},
			map[string]string{"imageUrl": fe.url("/bomb.png")}, want{StatusFailed, "20000×20000 is more than the 100 megapixels accepted"}},
		{"a redirect to a private name", map[string]string{"audio": fixture(t, "tone.wav")},
			map[string]string{"imageUrl": fe.url("/to-internal")}, want{StatusFailed, "it redirects to a URL that is not allowed (a redirect must point to a public internet address)"}},
		{"a redirect to a port not allowed", map[string]string{"audio": fixture(t, "tone.wav")},
			map[string]string{"imageUrl": fe.url("/to-port")}, want{StatusFailed, "it redirects to a URL that is not allowed (a redirect must use port"}},
		{"a redirect to a name that rebinds", map[string]string{"audio": fixture(t, "tone.wav")},
			map[string]string{"imageUrl": fe.url("/to-rebind")}, want{StatusFailed, "unreachable: the address is not allowed"}},
		{"a redirect loop", map[string]string{"audio": fixture(t, "tone.wav")},
			map[string]string{"imageUrl": fe.url("/loop")}, want{StatusFailed, "it redirects more than 5 times"}},
	}
	if fullMatrix { // a moving render, a few seconds more: make e2e
		cases = append(cases, struct {
			name   string
			files  map[string]string
			fields map[string]string
			want   want
		}{"captions by URL beside uploads", map[string]string{"image": fixture(t, "img.jpg"), "audio": fixture(t, "tone.wav")},
			map[string]string{"captionsUrl": fe.url("/c.srt")}, want{StatusCompleted, ""}})
	}
	// Every job is submitted first (a key each), so that they are fetched and rendered side by side.
	keys, ids := make([]string, len(cases)), make([]string, len(cases))
	for i, c := range cases {
		keys[i], ids[i] = fe.submitURLs(t, c.files, c.fields)
	}
	for i, c := range cases {
		st := fe.wait(t, keys[i], ids[i], c.want.status)
		msg, _ := st["errorMessage"].(string)
		if c.want.status == StatusCompleted {
			if st["progress"].(float64) != 100 || st["outputVideo"] == nil {
				t.Fatalf("%s: %v", c.name, st)
			}
			if video, _ := download(t, st["outputVideo"].(string)); len(video) == 0 {
				t.Errorf("%s: an empty video", c.name)
			}
			continue
		}
		var field, raw string
		for f, v := range c.fields {
			field, raw = f, v
		}
		prefix := "Could not use " + field + " " + strings.Split(raw, "?")[0] + ": "
		if !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, c.want.msg) {
			t.Errorf("%s: errorMessage %q, want %q then %q", c.name, msg, prefix, c.want.msg)
		}
	}
	for _, secret := range []string{"SECRET1", "SECRET2"} {
		if strings.Contains(fe.logs.String(), secret) {
			t.Errorf("the log holds %s, from a URL's query string", secret)
		}
	}
	if fe.served.Load() == 0 {
		t.Error("the file server served nothing")
	}
}

// TestInputURLsAtSubmit: an input's URL is checked for form and the address rules at submission,
// a 400 naming the field; an input given both ways, or neither, is a 400 too. A good one is a 201
// at once, whose request and answer match openapi.yaml.
func TestInputURLsAtSubmit(t *testing.T) {
	t.Parallel()
	fe := newFetchEnv(t, hangConfig(t, 1), map[string]http.HandlerFunc{"/tone.wav": serveFile(t, fixture(t, "tone.wav"))})
	c := specCheckerFor(t, fe.testEnv)
	img := fixture(t, "img.jpg")
	cases := []struct {
		files  map[string]string
		fields map[string]string
		msg    string
	}{
		{map[string]string{"image": img, "audio": fixture(t, "tone.wav")}, map[string]string{"audioUrl": fe.url("/tone.wav")},
			"Send the audio either as a file part or as audioUrl, not both"},
		{map[string]string{"image": img}, map[string]string{"captionsUrl": fe.url("/c.srt")}, `Missing file part "audio"`},
		{map[string]string{"image": img}, map[string]string{"audioUrl": "http://127.0.0.1:" + fe.port + "/tone.wav"}, "audioUrl must be an absolute https:// URL"},
		{map[string]string{"image": img}, map[string]string{"audioUrl": "https://10.0.0.1/tone.wav"}, "audioUrl must point to a public internet address"},
		{map[string]string{"image": img}, map[string]string{"audioUrl": "https://internal.example.com/tone.wav"}, "audioUrl must point to a public internet address"},
		{map[string]string{"image": img}, map[string]string{"audioUrl": "https://127.0.0.1:8443/tone.wav"}, "audioUrl must use port"},
		{map[string]string{"image": img}, map[string]string{"audioUrl": "https://u:p@127.0.0.1:" + fe.port + "/tone.wav"}, "audioUrl must not contain credentials"},
		{map[string]string{"audio": fixture(t, "tone.wav")}, map[string]string{"imageUrl": "not a url"}, "imageUrl must be an absolute https:// URL"},
	}
	for _, tc := range cases {
		body, ctype := submission(t, tc.files, tc.fields)
		resp, b := c.refused(t, "POST", "/api/jobs", fe.newKey(t, fmt.Sprintf("at-submit-%d", accountSeq.Add(1))), body, "Content-Type", ctype)
		if msg := errorBody(t, resp, b, http.StatusBadRequest); !strings.Contains(msg, tc.msg) {
			t.Errorf("%v %v: %q, want %q", tc.files, tc.fields, msg, tc.msg)
		}
	}
	body, ctype := submission(t, map[string]string{"image": img}, map[string]string{"audioUrl": fe.url("/tone.wav")})
	resp, b := c.do(t, "POST", "/api/jobs", fe.key, body, "Content-Type", ctype)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("a good audioUrl: %d %s", resp.StatusCode, b)
	}
}

// TestInputURLsDiskBudget: a fetch counts against the disk budget as an upload does: a job whose
// inputs could take the disk under -min-free fails with a message that says so, and fetches nothing.
func TestInputURLsDiskBudget(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.MinFree = 1 << 30
	free := func(string) (int64, error) { return cfg.MinFree + 60<<20, nil } // room for one 50 MB input, not two
	fe := newFetchEnv(t, &cfg, map[string]http.HandlerFunc{
		"/cover.jpg": serveFile(t, fixture(t, "img.jpg")),
		"/tone.wav":  serveFile(t, fixture(t, "tone.wav")),
	}, func(s *server) { s.diskFree, s.renderer.diskFree = free, free })
	key, id := fe.submitURLs(t, nil, map[string]string{"imageUrl": fe.url("/cover.jpg"), "audioUrl": fe.url("/tone.wav")})
	st := fe.wait(t, key, id, StatusFailed)
	if msg := st["errorMessage"].(string); !strings.Contains(msg, "Fetching the job's inputs needs up to 101 MB of disk") {
		t.Errorf("errorMessage %q", msg)
	}
	if n := fe.served.Load(); n != 0 {
		t.Errorf("the file server answered %d requests", n)
	}
}

// TestSafeURL: a URL as a job's message shows it keeps no userinfo, query string or fragment.
func TestSafeURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"https://cdn.example.com/a/ep%201.mp3?X-Amz-Signature=abc&t=1": "https://cdn.example.com/a/ep%201.mp3",
		"https://user:pass@cdn.example.com:8443/x.jpg#frag":            "https://cdn.example.com:8443/x.jpg",
		"https://cdn.example.com":                                      "https://cdn.example.com",
		"https://cdn.example.com/%zz":                                  "(a malformed URL)",
	} {
		if got := safeURL(raw); got != want {
			t.Errorf("safeURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

// TestInputURLTimeout: a server that sends part of a file and stalls holds the job no longer than
// the fetch's deadline (shortened here from inputFetchTimeout): the job fails and says so.
func TestInputURLTimeout(t *testing.T) {
	t.Parallel()
	fe := newFetchEnv(t, nil, map[string]http.HandlerFunc{
		"/slow.jpg": func(w http.ResponseWriter, r *http.Request) {
			w.Write(readFile(t, fixture(t, "img.jpg"))[:100])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		},
	}, func(s *server) { s.inputClient.Timeout = time.Second })
	key, id := fe.submitURLs(t, map[string]string{"audio": fixture(t, "tone.wav")}, map[string]string{"imageUrl": fe.url("/slow.jpg")})
	st := fe.wait(t, key, id, StatusFailed)
	if msg := st["errorMessage"].(string); !strings.HasPrefix(msg, "Could not use imageUrl "+fe.url("/slow.jpg")+": it timed out") {
		t.Errorf("errorMessage %q", msg)
	}
}
