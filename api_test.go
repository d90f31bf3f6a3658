package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net/http/httptest"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// hangConfig is a test config whose renders never finish, so jobs stay PROCESSING (or PENDING
// behind them) for as long as a test needs.
func hangConfig(t testing.TB, workers int) *config {
	cfg := testConfig(t.TempDir())
	abs, err := filepath.Abs("testdata/ffmpeg-hang")
	if err != nil {
		t.Fatal(err)
	}
	cfg.FFmpeg, cfg.Workers = abs, workers
	return &cfg
}

// pngHeader returns a PNG signature and IHDR chunk claiming w×h, with a valid CRC, and no pixels.
func pngHeader(w, h uint32) []byte {
	var ihdr bytes.Buffer
	ihdr.WriteString("IHDR")
	binary.Write(&ihdr, binary.BigEndian, w)
	binary.Write(&ihdr, binary.BigEndian, h)
	ihdr.Write([]byte{8, 2, 0, 0, 0})
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	binary.Write(&b, binary.BigEndian, uint32(ihdr.Len()-4))
	b.Write(ihdr.Bytes())
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(ihdr.Bytes()))
	return b.Bytes()
}

// dirFiles lists the regular files under dir.
func dirFiles(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	return files
}

// checkInputsGone fails the test unless inputs (a data directory's inputs/) is empty within a few
// seconds: a job's uploads are deleted just after its final state is committed, so a client may see
// the job ended a moment before they are gone.
func checkInputsGone(t testing.TB, inputs string) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		if files := dirFiles(t, inputs); len(files) != 0 {
			return fmt.Errorf("inputs left after the job ended: %v", files)
		}
		return nil
	})
}

func TestBadInputs(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	jpg := readFile(t, fixture(t, "img.jpg"))
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(i*7919 + i/13)
	}
	big := writeFixture(t, "big.wav", make([]byte, 51<<20))
	// A PNG whose chunks are all there but whose compressed pixels are damaged.
	damaged := readFile(t, fixture(t, "img.png"))
	idat := bytes.Index(damaged, []byte("IDAT"))
	for i := idat + 20; i < idat+60; i++ {
		damaged[i] ^= 0x5a
	}
	// A WAV cut between two samples, 100 after its header: it decodes without an error.
	wav := readFile(t, fixture(t, "tone.wav"))
	cases := []struct {
		name         string
		image, audio string
		fields       map[string]string
		status       int
		mention      string // a word the error must contain
	}{
		{"text named .jpg", writeFixture(t, "text.jpg", []byte("hello, this is not a picture\n")), fixture(t, "tone.mp3"), nil, 415, "image"},
		{"empty image", writeFixture(t, "empty.jpg", nil), fixture(t, "tone.mp3"), nil, 400, "image"},
		{"empty audio", fixture(t, "img.jpg"), writeFixture(t, "empty.mp3", nil), nil, 400, "audio"},
		{"51 MB audio", fixture(t, "img.jpg"), big, nil, 413, "50 MB"},
		{"PNG claiming 60000x60000", writeFixture(t, "huge.png", pngHeader(60000, 60000)), fixture(t, "tone.mp3"), nil, 400, "megapixels"},
		{"PNG with damaged pixels", writeFixture(t, "damaged.png", damaged), fixture(t, "tone.mp3"), nil, 400, "image"},
		{"truncated JPEG", writeFixture(t, "cut.jpg", jpg[:len(jpg)/2]), fixture(t, "tone.mp3"), nil, 400, "image"},
		{"WAV cut after its header", fixture(t, "img.jpg"), writeFixture(t, "cut.wav", wav[:bytes.Index(wav, []byte("data"))+8+400]), nil, 400, "truncated"},
		{"video without sound as audio", fixture(t, "img.jpg"), fixture(t, "video.mp4"), nil, 415, "MP4/M4A with no audio track"},
		{"video as image", fixture(t, "video.mp4"), fixture(t, "tone.mp3"), nil, 415, "MP4/M4A (video or audio)"},
		{"random bytes named .mp3", fixture(t, "img.jpg"), writeFixture(t, "noise.mp3", random), nil, 415, "audio"},
		{"image sent as audio", fixture(t, "img.jpg"), fixture(t, "img.png"), nil, 415, "PNG image"},
		{"audio sent as image", fixture(t, "tone.mp3"), fixture(t, "tone.mp3"), nil, 415, "image"},
		{"HLS playlist named .mp3", fixture(t, "img.jpg"), writeFixture(t, "list.mp3", []byte("#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:1/x.ts\n")), nil, 415, "audio"},
		{"missing audio", fixture(t, "img.jpg"), "", nil, 400, "audio"},
		{"missing image", "", fixture(t, "tone.mp3"), nil, 400, "image"},
		{"http webhook", fixture(t, "img.jpg"), fixture(t, "tone.mp3"), map[string]string{"webhookUrl": "http://example.com/hook"}, 400, "https"},
		{"relative webhook", fixture(t, "img.jpg"), fixture(t, "tone.mp3"), map[string]string{"webhookUrl": "/hook"}, 400, "https"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{}
			if c.image != "" {
				files["image"] = c.image
			}
			if c.audio != "" {
				files["audio"] = c.audio
			}
			body, ctype := multipartBody(t, files, c.fields)
			resp, b := e.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype)
			msg := errorBody(t, resp, b, c.status)
			if !strings.Contains(msg, c.mention) {
				t.Errorf("error %q does not mention %q", msg, c.mention)
			}
		})
	}
	t.Run("not multipart", func(t *testing.T) {
		resp, b := e.do(t, "POST", "/api/jobs", e.key, strings.NewReader(`{"image":"x"}`), "Content-Type", "application/json")
		errorBody(t, resp, b, 400)
	})
	t.Run("malformed multipart", func(t *testing.T) {
		resp, b := e.do(t, "POST", "/api/jobs", e.key, strings.NewReader("--x\r\nnonsense"), "Content-Type", "multipart/form-data; boundary=x")
		errorBody(t, resp, b, 400)
	})
	// No rejected upload leaves a file behind, and none became a job.
	if files := dirFiles(t, filepath.Join(e.srv.cfg.DataDir, "tmp")); len(files) != 0 {
		t.Errorf("files left in tmp: %v", files)
	}
	if files := dirFiles(t, filepath.Join(e.srv.cfg.DataDir, "inputs")); len(files) != 0 {
		t.Errorf("files left in inputs: %v", files)
	}
	resp, b := e.do(t, "GET", "/api/jobs", e.key, nil)
	if list := decodeJSON(t, resp, b); len(list["jobs"].([]any)) != 0 {
		t.Errorf("rejected submissions made jobs: %s", b)
	}
}

