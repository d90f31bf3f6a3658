package main

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// health reports why the service cannot keep the jobs it takes, or nil: its data directory is not
// the one it opened (gone, or its SQLite file replaced under it), its database or its files
// (fileStore.Check: the bucket) do not answer. The error is a kindUnavailable *Error whose message
// says which, with the cause for the log; local is true for a fault of this node alone, the data
// directory's, which a restart fixes, and false for a server's every node shares.
func (s *server) health(ctx context.Context) (local bool, err error) {
	if err := s.dirs.check(s.dbFile); err != nil {
		return true, &Error{Kind: kindUnavailable, Msg: "The service cannot use its data directory; its operator must restart it", Err: err}
	}
	if err := s.store.Ping(ctx); err != nil {
		return false, &Error{Kind: kindUnavailable, Msg: "The service cannot reach its database; its operator must check it", Err: err}
	}
	if err := s.files.Check(ctx); err != nil {
		return false, &Error{Kind: kindUnavailable, Msg: "The service cannot reach its bucket; try again in a moment", Err: err}
	}
	return false, nil
}

// healthy is what systemd's watchdog asks (keepAlive): health's faults of this node alone, which a
// restart fixes. A Postgres server or a bucket that does not answer is every node's, and restarting
// each node would not bring it back, only kill the renders that the leases carry through the
// outage: the watchdog goes on hearing from the service while /health answers 503.
func (s *server) healthy(ctx context.Context) error {
	if local, err := s.health(ctx); local {
		return err
	}
	return nil
}

// handleHealth answers 200 {"status":"ok","store":…,"files":…} while the service can keep the jobs
// it takes, naming the database it reached ("sqlite" or "postgres") and where its files are ("disk"
// or "s3"), and 503 when health finds it cannot, so that a monitor or a load balancer sees what
// every submission would otherwise find out later.
func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if _, err := s.health(r.Context()); err != nil {
		s.log.Error("health check failed", "err", err)
		var e *Error
		errors.As(err, &e)
		s.writeError(w, r, errorf(e.Kind, "%s", e.Msg)) // logged above: the answer stays the bare 503
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "store": s.store.Backend(), "files": s.files.Kind()})
}

// s3HealthTTL is how long /health reuses the bucket's last answer: the endpoint takes anonymous,
// unlimited requests, and each check is a call the bucket's owner may pay for.
const s3HealthTTL = 5 * time.Second

// cachedCheck runs check at most once every ttl, by the clock now, and answers with its last
// result in between. Callers that come while a check runs wait for it and share its result, so a
// flood of requests against a bucket that hangs costs one call, not one each.
type cachedCheck struct {
	check func(context.Context) error
	ttl   time.Duration
	now   func() time.Time

	mu  sync.Mutex
	at  time.Time // when the last check ended; zero before the first
	err error
}

func newCachedCheck(check func(context.Context) error, ttl time.Duration, now func() time.Time) *cachedCheck {
	return &cachedCheck{check: check, ttl: ttl, now: now}
}

// do returns the result of a check that ended less than ttl ago, or runs one.
func (c *cachedCheck) do(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && c.now().Sub(c.at) < c.ttl {
		return c.err
	}
	// Not the caller's context: its result is everyone's, and a client that hangs up must not
	// leave a cancellation behind as the bucket's state. check has its own deadline.
	c.err = c.check(context.WithoutCancel(ctx))
	c.at = c.now()
	return c.err
}
