package main

import (
	"context"
	"sync"
	"time"
)

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
