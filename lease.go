package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Leases let several nodes share one queue (a Postgres store): a worker's claim on a job is a
// lease of its node, renewed while it renders (leaseRenewals times a lease); a job whose lease
// lapsed, because its node died or lost the database, is claimed again by any node. On one box
// the same leases hold, and the start-up recovery takes back at once every job of this node's
// dead process, as it always did.

// defaultLease is -lease's default: a dead node's jobs are taken up again within about a minute
// (a lease, plus the 5 s a worker may wait before it looks for work).
const defaultLease = 30 * time.Second

// leaseRenewals is how many times a lease is renewed within its duration: a node misses two
// renewals (a long pause, the database out of reach) before it loses its job.
const leaseRenewals = 3

// leasing is how this node leases the jobs it claims.
type leasing struct {
	node     string        // this node's id, the first part of its leases' owners
	duration time.Duration // 0: claims are not leased (tests of the lifecycle alone)
	now      func() time.Time
	rand     io.Reader
	// observe, when set, counts queue events: "claim", "renewal", "lapsed_reclaimed" (metrics).
	observe func(event string)
}

// next returns a new lease of this node, the zero Lease when claims are not leased. Each claim has
// its own owner (NODE/CLAIM), so a worker that lost a job cannot touch it after the same node
// claimed it again.
func (ls leasing) next() (Lease, error) {
	if ls.duration <= 0 {
		return Lease{}, nil
	}
	claim, err := randomString(ls.rand, 12, base36)
	if err != nil {
		return Lease{}, err
	}
	return Lease{Owner: ls.node + "/" + claim, Until: ls.now().Add(ls.duration)}, nil
}

func (ls leasing) count(event string) {
	if ls.observe != nil {
		ls.observe(event)
	}
}

// takeBackAtStart reports whether the start-up recovery takes back PROCESSING job j: every one
// when claims are not leased; else one of this node (whose process is dead: this one holds the
// data directory's lock), one without a lease (made before leases), or one whose lease lapsed.
func (ls leasing) takeBackAtStart(j Job) bool {
	return ls.duration <= 0 || j.Lease.Owner == "" || strings.HasPrefix(j.Lease.Owner, ls.node+"/") ||
		!j.Lease.Until.After(ls.now())
}

// reclaim claims the job whose lease lapsed longest ago, if any (else ErrNotFound). It comes back
// PROCESSING under a lease of this node; one that had had its attempts FAILED instead, and the
// next lapsed one is looked for.
func (l *lifecycle) reclaim(ctx context.Context) (Job, error) {
	for {
		lease, err := l.leases.next()
		if err != nil {
			return Job{}, err
		}
		t := reclaiming(lease)
		if t.DeliveryID, err = newDeliveryID(l.rand); err != nil { // for a job out of attempts
			return Job{}, err
		}
		j, err := l.store.ReclaimJob(ctx, t, l.leases.now())
		if err != nil {
			return Job{}, err
		}
		l.leases.count("lapsed_reclaimed")
		l.log.Warn("job's lease lapsed: its node stopped renewing it; claimed again", j.logAttrs("retries", j.Retries)...)
		l.logChange(j, StatusProcessing)
		if j.Status == StatusProcessing {
			return j, nil
		}
		l.ended(ctx, j)
	}
}

// keepLease renews the lease of claimed job j every lease/leaseRenewals, with its progress, until
// stop is called. The returned context is ctx, cancelled with ErrLeaseLost as its cause when the
// lease is found lost (the job taken by another node after this one missed its renewals, or ended
// by someone else), so the render stops.
func (rd *renderer) keepLease(ctx context.Context, j Job) (leased context.Context, stop func()) {
	ls := rd.jobs.leases
	if ls.duration <= 0 || j.Lease.Owner == "" {
		return ctx, func() {}
	}
	leased, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(ls.duration / leaseRenewals)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			pct, _ := rd.Progress(j.ID)
			renewCtx, cancelRenew := context.WithTimeout(context.Background(), ls.duration/leaseRenewals)
			err := rd.jobs.store.RenewLease(renewCtx, j.ID, j.Lease.Owner, ls.now().Add(ls.duration), pct)
			cancelRenew()
			switch {
			case errors.Is(err, ErrLeaseLost):
				rd.log.Warn("job's lease lost: another node has the job; render stopped", j.logAttrs()...)
				cancel(ErrLeaseLost)
				return
			case err != nil:
				rd.log.Warn("renew lease, will retry", j.logAttrs("err", err)...)
			default:
				ls.count("renewal")
			}
		}
	})
	return leased, func() { close(done); wg.Wait() }
}

// loadNodeID returns this node's id, kept in the data directory's node-id file (made at the first
// start): the same across restarts, so a restarted node knows its dead process's leases.
func loadNodeID(d dataDir, r io.Reader) (string, error) {
	path := d.nodeID()
	b, err := os.ReadFile(path)
	if id := strings.TrimSpace(string(b)); err == nil && id != "" && !strings.Contains(id, "/") {
		return id, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("node id: %w", err)
	}
	id, err := randomString(r, 12, base36)
	if err != nil {
		return "", err
	}
	id = "node_" + id
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	return id, nil
}

// deliveryLeaseMargin is what an attempt at a webhook takes besides its request (webhookTimeout):
// reading the job and the key, and recording the attempt.
const deliveryLeaseMargin = 15 * time.Second

// deliveryLease is how long a node's claim on a delivery lasts: a lease, but never less than an
// attempt may take, else another node would find the delivery due again and send it a second time
// while this one still waits for the receiver.
func (ls leasing) deliveryLease() time.Duration {
	return max(ls.duration, webhookTimeout+deliveryLeaseMargin)
}

// claimDelivery takes delivery id, due at now, for an attempt by this node (Store.ClaimDelivery),
// and reports whether it got it, with the lease owner its attempt is recorded under. Without
// leases every due delivery is this node's, with no owner.
func (l *lifecycle) claimDelivery(ctx context.Context, id string, now time.Time) (string, bool, error) {
	if l.leases.duration <= 0 {
		return "", true, nil
	}
	lease, err := l.leases.next()
	if err != nil {
		return "", false, err
	}
	ok, err := l.store.ClaimDelivery(ctx, id, lease.Owner, now, now.Add(l.leases.deliveryLease()))
	if ok {
		l.leases.count("delivery_claim")
	}
	return lease.Owner, ok, err
}

// releaseDeliveries, at start-up, makes the deliveries a dead process of this node was sending due
// again at once.
func (l *lifecycle) releaseDeliveries(ctx context.Context) error {
	if l.leases.duration <= 0 {
		return nil
	}
	return l.store.ReleaseDeliveries(ctx, l.leases.node+"/", l.leases.now())
}
