package main

// Rate limits, hostile clients, disk and SQLite durability, in process.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// limitServer is a server that is not started (jobs stay PENDING), on a clock that stands still
// until advanced, with the default limits, called straight through its handler.
func limitServer(t testing.TB, trust ...string) (*server, http.Handler, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 5, 7, 12, 0, 0, 0, time.UTC)}
	cfg := *hangConfig(t, 1)
	cfg.RateAPI, cfg.RateSubmit, cfg.RateDownload = 600, 30, 60
	for _, s := range trust {
		cfg.TrustProxy = append(cfg.TrustProxy, netip.MustParsePrefix(s))
	}
	s, err := newServer(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.store.Close() })
	return s, s.routes(), clk
}

// call sends one request from peer (host:port) through h.
func call(h http.Handler, method, path, peer, key string, body []byte, ctype string, header ...string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.RemoteAddr = peer
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// checkLimitHeaders asserts the RateLimit-* headers of a limited response.
func checkLimitHeaders(t testing.TB, w *httptest.ResponseRecorder, limit, remaining, reset int, retryAfter string) {
	t.Helper()
	h := w.Header()
	want := map[string]string{
		"RateLimit-Limit": strconv.Itoa(limit), "RateLimit-Remaining": strconv.Itoa(remaining),
		"RateLimit-Reset": strconv.Itoa(reset), "Retry-After": retryAfter,
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %q, want %q (status %d)", k, got, v, w.Code)
		}
	}
	if p := h.Get("RateLimit-Policy"); !strings.Contains(p, "600;w=60") || !strings.Contains(p, "30;w=60") {
		t.Errorf("RateLimit-Policy %q does not name both policies", p)
	}
}

