package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fixtureDir holds media generated once per test run by fixture.
var fixtureDir string

func TestMain(m *testing.M) {
	// A run of this test binary that another one started (a test run alone in a process of its
	// own) uses the fixtures its parent made.
	dir, shared := os.LookupEnv(fixtureDirEnv)
	if !shared {
		var err error
		if dir, err = os.MkdirTemp("", "vidgen-fixtures-"); err != nil {
			panic(err)
		}
		os.Setenv(fixtureDirEnv, dir)
	}
	fixtureDir = dir
	code := m.Run()
	if !shared {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// fixtureDirEnv names the fixture directory for the test binaries a test run starts.
const fixtureDirEnv = "VIDGEN_TEST_FIXTURES"

// fixtureRecipes are ffmpeg arguments (before the output path) that make each fixture: one input
// (the arguments up to its -i), then output options. Every input ends (a duration): an ffmpeg that
// makes several fixtures at once may not stop while one of its inputs goes on.
var fixtureRecipes = map[string][]string{
	"img.jpg":  {"-f", "lavfi", "-i", "testsrc2=s=320x240:d=1", "-frames:v", "1"},
	"img.png":  {"-f", "lavfi", "-i", "testsrc2=s=320x240:d=1", "-frames:v", "1"},
	"img.webp": {"-f", "lavfi", "-i", "testsrc2=s=320x240:d=1", "-frames:v", "1", "-c:v", "libwebp"},
	"img.gif":  {"-f", "lavfi", "-i", "testsrc2=s=320x240:d=1", "-frames:v", "1"},
	"img.bmp":  {"-f", "lavfi", "-i", "testsrc2=s=320x240:d=1", "-frames:v", "1"},
	"img.tiff": {"-f", "lavfi", "-i", "testsrc2=s=320x240:d=1", "-frames:v", "1"},
	"odd.png":  {"-f", "lavfi", "-i", "testsrc2=s=333x201:d=1", "-frames:v", "1"},
	"big.jpg":  {"-f", "lavfi", "-i", "testsrc2=s=3000x2000:d=1", "-frames:v", "1"},
	// Pictures whose header gives their pixels an aspect (JFIF density, PNG pHYs), which browsers
	// ignore: they show the pixels square.
	"sar.jpg":   {"-f", "lavfi", "-i", "testsrc2=s=320x240:d=1", "-frames:v", "1", "-vf", "setsar=2/1"},
	"sar.png":   {"-f", "lavfi", "-i", "testsrc2=s=320x240:d=1", "-frames:v", "1", "-vf", "setsar=1/3"},
	"tone.mp3":  {"-f", "lavfi", "-i", "sine=f=440:d=2.5", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k"},
	"tone.wav":  {"-f", "lavfi", "-i", "sine=f=440:d=2.5", "-ac", "2"},
	"tone.m4a":  {"-f", "lavfi", "-i", "sine=f=440:d=2.5", "-ac", "2", "-c:a", "aac", "-b:a", "128k"},
	"tone.ogg":  {"-f", "lavfi", "-i", "sine=f=440:d=2.5", "-ac", "2", "-c:a", "libvorbis"},
	"tone.opus": {"-f", "lavfi", "-i", "sine=f=440:d=2.5", "-ac", "2", "-c:a", "libopus", "-f", "ogg"},
	"tone.mka":  {"-f", "lavfi", "-i", "sine=f=440:d=2.5", "-ac", "2", "-c:a", "libvorbis", "-f", "matroska"},
	"long.wav":  {"-f", "lavfi", "-i", "sine=f=440:d=30", "-ac", "1", "-ar", "8000"},
}

// soloFixtures take long enough to make that they are made only when a test asks for them; the
// first fixture asked for brings every other one with it, all made by one ffmpeg (its start costs
// more than most of them take to encode).
var soloFixtures = map[string]bool{"big.jpg": true, "long.opus": true}

var (
	fixtureMu       sync.Mutex
	fixturesBatched bool
)

// fixture returns the path of a generated media file, making it on first use.
func fixture(t testing.TB, name string) string {
	t.Helper()
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	path := filepath.Join(fixtureDir, name)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if _, ok := fixtureRecipes[name]; !ok {
		t.Fatalf("no recipe for fixture %s", name)
	}
	if !fixturesBatched && !soloFixtures[name] {
		fixturesBatched = true
		var batch []string
		for n := range fixtureRecipes {
			if _, err := os.Stat(filepath.Join(fixtureDir, n)); err != nil && !soloFixtures[n] {
				batch = append(batch, n)
			}
		}
		slices.Sort(batch)
		if makeFixtures(batch) == nil {
			return path
		}
		// One recipe this ffmpeg cannot make spoils the batch: the rest are made one by one.
	}
	if err := makeFixtures([]string{name}); err != nil {
		t.Fatalf("make fixture %s: %v", name, err)
	}
	return path
}

// makeFixtures makes the named fixtures with one ffmpeg, each recipe's input mapped to its output,
// in a directory of its own, then moves each into fixtureDir whole (another test binary may be
// looking for it).
func makeFixtures(names []string) error {
	tmp, err := os.MkdirTemp(fixtureDir, ".make-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	inputs, outputs := []string{"-v", "error", "-y"}, []string{}
	for i, name := range names {
		recipe := fixtureRecipes[name]
		in := slices.Index(recipe, "-i")
		if in < 0 || in+2 > len(recipe) || slices.Contains(recipe[in+2:], "-i") {
			return fmt.Errorf("recipe for %s: want one input", name)
		}
		inputs = append(inputs, recipe[:in+2]...)
		outputs = append(outputs, "-map", strconv.Itoa(i))
		outputs = append(outputs, recipe[in+2:]...)
		outputs = append(outputs, filepath.Join(tmp, name))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ffmpeg", append(inputs, outputs...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	for _, name := range names {
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(fixtureDir, name)); err != nil {
			return err
		}
	}
	return nil
}

// writeFixture writes data to a new file in the test's temp dir and returns its path.
func writeFixture(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// copyFile copies the file at src to a new file dst.
func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.WriteFile(dst, readFile(t, src), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// countingListener listens on addr (port 0: any free one), accepts and closes every connection, and
// counts them: proof that nothing connected, when the count stays 0. It returns the listening address.
func countingListener(t testing.TB, addr string) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepts := &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), accepts
}

// fakeClock is a clock that moves only when a test moves it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testEnv is one running vidgen: the real handler over httptest, a real SQLite file in a temp dir,
// and the real renderer and webhook sender.
type testEnv struct {
	srv  *server
	hs   *httptest.Server
	key  string // API key of account "alice"
	stop func(context.Context)
	logs *syncBuffer

	closed sync.Once
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// matrixSample is the n of sampled for the fast suite.
const matrixSample = 16

// sampled returns the cases of a table of renders that this run renders: every one in the e2e build
// (make e2e, which CI runs), and one in n (the first, the n+1th, ...) in the fast suite, so that
// make test stays quick enough to run after every change while no case goes untested before a
// change lands.
func sampled[C any](cases []C, n int) []C {
	if fullMatrix {
		return cases
	}
	var out []C
	for i, c := range cases {
		if i%n == 0 {
			out = append(out, c)
		}
	}
	return out
}

func testConfig(dataDir string) config {
	return config{
		DataDir: dataDir, FFmpeg: "ffmpeg", FFprobe: "ffprobe", Workers: 2,
		WebhookPorts: []string{"443"}, MaxDuration: time.Hour, ShutdownGrace: 5 * time.Second,
		Retention: 30 * 24 * time.Hour, ChildMemory: defaultChildMemory,
	}
}

// newTestEnv starts a vidgen on cfg (testConfig of a fresh temp dir when nil), with account "alice".
// edit, when given, adjusts the server before it starts.
func newTestEnv(t testing.TB, cfg *config, edit ...func(*server)) *testEnv {
	t.Helper()
	if cfg == nil {
		c := testConfig(t.TempDir())
		cfg = &c
	}
	if cfg.Database == "" {
		seedDatabase(t, cfg.DataDir)
	}
	logs := &syncBuffer{}
	ctx := context.Background()
	hs := httptest.NewUnstartedServer(nil)
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + hs.Listener.Addr().String()
	}
	srv, err := newServer(ctx, *cfg, slog.New(slog.NewTextHandler(logs, nil)), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range edit {
		f(srv)
	}
	hs.Config.Handler = srv.routes()
	hs.Start()
	stop, err := srv.start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{srv: srv, hs: hs, stop: stop, logs: logs}
	e.key = e.newKey(t, fmt.Sprintf("alice-%d", accountSeq.Add(1)))
	t.Cleanup(func() {
		e.close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return e
}

var accountSeq atomic.Int64

var (
	emptyDBOnce sync.Once
	emptyDB     []byte
	emptyDBErr  error
)

// seedDatabase gives a data directory that exists but has no database yet the database a first
// start makes: the schema with every migration applied, and no rows. It is made once a run by the
// real OpenStore (a broken migration still fails every test); each test env opening its own copy
// finds the migrations applied instead of running them again, which under the race detector costs
// tens of ms of CPU an env. The first start itself is tested on its own (TestMigrations,
// TestServeFirstStart, TestDataDirPermissions).
func seedDatabase(t testing.TB, dataDir string) {
	t.Helper()
	path := filepath.Join(dataDir, "vidgen.db")
	if fi, err := os.Stat(dataDir); err != nil || !fi.IsDir() {
		return
	}
	if _, err := os.Stat(path); err == nil {
		return
	}
	emptyDBOnce.Do(func() {
		dir, err := os.MkdirTemp(fixtureDir, ".db-")
		if err != nil {
			emptyDBErr = err
			return
		}
		defer os.RemoveAll(dir)
		st, err := OpenStore(context.Background(), filepath.Join(dir, "vidgen.db"), time.Now)
		if err != nil {
			emptyDBErr = err
			return
		}
		if emptyDBErr = st.Close(); emptyDBErr == nil { // the last connection closed: the WAL is merged in
			emptyDB, emptyDBErr = os.ReadFile(filepath.Join(dir, "vidgen.db"))
		}
	})
	if emptyDBErr != nil {
		t.Fatalf("empty database: %v", emptyDBErr)
	}
	if err := os.WriteFile(path, emptyDB, 0o600); err != nil {
		t.Fatal(err)
	}
}

// close stops the server as serve does: HTTP first, then renders (short grace), then webhooks.
// Tests may call it before the cleanup does; only the first call acts.
func (e *testEnv) close() {
	e.closed.Do(e.shutdown)
}

func (e *testEnv) shutdown() {
	e.hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	e.stop(ctx)
	e.srv.store.Close()
}

// newKey creates an account and returns its API key.
func (e *testEnv) newKey(t testing.TB, name string) string {
	t.Helper()
	_, apiKey, err := createKey(context.Background(), e.srv.store, name, e.srv.rand, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return apiKey
}

// request is every test's way to send a request: method url through client (the default one when
// nil), with the API key (none when key is "") and header name/value pairs. It returns the response
// with its body read; err is set when no whole response came.
func request(client *http.Client, method, url, key string, body io.Reader, header ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, nil, err
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// mustRequest is request with the default client that fails the test when no response came.
func mustRequest(t testing.TB, method, url, key string, body io.Reader, header ...string) (*http.Response, []byte) {
	t.Helper()
	resp, b, err := request(nil, method, url, key, body, header...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp, b
}

// do sends a request to the test server (see request).
func (e *testEnv) do(t testing.TB, method, path, key string, body io.Reader, header ...string) (*http.Response, []byte) {
	t.Helper()
	return mustRequest(t, method, e.hs.URL+path, key, body, header...)
}

// multipartBody builds a submission: files maps part names to paths; fields are plain values.
func multipartBody(t testing.TB, files map[string]string, fields map[string]string) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for name, path := range files {
		h := make(map[string][]string)
		h["Content-Disposition"] = []string{fmt.Sprintf(`form-data; name=%q; filename=%q`, name, filepath.Base(path))}
		h["Content-Type"] = []string{"application/octet-stream"} // the server must sniff, not trust this
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(readFile(t, path))
	}
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

// submit posts a job and returns the status code and decoded JSON body.
func (e *testEnv) submit(t testing.TB, key, image, audio string, fields map[string]string) (int, map[string]any) {
	t.Helper()
	files := map[string]string{}
	if image != "" {
		files["image"] = image
	}
	if audio != "" {
		files["audio"] = audio
	}
	body, ctype := multipartBody(t, files, fields)
	resp, b := e.do(t, "POST", "/api/jobs", key, body, "Content-Type", ctype)
	return resp.StatusCode, decodeJSON(t, resp, b)
}

func decodeJSON(t testing.TB, resp *http.Response, b []byte) map[string]any {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, body %s", resp.Request.Method, resp.Request.URL.Path, ct, b)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// mustSubmit submits a job that must be accepted and returns its id.
func (e *testEnv) mustSubmit(t testing.TB, key, image, audio string) string {
	t.Helper()
	code, body := e.submit(t, key, image, audio, nil)
	if code != http.StatusCreated {
		t.Fatalf("submit %s + %s: %d %v", filepath.Base(image), filepath.Base(audio), code, body)
	}
	return body["jobId"].(string)
}

func (e *testEnv) status(t testing.TB, key, id string) map[string]any {
	t.Helper()
	resp, b := e.do(t, "GET", "/api/status/"+id, key, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s: %d %s", id, resp.StatusCode, b)
	}
	return decodeJSON(t, resp, b)
}

// wait polls the job until its status is one of want, within renderDeadline, and fails on any
// other final status.
func (e *testEnv) wait(t testing.TB, key, id string, want ...JobStatus) map[string]any {
	t.Helper()
	var st map[string]any
	eventually(t, renderDeadline(t), func() error {
		st = e.status(t, key, id)
		s := JobStatus(st["status"].(string))
		if slices.Contains(want, s) {
			return nil
		}
		if s.Final() {
			t.Fatalf("job %s ended %s, want %v: %v", id, s, want, st)
		}
		return fmt.Errorf("job %s is %s, want %v", id, s, want)
	})
	return st
}

// download fetches a URL the API returned and fails unless it answers 200.
func download(t testing.TB, url string) ([]byte, *http.Response) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return b, resp
}

// probe is what ffprobe says of a media file.
type probe struct {
	VideoCodec, PixFmt, AudioCodec, ColorSpace string
	SAR                                        string // the video's sample aspect ratio, "1:1" when square
	Width, Height                              int
	Duration                                   float64
}

func ffprobe(t testing.TB, path string) probe {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries",
		"stream=codec_type,codec_name,pix_fmt,width,height,color_space,sample_aspect_ratio:format=duration", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var res struct {
		Streams []struct {
			CodecType, CodecName, PixFmt, ColorSpace, SAR string
			Width, Height                                 int
		}
		Format struct{ Duration string }
	}
	// ffprobe's keys are snake_case; map them onto the struct's fields.
	out = []byte(strings.NewReplacer(`"codec_type"`, `"CodecType"`, `"codec_name"`, `"CodecName"`, `"pix_fmt"`, `"PixFmt"`, `"color_space"`, `"ColorSpace"`, `"sample_aspect_ratio"`, `"SAR"`).Replace(string(out)))
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	var p probe
	for _, s := range res.Streams {
		switch s.CodecType {
		case "video":
			p.VideoCodec, p.PixFmt, p.ColorSpace, p.Width, p.Height, p.SAR = s.CodecName, s.PixFmt, s.ColorSpace, s.Width, s.Height, s.SAR
		case "audio":
			p.AudioCodec = s.CodecName
		}
	}
	p.Duration, _ = strconv.ParseFloat(res.Format.Duration, 64)
	return p
}

// fixtureSeconds holds mediaDuration's answers for fixtures, which never change once made.
var fixtureSeconds sync.Map

// mediaDuration is the container duration of a media file, per ffprobe (asked once for a fixture).
func mediaDuration(t testing.TB, path string) float64 {
	t.Helper()
	if d, ok := fixtureSeconds.Load(path); ok {
		return d.(float64)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(path) == fixtureDir {
		fixtureSeconds.Store(path, d)
	}
	return d
}

// checkVideo asserts the output plays everywhere: H.264 yuv420p + AAC, even dimensions, square
// pixels (a player would stretch the picture otherwise), fast start, and the audio's duration within
// 0.1 s.
func checkVideo(t testing.TB, video []byte, audioPath string) probe {
	t.Helper()
	path := writeFixture(t, "out.mp4", video)
	p := ffprobe(t, path)
	if p.VideoCodec != "h264" || p.PixFmt != "yuv420p" || p.AudioCodec != "aac" {
		t.Errorf("streams: %+v, want h264 yuv420p + aac", p)
	}
	if p.SAR != "1:1" {
		t.Errorf("sample aspect ratio %q, want 1:1: players would show the picture stretched", p.SAR)
	}
	if p.Width%2 != 0 || p.Height%2 != 0 || p.Width > 1920 || p.Height > 1920 {
		t.Errorf("dimensions %dx%d: want even, long side at most 1920", p.Width, p.Height)
	}
	if want := mediaDuration(t, audioPath); p.Duration < want-0.1 || p.Duration > want+0.1 {
		t.Errorf("duration %.3f s, audio is %.3f s", p.Duration, want)
	}
	moov, mdat := bytes.Index(video, []byte("moov")), bytes.Index(video, []byte("mdat"))
	if moov < 0 || mdat < 0 || moov > mdat {
		t.Errorf("moov at %d, mdat at %d: want the index first (fast start)", moov, mdat)
	}
	return p
}

// checkPoster downloads the poster at url and checks it is a JPEG of w×h pixels.
func checkPoster(t testing.TB, url string, w, h int) {
	t.Helper()
	b, resp := download(t, url)
	if ct := resp.Header.Get("Content-Type"); ct != "image/jpeg" {
		t.Errorf("poster Content-Type %q", ct)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("poster %s is not a JPEG: %v", url, err)
	}
	if cfg.Width != w || cfg.Height != h {
		t.Errorf("poster is %dx%d, want the video's %dx%d", cfg.Width, cfg.Height, w, h)
	}
}

// errorBody asserts a JSON error response with the given status and returns its message.
func errorBody(t testing.TB, resp *http.Response, b []byte, status int) string {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, b)
	}
	v := decodeJSON(t, resp, b)
	msg, ok := v["error"].(string)
	if !ok || msg == "" {
		t.Fatalf("no error message in %s", b)
	}
	return msg
}

func TestHealth(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	for _, path := range []string{"/health", "/api/health"} {
		resp, b := e.do(t, "GET", path, "", nil)
		if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"files":"disk","status":"ok","store":"sqlite"}` {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
}

// TestHealthDataDirectory: health is 503 while the data directory is not the one the service opened
// (a folder gone, the database deleted or replaced by a restore) and 200 again once it is.
func TestHealthDataDirectory(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	root := e.srv.dirs.root
	db := e.srv.dirs.db()
	health := func(want int, what string) {
		t.Helper()
		resp, b := e.do(t, "GET", "/api/health", "", nil)
		if resp.StatusCode != want {
			t.Errorf("%s: health %d %s, want %d", what, resp.StatusCode, b, want)
		}
		if want == 503 {
			if msg := errorBody(t, resp, b, 503); strings.Contains(msg, root) {
				t.Errorf("%s: the 503 names the path: %q", what, msg)
			}
		}
	}
	move := func(from, to string) {
		t.Helper()
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
	health(200, "at start")
	move(e.srv.dirs.outputs(), root+"/outputs.moved")
	health(503, "outputs/ moved away")
	move(root+"/outputs.moved", e.srv.dirs.outputs())
	health(200, "outputs/ back")
	move(db, db+".moved")
	health(503, "the database moved away")
	copyFile(t, db+".moved", db) // a restore: the same bytes in another file
	health(503, "the database replaced")
	move(db+".moved", db)
	health(200, "the database back")
	if logs := e.logs.String(); !strings.Contains(logs, "was replaced while the service ran") || !strings.Contains(logs, "outputs: no such file") {
		t.Errorf("the causes are not in the log:\n%s", logs)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	resp, b := e.do(t, "GET", "/api/jobs", "", nil)
	if msg := errorBody(t, resp, b, 401); msg != "Missing X-API-Key header" {
		t.Errorf("missing key: %q", msg)
	}
	resp, b = e.do(t, "GET", "/api/jobs", "vg_nope", nil)
	if msg := errorBody(t, resp, b, 401); msg != "API key not recognized or has been deactivated" {
		t.Errorf("unknown key: %q", msg)
	}
	resp, b = e.do(t, "GET", "/api/jobs", e.key, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("valid key: %d %s", resp.StatusCode, b)
	}
	k, err := e.srv.store.KeyByHash(context.Background(), hashKey(e.key))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.store.DeactivateKey(context.Background(), k.ID); err != nil {
		t.Fatal(err)
	}
	resp, b = e.do(t, "GET", "/api/jobs", e.key, nil)
	if msg := errorBody(t, resp, b, 401); msg != "API key not recognized or has been deactivated" {
		t.Errorf("deactivated key: %q", msg)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	resp, b := e.do(t, "GET", "/api/nope", e.key, nil)
	errorBody(t, resp, b, 404)
	resp, b = e.do(t, "PUT", "/api/jobs", e.key, nil)
	errorBody(t, resp, b, 405)
	resp, b = e.do(t, "GET", "/api/status/cnotarealjobid00000000000", e.key, nil)
	errorBody(t, resp, b, 404)
	resp, b = e.do(t, "GET", "/api/status/../../etc", e.key, nil)
	if resp.StatusCode != 404 {
		t.Errorf("odd job id: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "GET", "/v/0123456789abcdef0123456789abcdef.mp4", "", nil)
	errorBody(t, resp, b, 404)
}

// TestQuickStart is the README's path: submit, poll, download a video that plays, open the share page.
func TestQuickStart(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.jpg"), "audio": fixture(t, "tone.mp3")}, nil)
	resp, b := e.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype)
	if resp.StatusCode != 201 {
		t.Fatalf("submit: %d %s", resp.StatusCode, b)
	}
	created := decodeJSON(t, resp, b)
	id, _ := created["jobId"].(string)
	if created["message"] != "Job created" || !isJobID(id) {
		t.Fatalf("created: %s", b)
	}
	if loc := resp.Header.Get("Location"); loc != "/api/status/"+id {
		t.Errorf("Location %q", loc)
	}
	st := e.status(t, e.key, id)
	for _, f := range []string{"jobId", "status", "progress", "outputVideo", "outputShareLink", "outputThumbnail", "errorMessage", "createdAt", "updatedAt"} {
		if _, ok := st[f]; !ok {
			t.Errorf("status body lacks %s: %v", f, st)
		}
	}
	if st["outputThumbnail"] != nil && st["status"] != string(StatusCompleted) {
		t.Errorf("outputThumbnail before COMPLETED: %v", st)
	}
	st = e.wait(t, e.key, id, StatusCompleted)
	if st["progress"].(float64) != 100 || st["errorMessage"] != nil {
		t.Errorf("completed status: %v", st)
	}
	created2, _ := time.Parse("2006-01-02T15:04:05.000Z", st["createdAt"].(string))
	if created2.IsZero() {
		t.Errorf("createdAt %q is not UTC with milliseconds", st["createdAt"])
	}
	video, vresp := download(t, st["outputVideo"].(string))
	if ct := vresp.Header.Get("Content-Type"); ct != "video/mp4" {
		t.Errorf("video Content-Type %q", ct)
	}
	p := checkVideo(t, video, fixture(t, "tone.mp3"))
	if p.Width != 320 || p.Height != 240 {
		t.Errorf("size %dx%d, want the image's 320x240", p.Width, p.Height)
	}
	if p.ColorSpace != "bt709" {
		t.Errorf("color space %q, want bt709", p.ColorSpace)
	}

	rresp, part := mustRequest(t, "GET", st["outputVideo"].(string), "", nil, "Range", "bytes=0-99")
	if rresp.StatusCode != 206 || !bytes.Equal(part, video[:100]) {
		t.Errorf("range request: %d, %d bytes", rresp.StatusCode, len(part))
	}
	// A range past the end is a JSON error like any other, with the size a player needs.
	rresp, part = mustRequest(t, "GET", st["outputVideo"].(string), "", nil, "Range", fmt.Sprintf("bytes=%d-", len(video)))
	if cr := rresp.Header.Get("Content-Range"); rresp.StatusCode != 416 || cr != fmt.Sprintf("bytes */%d", len(video)) ||
		!strings.HasPrefix(rresp.Header.Get("Content-Type"), "application/json") || !strings.Contains(string(part), `"error":"The range is past the end`) {
		t.Errorf("range past the end: %d %q %q %s", rresp.StatusCode, cr, rresp.Header.Get("Content-Type"), part)
	}
	// A Range header that is not one (another unit, malformed, reversed) is ignored: the whole file.
	for _, h := range []string{"items=0-1", "bytes=abc", "bytes=5-2", "bytes=-", "bytes=0-1,x", "bytes=9223372036854775808-", "bytes=+0-1"} {
		rresp, part = mustRequest(t, "GET", st["outputVideo"].(string), "", nil, "Range", h)
		if rresp.StatusCode != 200 || !bytes.Equal(part, video) {
			t.Errorf("Range: %s: %d, %d bytes of %d", h, rresp.StatusCode, len(part), len(video))
		}
	}

	page, presp := download(t, st["outputShareLink"].(string))
	if !strings.HasPrefix(presp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("share page Content-Type %q", presp.Header.Get("Content-Type"))
	}
	for _, want := range []string{`property="og:video" content="` + st["outputVideo"].(string) + `"`, `property="og:title"`, "<video",
		// A player card needs a page X may frame, and this one may not be framed: the poster, large.
		`name="twitter:card" content="summary_large_image"`, `name="twitter:image" content="` + st["outputThumbnail"].(string) + `"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("share page lacks %s", want)
		}
	}
	// The video is served over plain HTTP here: the page does not call it secure.
	if strings.Contains(string(page), "secure_url") {
		t.Error("the share page names an http:// video as og:video:secure_url")
	}
	// The poster is published as outputThumbnail, and it is the one the page names.
	thumb, _ := st["outputThumbnail"].(string)
	if want := strings.TrimSuffix(st["outputVideo"].(string), ".mp4") + ".jpg"; thumb != want || !strings.Contains(string(page), thumb) {
		t.Errorf("outputThumbnail %q, want %q, named by the share page", thumb, want)
	}
	checkPoster(t, thumb, 320, 240)
	// The job's inputs are gone once it has ended.
	checkInputsGone(t, filepath.Join(e.srv.cfg.DataDir, "inputs"))
}

// TestFormatMatrix renders every accepted image type with every long-standing audio type, and each
// newer type once (a full cross product would cost a minute of CPU for no more coverage: image and
// audio go through separate steps).
func TestFormatMatrix(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	var pairs [][2]string
	for _, img := range []string{"img.jpg", "img.png", "img.webp"} {
		for _, aud := range []string{"tone.mp3", "tone.wav", "tone.m4a", "tone.ogg", "tone.opus"} {
			pairs = append(pairs, [2]string{img, aud})
		}
	}
	for _, img := range []string{"img.gif", "img.bmp", "img.tiff"} {
		pairs = append(pairs, [2]string{img, "tone.wav"})
	}
	for _, aud := range []string{"tone.flac", "tone.aiff", "tone.aac", "tone.webm", "tone.mka"} {
		pairs = append(pairs, [2]string{"img.png", aud})
	}
	for _, p := range sampled(pairs, matrixSample) {
		img, aud := p[0], p[1]
		t.Run(img+"+"+aud, func(t *testing.T) {
			t.Parallel()
			key := e.newKey(t, img+aud)
			id := e.mustSubmit(t, key, fixture(t, img), fixture(t, aud))
			st := e.wait(t, key, id, StatusCompleted)
			video, _ := download(t, st["outputVideo"].(string))
			p := checkVideo(t, video, fixture(t, aud))
			if p.Width != 320 || p.Height != 240 {
				t.Errorf("size %dx%d, want 320x240", p.Width, p.Height)
			}
		})
	}
}

func TestOddAndLargeImages(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	for img, want := range map[string][2]int{"odd.png": {332, 200}, "big.jpg": {1920, 1280}, "sar.jpg": {320, 240}, "sar.png": {320, 240}} {
		t.Run(img, func(t *testing.T) {
			t.Parallel()
			key := e.newKey(t, img)
			id := e.mustSubmit(t, key, fixture(t, img), fixture(t, "tone.wav"))
			st := e.wait(t, key, id, StatusCompleted)
			video, _ := download(t, st["outputVideo"].(string))
			p := checkVideo(t, video, fixture(t, "tone.wav"))
			if p.Width != want[0] || p.Height != want[1] {
				t.Errorf("size %dx%d, want %dx%d", p.Width, p.Height, want[0], want[1])
			}
		})
	}
}

func requireIntegrity(t testing.TB, st *Store) {
	t.Helper()
	res, err := st.IntegrityCheck(context.Background())
	if err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q %v", res, err)
	}
}
