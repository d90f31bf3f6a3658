package main

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// eventually waits for a state the code under test reaches in its own time (a job rendered, a line
// logged, a process gone): it calls cond until cond returns nil, and fails tb with cond's last error
// when timeout has passed. cond's error says what is awaited and what is there instead ("job x is
// PROCESSING, want COMPLETED"), so that a failure shows the state the wait ended on.
//
// cond runs at once, then after pauses that double from 10 ms to 200 ms: most states come within
// milliseconds, while a render takes seconds and each poll of the API costs a request, a query and
// JSON (many times over under the race detector). cond may fail tb itself, for a state that can no
// longer change (a job that ended otherwise). Call eventually from the test's goroutine.
func eventually(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for pause := 10 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		err := cond()
		if err == nil {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			tb.Fatalf("waited %v: %v", timeout, err)
		}
		time.Sleep(min(pause, left))
	}
}

// renderDeadline is how long a test waits for renders to end: renderFactor times the reference
// render this test binary measured on this machine, and never under renderFloor. A fixed deadline
// fails on a machine slower or busier than the one it was chosen on (three 20 s platform renders
// outlived 90 s in a make e2e on a loaded 2-core machine); a render's own time scales with both.
// The time matters only when a job is stuck, for a wait ends as soon as the job does.
func renderDeadline(tb testing.TB) time.Duration {
	tb.Helper()
	return max(renderFloor, renderFactor*referenceRender(tb))
}

// renderFactor and renderFloor bound renderDeadline. On a 2-core machine under a load of 4 to 10,
// the reference render took 0.46-1.0 s (1.7 s the first time), and the third of three 20 s 1080p
// platform renders sharing the two workers ended 27-30 s after its submission: 30 to 60 references.
// 300 leaves the load 5 to 10 times the room to grow between the measure and the render. The floor
// is the largest fixed deadline the waits had.
const (
	renderFactor = 300
	renderFloor  = 90 * time.Second
)

// reference is the reference render's time, measured once per test binary.
var reference struct {
	once sync.Once
	took time.Duration
}

// referenceRender returns how long the reference render took: a job of the fast suite's usual
// kind (the 320x240 test picture over 2.5 s of tone, default options), from its submission to
// COMPLETED, on a server of its own, timed once per test binary by the first test that asks, while
// the other tests run as they do. It fails tb when that render failed.
func referenceRender(tb testing.TB) time.Duration {
	tb.Helper()
	reference.once.Do(func() {
		e := newTestEnv(tb, nil)
		defer e.close()
		image, audio := fixture(tb, "img.jpg"), fixture(tb, "tone.wav")
		start := time.Now()
		id := e.mustSubmit(tb, e.key, image, audio)
		eventually(tb, renderFloor, func() error {
			st := e.status(tb, e.key, id)
			if s := JobStatus(st["status"].(string)); s == StatusCompleted {
				return nil
			} else if s.Final() {
				tb.Fatalf("the reference render ended %s: %v", s, st)
			}
			return fmt.Errorf("the reference render did not end: %v", st)
		})
		reference.took = time.Since(start)
		tb.Logf("the reference render took %v: renders get %v", reference.took, max(renderFloor, renderFactor*reference.took))
	})
	if reference.took == 0 {
		tb.Fatal("the reference render failed, in the first test that waited on a render")
	}
	return reference.took
}

// fatalTB records a Fatalf and ends the goroutine that called it, as testing.T's does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestEventually: eventually returns once cond holds, and otherwise fails after the timeout with
// cond's last error, not its first.
func TestEventually(t *testing.T) {
	t.Parallel()
	calls := 0
	eventually(t, 10*time.Second, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Errorf("cond ran %d times, want 3", calls)
	}

	tb := &fatalTB{TB: t}
	calls = 0
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		eventually(tb, 100*time.Millisecond, func() error {
			calls++
			return fmt.Errorf("state %d", calls)
		})
	}()
	<-done
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("gave up after %v, before the timeout", took)
	}
	if want := fmt.Sprintf("waited 100ms: state %d", calls); tb.msg != want {
		t.Errorf("failed with %q, want %q", tb.msg, want)
	}
}
