package main

import (
	"errors"
	"fmt"
	"runtime"
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