// TestOneActiveJobRace sends 4 submissions for one key at the same instant: the database's
// partial unique index lets exactly one through. (Each upload is probed by two ffprobe runs before
// its insert: four already race for the one slot, and each one more costs half a second of CPU.)
func TestOneActiveJobRace(t *testing.T) {
	t.Parallel()
	// Each submission comes from its own address (through a trusted proxy), as users sharing a key
	// would: one address may have only a few uploads under way.
	cfg := hangConfig(t, 1)
	cfg.TrustProxy = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	e := newTestEnv(t, cfg)
	const n = 4
	if count := raceSubmissions(t, e, n); count[201] != 1 || count[409] != n-1 {
		t.Errorf("got %v, want one 201 and %d 409s", count, n-1)
	}
}

// raceSubmissions sends n submissions for e's key at the same instant, each from its own address
// (e must trust a proxy on loopback), and counts the answers by status; any but 201 and 409 fails t.
func raceSubmissions(t *testing.T, e *testEnv, n int) map[int]int {
	t.Helper()
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		// Built here: the goroutines may not call t.Fatal.
		mp, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav")}, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, b, err := request(nil, "POST", e.hs.URL+"/api/jobs", e.key, mp, "Content-Type", ctype, "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
			if err != nil {
				t.Errorf("submission %d: %v", i, err)
				return
			}
			codes[i] = resp.StatusCode
			if resp.StatusCode != 201 && resp.StatusCode != 409 {
				t.Errorf("submission %d: %d %s", i, resp.StatusCode, b)
			}
		}()
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	return count
}

