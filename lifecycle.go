package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// lifecycle owns every way a job ends: rendered, failed, cancelled, given up after a crash, and
// its output expired. Whatever the way, the same things follow, here and nowhere else: the state
// change and the webhook delivery in one transaction, the uploads deleted, the webhook sender woken
// and one log line.
type lifecycle struct {
	store *Store
	dirs  dataDir   // its tmp/, emptied at start-up
	files fileStore // uploads and outputs
	// sweepGrace spares files younger than it from the start-up sweep: in a bucket that several
	// nodes share, another node may be placing the uploads of a job it has yet to commit.
	sweepGrace time.Duration
	now        func() time.Time
	hooks      *webhookSender
	log        *slog.Logger
	rand       io.Reader
	// observeEnd, when set, is told of every job that reached its final state (the metrics count
	// them).
	observeEnd func(Job)
	// expiredBefore is the cutoff of this run's last complete expiry: outputs of jobs that finished
	// before it were deleted. It is zero until the first, which reads every expired job, so a
	// shorter -retention after a restart takes effect. expiring serialises expiries.
	expiring      sync.Mutex
	expiredBefore time.Time
	// leases, when its duration is set, makes each claim a lease of this node (lease.go); zero,
	// claims are not leased and recover takes back every PROCESSING job.
	leases leasing
	// orphansLeft is set when recover could not sweep the files no job needs (the bucket did not
	// answer): the hourly sweep tries again until it succeeds. Only recover and then sweepLoop
	// touch it, one after the other.
	orphansLeft bool
}

// finish moves job id from state from as o says (keyID, when set, must own it) and returns the job
// as stored. When the job has ended, its uploads are deleted and, if it has a webhook URL, the
// sender is woken for the delivery the transaction wrote.
func (l *lifecycle) finish(ctx context.Context, id, keyID string, from JobStatus, o Outcome) (Job, error) {
	return l.change(ctx, transition{JobID: id, KeyID: keyID, From: from, Next: toward(o)})
}

// change applies t (its delivery named here) and what follows the job's end when it ended.
func (l *lifecycle) change(ctx context.Context, t transition) (Job, error) {
	var err error
	if t.DeliveryID, err = newDeliveryID(l.rand); err != nil {
		return Job{}, err
	}
	j, err := l.store.Transition(ctx, t)
	if err != nil {
		return Job{}, err
	}
	l.logChange(j, t.From)
	l.ended(ctx, j)
	return j, nil
}

// ended does what follows a change that ended job j, as stored: its uploads deleted and, if it is
// owed a webhook, the sender woken. It does nothing for a job still active.
func (l *lifecycle) ended(ctx context.Context, j Job) {
	if j.Active() {
		return
	}
	if l.observeEnd != nil {
		l.observeEnd(j)
	}
	if err := removeInputs(ctx, l.files, j.ID); err != nil {
		l.log.Warn("remove inputs", j.logAttrs("err", err)...)
	}
	if owesWebhook(j) && l.hooks != nil {
		l.hooks.Notify()
	}
}

// logChange writes the log line of every change of a job's state: j as stored, from its state
// before.
func (l *lifecycle) logChange(j Job, from JobStatus) {
	attrs := j.logAttrs("key", j.KeyID, "from", from, "status", j.Status, "retries", j.Retries,
		"age_s", j.UpdatedAt.Sub(j.CreatedAt).Seconds())
	if j.ErrorMessage != "" {
		attrs = append(attrs, "error", j.ErrorMessage)
	}
	l.log.Info("job state changed", attrs...)
}

// claim hands a job whose lease lapsed, else the oldest PENDING job, to a renderer: it is
// PROCESSING when claim returns it, or ErrNotFound when no job waits. Lapsed leases are looked for
// with a read first: every worker polls at every wake-up, and on SQLite each write transaction
// takes the database's one write lock.
func (l *lifecycle) claim(ctx context.Context) (Job, error) {
	if l.leases.duration > 0 {
		lapsed, err := l.store.HasLapsedLease(ctx, l.leases.now())
		if err != nil {
			return Job{}, err
		}
		if lapsed {
			j, err := l.reclaim(ctx)
			if !errors.Is(err, ErrNotFound) {
				return j, err
			}
		}
	}
	lease, err := l.leases.next()
	if err != nil {
		return Job{}, err
	}
	j, err := l.store.ClaimJob(ctx, claimingUnder(lease))
	if err != nil {
		return Job{}, err
	}
	l.leases.count("claim")
	l.logChange(j, StatusPending)
	return j, nil
}

// claiming is the change a claim makes: PENDING to PROCESSING, retries unchanged, not leased.
func claiming() transition { return claimingUnder(Lease{}) }

