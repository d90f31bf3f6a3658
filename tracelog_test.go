package main

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"testing"
	"time"
)

// TestTraceIDInLeaseAndWebhookLogs: the lines a job's lease keeper and its webhook sender write
// when something goes wrong carry the trace id the job was submitted with, as its other lines do.
func TestTraceIDInLeaseAndWebhookLogs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, k := testStore(t)
	const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	dirs := dataDir{root: t.TempDir()}
	l := &lifecycle{store: st, dirs: dirs, files: diskFiles{dirs}, log: log, rand: rand.Reader,
		leases: leasing{node: "node_a", duration: 300 * time.Millisecond, now: time.Now, rand: rand.Reader}}
	rd := &renderer{jobs: l, log: log, now: time.Now, progress: map[string]*jobProgress{}}
	j := Job{ID: must(newJobID(time.Now(), rand.Reader))(t), KeyID: k.ID, ImageType: "png", AudioType: "wav",
		WebhookURL: "https://example.com/h", TraceID: trace, CreatedAt: time.Now().UTC()}
	if err := st.CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	claimed := must(l.claim(ctx))(t)
	renderCtx, stop := rd.keepLease(ctx, claimed)
	takeLease(t, st, j.ID, renderCtx)
	stop()
	if _, err := st.Transition(ctx, transition{JobID: j.ID, From: StatusProcessing, Next: toward(Outcome{Status: StatusCompleted, OutputToken: "t"}), DeliveryID: "msg_1"}); err != nil {
		t.Fatal(err)
	}
	ws := newWebhookSender(st, log, time.Now, "http://127.0.0.1", false, nil, nil)
	ws.claim = func(context.Context, string, time.Time) (string, bool, error) {
		return "", false, errors.New("database gone")
	}
	ws.attempt(ctx, must(st.DueDeliveries(ctx, time.Now().Add(time.Minute), 1))(t)[0])
	for _, msg := range []string{"job's lease lost: another node has the job; render stopped", "webhook claim"} {
		var found map[string]any
		for _, line := range logLines(t, &logs) {
			if line["msg"] == msg {
				found = line
			}
		}
		if found == nil || found["job"] != j.ID || found["trace_id"] != trace {
			t.Errorf("%q line %v: want job %s, trace_id %s", msg, found, j.ID, trace)
		}
	}
}

// takeLease gives job id's lease to another node and waits for renderCtx, the render under the
// lease it had (keepLease), to stop.
func takeLease(t testing.TB, st *Store, id string, renderCtx context.Context) {
	t.Helper()
	if _, err := st.db.Exec(`UPDATE jobs SET lease_owner = 'node_b/x' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-renderCtx.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the render went on after its lease was taken")
	}
}
