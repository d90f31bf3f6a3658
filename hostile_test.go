package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Tests of what a hostile client or file can make the service spend: each closes one way of
// exhausting disk, memory, descriptors or workers, or of making the service say too much.

// TestMalformedPartHeaderNotEchoed: a part header line of 1 MB without a colon is a 400 whose body
// quotes at most a short, printable prefix of it.
func TestMalformedPartHeaderNotEchoed(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, hangConfig(t, 1))
	line := bytes.Repeat([]byte{'A', 0x07, 0xff}, 1<<20/3)
	body := "--b\r\n" + string(line) + "\r\n\r\nx\r\n--b--\r\n"
	resp, b := e.do(t, "POST", "/api/jobs", e.key, strings.NewReader(body), "Content-Type", "multipart/form-data; boundary=b")
	msg := errorBody(t, resp, b, 400)
	if len(b) >= 8<<10 {
		t.Errorf("a 1 MB header line gave a %d-byte answer", len(b))
	}
	if strings.ContainsAny(msg, "\x07\xff") {
		t.Errorf("the message quotes control or invalid bytes: %q", msg)
	}
}

// TestLongRenderTimeoutFailsOnce: a long job that runs out of render time FAILS on its first try
// instead of holding a worker three times over.
func TestLongRenderTimeoutFailsOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig(t.TempDir())
	cfg.FFmpeg, cfg.Workers = hangScript(t, dir), 1
	e := newTestEnv(t, &cfg, func(s *server) {
		s.renderer.timeout = func(float64) time.Duration { return 300 * time.Millisecond }
	})
	k := e.accountOf(t, e.key)
	j := storeJob(t, e.srv.store, k, "", time.Now())
	if _, err := e.srv.store.db.Exec(`UPDATE jobs SET audio_duration = ? WHERE id = ?`, longAudio.Seconds()+1, j.ID); err != nil {
		t.Fatal(err)
	}
	copyFile(t, fixture(t, "img.png"), e.srv.dirs.input(j.ID, inputImage))
	copyFile(t, fixture(t, "tone.wav"), e.srv.dirs.input(j.ID, inputAudio))
	e.srv.renderer.Notify()
	got := waitStored(t, e.srv.store, j.ID, StatusFailed)
	if got.Retries != 0 || !strings.Contains(got.ErrorMessage, "took longer") {
		t.Errorf("retries %d, errorMessage %q", got.Retries, got.ErrorMessage)
	}
	checkGone(t, hangPids(t, dir, 1))
}

// TestDataDirPermissions: the data directory is private to the service's user from the first
// start (it holds webhook secrets and users' uploads), and tightened when found looser.
func TestDataDirPermissions(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	check := func(when string) {
		t.Helper()
		for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "inputs"): 0o700, filepath.Join(dir, "vidgen.db"): 0o600} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: %s is %v, want %v", when, filepath.Base(path), fi.Mode().Perm(), want)
			}
		}
	}
	_, st, err := openData(context.Background(), dir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	check("first start")
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Join(dir, "inputs"), 0o777)
	os.Chmod(filepath.Join(dir, "vidgen.db"), 0o644)
	_, st, err = openData(context.Background(), dir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	check("restart")
}

// TestShareAndMethodHeaders: the share page cannot be framed and sends no Referer with its token;
// a 405 lists only the methods the route answers.
func TestShareAndMethodHeaders(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	id := e.mustSubmit(t, e.key, fixture(t, "img.png"), fixture(t, "tone.wav"))
	st := e.wait(t, e.key, id, StatusCompleted)
	resp, _ := mustRequest(t, "GET", st["outputShareLink"].(string), "", nil)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("share page CSP %q", csp)
	}
	if rp := resp.Header.Get("Referrer-Policy"); rp != "no-referrer" {
		t.Errorf("share page Referrer-Policy %q", rp)
	}
	resp, b := e.do(t, "OPTIONS", "/api/jobs", e.key, nil)
	errorBody(t, resp, b, 405)
	if allow := resp.Header.Get("Allow"); strings.Contains(allow, "OPTIONS") || !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow %q", allow)
	}
}

// TestRedeliveryFloodDoesNotStarve: one account floods the sender with redeliveries to a receiver
// that accepts connections and never answers; another account's webhook still goes out at once,
// while the first account's attempts are all still hanging.
func TestRedeliveryFloodDoesNotStarve(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := newHookReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	fast := newHookReceiver(t, nil)
	e := newTestEnv(t, hookConfig(t.TempDir(), slow, fast), hookTrust(slow, fast),
		func(s *server) { s.hooks.client.Timeout = 5 * time.Minute })
	flooder := e.key
	id, _ := e.finishWithHook(t, flooder, slow.url())
	for range 20 {
		e.redeliver(t, flooder, e.cloneJob(t, id))
	}
	resp, b := e.do(t, "POST", "/api/jobs/"+id+"/deliveries/redeliver", flooder, nil)
	if msg := errorBody(t, resp, b, 409); !strings.Contains(msg, "msg_") {
		t.Errorf("a second redelivery of a job with one queued: %q", msg)
	}

	other := e.newKey(t, "other")
	e.finishWithHook(t, other, fast.url())
	fast.waitFor(t, 1)
	if n := len(slow.requests()); n > webhookPerKey {
		t.Errorf("the flooding account has %d attempts under way, want at most %d", n, webhookPerKey)
	}
	select {
	case <-release:
		t.Fatal("the slow receiver answered")
	default:
	}
}

// TestRedeliveryRate: one account may ask for at most redeliveriesPerMinute redeliveries a minute,
// whatever addresses it asks from.
func TestRedeliveryRate(t *testing.T) {
	t.Parallel()
	recv := newHookReceiver(t, nil)
	clk := &fakeClock{t: time.Now()}
	e := newTestEnv(t, hookConfig(t.TempDir(), recv), hookTrust(recv))
	e.srv.redeliverLimit.now = clk.Now
	id, _ := e.finishWithHook(t, e.key, recv.url())
	e.settle(t)
	var jobs []string
	for range redeliveriesPerMinute + 1 {
		jobs = append(jobs, e.cloneJob(t, id))
	}
	for _, j := range jobs[:redeliveriesPerMinute] {
		e.redeliver(t, e.key, j)
	}
	resp, b := e.do(t, "POST", "/api/jobs/"+jobs[redeliveriesPerMinute]+"/deliveries/redeliver", e.key, nil)
	errorBody(t, resp, b, 429)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	clk.Advance(time.Minute)
	e.redeliver(t, e.key, jobs[redeliveriesPerMinute])
}