func TestCancel(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, hangConfig(t, 1))
	running := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.wav"))
	e.wait(t, e.key, running, StatusProcessing)
	bob := e.newKey(t, "bob")
	queued := e.mustSubmit(t, bob, fixture(t, "img.jpg"), fixture(t, "tone.wav"))
	if st := e.status(t, bob, queued); st["status"] != string(StatusPending) || st["progress"].(float64) != 0 {
		t.Fatalf("second job with one worker busy: %v", st)
	}

	// Another key cannot cancel (or see) bob's job.
	resp, b := e.do(t, "POST", "/api/jobs/"+queued+"/cancel", e.key, nil)
	errorBody(t, resp, b, 404)

	resp, b = e.do(t, "POST", "/api/jobs/"+queued+"/cancel", bob, nil)
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"message":"Job cancelled successfully","success":true}` {
		t.Fatalf("cancel: %d %s", resp.StatusCode, b)
	}
	if st := e.status(t, bob, queued); st["status"] != string(StatusCancelled) {
		t.Errorf("after cancel: %v", st)
	}
	resp, b = e.do(t, "POST", "/api/jobs/"+queued+"/cancel", bob, nil)
	errorBody(t, resp, b, 409)
	resp, b = e.do(t, "DELETE", "/api/jobs/"+running, e.key, nil)
	errorBody(t, resp, b, 409) // PROCESSING can no longer be cancelled
	resp, b = e.do(t, "POST", "/api/jobs/cnotarealjobid00000000000/cancel", bob, nil)
	errorBody(t, resp, b, 404)

	// The key is free again: a new job, cancelled with DELETE.
	again := e.mustSubmit(t, bob, fixture(t, "img.jpg"), fixture(t, "tone.wav"))
	resp, b = e.do(t, "DELETE", "/api/jobs/"+again, bob, nil)
	if resp.StatusCode != 200 {
		t.Errorf("DELETE: %d %s", resp.StatusCode, b)
	}
	// The cancelled jobs' inputs are deleted; only the running job's remain.
	if files := dirFiles(t, filepath.Join(e.srv.cfg.DataDir, "inputs")); len(files) != 2 {
		t.Errorf("inputs: %v, want the running job's two", files)
	}
}

// insertJobs puts n finished jobs for key straight into the database, one millisecond apart.
func insertJobs(t testing.TB, e *testEnv, apiKey string, n int, statuses ...JobStatus) []string {
	t.Helper()
	ctx := context.Background()
	k, err := e.srv.store.KeyByHash(ctx, hashKey(apiKey))
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	var ids []string
	for i := range n {
		at := base.Add(time.Duration(i) * time.Millisecond)
		id, err := newJobID(at, e.srv.rand)
		if err != nil {
			t.Fatal(err)
		}
		status := statuses[i%len(statuses)]
		_, err = e.srv.store.db.ExecContext(ctx, `INSERT INTO jobs (id, key_id, status, image_type,
			audio_type, audio_codec, audio_duration, error_message, retries, created_at, updated_at, finished_at)
			VALUES (?, ?, ?, 'jpeg', 'mp3', 'mp3', 1, ?, 0, ?, ?, ?)`,
			id, k.ID, status, map[bool]any{true: "boom", false: nil}[status == StatusFailed], at.UnixMilli(), at.UnixMilli(), at.UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	ids := insertJobs(t, e, e.key, 25, StatusCompleted, StatusFailed, StatusCancelled)
	bob := e.newKey(t, "bob")
	insertJobs(t, e, bob, 3, StatusCompleted)

	list := func(query string) map[string]any {
		resp, b := e.do(t, "GET", "/api/jobs"+query, e.key, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("list %s: %d %s", query, resp.StatusCode, b)
		}
		return decodeJSON(t, resp, b)
	}
	// Walk all pages of 10: newest first, no repeats, every job once.
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		q := "?limit=10"
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		res := list(q)
		pg := res["pagination"].(map[string]any)
		for _, j := range res["jobs"].([]any) {
			item := j.(map[string]any)
			for _, f := range []string{"id", "status", "outputVideo", "outputShareLink", "outputThumbnail", "errorMessage", "retries", "createdAt", "updatedAt", "webhookUrl"} {
				if _, ok := item[f]; !ok {
					t.Errorf("list item lacks %s: %v", f, item)
				}
			}
			got = append(got, item["id"].(string))
		}
		if pg["limit"].(float64) != 10 {
			t.Errorf("pagination.limit %v", pg["limit"])
		}
		if !pg["hasNextPage"].(bool) {
			if pg["nextCursor"] != nil {
				t.Errorf("last page has nextCursor %v", pg["nextCursor"])
			}
			break
		}
		cursor = pg["nextCursor"].(string)
		if page > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if len(got) != 25 {
		t.Fatalf("walked %d jobs, want 25", len(got))
	}
	for i, id := range got {
		if id != ids[len(ids)-1-i] {
			t.Fatalf("job %d is %s, want %s (newest first)", i, id, ids[len(ids)-1-i])
		}
	}
	// Default limit, and a status filter across pages.
	if res := list(""); len(res["jobs"].([]any)) != 20 {
		t.Errorf("default page has %d jobs, want 20", len(res["jobs"].([]any)))
	}
	failed := list("?status=FAILED&limit=5")
	for _, j := range failed["jobs"].([]any) {
		if j.(map[string]any)["status"] != string(StatusFailed) || j.(map[string]any)["errorMessage"] != "boom" {
			t.Errorf("filtered item %v", j)
		}
	}
	next := failed["pagination"].(map[string]any)["nextCursor"].(string)
	rest := list("?status=FAILED&limit=5&cursor=" + next)
	if n := len(failed["jobs"].([]any)) + len(rest["jobs"].([]any)); n != 8 {
		t.Errorf("FAILED jobs across pages: %d, want 8", n)
	}
	for _, q := range []string{"?limit=0", "?limit=101", "?limit=abc", "?status=DONE", "?cursor=nope", "?limit=5&limit=6"} {
		resp, b := e.do(t, "GET", "/api/jobs"+q, e.key, nil)
		errorBody(t, resp, b, 400)
	}
}

func TestKeysAreIsolated(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	mine := insertJobs(t, e, e.key, 2, StatusCompleted)
	bob := e.newKey(t, "bob")
	insertJobs(t, e, bob, 1, StatusCompleted)
	for _, path := range []string{"/api/status/" + mine[0], "/api/jobs/" + mine[0], "/api/jobs/" + mine[0] + "/deliveries"} {
		resp, b := e.do(t, "GET", path, bob, nil)
		errorBody(t, resp, b, 404)
	}
	resp, b := e.do(t, "GET", "/api/jobs", bob, nil)
	res := decodeJSON(t, resp, b)
	if jobs := res["jobs"].([]any); len(jobs) != 1 || jobs[0].(map[string]any)["id"] == mine[0] || jobs[0].(map[string]any)["id"] == mine[1] {
		t.Errorf("bob's list: %s", b)
	}
}

// TestKeyNotStoredInClear checks every file of the data directory for the API key.
func TestKeyNotStoredInClear(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.wav"))
	e.wait(t, e.key, id, StatusCompleted)
	e.close()
	for _, path := range dirFiles(t, e.srv.cfg.DataDir) {
		if bytes.Contains(readFile(t, path), []byte(e.key)) {
			t.Errorf("%s holds the API key in clear", path)
		}
	}
}

// TestRestartKeepsJobs stops the service and starts a new one on the same data directory.
func TestRestartKeepsJobs(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	e := newTestEnv(t, &cfg)
	id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.m4a"))
	before := e.wait(t, e.key, id, StatusCompleted)
	video, _ := download(t, before["outputVideo"].(string))
	e.close()

	cfg2 := testConfig(cfg.DataDir)
	e2 := newTestEnv(t, &cfg2)
	after := e2.status(t, e.key, id)
	if after["status"] != string(StatusCompleted) || after["createdAt"] != before["createdAt"] || after["updatedAt"] != before["updatedAt"] {
		t.Errorf("after restart: %v, before: %v", after, before)
	}
	video2, _ := download(t, after["outputVideo"].(string))
	if !bytes.Equal(video, video2) {
		t.Error("video changed across the restart")
	}
}

func TestCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	env := func(name string) string {
		if name == "VIDGEN_DATA" {
			return dir
		}
		return ""
	}
	cli := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, args, env, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	out, err := cli("keys", "create", "-name", "ci", "-json")
	if err != nil {
		t.Fatalf("keys create: %v %s", err, out)
	}
	var created map[string]string
	if err := json.Unmarshal([]byte(out), &created); err != nil || len(created) != 4 {
		t.Fatalf("keys create -json printed %q", out)
	}
	for _, f := range []string{"id", "name", "apiKey", "webhookSecret"} {
		if created[f] == "" {
			t.Errorf("keys create -json lacks %s", f)
		}
	}
	if _, err := cli("keys", "create", "-name", "ci"); err == nil {
		t.Error("a second key with the same name was accepted")
	}
	for name, want := range map[string]string{"": "-name is required", created["id"]: "may not start with key_",
		strings.Repeat("n", 65): "at most 64", " ci2": "without spaces", "a\x1b[2Jb": "printable", "-json": "may not start with -", "a\xffb": "printable"} {
		if _, err := cli("keys", "create", "-name", name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("keys create -name %q: %v, want %q", name, err, want)
		}
	}
	if _, err := cli("keys", "create", "-name", "Marketing team"); err != nil {
		t.Errorf("a name with a space inside: %v", err)
	}
	out, err = cli("keys", "list", "-json")
	if err != nil || !strings.Contains(out, `"name":"ci"`) || !strings.Contains(out, `"active":true`) || strings.Contains(out, created["apiKey"]) {
		t.Errorf("keys list: %v %s", err, out)
	}
	out, err = cli("keys", "rotate-secret", "ci", "-json")
	if err != nil || !strings.Contains(out, "whsec_") || strings.Contains(out, created["webhookSecret"]) {
		t.Errorf("rotate-secret: %v %s", err, out)
	}
	// Flags after the positional argument work too.
	if out, err := cli("keys", "deactivate", created["id"], "-data", dir); err != nil {
		t.Errorf("deactivate: %v %s", err, out)
	}
	out, _ = cli("keys", "list")
	if !strings.Contains(out, "false") {
		t.Errorf("deactivated key still listed active: %s", out)
	}
	if _, err := cli("keys", "deactivate", "nobody"); err == nil {
		t.Error("deactivating a missing key succeeded")
	}
	if out, err := cli("keys", "list", "-name", "ci"); err == nil || !strings.Contains(err.Error(), "-name is only for keys create") {
		t.Errorf("keys list -name: %v %s", err, out)
	}
	out, err = cli("version")
	if err != nil || !strings.Contains(out, "vidgen") || !strings.Contains(out, "ffmpeg version") {
		t.Errorf("version: %v %s", err, out)
	}
	// Pointed at a directory without a database, only create starts one: a list there is an error
	// that says what to pass, and leaves nothing behind.
	elsewhere := filepath.Join(t.TempDir(), "typo")
	if out, err := cli("keys", "list", "-data", elsewhere); err == nil || !strings.Contains(err.Error(), "-data (or VIDGEN_DATA)") {
		t.Errorf("keys list in an empty directory: %v %s", err, out)
	}
	if _, err := os.Stat(elsewhere); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("keys list made %s: %v", elsewhere, err)
	}
	if out, err := cli("keys", "-h"); err != nil || !strings.Contains(out, "usage: vidgen keys create") {
		t.Errorf("keys -h: %v %s", err, out)
	}
	// Every command takes -data, so a script can pass it to all of them.
	if out, err := cli("version", "-data", t.TempDir()); err != nil {
		t.Errorf("version -data: %v %s", err, out)
	}
	_, err = cli("serve", "-ffmpeg", "/nonexistent/ffmpeg", "-addr", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y ffmpeg") {
		t.Errorf("serve without ffmpeg: %v", err)
	}
	if _, err := cli("bogus"); err == nil {
		t.Error("unknown command accepted")
	}
	untouched := filepath.Join(t.TempDir(), "never")
	if _, err := cli("keys", "bogus", "-data", untouched); err == nil {
		t.Error("unknown keys subcommand accepted")
	}
	if _, err := os.Stat(untouched); err == nil {
		t.Error("a mistyped keys subcommand created the data directory")
	}
	if out, err := cli("-h"); err != nil || !strings.Contains(out, "-public-url") {
		t.Errorf("-h: %v %s", err, out)
	}
}

// TestServeFirstStart runs the real serve command: it creates and prints the default key, serves
// the API with it, and exits cleanly on cancel.
func TestServeFirstStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-addr", "127.0.0.1:0", "-metrics-addr", "off", "-data", dir}, func(string) string { return "" }, &stderr, &stderr)
	}()
	var key, addr string
	eventually(t, 10*time.Second, func() error {
		for _, line := range strings.Split(stderr.String(), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "X-API-Key:"); ok {
				key = strings.TrimSpace(v)
			}
			if i := strings.Index(line, "addr="); i >= 0 && strings.Contains(line, "vidgen listening") {
				addr = strings.Fields(line[i+5:])[0]
			}
		}
		if key == "" || addr == "" {
			return fmt.Errorf("no key or address printed:\n%s", stderr.String())
		}
		return nil
	})
	if resp, _ := mustRequest(t, "GET", "http://"+addr+"/api/jobs", key, nil); resp.StatusCode != 200 {
		t.Errorf("printed key: %d", resp.StatusCode)
	}
	// A second serve on the same data directory refuses to start.
	var second syncBuffer
	err := run(ctx, []string{"serve", "-addr", "127.0.0.1:0", "-metrics-addr", "off", "-data", dir}, func(string) string { return "" }, &second, &second)
	if err == nil || !strings.Contains(err.Error(), "another vidgen serve") {
		t.Errorf("second serve on the same data: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	if strings.Count(stderr.String(), key) != 1 {
		t.Error("the key was printed more than once")
	}
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	st, err := openStore(ctx, path, time.Now, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	count := func(query string) int {
		t.Helper()
		var n int
		if err := st.db.QueryRow(query).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	migs := []string{`ALTER TABLE jobs ADD COLUMN note TEXT`, `CREATE TABLE extra (x INTEGER)`}
	// Opened as it is, a database behind the binary's schema is refused and left alone.
	if err := st.init(ctx, migs, false); !errors.Is(err, errSchemaBehind) || !strings.Contains(err.Error(), "stop the running vidgen serve") {
		t.Errorf("behind, not migrating: %v", err)
	}
	if n := count(`SELECT count(*) FROM schema_migrations`); n != 0 {
		t.Errorf("opened as it is, %d migrations were applied", n)
	}
	for range 2 { // a second run must apply nothing again
		if err := st.init(ctx, migs, true); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(`SELECT count(*) FROM schema_migrations`); n != 2 {
		t.Errorf("%d migrations recorded, want 2", n)
	}
	if err := st.init(ctx, migs, false); err != nil {
		t.Errorf("at the binary's schema, as it is: %v", err)
	}
	// A binary that knows fewer migrations (a rollback) refuses the database, migrating or not, and
	// changes nothing in it: not even schema.sql's indexes, which a later migration dropped.
	later := append(slices.Clone(migs), `DROP INDEX jobs_by_status`)
	if err := st.init(ctx, later, true); err != nil {
		t.Fatal(err)
	}
	for _, known := range [][]string{migs, migs[:1]} {
		for _, migrate := range []bool{true, false} {
			if err := st.init(ctx, known, migrate); !errors.Is(err, errSchemaAhead) || !strings.Contains(err.Error(), "later vidgen") {
				t.Errorf("newer database, %d migrations known, migrate %v: %v", len(known), migrate, err)
			}
		}
	}
	if count(`SELECT count(*) FROM sqlite_master WHERE name = 'jobs_by_status'`) != 0 {
		t.Error("an older binary recreated an index of schema.sql in a newer database")
	}
	// A failing migration leaves nothing half-applied.
	bad := append(slices.Clone(later), `CREATE TABLE half (x INTEGER); SELECT nope FROM nowhere`)
	if err := st.init(ctx, bad, true); err == nil {
		t.Fatal("bad migration succeeded")
	}
	if count(`SELECT count(*) FROM sqlite_master WHERE name = 'half'`) != 0 {
		t.Error("a failed migration left its table behind")
	}
}

// TestKeysBesideServeDoNotMigrate: a keys command of a newer binary, run while a serve holds the
// data directory (an upgrade's new binary installed, the old service still running), does not
// migrate the database under it; with no serve running it does.
func TestKeysBesideServeDoNotMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	dirs, err := openDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	old, err := openStore(ctx, dirs.db(), time.Now, migrations[:len(migrations)-1], true)
	if err != nil {
		t.Fatal(err)
	}
	old.Close()
	version := func() int {
		t.Helper()
		db, err := sql.Open("sqlite", dirs.db())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		v, err := (&Store{db: database{DB: db, d: sqliteDialect}}).schemaVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	keys := func(args ...string) (string, error) {
		var out syncBuffer
		err := run(ctx, append([]string{"keys"}, append(args, "-data", dir)...), func(string) string { return "" }, &out, &out)
		return out.String(), err
	}
	unlock, err := dirs.lock() // the old serve
	if err != nil {
		t.Fatal(err)
	}
	// (Through openKeysStore, to wait 0.3 s for the serve and not the command's 15 s.)
	if st, err := openKeysStore(ctx, dir, time.Now, 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "stop the running vidgen serve") {
		t.Errorf("a keys command beside an older serve: %v", err)
		if err == nil {
			st.Close()
		}
	}
	if v := version(); v != len(migrations)-1 {
		t.Errorf("the database was migrated to %d under the running serve", v)
	}
	unlock()
	if out, err := keys("create", "-name", "after"); err != nil {
		t.Fatalf("keys create with no serve running: %v\n%s", err, out)
	}
	if v := version(); v != len(migrations) {
		t.Errorf("with no serve running, the database is at %d, want %d", v, len(migrations))
	}
	// At the binary's schema, keys work beside a serve.
	unlock, err = dirs.lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if out, err := keys("list"); err != nil || !strings.Contains(out, "after") {
		t.Errorf("keys list beside a serve: %v\n%s", err, out)
	}
}

// TestKeysWaitForStartingServe: a provisioning script's first `keys create` racing the service's
// first start waits for the serve to create the database rather than calling it old.
func TestKeysWaitForStartingServe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dirs, err := openDataDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := dirs.lock() // the serve, starting
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	done := make(chan error, 1)
	var out syncBuffer
	go func() {
		done <- run(ctx, []string{"keys", "create", "-name", "first", "-json", "-data", dirs.root}, func(string) string { return "" }, &out, &out)
	}()
	time.Sleep(300 * time.Millisecond) // the keys command is waiting (or not yet started: as good)
	st, err := OpenStore(ctx, dirs.db(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := <-done; err != nil || !strings.Contains(out.String(), `"apiKey"`) {
		t.Errorf("keys create while the serve created the database: %v\n%s", err, out.String())
	}
}

func TestJobIDs(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	var prev string
	for i := range 1000 {
		id, err := newJobID(time.UnixMilli(1_800_000_000_000+int64(i)), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if !isJobID(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		if id[:10] < prev {
			t.Fatalf("ids not time ordered: %s after %s", id, prev)
		}
		prev, seen[id] = id[:10], true
	}
	for _, bad := range []string{"", "c", "C" + strings.Repeat("a", 24), "c" + strings.Repeat("A", 24), "c" + strings.Repeat("a", 25), "c" + strings.Repeat("-", 24)} {
		if isJobID(bad) {
			t.Errorf("isJobID(%q)", bad)
		}
	}
}

func TestRetryAfterCrash(t *testing.T) {
	t.Parallel()
	// A fake ffmpeg that dies from a signal on its first render run and is the real one after (and
	// for the upload's decode check, output format null).
	dir := t.TempDir()
	script := filepath.Join(dir, "ffmpeg")
	marker := filepath.Join(dir, "crashed")
	os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\nfor a; do [ \"$a\" = null ] && exec ffmpeg \"$@\"; done\nif [ ! -e %q ]; then touch %q; kill -9 $$; fi\nexec ffmpeg \"$@\"\n", marker, marker)), 0o755)
	cfg := testConfig(t.TempDir())
	cfg.FFmpeg = script
	e := newTestEnv(t, &cfg)
	id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.wav"))
	e.wait(t, e.key, id, StatusCompleted)
	resp, b := e.do(t, "GET", "/api/jobs", e.key, nil)
	if item := decodeJSON(t, resp, b)["jobs"].([]any)[0].(map[string]any); item["retries"].(float64) != 1 {
		t.Errorf("retries %v, want 1", item["retries"])
	}
}

func TestCrashEveryTimeFails(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	abs, _ := filepath.Abs("testdata/ffmpeg-crash")
	cfg.FFmpeg = abs
	e := newTestEnv(t, &cfg)
	id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.wav"))
	st := e.wait(t, e.key, id, StatusFailed)
	// ffmpeg-crash is killed as the kernel's OOM killer kills: the message says so.
	if msg, _ := st["errorMessage"].(string); !strings.Contains(msg, "submit the job again") || strings.Contains(msg, "ffmpeg") ||
		!strings.Contains(msg, "the renderer was killed, most likely because the server ran out of memory") {
		t.Errorf("errorMessage %q", msg)
	}
	resp, b := e.do(t, "GET", "/api/jobs", e.key, nil)
	if item := decodeJSON(t, resp, b)["jobs"].([]any)[0].(map[string]any); item["retries"].(float64) != MaxAttempts-1 {
		t.Errorf("retries %v, want %d", item["retries"], MaxAttempts-1)
	}
	// The log says how each attempt ended as stored: the last one FAILED. The line follows the
	// state's commit, which a poll can see first.
	eventually(t, 10*time.Second, func() error {
		if !strings.Contains(e.logs.String(), `msg="render ended" job=`+id+" outcome=FAILED") {
			return fmt.Errorf("no render ended line with outcome=FAILED:\n%s", e.logs.String())
		}
		return nil
	})
	if strings.Count(e.logs.String(), `msg="render ended" job=`+id+" outcome=PENDING") != MaxAttempts-1 {
		t.Errorf("render ended lines:\n%s", e.logs.String())
	}
	// The key is not locked out.
	code, _ := e.submit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.wav"), nil)
	if code != 201 {
		t.Errorf("next submission: %d", code)
	}
}

// TestOutputErrorLogsNoToken: an output that cannot be read is a bare 500, and no log line holds its
// token, which is in the URL's path and in the file's name.
func TestOutputErrorLogsNoToken(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.m4a"))
	st := e.wait(t, e.key, id, StatusCompleted)
	poster := st["outputThumbnail"].(string)
	token := strings.TrimSuffix(path.Base(poster), ".jpg")
	file := e.srv.dirs.output(token, "jpg")
	// A link to itself: opening it fails, and not as a missing file (which is a 410).
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(file, file); err != nil {
		t.Fatal(err)
	}
	resp, b := mustRequest(t, "GET", poster, "", nil)
	if msg := errorBody(t, resp, b, 500); msg != "Internal server error" {
		t.Errorf("500 says %q", msg)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `msg="request failed"`) || strings.Contains(logs, token) {
		t.Errorf("the log lacks the error or holds the token %s:\n%s", token, logs)
	}
}

// TestClientGoneNotAnError: a request whose client left while it was being handled (an upload's
// checks cut short) is a 499 in the request log, not an internal failure; a cancellation while the
// client is still there is the service's, and stays a 500.
func TestClientGoneNotAnError(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	gone := httptest.NewRequestWithContext(ctx, "POST", "/api/jobs", nil)
	w := httptest.NewRecorder()
	e.srv.writeError(w, gone, fmt.Errorf("probe audio: %w", context.Canceled))
	if w.Code != 499 || strings.Contains(e.logs.String(), `msg="request failed"`) {
		t.Errorf("client gone: %d, log:\n%s", w.Code, e.logs.String())
	}
	w = httptest.NewRecorder()
	e.srv.writeError(w, httptest.NewRequest("POST", "/api/jobs", nil), context.Canceled)
	if w.Code != 500 || !strings.Contains(e.logs.String(), `msg="request failed"`) {
		t.Errorf("client still there: %d, log:\n%s", w.Code, e.logs.String())
	}
}

// TestToolsCannotStart: when ffprobe cannot be started under a running service (removed by an
// upgrade, not executable, or no process left under TasksMax), a submission is a 503 that asks the
// client to try again, not a 400 that blames its files; the cause is in the log, not the answer.
func TestToolsCannotStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notExecutable := filepath.Join(dir, "ffprobe")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// One killed by a signal as it checks a file (the OOM killer's SIGKILL) tells as little of it.
	killedBySignal := filepath.Join(dir, "ffprobe-killed")
	if err := os.WriteFile(killedBySignal, []byte("#!/bin/sh\nkill -9 $$\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, ffprobe := range []string{filepath.Join(dir, "gone", "ffprobe"), notExecutable, killedBySignal} {
		e := newTestEnv(t, nil)
		e.srv.tools.FFprobe = ffprobe
		for _, image := range []string{"img.jpg", "img.png"} {
			mp, ctype := multipartBody(t, map[string]string{"image": fixture(t, image), "audio": fixture(t, "tone.wav")}, nil)
			resp, b := e.do(t, "POST", "/api/jobs", e.key, mp, "Content-Type", ctype)
			msg := errorBody(t, resp, b, 503)
			if !strings.Contains(msg, "try again") || strings.Contains(msg, dir) || strings.Contains(msg, "ffprobe") || resp.Header.Get("Retry-After") == "" {
				t.Errorf("%s, %s: %q, Retry-After %q", ffprobe, image, msg, resp.Header.Get("Retry-After"))
			}
		}
		cause := "start ffprobe"
		if ffprobe == killedBySignal {
			cause = "ffprobe killed"
		}
		if logs := e.logs.String(); !strings.Contains(logs, `level=ERROR msg="request failed"`) || !strings.Contains(logs, cause) {
			t.Errorf("%s: the cause was not logged:\n%s", ffprobe, logs)
		}
		resp, b := e.do(t, "GET", "/api/jobs", e.key, nil)
		if jobs := decodeJSON(t, resp, b)["jobs"].([]any); len(jobs) != 0 {
			t.Errorf("%s: jobs were made: %s", ffprobe, b)
		}
	}
}

// TestInternalErrorHidesDetails breaks the database under a running server: the client gets a bare
// 500, and the details go to the log.
func TestInternalErrorHidesDetails(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	e.srv.store.db.Close()
	resp, b := e.do(t, "GET", "/api/jobs", e.key, nil)
	if msg := errorBody(t, resp, b, 500); msg != "Internal server error" {
		t.Errorf("500 says %q", msg)
	}
	if !strings.Contains(e.logs.String(), "request failed") || !strings.Contains(e.logs.String(), "database is closed") {
		t.Errorf("the cause was not logged: %s", e.logs.String())
	}
}

func TestHeadOptionsAndMalformedQueries(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	for _, path := range []string{"/health", "/api/health"} {
		if resp, _ := e.do(t, "HEAD", path, "", nil); resp.StatusCode != 200 {
			t.Errorf("HEAD %s: %d", path, resp.StatusCode)
		}
	}
	if resp, _ := e.do(t, "HEAD", "/api/jobs", e.key, nil); resp.StatusCode != 200 {
		t.Errorf("HEAD /api/jobs: %d", resp.StatusCode)
	}
	resp, b := e.do(t, "OPTIONS", "/api/jobs", e.key, nil)
	errorBody(t, resp, b, 405)
	for _, q := range []string{"?limit=%zz", "?limit=0;", "?status=%ZZ", "?cursor=%"} {
		resp, b := e.do(t, "GET", "/api/jobs"+q, e.key, nil)
		errorBody(t, resp, b, 400)
	}
}

// TestDataDirWithOddCharacters: '#' and '?' in the data directory's path are part of the path, not
// of the SQLite URI, so the database lands inside it with its pragmas.
func TestDataDirWithOddCharacters(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a#b?c")
	_, st, err := openData(context.Background(), dir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var mode string
	if err := st.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q, %v: the DSN's pragmas were lost", mode, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "vidgen.db")); err != nil {
		t.Errorf("database not inside the data directory: %v", err)
	}
}

func TestServeFlagsFromEnvironment(t *testing.T) {
	t.Parallel()
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	cfg, err := parseServeFlags([]string{"-workers", "3"}, env(map[string]string{
		"VIDGEN_WORKERS": "7", "VIDGEN_RATE_API": "0", "VIDGEN_WEBHOOK_ALLOW_PRIVATE": "true",
		"VIDGEN_TRUST_PROXY": "10.0.0.0/8, 127.0.0.1", "VIDGEN_PUBLIC_URL": "https://v.example.com/",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Workers != 3 || cfg.RateAPI != 0 || cfg.RateSubmit != 30 || !cfg.WebhookAllowPrivate ||
		len(cfg.TrustProxy) != 2 || cfg.PublicURL != "https://v.example.com" {
		t.Errorf("config %+v", cfg)
	}
	for name, v := range map[string]string{"VIDGEN_WORKERS": "abc", "VIDGEN_WEBHOOK_ALLOW_PRIVATE": "yes please", "VIDGEN_RETENTION": "30 days", "VIDGEN_RATE_SUBMIT": "-1"} {
		if _, err := parseServeFlags(nil, env(map[string]string{name: v}), io.Discard); err == nil {
			t.Errorf("%s=%q accepted", name, v)
		}
	}
}