// TestRateLimits: from one address, 30 submissions pass and the 31st gets 429; 600 API requests
// pass and the 601st gets 429; each with exact headers, while another address is served, a spoofed
// X-Forwarded-For from an untrusted peer changes nothing, and time refills the buckets.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	s, h, clk := limitServer(t)
	body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav")}, nil)
	sub, _ := io.ReadAll(body)
	// Every submission counts, accepted or not: most of them here lack the audio, which costs no
	// decoding (a real one runs three ffmpeg processes).
	body, badType := multipartBody(t, map[string]string{"image": fixture(t, "img.png")}, nil)
	noAudio, _ := io.ReadAll(body)
	var keys []string
	for i := range 33 {
		_, k, err := createKey(context.Background(), s.store, fmt.Sprintf("k%d", i), s.rand, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	const me, other = "198.51.100.7:40000", "198.51.100.8:40000"

	for i := range 30 {
		body, typ, want := noAudio, badType, 400
		if i == 29 {
			body, typ, want = sub, ctype, 201
		}
		w := call(h, "POST", "/api/jobs", me, keys[i], body, typ)
		if w.Code != want {
			t.Fatalf("submission %d: %d %s", i+1, w.Code, w.Body)
		}
		// 30 a minute: the bucket refills completely in 60 s and one token every 2 s.
		checkLimitHeaders(t, w, 30, 29-i, 2*(i+1), "")
	}
	w := call(h, "POST", "/api/jobs", me, keys[30], sub, ctype)
	if w.Code != 429 {
		t.Fatalf("31st submission: %d %s", w.Code, w.Body)
	}
	checkLimitHeaders(t, w, 30, 0, 60, "2")
	if msg := errorBody(t, w.Result(), w.Body.Bytes(), 429); !strings.Contains(msg, "30 submissions a minute") {
		t.Errorf("429 message %q", msg)
	}
	// The same from a spoofed X-Forwarded-For: the peer is not a trusted proxy, so it is the client.
	w = call(h, "POST", "/api/jobs", me, keys[30], sub, ctype, "X-Forwarded-For", "203.0.113.50")
	if w.Code != 429 {
		t.Errorf("spoofed X-Forwarded-For escaped the limit: %d", w.Code)
	}
	if w := call(h, "POST", "/api/jobs", other, keys[30], noAudio, badType); w.Code != 400 {
		t.Errorf("another address: %d %s", w.Code, w.Body)
	}

	// The API bucket has paid for the 32 submissions above; 568 more requests pass, the next does not.
	for i := range 568 {
		w := call(h, "GET", "/api/jobs?limit=1", me, keys[0], nil, "")
		if w.Code != 200 {
			t.Fatalf("API request %d: %d %s", 33+i, w.Code, w.Body)
		}
		if i == 567 {
			checkLimitHeaders(t, w, 600, 0, 60, "")
		}
	}
	w = call(h, "GET", "/api/jobs?limit=1", me, keys[0], nil, "")
	if w.Code != 429 {
		t.Fatalf("601st API request: %d", w.Code)
	}
	checkLimitHeaders(t, w, 600, 0, 60, "1")
	errorBody(t, w.Result(), w.Body.Bytes(), 429)
	// Unauthenticated requests count too, and the limit comes first.
	if w := call(h, "GET", "/api/jobs", me, "", nil, ""); w.Code != 429 {
		t.Errorf("request without key: %d", w.Code)
	}
	for _, spoof := range []string{"203.0.113.50", "198.51.100.8", "10.0.0.1, 127.0.0.1"} {
		if w := call(h, "GET", "/api/jobs", me, keys[0], nil, "", "X-Forwarded-For", spoof, "X-Real-IP", "203.0.113.51"); w.Code != 429 {
			t.Errorf("X-Forwarded-For %q from an untrusted peer: %d", spoof, w.Code)
		}
	}
	w = call(h, "GET", "/api/jobs?limit=1", other, keys[30], nil, "")
	if w.Code != 200 {
		t.Errorf("another address: %d", w.Code)
	}
	checkLimitHeaders(t, w, 600, 598, 1, "") // 2 requests spent, 0.2 s to refill... rounded up
	// Health and video URLs are not limited.
	if w := call(h, "GET", "/api/health", me, "", nil, ""); w.Code != 200 || w.Header().Get("RateLimit-Limit") != "" {
		t.Errorf("health: %d %v", w.Code, w.Header())
	}

	// Time refills: one API token in 0.1 s, one submission in 2 s.
	clk.Advance(2 * time.Second)
	if w := call(h, "POST", "/api/jobs", me, keys[32], noAudio, badType); w.Code != 400 {
		t.Errorf("submission after 2 s: %d %s", w.Code, w.Body)
	}
	w = call(h, "POST", "/api/jobs", me, keys[31], noAudio, badType)
	if w.Code != 429 {
		t.Errorf("second submission after 2 s: %d", w.Code)
	}
	checkLimitHeaders(t, w, 30, 0, 60, "2")
}

// TestDownloadRateLimit: videos, posters and share pages, which need no key, have their own bucket
// per address (60 a minute here), apart from the API's, with headers that name it.
func TestDownloadRateLimit(t *testing.T) {
	t.Parallel()
	_, h, clk := limitServer(t)
	const me, other = "198.51.100.7:40000", "198.51.100.8:40000"
	paths := []string{"/v/nothing.mp4", "/v/nothing.jpg", "/s/nothing"}
	for i := range 60 {
		w := call(h, "GET", paths[i%3], me, "", nil, "")
		if w.Code != 404 || w.Header().Get("RateLimit-Remaining") != strconv.Itoa(59-i) {
			t.Fatalf("download %d: %d, remaining %q", i+1, w.Code, w.Header().Get("RateLimit-Remaining"))
		}
	}
	w := call(h, "GET", "/v/nothing.mp4", me, "", nil, "")
	if w.Code != 429 || w.Header().Get("Retry-After") != "1" || w.Header().Get("RateLimit-Limit") != "60" {
		t.Fatalf("61st download: %d %v", w.Code, w.Header())
	}
	if p := w.Header().Get("RateLimit-Policy"); p != `60;w=60;comment="downloads"` {
		t.Errorf("RateLimit-Policy %q, want the downloads policy alone", p)
	}
	errorBody(t, w.Result(), w.Body.Bytes(), 429)
	// The API bucket is untouched, another address has its own, and a second refills one.
	if w := call(h, "GET", "/api/health", me, "", nil, ""); w.Code != 200 {
		t.Errorf("health after the downloads: %d", w.Code)
	}
	if w := call(h, "GET", "/v/nothing.mp4", other, "", nil, ""); w.Code != 404 {
		t.Errorf("another address: %d", w.Code)
	}
	clk.Advance(time.Second)
	if w := call(h, "GET", "/s/nothing", me, "", nil, ""); w.Code != 404 {
		t.Errorf("a second later: %d", w.Code)
	}
}

// TestClientAddress: the client is the TCP peer unless the peer is a trusted proxy; then the
// right-most X-Forwarded-For entry that is not a trusted proxy. IPv6 clients share their /64.
func TestClientAddress(t *testing.T) {
	t.Parallel()
	c := clientIPs{trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}
	cases := []struct {
		peer string
		xff  []string
		want string
	}{
		{"203.0.113.9:1", nil, "203.0.113.9/32"},
		{"203.0.113.9:1", []string{"198.51.100.1"}, "203.0.113.9/32"},                    // untrusted peer: XFF ignored
		{"10.0.0.2:1", []string{"198.51.100.1"}, "198.51.100.1/32"},                      // proxy
		{"10.0.0.2:1", []string{"6.6.6.6, 198.51.100.1"}, "198.51.100.1/32"},             // left-most is the client's to forge
		{"10.0.0.2:1", []string{"6.6.6.6", "198.51.100.1, 10.0.0.3"}, "198.51.100.1/32"}, // two proxies, two headers
		{"10.0.0.2:1", nil, "10.0.0.2/32"},                                               // proxy without XFF
		{"10.0.0.2:1", []string{"6.6.6.6, garbage, 198.51.100.1"}, "198.51.100.1/32"},
		{"10.0.0.2:1", []string{"6.6.6.6, garbage"}, "10.0.0.2/32"}, // nothing left of a bad hop is believed
		{"10.0.0.2:1", []string{"::ffff:198.51.100.1"}, "198.51.100.1/32"},
		{"[2001:db8:1:2::1]:1", nil, "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:1", nil, "2001:db8:1:2::/64"},
		{"[fd00::1]:1", []string{"2001:db8:9:9::5"}, "2001:db8:9:9::/64"},
		{"[::ffff:203.0.113.9]:1", nil, "203.0.113.9/32"},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/api/jobs", nil)
		r.RemoteAddr = tc.peer
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := c.key(r).String(); got != tc.want {
			t.Errorf("peer %s, XFF %q: key %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}

	// Through the middleware: behind a trusted proxy, each client has its own bucket and one IPv6
	// /64 is one client.
	_, h, _ := limitServer(t, "10.0.0.0/8")
	for i := range 600 {
		ip := fmt.Sprintf("2001:db8:1:2::%x", i+1) // 600 addresses of one /64
		if w := call(h, "GET", "/api/jobs", "10.0.0.2:5000", "", nil, "", "X-Forwarded-For", "6.6.6.6, "+ip); w.Code != 401 {
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
	if w := call(h, "GET", "/api/jobs", "10.0.0.2:5000", "", nil, "", "X-Forwarded-For", "2001:db8:1:2:ffff::1"); w.Code != 429 {
		t.Errorf("same /64: %d, want 429", w.Code)
	}
	if w := call(h, "GET", "/api/jobs", "10.0.0.2:5000", "", nil, "", "X-Forwarded-For", "2001:db8:1:3::1"); w.Code != 401 {
		t.Errorf("next /64: %d, want 401", w.Code)
	}
	if w := call(h, "GET", "/api/jobs", "10.0.0.3:5000", "", nil, "", "X-Forwarded-For", "2001:db8:1:2::1, 10.0.0.2"); w.Code != 429 {
		t.Errorf("same client through a second proxy: %d, want 429", w.Code)
	}
}

// limiterBytesBound is the stated bound: one policy holds at most maxBuckets (50,000) clients,
// about 200 bytes each (map slot, bucket, rate.Limiter), so it never takes more than 16 MB however
// many addresses arrive.
const limiterBytesBound = 16 << 20

// TestLimiterMemoryBound floods one policy with 100,000 distinct clients (IPv4 and IPv6 /64s) in
// one minute: the table stays at its cap, the heap under limiterBytesBound, and the flood is cheap.
// It does not run in parallel: the heap it measures is the whole process's, and the live servers of
// parallel tests put ~50 MB in it.
func TestLimiterMemoryBound(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 5, 7, 12, 0, 0, 0, time.UTC)}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p := newLimitPolicy[netip.Prefix]("requests", 600, clk.Now)
	start := time.Now()
	for i := range 100_000 {
		var a netip.Addr
		if i%2 == 0 {
			a = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		} else {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i), 8: 1})
		}
		bits := 32
		if a.Is6() {
			bits = 64
		}
		key, _ := a.Prefix(bits)
		if ok, _, _, _ := p.take(key); !ok {
			t.Fatalf("client %d refused on its first request", i)
		}
		if i%1000 == 0 {
			clk.Advance(500 * time.Millisecond) // 100,000 clients in 50 s: none idle long enough to sweep
		}
	}
	took := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if n := p.size(); n > maxBuckets {
		t.Errorf("%d buckets, cap is %d", n, maxBuckets)
	}
	if grew > limiterBytesBound {
		t.Errorf("limiter holds %d MB for %d clients, bound %d MB", grew>>20, p.size(), limiterBytesBound>>20)
	}
	// Linear eviction takes well under a second even under -race; a scan of the table per request
	// would take minutes. The bound is loose for a loaded machine.
	if took > time.Minute {
		t.Errorf("100,000 clients took %v: eviction is too slow", took)
	}
	t.Logf("100,000 clients: %d buckets kept, heap +%.1f MB, %v", p.size(), float64(grew)/(1<<20), took)
	runtime.KeepAlive(p)

	// Idle clients are swept: a minute later, the next request empties the table of them.
	clk.Advance(2 * time.Minute)
	p.take(netip.MustParsePrefix("198.51.100.1/32"))
	if n := p.size(); n > 1 {
		t.Errorf("%d buckets after everyone went idle", n)
	}
}

// slowServer runs s's real http.Server (its timeouts and header cap) on a loopback port.
func slowServer(t testing.TB, s *server) string {
	t.Helper()
	hs := s.httpServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

func TestUploadDeadline(t *testing.T) {
	t.Parallel()
	// A 50 MB file on a 512 kbit/s link, and the largest body, still fit; a small upload gets little.
	if d := uploadDeadline(50 << 20); d < 14*time.Minute {
		t.Errorf("50 MB upload gets %v", d)
	}
	if d := uploadDeadline(-1); d != uploadDeadline(maxBodySize) || d > 30*time.Minute {
		t.Errorf("unknown length gets %v", d)
	}
	if d := uploadDeadline(100 << 10); d > 2*time.Minute {
		t.Errorf("100 KB upload gets %v", d)
	}
	if d := uploadDeadline(1 << 40); d != uploadDeadline(maxBodySize) {
		t.Errorf("a huge declared length gets %v", d)
	}
}

func TestTooManyParts(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, hangConfig(t, 1))
	extra := map[string]string{}
	for i := range maxParts - 1 {
		extra[fmt.Sprintf("x%d", i)] = "1"
	}
	code, body := e.submit(t, e.key, fixture(t, "img.png"), fixture(t, "tone.wav"), extra)
	if code != 400 || !strings.Contains(body["error"].(string), "Too many parts") {
		t.Errorf("%d parts: %d %v", maxParts+1, code, body)
	}
	if files := dirFiles(t, filepath.Join(e.srv.cfg.DataDir, "tmp")); len(files) != 0 {
		t.Errorf("files left in tmp: %v", files)
	}
	code, body = e.submit(t, e.key, fixture(t, "img.png"), fixture(t, "tone.wav"), map[string]string{"a": "1", "b": "2"})
	if code != 201 {
		t.Errorf("4 parts: %d %v", code, body)
	}
}

// TestInputsGoneAndOutputExpires: a job's inputs are deleted when it ends; its output is served
// until -retention has passed, then answers 410 Gone, and the sweep deletes its files. Output files
// no job names (a crash between publishing and recording) are deleted at start-up.
func TestInputsGoneAndOutputExpires(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Now()}
	e := newTestEnv(t, nil, func(s *server) { s.now = clk.Now })
	id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.wav"))
	inputs := filepath.Join(e.srv.cfg.DataDir, "inputs")
	st := e.wait(t, e.key, id, StatusCompleted)
	checkInputsGone(t, inputs)
	video, share := st["outputVideo"].(string), st["outputShareLink"].(string)
	poster := strings.TrimSuffix(video, ".mp4") + ".jpg"
	for _, u := range []string{video, share, poster} {
		download(t, u)
	}
	outputs := filepath.Join(e.srv.cfg.DataDir, "outputs")
	orphan := filepath.Join(outputs, strings.Repeat("ab", 16)+".mp4")
	os.WriteFile(orphan, []byte("left by a crash"), 0o640)
	if err := e.srv.jobs.recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	kept := dirFiles(t, outputs)
	if len(kept) != 2 {
		t.Errorf("outputs after the orphan sweep: %v, want the job's video and poster", kept)
	}

	// The service's own first sweep runs as it starts: it must be done before the clock moves, or
	// it would delete the files this test counts.
	e.waitFirstSweep(t)
	clk.Advance(e.srv.cfg.Retention + time.Minute)
	for _, u := range []string{video, share, poster} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if msg := errorBody(t, resp, b, http.StatusGone); !strings.Contains(msg, "expired") {
			t.Errorf("%s: %q", u, msg)
		}
	}
	n, err := e.srv.jobs.expire(context.Background(), clk.Now().Add(-e.srv.cfg.Retention))
	if err != nil || n != 2 {
		t.Errorf("sweep deleted %d files (%v), want 2", n, err)
	}
	if files := dirFiles(t, outputs); len(files) != 0 {
		t.Errorf("outputs left after expiry: %v", files)
	}
	// Later sweeps read again the jobs that expired within a day of the last sweep's cutoff (a
	// deletion that failed is retried), and no older ones: a file put back under the expired job's
	// name is deleted by the sweeps of the next day, then no longer looked for.
	putBack := kept[0]
	for _, c := range []struct {
		after   time.Duration
		deleted int
	}{{time.Hour, 1}, {25 * time.Hour, 1}, {time.Hour, 0}} {
		if err := os.WriteFile(putBack, nil, 0o640); err != nil {
			t.Fatal(err)
		}
		clk.Advance(c.after)
		if n, err := e.srv.jobs.expire(context.Background(), clk.Now().Add(-e.srv.cfg.Retention)); err != nil || n != c.deleted {
			t.Errorf("a sweep %v after the last deleted %d files (%v), want %d", c.after, n, err, c.deleted)
		}
	}
	if _, err := os.Stat(putBack); err != nil {
		t.Errorf("a sweep read again a job that expired over a day before its last cutoff: %v", err)
	}
	var node, parent, unused int
	var plan string
	err = e.srv.store.db.QueryRow("EXPLAIN QUERY PLAN "+expiredOutputsQuery, 1, 2).Scan(&node, &parent, &unused, &plan)
	if err != nil || !strings.Contains(plan, "jobs_finished") {
		t.Errorf("the expiry query's plan: %q (%v), want the jobs_finished index", plan, err)
	}
	// The job itself is still listed; only its files are gone.
	if st := e.status(t, e.key, id); st["status"] != string(StatusCompleted) {
		t.Errorf("expired job: %v", st)
	}
}

