package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// lifecycle owns every way a job ends: rendered, failed, cancelled, given up after a crash, and
// its output expired. Whatever the way, the same things follow, here and nowhere else: the state
// change and the webhook delivery in one transaction, the uploads deleted, the webhook sender woken
// and one log line.
type lifecycle struct {
	store *Store
	dirs  dataDir
	hooks *webhookSender
	log   *slog.Logger
	rand  io.Reader
	// expiredBefore is the cutoff of this run's last complete expiry: outputs of jobs that finished
	// before it were deleted. It is zero until the first, which reads every expired job, so a
	// shorter -retention after a restart takes effect. expiring serialises expiries.
	expiring      sync.Mutex
	expiredBefore time.Time
}

// finish moves job id from state from as o says (keyID, when set, must own it) and returns the job
// as stored. When the job has ended, its uploads are deleted and, if it has a webhook URL, the
// sender is woken for the delivery the transaction wrote.
func (l *lifecycle) finish(ctx context.Context, id, keyID string, from JobStatus, o Outcome) (Job, error) {
	deliveryID, err := newDeliveryID(l.rand)
	if err != nil {
		return Job{}, err
	}
	j, err := l.store.Transition(ctx, transition{JobID: id, KeyID: keyID, From: from, Outcome: o, DeliveryID: deliveryID})
	if err != nil {
		return Job{}, err
	}
	l.logChange(j, from)
	if j.Active() {
		return j, nil
	}
	if err := l.dirs.removeInputs(j.ID); err != nil {
		l.log.Warn("remove inputs", "job", j.ID, "err", err)
	}
	if j.WebhookURL != "" && j.Status != StatusCancelled {
		l.hooks.Notify()
	}
	return j, nil
}

// logChange writes the log line of every change of a job's state: j as stored, from its state
// before.
func (l *lifecycle) logChange(j Job, from JobStatus) {
	attrs := []any{"job", j.ID, "key", j.KeyID, "from", from, "status", j.Status, "retries", j.Retries,
		"age_s", j.UpdatedAt.Sub(j.CreatedAt).Seconds()}
	if j.ErrorMessage != "" {
		attrs = append(attrs, "error", j.ErrorMessage)
	}
	l.log.Info("job state changed", attrs...)
}

// cancel ends keyID's PENDING job id as CANCELLED.
func (l *lifecycle) cancel(ctx context.Context, keyID, id string) (Job, error) {
	return l.finish(ctx, id, keyID, StatusPending, Outcome{Status: StatusCancelled})
}

// recover runs at start-up, under the data directory's lock and before the renderer: every job a
// dead process left PROCESSING goes back to PENDING, counting a retry (or FAILS when it has had
// its attempts), and the files no job needs any more are deleted.
func (l *lifecycle) recover(ctx context.Context) error {
	jobs, err := l.store.ProcessingJobs(ctx)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		l.log.Warn("job was interrupted by a crash", "job", j.ID, "retries", j.Retries)
		if _, err := l.finish(ctx, j.ID, "", StatusProcessing, Outcome{Status: StatusPending, CountRetry: true}); err != nil {
			return fmt.Errorf("requeue %s: %w", j.ID, err)
		}
	}
	if err := l.dirs.emptyTmp(); err != nil {
		return err
	}
	active, err := l.store.ActiveJobIDs(ctx)
	if err != nil {
		return err
	}
	if err := l.dirs.sweepInputs(active); err != nil {
		return err
	}
	tokens, err := l.store.OutputTokens(ctx)
	if err != nil {
		return err
	}
	return l.dirs.sweepOutputs(tokens)
}

// expire deletes the outputs of jobs that finished before cutoff, so their links answer 410, and the
// webhook history of those jobs. It returns how many files it deleted. Jobs an earlier expiry of
// this run already went through are not read again.
func (l *lifecycle) expire(ctx context.Context, cutoff time.Time) (int, error) {
	l.expiring.Lock()
	defer l.expiring.Unlock()
	// The window reaches a day back into the last one: a file whose deletion failed is tried again
	// for a day, and a clock set back by less than that skips nothing.
	since := l.expiredBefore
	if !since.IsZero() {
		since = since.Add(-24 * time.Hour)
	}
	expired, err := l.store.ExpiredOutputs(ctx, since, cutoff)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range expired {
		k, err := l.dirs.removeOutputs(o.Token)
		n += k
		if err != nil {
			l.log.Error("delete expired output, will retry for a day", "job", o.JobID, "err", err)
		}
	}
	if n > 0 {
		l.log.Info("deleted expired outputs", "files", n)
	}
	if _, err := l.store.PruneDeliveries(ctx, cutoff); err != nil {
		return n, err
	}
	l.expiredBefore = cutoff
	return n, nil
}
