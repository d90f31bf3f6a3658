package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// testNode is a lifecycle of node name on st (its files in a directory of t's), leasing for a minute by clk, counting its queue
// events in counts.
func testNode(t testing.TB, st *Store, name string, clk *fakeClock, counts *eventCounts) *lifecycle {
	dirs := dataDir{root: t.TempDir()}
	return &lifecycle{store: st, dirs: dirs, files: diskFiles{dirs}, now: clk.Now, log: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)), rand: rand.Reader,
		leases: leasing{node: name, duration: time.Minute, now: clk.Now, rand: rand.Reader, observe: counts.add}}
}

// eventCounts counts queue events by name.
type eventCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *eventCounts) add(event string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[event]++
}

func (c *eventCounts) get(event string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[event]
}

// TestLeaseReclaim: two nodes on one store. A job node a claimed is not node b's while a's lease
// lives; once it lapsed b claims it again (a retry counted, still PROCESSING, its stored progress
// kept), a can neither renew nor end it, and b's end is the job's one end with one webhook.
func TestLeaseReclaim(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, k := open(t)
		clk := &fakeClock{t: time.Now()}
		var ca, cb eventCounts
		a, b := testNode(t, st, "node_a", clk, &ca), testNode(t, st, "node_b", clk, &cb)
		j := storeJob(t, st, k, "https://example.com/h", time.Now())
		claimed, err := a.claim(ctx)
		if err != nil || claimed.ID != j.ID || !strings.HasPrefix(claimed.Lease.Owner, "node_a/") {
			t.Fatalf("a's claim: %+v %v", claimed, err)
		}
		if err := st.RenewLease(ctx, j.ID, claimed.Lease.Owner, clk.Now().Add(time.Minute), 40); err != nil {
			t.Fatal(err)
		}
		clk.Advance(50 * time.Second) // renewed at 0 s for a minute: still a's
		if got, err := b.claim(ctx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("b claimed %s %s under a's live lease (%v)", got.ID, got.Status, err)
		}
		clk.Advance(20 * time.Second) // a stopped renewing: its lease lapsed
		got, err := b.claim(ctx)
		if err != nil || got.ID != j.ID || got.Status != StatusProcessing || got.Retries != 1 || !strings.HasPrefix(got.Lease.Owner, "node_b/") {
			t.Fatalf("b's reclaim: %+v %v", got, err)
		}
		if err := st.RenewLease(ctx, j.ID, claimed.Lease.Owner, clk.Now().Add(time.Minute), 50); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("a renewed b's job: %v", err)
		}
		if err := st.RenewLease(ctx, j.ID, got.Lease.Owner, clk.Now().Add(time.Minute), 10); err != nil {
			t.Fatal(err)
		}
		stored, _ := st.JobByID(ctx, j.ID)
		if body := statusOf(stored, "http://x", func(string) (int, *int) { return 10, nil }); body.Progress != 40 {
			t.Errorf("progress after the reclaim %d, want the 40 a's render reached", body.Progress)
		}
		_, err = a.change(ctx, transition{JobID: j.ID, From: StatusProcessing, Next: toward(Outcome{Status: StatusCompleted, OutputToken: "ta"}), Owner: claimed.Lease.Owner})
		if !errors.Is(err, ErrLeaseLost) {
			t.Errorf("a ended b's job: %v", err)
		}
		done, err := b.change(ctx, transition{JobID: j.ID, From: StatusProcessing, Next: toward(Outcome{Status: StatusCompleted, OutputToken: "tb"}), Owner: got.Lease.Owner})
		if err != nil || done.Status != StatusCompleted || done.OutputToken != "tb" || done.Lease != (Lease{}) {
			t.Fatalf("b's end: %+v %v", done, err)
		}
		if n := deliveryCount(t, st, j.ID); n != 1 {
			t.Errorf("%d webhook deliveries, want 1", n)
		}
		if ca.get("claim") != 1 || cb.get("lapsed_reclaimed") != 1 || cb.get("claim") != 0 {
			t.Errorf("counted a %v, b %v", ca.n, cb.n)
		}
	})
}

// TestLeaseLapsedOnLastAttempt: a job whose lease lapsed on its last attempt FAILS when reclaimed,
// with the message a crash gives and its one webhook, and the reclaim goes on to the next job.
func TestLeaseLapsedOnLastAttempt(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, k := open(t)
		clk := &fakeClock{t: time.Now()}
		a, b := testNode(t, st, "node_a", clk, &eventCounts{}), testNode(t, st, "node_b", clk, &eventCounts{})
		last := storeJob(t, st, k, "https://example.com/h", time.Now().Add(-time.Minute))
		if _, err := st.db.Exec(`UPDATE jobs SET retries = ? WHERE id = ?`, MaxAttempts-1, last.ID); err != nil {
			t.Fatal(err)
		}
		next := storeJob(t, st, storeKey(t, st, "bob"), "", time.Now())
		if _, err := a.claim(ctx); err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * time.Minute)
		got, err := b.claim(ctx)
		if err != nil || got.ID != next.ID {
			t.Fatalf("b's claim: %s %v, want %s", got.ID, err, next.ID)
		}
		failed, err := st.JobByID(ctx, last.ID)
		if err != nil || failed.Status != StatusFailed || !strings.Contains(failed.ErrorMessage, "failed 3 times") {
			t.Errorf("the job out of attempts: %+v %v", failed, err)
		}
		if n := deliveryCount(t, st, last.ID); n != 1 {
			t.Errorf("%d deliveries, want 1", n)
		}
	})
}