// TestRemoveOutputsError: a published file that cannot be deleted is reported without its path,
// which holds the output's token.
func TestRemoveOutputsError(t *testing.T) {
	t.Parallel()
	dirs, err := openDataDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	token := strings.Repeat("cd", 16)
	if err := os.WriteFile(dirs.output(token, "jpg"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	stuck := dirs.output(token, "mp4") // a directory with a file in it cannot be removed, even by root
	if err := os.MkdirAll(filepath.Join(stuck, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	n, err := removeOutputs(context.Background(), diskFiles{dirs}, token)
	if n != 1 || err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "remove mp4 output") {
		t.Errorf("removeOutputs: %d, %v; want 1 deleted and an error without the token", n, err)
	}
}

// TestLowDisk: under -min-free, submissions get 507 before the upload is read, and nothing is
// left behind; with space again they are accepted.
func TestLowDisk(t *testing.T) {
	t.Parallel()
	var free atomic.Int64
	free.Store(100 << 20)
	e := newTestEnv(t, hangConfig(t, 1), func(s *server) {
		s.cfg.MinFree = 1 << 30
		s.diskFree = func(string) (int64, error) { return free.Load(), nil }
	})
	code, body := e.submit(t, e.key, fixture(t, "img.png"), fixture(t, "tone.wav"), nil)
	if code != http.StatusInsufficientStorage || !strings.Contains(body["error"].(string), "disk space") {
		t.Errorf("low disk: %d %v", code, body)
	}
	if files := dirFiles(t, e.srv.cfg.DataDir+"/tmp"); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
	// Status and list still work.
	if resp, b := e.do(t, "GET", "/api/jobs", e.key, nil); resp.StatusCode != 200 {
		t.Errorf("list on low disk: %d %s", resp.StatusCode, b)
	}
	free.Store(10 << 30)
	if code, body := e.submit(t, e.key, fixture(t, "img.png"), fixture(t, "tone.wav"), nil); code != 201 {
		t.Errorf("with space: %d %v", code, body)
	}
}

// TestSQLiteDurability: every pooled connection runs synchronous=FULL in WAL mode with the WAL
// size limit, and a checkpoint truncates the WAL after a burst of writes.
func TestSQLiteDurability(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "d.db")
	st, err := OpenStore(ctx, path, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var conns []interface{ Close() error }
	for i := range 4 { // distinct connections of the pool, held open at once
		c, err := st.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var sync, limit int
		var mode string
		c.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync)
		c.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode)
		c.QueryRowContext(ctx, `PRAGMA journal_size_limit`).Scan(&limit)
		if sync != 2 || mode != "wal" || limit != 64<<20 {
			t.Errorf("connection %d: synchronous=%d journal_mode=%s journal_size_limit=%d", i, sync, mode, limit)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	// A burst of writes grows the WAL; a checkpoint empties it.
	if _, err := st.db.ExecContext(ctx, `CREATE TABLE filler (x BLOB)`); err != nil {
		t.Fatal(err)
	}
	blob := bytes.Repeat([]byte("x"), 4000)
	for range 300 {
		st.db.ExecContext(ctx, `INSERT INTO filler VALUES (?)`, blob)
	}
	if err := st.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() != 0 {
		t.Errorf("WAL is %d bytes after a checkpoint", fi.Size())
	}
	requireIntegrity(t, st)
}

// TestShutdownTiming checks the arithmetic docs/operations.md promises: with the defaults, vidgen exits
// well inside systemd's default 90 s stop timeout.
func TestShutdownTiming(t *testing.T) {
	t.Parallel()
	cfg, err := parseServeFlags(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if worst := max(httpDrain, cfg.ShutdownGrace) + 5*time.Second; cfg.ShutdownGrace != 20*time.Second || worst > 45*time.Second {
		t.Errorf("grace %v, worst-case stop %v", cfg.ShutdownGrace, worst)
	}
	if cfg.Retention != 30*24*time.Hour || cfg.MinFree != 1<<30 {
		t.Errorf("retention %v, min-free %d", cfg.Retention, cfg.MinFree)
	}
	b, _ := json.Marshal(cfg.TrustProxy)
	if string(b) != "null" {
		t.Errorf("trusted proxies by default: %s", b)
	}
}

// TestShortMP3Header: an upload of a few bytes that start like an MP3 frame is a 415, not a panic
// (mp3FrameChain once sliced past the end of a short file; found by FuzzSniff).
func TestShortMP3Header(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, hangConfig(t, 1))
	for _, audio := range []string{"\xff\xfb\x90\x00", "\xff\xfb\x90\x64" + strings.Repeat("\x00", 413) + "\xff\xfb"} {
		code, body := e.submit(t, e.key, fixture(t, "img.png"), writeFixture(t, "short.mp3", []byte(audio)), nil)
		if code != http.StatusUnsupportedMediaType {
			t.Errorf("%d-byte MP3-like audio: %d %v", len(audio), code, body)
		}
	}
}