// claimingUnder is the change a claim under lease makes: PENDING to PROCESSING, retries unchanged.
func claimingUnder(lease Lease) transition {
	return transition{From: StatusPending, Next: func(j Job) (Job, bool, error) {
		next, deliver, err := toward(Outcome{Status: StatusProcessing})(j)
		next.Lease = lease
		return next, deliver, err
	}}
}

// reclaiming is the change a claim of a job whose lease lapsed makes: its render was interrupted
// (its node died, or lost the database for longer than a lease), which counts as a retry, as a
// crash does; the job stays PROCESSING under the new lease, so its status never goes back, or
// FAILS when that was its last attempt (requeue), with its webhook.
func reclaiming(lease Lease) transition {
	return transition{From: StatusProcessing, Next: func(j Job) (Job, bool, error) {
		next, deliver, err := toward(Outcome{Status: StatusPending, CountRetry: true})(j)
		if err != nil || next.Status != StatusPending {
			return next, deliver, err
		}
		next.Status, next.Lease = StatusProcessing, lease
		return next, false, nil
	}}
}

// cancel ends keyID's PENDING job id as CANCELLED.
func (l *lifecycle) cancel(ctx context.Context, keyID, id string) (Job, error) {
	return l.finish(ctx, id, keyID, StatusPending, Outcome{Status: StatusCancelled})
}

// recover runs at start-up, under the data directory's lock and before the renderer: every job a
// dead process of this node left PROCESSING (its lease this node's, or lapsed, or none) goes back
// to PENDING, counting a retry (or FAILS when it has had its attempts), and the files no job needs
// any more are deleted. A job another node holds a live lease on is left to it.
func (l *lifecycle) recover(ctx context.Context) error {
	jobs, err := l.store.ProcessingJobs(ctx)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if !l.leases.takeBackAtStart(j) {
			continue // another node renders it
		}
		l.log.Warn("job was interrupted by a crash", j.logAttrs("retries", j.Retries)...)
		if _, err := l.finish(ctx, j.ID, "", StatusProcessing, Outcome{Status: StatusPending, CountRetry: true}); err != nil {
			return fmt.Errorf("requeue %s: %w", j.ID, err)
		}
	}
	if err := l.releaseDeliveries(ctx); err != nil {
		return err
	}
	if err := l.dirs.emptyTmp(); err != nil {
		return err
	}
	// A bucket that does not answer must not keep the service down: its orphans wait for the
	// hourly sweep (sweepLoop).
	if err := l.sweepOrphans(ctx, l.sweepGrace); err != nil {
		l.log.Warn("sweep files no job needs; will try again within the hour", "err", err)
		l.orphansLeft = true
	}
	return nil
}

// sweepOrphans deletes the files no job needs, older than grace: the uploads of every job not
// active (inputs of ended jobs, and orphans of a crash between upload and commit) and the outputs of
// every token no job has (a crash between publishing a render's files and recording the job's end
// leaves them, and the job renders again under a new token).
func (l *lifecycle) sweepOrphans(ctx context.Context, grace time.Duration) error {
	active, err := l.store.ActiveJobIDs(ctx)
	if err != nil {
		return err
	}
	if err := sweepFiles(ctx, l.files, "inputs/", grace, l.now(), func(id string) bool { return active[id] }); err != nil {
		return err
	}
	tokens, err := l.store.OutputTokens(ctx)
	if err != nil {
		return err
	}
	return sweepFiles(ctx, l.files, "outputs/", grace, l.now(), func(token string) bool { return tokens[token] })
}