// TestLeaseRecoveryAtStart: a node starting up takes back its dead process's job at once, and a
// job whose lease lapsed, but leaves alone a job another node renders under a live lease.
func TestLeaseRecoveryAtStart(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, _ := open(t)
		clk := &fakeClock{t: time.Now()}
		a, b := testNode(t, st, "node_a", clk, &eventCounts{}), testNode(t, st, "node_b", clk, &eventCounts{})
		a.dirs = must(openDataDir(t.TempDir()))(t)
		a.files = diskFiles{a.dirs}
		var ids []string
		for i, n := range []*lifecycle{a, b} {
			j := storeJob(t, st, storeKey(t, st, string(rune('p'+i))), "", time.Now().Add(time.Duration(i)*time.Second))
			if _, err := n.claim(ctx); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, j.ID)
		}
		if err := a.recover(ctx); err != nil { // a restarted: its job is back in the queue, b's is b's
			t.Fatal(err)
		}
		for id, want := range map[string]JobStatus{ids[0]: StatusPending, ids[1]: StatusProcessing} {
			if j, _ := st.JobByID(ctx, id); j.Status != want {
				t.Errorf("job %s after a's restart: %s, want %s", id, j.Status, want)
			}
		}
		clk.Advance(2 * time.Minute) // b died meanwhile
		if err := a.recover(ctx); err != nil {
			t.Fatal(err)
		}
		if j, _ := st.JobByID(ctx, ids[1]); j.Status != StatusPending || j.Retries != 1 {
			t.Errorf("b's lapsed job after a's restart: %s retries %d, want PENDING retries 1", j.Status, j.Retries)
		}
	})
}

// TestLeaseRenewedAndLost: the renderer's keeper renews a claimed job's lease with its progress
// while it renders, and stops the render once the job is found to be another's.
func TestLeaseRenewedAndLost(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, k := open(t)
		var counts eventCounts
		dirs := dataDir{root: t.TempDir()}
		l := &lifecycle{store: st, dirs: dirs, files: diskFiles{dirs}, log: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)), rand: rand.Reader,
			leases: leasing{node: "node_a", duration: 300 * time.Millisecond, now: time.Now, rand: rand.Reader, observe: counts.add}}
		rd := &renderer{jobs: l, log: l.log, now: time.Now, progress: map[string]*jobProgress{}}
		storeJob(t, st, k, "", time.Now())
		j, err := l.claim(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rd.progress[j.ID] = &jobProgress{pct: 35, started: time.Now()}
		renderCtx, stop := rd.keepLease(ctx, j)
		defer stop()
		eventually(t, 20*time.Second, func() error {
			if stored, _ := st.JobByID(ctx, j.ID); counts.get("renewal") < 2 || stored.Progress != 35 || !stored.Lease.Until.After(j.Lease.Until) {
				return errors.New("not renewed twice with its progress yet")
			}
			return nil
		})
		takeLease(t, st, j.ID, renderCtx)
		if cause := context.Cause(renderCtx); !errors.Is(cause, ErrLeaseLost) {
			t.Errorf("render stopped by %v, want ErrLeaseLost", cause)
		}
	})
}

// TestDeliveryClaims: nodes racing for one due webhook delivery: one gets it, and the others find
// it not due until that node's lease on it lapses (it died mid-send) or it restarts; a recorded
// attempt sets the real next one.
func TestDeliveryClaims(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, k := open(t)
		clk := &fakeClock{t: time.Now()}
		nodes := []*lifecycle{}
		for _, name := range []string{"node_a", "node_b", "node_c", "node_d"} {
			nodes = append(nodes, testNode(t, st, name, clk, &eventCounts{}))
		}
		completedWithDelivery(t, st, k, "msg_1", time.Now())
		race := func() (winners []int) {
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i, n := range nodes {
				wg.Go(func() {
					_, ok, err := n.claimDelivery(ctx, "msg_1", clk.Now())
					if err != nil {
						t.Error(err)
					}
					if ok {
						mu.Lock()
						winners = append(winners, i)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			return winners
		}
		clk.Advance(time.Second)
		first := race()
		if len(first) != 1 {
			t.Fatalf("%d nodes got the delivery, want 1", len(first))
		}
		if due, _ := st.DueDeliveries(ctx, clk.Now(), 10); len(due) != 0 {
			t.Errorf("a delivery being sent is still due: %+v", due)
		}
		clk.Advance(2 * time.Minute) // its node died mid-send
		if again := race(); len(again) != 1 {
			t.Fatalf("after the lapse %d nodes got it, want 1", len(again))
		}
		// The winner restarts: what it was sending is due again at once.
		if err := st.ReleaseDeliveries(ctx, "node_", clk.Now()); err != nil {
			t.Fatal(err)
		}
		if due, _ := st.DueDeliveries(ctx, clk.Now(), 10); len(due) != 1 {
			t.Errorf("released delivery not due: %+v", due)
		}
		next := clk.Now().Add(5 * time.Second)
		if err := st.RecordAttempt(ctx, "msg_1", "", Attempt{At: clk.Now(), StatusCode: 500, Error: "HTTP 500"}, DeliveryPending, next); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := nodes[0].claimDelivery(ctx, "msg_1", clk.Now()); ok {
			t.Error("claimed before its next attempt is due")
		}
		if _, ok, _ := nodes[0].claimDelivery(ctx, "msg_1", next); !ok {
			t.Error("not claimed when its next attempt came")
		}
	})
}
