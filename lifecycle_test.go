package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"vidgen/internal/ffmpeg"
)

// waitStored polls job id in the store until it is want, within renderDeadline, and returns it. It
// fails on any other final status.
func waitStored(t testing.TB, st *Store, id string, want JobStatus) Job {
	t.Helper()
	var j Job
	eventually(t, renderDeadline(t), func() error {
		var err error
		if j, err = st.JobByID(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		if j.Status == want {
			return nil
		}
		if j.Status.Final() {
			t.Fatalf("job %s ended %s, want %s: %+v", id, j.Status, want, j)
		}
		return fmt.Errorf("job %s is %s, want %s", id, j.Status, want)
	})
	return j
}

// TestDataDirMoved: jobs left PENDING and PROCESSING by a process that died (as kill -9 leaves
// them), then the data directory moved, as for a new disk or a restore from backup: a service
// started on the new path renders every one of them.
func TestDataDirMoved(t *testing.T) {
	t.Parallel()
	old := filepath.Join(t.TempDir(), "old")
	cfg := testConfig(old)
	block, err := filepath.Abs("testdata/ffmpeg-block")
	if err != nil {
		t.Fatal(err)
	}
	cfg.FFmpeg, cfg.Workers = block, 1
	e1 := newTestEnv(t, &cfg)
	bob := e1.newKey(t, "bob")
	running := e1.mustSubmit(t, e1.key, fixture(t, "img.png"), fixture(t, "tone.wav"))
	e1.wait(t, e1.key, running, StatusProcessing)
	queued := e1.mustSubmit(t, bob, fixture(t, "img.jpg"), fixture(t, "tone.mp3"))
	e1.close()
	// What a process killed mid-render leaves: the job still marked PROCESSING.
	st, err := OpenStore(context.Background(), filepath.Join(old, "vidgen.db"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.db.Exec(`UPDATE jobs SET status = 'PROCESSING' WHERE id = ?`, running); err != nil {
		t.Fatal(err)
	}
	st.Close()

	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(old, moved); err != nil {
		t.Fatal(err)
	}
	cfg2 := testConfig(moved)
	e2 := newTestEnv(t, &cfg2)
	for _, j := range []struct{ key, id, audio string }{{e1.key, running, "tone.wav"}, {bob, queued, "tone.mp3"}} {
		st := e2.wait(t, j.key, j.id, StatusCompleted)
		video, _ := download(t, st["outputVideo"].(string))
		checkVideo(t, video, fixture(t, j.audio))
	}
	checkInputsGone(t, filepath.Join(moved, "inputs"))
}

// TestInputLost: a job whose uploads vanished from the server before its render (deleted behind
// the service's back) FAILS at once with a message that blames the server, not the user's file,
// and the log names the missing path.
func TestInputLost(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	k := e.accountOf(t, e.key)
	j := storeJob(t, e.srv.store, k, "", time.Now())
	e.srv.renderer.Notify()
	got := waitStored(t, e.srv.store, j.ID, StatusFailed)
	if !strings.Contains(got.ErrorMessage, "lost on the server") || strings.Contains(got.ErrorMessage, "damaged") {
		t.Errorf("errorMessage %q", got.ErrorMessage)
	}
	if got.Retries != 0 {
		t.Errorf("retries %d: a lost input is not worth retrying", got.Retries)
	}
	if missing := e.srv.dirs.input(j.ID, inputImage); !strings.Contains(e.logs.String(), missing) {
		t.Errorf("the log does not name %s:\n%s", missing, e.logs.String())
	}
}

// TestRecoveryEndsJobWithWebhook: a job that was interrupted on its last attempt is FAILED by
// start-up recovery, and its webhook goes out at once, not at the sender's next timer tick.
func TestRecoveryEndsJobWithWebhook(t *testing.T) {
	t.Parallel()
	recv := newHookReceiver(t, nil)
	dir := t.TempDir()
	dirs, st, err := openData(context.Background(), dir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	k := storeKey(t, st, "alice")
	j := storeJob(t, st, k, recv.url(), time.Now())
	if _, err := st.db.Exec(`UPDATE jobs SET status = 'PROCESSING', retries = ? WHERE id = ?`, MaxAttempts-1, j.ID); err != nil {
		t.Fatal(err)
	}
	copyFile(t, fixture(t, "img.png"), dirs.input(j.ID, inputImage))
	copyFile(t, fixture(t, "tone.wav"), dirs.input(j.ID, inputAudio))
	st.Close()

	e := newTestEnv(t, hookConfig(dir, recv), hookTrust(recv))
	got, err := e.srv.store.JobByID(context.Background(), j.ID)
	if err != nil || got.Status != StatusFailed || !strings.Contains(got.ErrorMessage, "submit the job again") {
		t.Fatalf("after recovery: %+v %v", got, err)
	}
	reqs := recv.waitFor(t, 1)
	if !strings.Contains(string(reqs[0].Body), `"status":"FAILED"`) || !strings.Contains(string(reqs[0].Body), j.ID) {
		t.Errorf("webhook body %s", reqs[0].Body)
	}
	if files := dirFiles(t, filepath.Join(dir, "inputs")); len(files) != 0 {
		t.Errorf("inputs of the failed job left: %v", files)
	}
}

// TestRetryPolicy walks nextAfter through every outcome from every retry count, without a
// database: a claim changes the state alone; a passing failure or a crash counts a retry and FAILS the job on its MaxAttempts-th
// with the message its owner reads, which names the last attempt's cause when the renderer knew it
// and says "interrupted" only for an interruption; a shutdown counts nothing; an end keeps what the
// job had.
func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	const exhausted = "Rendering failed 3 times for a passing reason (the renderer was interrupted); please submit the job again"
	crash := Outcome{Status: StatusPending, CountRetry: true}
	shutdown := Outcome{Status: StatusPending}
	hook := "https://example.com/h"
	cases := []struct {
		name        string
		retries     int
		hook        string
		o           Outcome
		wantStatus  JobStatus
		wantRetries int
		wantMsg     string
		wantToken   string
		deliver     bool
		wantErr     bool
	}{
		{"claimed", 2, hook, Outcome{Status: StatusProcessing}, StatusProcessing, 2, "", "", false, false},
		{"first crash", 0, hook, crash, StatusPending, 1, "", "", false, false},
		{"second crash", 1, hook, crash, StatusPending, 2, "", "", false, false},
		{"third crash fails", 2, hook, crash, StatusFailed, MaxAttempts - 1, exhausted, "", true, false},
		{"third crash fails, no webhook", 2, "", crash, StatusFailed, MaxAttempts - 1, exhausted, "", false, false},
		{"a count past the cap fails", 5, "", crash, StatusFailed, MaxAttempts - 1, exhausted, "", false, false},
		{"a timeout on the third attempt is named", 2, hook, Outcome{Status: StatusPending, CountRetry: true, Cause: "the render took longer than the 0:02:00 allowed for it"},
			StatusFailed, MaxAttempts - 1, "Rendering failed 3 times (the last time, the render took longer than the 0:02:00 allowed for it); please submit the job again", "", true, false},
		{"a kill on the third attempt is named", 2, "", Outcome{Status: StatusPending, CountRetry: true, Cause: "the renderer was killed, most likely because the server ran out of memory"},
			StatusFailed, MaxAttempts - 1, "Rendering failed 3 times (the last time, the renderer was killed, most likely because the server ran out of memory); please submit the job again", "", false, false},
		{"a cause before the last attempt is not yet a message", 1, hook, Outcome{Status: StatusPending, CountRetry: true, Cause: "the renderer crashed"},
			StatusPending, 2, "", "", false, false},
		{"shutdown counts nothing", 0, hook, shutdown, StatusPending, 0, "", "", false, false},
		{"shutdown after two crashes", 2, hook, shutdown, StatusPending, 2, "", "", false, false},
		{"a stored count at the cap fails even on shutdown", 3, "", shutdown, StatusFailed, MaxAttempts - 1, exhausted, "", false, false},
		{"completed", 1, hook, Outcome{Status: StatusCompleted, OutputToken: "tok"}, StatusCompleted, 1, "", "tok", true, false},
		{"completed, no webhook", 0, "", Outcome{Status: StatusCompleted, OutputToken: "tok"}, StatusCompleted, 0, "", "tok", false, false},
		{"failed keeps the renderer's message", 2, hook, Outcome{Status: StatusFailed, ErrorMessage: "image: damaged"}, StatusFailed, 2, "image: damaged", "", true, false},
		{"cancelled is not announced", 0, hook, Outcome{Status: StatusCancelled}, StatusCancelled, 0, "", "", false, false},
		{"no such outcome", 0, hook, Outcome{Status: "LOST"}, "", 0, "", "", false, true},
	}
	for _, c := range cases {
		j := Job{ID: "c0123456789abcdefghijklmn", KeyID: "k", Status: StatusProcessing, WebhookURL: c.hook, Retries: c.retries}
		got, deliver, err := toward(c.o)(j)
		if (err != nil) != c.wantErr {
			t.Errorf("%s: error %v, want one: %v", c.name, err, c.wantErr)
			continue
		}
		if c.wantErr {
			continue
		}
		if got.Status != c.wantStatus || got.Retries != c.wantRetries || got.ErrorMessage != c.wantMsg ||
			got.OutputToken != c.wantToken || deliver != c.deliver {
			t.Errorf("%s: got %s retries %d %q token %q deliver %v, want %s retries %d %q token %q deliver %v", c.name,
				got.Status, got.Retries, got.ErrorMessage, got.OutputToken, deliver,
				c.wantStatus, c.wantRetries, c.wantMsg, c.wantToken, c.deliver)
		}
		if got.ID != j.ID || got.KeyID != j.KeyID || got.WebhookURL != j.WebhookURL {
			t.Errorf("%s: the decision changed who the job is: %+v", c.name, got)
		}
	}
}

// TestPassingCause: the cause a failed attempt records, which the job's message names should it be
// the last attempt, says what the server met (its time limit, its memory, its disk, a crash)
// without its insides: no path, no ffmpeg log, whatever the error carries.
func TestPassingCause(t *testing.T) {
	t.Parallel()
	exit := func(script string) error { // a real *exec.ExitError of sh running script
		err := exec.Command("sh", "-c", script).Run()
		if err == nil {
			t.Fatalf("sh -c %q succeeded", script)
		}
		return err
	}
	const log = "[out#0/mp4 @ 0x55] Error writing trailer of /var/lib/vidgen/tmp/render-c01/out.mp4: No space left on device"
	ff := func(r ffmpeg.Reason, err error) error {
		return &renderFailure{err: fmt.Errorf("image step: %w", &ffmpeg.Error{Tool: "ffmpeg", Reason: r, Err: err, Log: []byte(log)})}
	}
	killed, crashed := exit("kill -KILL $$"), exit("kill -SEGV $$")
	cases := []struct {
		name     string
		err      error
		timedOut time.Duration
		want     string
	}{
		{"out of time", ff(ffmpeg.Stopped, context.DeadlineExceeded), 150 * time.Second, "the render took longer than the 0:02:30 allowed for it"},
		{"out of time, whatever the tool said", ff(ffmpeg.Killed, killed), time.Minute, "the render took longer than the 0:01:00 allowed for it"},
		{"killed from outside", ff(ffmpeg.Killed, killed), 0, "the renderer was killed, most likely because the server ran out of memory"},
		{"out of -child-memory", ff(ffmpeg.OutOfMemory, exit("exit 1")), 0, "the renderer ran out of the memory the server's -child-memory setting allows"},
		{"not started", ff(ffmpeg.NotStarted, exec.ErrNotFound), 0, "the server could not start the renderer"},
		{"crashed", ff(ffmpeg.Failed, crashed), 0, "the renderer crashed"},
		{"disk full in ffmpeg", ff(ffmpeg.Failed, errors.Join(exit("exit 1"), syscall.ENOSPC)), 0, "the server's disk was full"},
		{"disk full writing a file", &os.PathError{Op: "write", Path: "/var/lib/vidgen/tmp/x", Err: syscall.ENOSPC}, 0, "the server's disk was full"},
		{"disk filling", fmt.Errorf("render: %w", errDiskFilling), 0, "the server's disk was filling up"},
		{"an error exit the files are not blamed for", ff(ffmpeg.Failed, exit("exit 1")), 0, "an error on the server, not in your files"},
		{"anything else", errors.New("upload /outputs/x.mp4: connection reset"), 0, "an error on the server, not in your files"},
	}
	for _, c := range cases {
		got := passingCause(c.err, c.timedOut)
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
		if msg := exhausted(got); strings.ContainsAny(msg, "/@#") || strings.Contains(msg, "ffmpeg") || !strings.Contains(msg, "submit the job again") {
			t.Errorf("%s: the job's message %q shows the server's insides or no advice", c.name, msg)
		}
	}
}

// TestDeliveryBackoff walks nextDelivery without a database or a receiver: the schedule's waits
// in order, ±10% of jitter, 410 and the schedule's end give up, and a 429 or 503 may only put the
// next attempt later, never beyond maxRetryAfter.
func TestDeliveryBackoff(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
		10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour}
	fail := func(code int) Attempt { return Attempt{At: t0, StatusCode: code, Error: "HTTP " + fmt.Sprint(code)} }
	for i, w := range want {
		for _, c := range []struct {
			jitter float64
			wait   time.Duration
		}{{0.5, w}, {0, w - w/10}, {1, w + w/10}} {
			state, next := nextDelivery(i, fail(500), 0, c.jitter)
			if state != DeliveryPending || !next.Equal(t0.Add(c.wait)) {
				t.Errorf("after attempt %d, jitter %v: %s at +%v, want pending at +%v", i+1, c.jitter, state, next.Sub(t0), c.wait)
			}
		}
	}
	cases := []struct {
		name      string
		attempts  int
		a         Attempt
		asked     time.Duration
		wantState DeliveryState
		wantWait  time.Duration // after t0; 0 for none
	}{
		{"2xx delivered", 0, Attempt{At: t0, StatusCode: 204}, 0, DeliveryDelivered, 0},
		{"2xx on the last attempt", len(want), Attempt{At: t0, StatusCode: 200}, 0, DeliveryDelivered, 0},
		{"410 gives up at once", 0, fail(410), 0, DeliveryFailed, 0},
		{"the schedule's end", len(want), fail(500), 0, DeliveryFailed, 0},
		{"no response", 2, Attempt{At: t0, Error: "timeout"}, 0, DeliveryPending, 30 * time.Minute},
		{"429 asks for longer", 0, fail(429), time.Hour, DeliveryPending, time.Hour},
		{"503 asks for longer", 1, fail(503), time.Hour, DeliveryPending, time.Hour},
		{"429 asks for less", 1, fail(429), time.Minute, DeliveryPending, 5 * time.Minute},
		{"429 asks for too long", 0, fail(429), 72 * time.Hour, DeliveryPending, maxRetryAfter},
		{"500 cannot ask", 0, fail(500), time.Hour, DeliveryPending, 5 * time.Second},
		{"429 after the schedule's end", len(want), fail(429), time.Hour, DeliveryFailed, 0},
	}
	for _, c := range cases {
		state, next := nextDelivery(c.attempts, c.a, c.asked, 0.5)
		wantNext := time.Time{}
		if c.wantWait != 0 {
			wantNext = t0.Add(c.wantWait)
		}
		if state != c.wantState || !next.Equal(wantNext) {
			t.Errorf("%s: %s at %v, want %s at %v", c.name, state, next, c.wantState, wantNext)
		}
	}
}

// TestLifecycleClaim: a claim is the lifecycle's change like every other: the oldest PENDING job
// becomes PROCESSING with its retries kept and no webhook owed, it has its log line, and a claim
// with nothing waiting is ErrNotFound and changes nothing.
func TestLifecycleClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, k := testStore(t)
	var logs bytes.Buffer
	dirs := dataDir{root: t.TempDir()}
	l := &lifecycle{store: st, dirs: dirs, files: diskFiles{dirs}, log: slog.New(slog.NewTextHandler(&logs, nil)), rand: rand.Reader}
	base := time.Now().Add(-time.Minute)
	first := storeJob(t, st, k, "https://example.com/h", base)
	if _, err := st.db.Exec(`UPDATE jobs SET retries = 1 WHERE id = ?`, first.ID); err != nil {
		t.Fatal(err)
	}
	got, err := l.claim(ctx)
	if err != nil || got.ID != first.ID || got.Status != StatusProcessing || got.Retries != 1 {
		t.Fatalf("claim: %s %s retries %d, %v; want %s PROCESSING retries 1", got.ID, got.Status, got.Retries, err, first.ID)
	}
	stored, err := st.JobByID(ctx, first.ID)
	if err != nil || stored.Status != StatusProcessing || stored.Retries != 1 || !stored.FinishedAt.IsZero() || stored.UpdatedAt.Before(base) {
		t.Errorf("stored %+v, %v", stored, err)
	}
	if n := deliveryCount(t, st, first.ID); n != 0 {
		t.Errorf("a claim wrote %d deliveries", n)
	}
	if line := `msg="job state changed" job=` + first.ID + ` key=` + k.ID + ` from=PENDING status=PROCESSING retries=1`; !strings.Contains(logs.String(), line) {
		t.Errorf("no line %q in\n%s", line, logs.String())
	}
	before := logs.Len()
	if _, err := l.claim(ctx); !errors.Is(err, ErrNotFound) {
		t.Errorf("claim with nothing pending: %v, want ErrNotFound", err)
	}
	if logs.Len() != before {
		t.Errorf("a claim of nothing logged %s", logs.String()[before:])
	}
}

// TestScratchPaths: uploads being received and renders in progress get their files from the data
// directory, inside its tmp/, each new one apart from the others and private to the service's user;
// the start-up's emptyTmp takes whatever a crash left there.
func TestScratchPaths(t *testing.T) {
	t.Parallel()
	d, err := openDataDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const id = "c0123456789abcdefghijklmn"
	var made []string
	for range 2 {
		f, err := d.uploadScratch()
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		dir, err := d.renderScratch(id)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(filepath.Base(dir), "render-"+id+"-") {
			t.Errorf("render scratch %s does not name job %s", dir, id)
		}
		made = append(made, f.Name(), dir)
	}
	seen := map[string]bool{}
	for _, p := range made {
		fi, err := os.Stat(p)
		if err != nil || filepath.Dir(p) != d.tmp() || seen[p] {
			t.Errorf("scratch %s (%v): want a new path in %s", p, err, d.tmp())
			continue
		}
		seen[p] = true
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("scratch %s is %v: others may read it", p, fi.Mode().Perm())
		}
	}
	if err := os.WriteFile(filepath.Join(made[1], "clip.mp4"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.emptyTmp(); err != nil {
		t.Fatal(err)
	}
	if left, err := os.ReadDir(d.tmp()); err != nil || len(left) != 0 {
		t.Errorf("after emptyTmp, tmp/ holds %v (%v)", left, err)
	}
}
