package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