// sweepLeftOrphans runs again the sweep recover could not finish (orphansLeft), while the service
// runs: with an hour's grace, since uploads are then being placed. Once one succeeds, it does
// nothing.
func (l *lifecycle) sweepLeftOrphans(ctx context.Context) {
	if !l.orphansLeft {
		return
	}
	if err := l.sweepOrphans(ctx, max(l.sweepGrace, time.Hour)); err != nil {
		if ctx.Err() == nil {
			l.log.Warn("sweep files no job needs; will try again within the hour", "err", err)
		}
		return
	}
	l.orphansLeft = false
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
		k, err := removeOutputs(ctx, l.files, o.Token, o.Options.sizes()...)
		n += k
		if err != nil {
			l.log.Error("delete expired output, will retry for a day", Job{ID: o.JobID, TraceID: o.TraceID}.logAttrs("err", err)...)
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

// The policies below decide where a job or a webhook delivery goes next. They are pure functions
// of what is stored and what happened, so every store applies the same decisions.

// Outcome is where a job goes next.
type Outcome struct {
	Status       JobStatus // PROCESSING (claimed), COMPLETED, FAILED, CANCELLED, or PENDING to run it again
	OutputToken  string    // COMPLETED: names the output
	ErrorMessage string    // FAILED: for the user
	CountRetry   bool      // PENDING: the attempt counts against MaxAttempts (false for a shutdown)
	// Cause is, for PENDING, why the render failed, in the user's words (passingCause): the
	// message of a job this attempt leaves FAILED names it. "" is an interruption: a crash, a
	// restart, a lapsed lease, a shutdown.
	Cause string
	// LoudnessReached, COMPLETED: the loudness the audio was brought to when short of the target
	// (Job.LoudnessReached), else 0.
	LoudnessReached float64
}

// MaxAttempts is how many times a job is rendered before a passing failure becomes FAILED.
const MaxAttempts = 3

// nextAfter returns the job j, as stored, as outcome o leaves it: its state, retries, output token
// and error message. A job to be run again that has had its MaxAttempts fails (see requeue).
func nextAfter(j Job, o Outcome) (Job, error) {
	switch o.Status {
	case StatusProcessing:
		j.Status = StatusProcessing
	case StatusPending:
		var msg string
		j.Status, j.Retries, msg = requeue(j.Retries, o.CountRetry, o.Cause)
		if j.Status == StatusFailed {
			j.ErrorMessage = msg
		}
	case StatusCompleted:
		j.Status, j.OutputToken, j.LoudnessReached = StatusCompleted, o.OutputToken, o.LoudnessReached
	case StatusFailed, StatusCancelled:
		j.Status, j.ErrorMessage = o.Status, o.ErrorMessage
	default:
		return Job{}, fmt.Errorf("bad outcome %q", o.Status)
	}
	return j, nil
}

// requeue decides where a job that has had retries counted goes when its render is to run again:
// PENDING, with one more retry counted when count says the attempt was the job's (a crash, a
// passing failure; not a shutdown). Once that makes MaxAttempts it is FAILED instead, with the
// message its owner reads (exhausted, naming the last attempt's cause), and its retries stay at
// MaxAttempts-1: the retries after the first try.
func requeue(retries int, count bool, cause string) (JobStatus, int, string) {
	if count {
		retries++
	}
	if retries >= MaxAttempts {
		return StatusFailed, MaxAttempts - 1, exhausted(cause)
	}
	return StatusPending, retries, ""
}

// exhausted is the message of a job whose last render failed for cause after MaxAttempts: the
// cause the renderer saw, since one that repeats (the server short of memory, a render too slow
// for its time limit) tells its owner more than "passing" does; "" is an interruption.
func exhausted(cause string) string {
	if cause == "" {
		return fmt.Sprintf("Rendering failed %d times for a passing reason (the renderer was interrupted); please submit the job again", MaxAttempts)
	}
	return fmt.Sprintf("Rendering failed %d times (the last time, %s); please submit the job again", MaxAttempts, cause)
}

// owesWebhook reports whether the job j, as it will be stored, is owed a webhook delivery: it has a
// webhook URL and ended COMPLETED or FAILED (a job its owner cancelled is not announced).
func owesWebhook(j Job) bool {
	return j.WebhookURL != "" && (j.Status == StatusCompleted || j.Status == StatusFailed)
}

// toward is the decision a transition by outcome o hands the store: the job as nextAfter leaves it,
// with its webhook delivery when owesWebhook says so.
func toward(o Outcome) func(Job) (Job, bool, error) {
	return func(j Job) (Job, bool, error) {
		next, err := nextAfter(j, o)
		if err != nil {
			return Job{}, false, err
		}
		return next, owesWebhook(next), nil
	}
}

// retrySchedule is the wait before each retry of a failed delivery (the first attempt is at once);
// after the last one the delivery is given up. Each wait gets ±10% jitter.
var retrySchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
	10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// maxRetryAfter is the longest a receiver's Retry-After may put a delivery off.
const maxRetryAfter = 24 * time.Hour

// nextDelivery decides what follows attempt a at a delivery that had attempts before it: delivered
// on a 2xx (no error); failed on 410 Gone or when the schedule is used up; otherwise pending at the
// schedule's next wait after a, moved by jitter (in [0,1): 0.5 is none, 0 and 1 are ∓10%), or
// after asked, up to maxRetryAfter, when the receiver answered 429 or 503 with a Retry-After
// asking for longer (0: none).
func nextDelivery(attempts int, a Attempt, asked time.Duration, jitter float64) (DeliveryState, time.Time) {
	if a.Error == "" {
		return DeliveryDelivered, time.Time{}
	}
	if a.StatusCode == http.StatusGone || attempts >= len(retrySchedule) {
		return DeliveryFailed, time.Time{}
	}
	wait := retrySchedule[attempts]
	wait += time.Duration((jitter*0.2 - 0.1) * float64(wait))
	if (a.StatusCode == http.StatusTooManyRequests || a.StatusCode == http.StatusServiceUnavailable) && asked > wait {
		wait = min(asked, maxRetryAfter)
	}
	return DeliveryPending, a.At.Add(wait)
}
