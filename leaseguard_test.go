package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLeaseGuardsFetchedInputs, on each backend: a worker whose lease on a job lapsed and was taken
// by another node cannot record its fetch of the job's inputs over the new holder's; the holder can.
func TestLeaseGuardsFetchedInputs(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, k := open(t)
		clk, a, b := twoNodes(t, st)
		storeJob(t, st, k, "", clk.Now())
		stale := must(a.claim(ctx))(t)
		clk.Advance(2 * time.Minute) // a stopped renewing
		held := must(b.claim(ctx))(t)
		if held.ID != stale.ID || held.Lease.Owner == stale.Lease.Owner {
			t.Fatalf("b's reclaim: %+v", held.Lease)
		}
		stale.AudioDuration = 99
		if err := st.RecordFetchedInputs(ctx, stale); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("a's fetch after losing the lease: %v, want ErrLeaseLost", err)
		}
		if got := must(st.JobByID(ctx, held.ID))(t); got.AudioDuration != held.AudioDuration {
			t.Errorf("a's stale fetch was written: duration %v, want %v", got.AudioDuration, held.AudioDuration)
		}
		held.AudioDuration = 7
		if err := st.RecordFetchedInputs(ctx, held); err != nil {
			t.Errorf("b's fetch: %v", err)
		}
	})
}

// TestLeaseGuardsDeliveryAttempts, on each backend with a 3 s lease: a webhook attempt under way
// (up to webhookTimeout) keeps its delivery from every other node for the whole attempt, not for the
// lease alone; and once it lapsed and another node took it, the first node's late attempt is not
// recorded over the new holder's.
func TestLeaseGuardsDeliveryAttempts(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, k := open(t)
		clk, a, b := twoNodes(t, st)
		a.leases.duration, b.leases.duration = 3*time.Second, 3*time.Second
		j := completedWithDelivery(t, st, k, "msg_1", clk.Now())
		clk.Advance(time.Second)
		ownerA, ok, err := a.claimDelivery(ctx, "msg_1", clk.Now())
		if err != nil || !ok {
			t.Fatalf("a's claim: %v %v", ok, err)
		}
		clk.Advance(webhookTimeout) // a waits on a slow receiver: past its 3 s lease, within the attempt
		if _, ok, err := b.claimDelivery(ctx, "msg_1", clk.Now()); err != nil || ok {
			t.Errorf("b claimed the delivery while a's attempt could still be under way (%v)", err)
		}
		clk.Advance(deliveryLeaseMargin + time.Second) // a died mid-send
		ownerB, ok, err := b.claimDelivery(ctx, "msg_1", clk.Now())
		if err != nil || !ok {
			t.Fatalf("b's claim after a's lapsed: %v %v", ok, err)
		}
		late := Attempt{At: clk.Now(), StatusCode: 200}
		if err := st.RecordAttempt(ctx, "msg_1", ownerA, late, DeliveryDelivered, time.Time{}); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("a's attempt recorded after b took the delivery: %v, want ErrLeaseLost", err)
		}
		if ds := must(st.Deliveries(ctx, j.ID))(t); len(ds) != 1 || ds[0].Attempts != 0 || ds[0].State != DeliveryPending {
			t.Errorf("after a's late attempt: %+v", ds)
		}
		if err := st.RecordAttempt(ctx, "msg_1", ownerB, late, DeliveryDelivered, time.Time{}); err != nil {
			t.Errorf("b's attempt: %v", err)
		}
	})
}

// twoNodes are nodes node_a and node_b on st, leasing by one fake clock.
func twoNodes(t testing.TB, st *Store) (*fakeClock, *lifecycle, *lifecycle) {
	clk := &fakeClock{t: time.Now()}
	return clk, testNode(t, st, "node_a", clk, &eventCounts{}), testNode(t, st, "node_b", clk, &eventCounts{})
}

// completedWithDelivery is a job of k's, created at, COMPLETED with webhook delivery id due.
func completedWithDelivery(t testing.TB, st *Store, k Key, id string, at time.Time) Job {
	t.Helper()
	ctx := context.Background()
	j := storeJob(t, st, k, "https://example.com/h", at)
	if _, err := st.ClaimJob(ctx, claiming()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Transition(ctx, transition{JobID: j.ID, From: StatusProcessing, Next: toward(Outcome{Status: StatusCompleted, OutputToken: "t"}), DeliveryID: id}); err != nil {
		t.Fatal(err)
	}
	return j
}

// TestLeaseLostRenderNotShutdown: a render stopped because its job's lease was lost (the keeper
// cancelled it, or recording the fetched inputs found another node holding the job) is not logged
// as a shutdown nor counted as a failed try.
func TestLeaseLostRenderNotShutdown(t *testing.T) {
	t.Parallel()
	for name, lost := range map[string]struct {
		cause    error // the render's context's
		fetchErr error
	}{
		"keeper":         {cause: ErrLeaseLost},
		"fetched inputs": {fetchErr: fmt.Errorf("record fetched inputs of job x: %w", ErrLeaseLost)},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			rd := &renderer{log: slog.New(slog.NewTextHandler(&logs, nil)), now: time.Now, progress: map[string]*jobProgress{}}
			ctx, cancel := context.WithCancelCause(context.Background())
			if lost.cause != nil {
				cancel(lost.cause)
			}
			defer cancel(nil)
			rd.fetch = func(ctx context.Context, j Job) (Job, error) { return j, cmp.Or(ctx.Err(), lost.fetchErr) }
			j := Job{ID: "c0job", AudioDuration: 2, InputURLs: map[inputKind]string{inputAudio: "https://example.com/a.wav"}}
			out, _ := rd.render(ctx, j)
			if out.Status != StatusPending || out.CountRetry {
				t.Errorf("outcome %+v, want PENDING with no retry counted", out)
			}
			if l := logs.String(); strings.Contains(l, "shutdown") || strings.Contains(l, "render failed") {
				t.Errorf("logged as:\n%s", l)
			}
		})
	}
}

// TestLeaseIdlePollReadsOnly, on each backend: a worker's claim when no lease lapsed makes one
// claim's worth of ids (one write transaction, ClaimJob's), not a reclaim's lease and delivery ids
// besides (a second); a lapsed lease is still reclaimed first.
func TestLeaseIdlePollReadsOnly(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, k := open(t)
		clk, a, b := twoNodes(t, st)
		ids := &countedReads{}
		b.rand, b.leases.rand = ids, ids
		if _, err := b.claim(ctx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("claim of an empty queue: %v", err)
		}
		if ids.n != 1 {
			t.Errorf("an idle poll made %d ids, want 1 (the claim's lease)", ids.n)
		}
		j := storeJob(t, st, k, "", clk.Now())
		must(a.claim(ctx))(t)
		clk.Advance(2 * time.Minute) // a stopped renewing
		if got, err := b.claim(ctx); err != nil || got.ID != j.ID || got.Retries != 1 {
			t.Errorf("b's claim after a's lease lapsed: %+v %v, want %s reclaimed", got, err, j.ID)
		}
	})
}

// countedReads is crypto/rand counting its reads.
type countedReads struct {
	mu sync.Mutex
	n  int
}

func (c *countedReads) Read(p []byte) (int, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return rand.Read(p)
}
