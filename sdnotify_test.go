package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// listenNotify is a service manager's notification socket: a unix datagram listener at name (a path,
// or '@' and an abstract name, as NOTIFY_SOCKET spells them), closed with the test.
func listenNotify(t testing.TB, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readNotify returns the next datagram on conn, failing the test when none comes within wait.
func readNotify(t testing.TB, conn *net.UnixConn, wait time.Duration) string {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(wait))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification within %s: %v", wait, err)
	}
	return string(buf[:n])
}

// TestSdNotifySocketKinds: a state reaches a NOTIFY_SOCKET that is a path and one that is an abstract
// socket ('@' name, as systemd gives), byte for byte; with no socket, notify does nothing.
func TestSdNotifySocketKinds(t *testing.T) {
	t.Parallel()
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@vidgen-test-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + randomTestHex(t)} {
		conn := listenNotify(t, name)
		if err := (notifier{socket: name}).notify("READY=1\nSTATUS=listening"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := readNotify(t, conn, 10*time.Second); got != "READY=1\nSTATUS=listening" {
			t.Errorf("%s: got %q", name, got)
		}
	}
	if err := (notifier{}).notify("READY=1"); err != nil {
		t.Errorf("no NOTIFY_SOCKET: %v", err)
	}
	if err := (notifier{socket: filepath.Join(t.TempDir(), "none")}).notify("READY=1"); err == nil {
		t.Error("a socket nobody listens on: no error")
	}
}

// TestWatchdogEvery: WATCHDOG_USEC halved, for this process only, and nothing when unset or bad.
func TestWatchdogEvery(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"60000000", "", 30 * time.Second},
		{"60000000", "42", 30 * time.Second},
		{"60000000", "43", 0}, // another process's watchdog
		{"", "", 0},
		{"0", "", 0},
		{"-5", "", 0},
		{"60s", "", 0},
	} {
		env := func(k string) string { return map[string]string{"WATCHDOG_USEC": c.usec, "WATCHDOG_PID": c.pid}[k] }
		if got := watchdogEvery(env, 42); got != c.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %s, want %s", c.usec, c.pid, got, c.want)
		}
	}
}

// TestWatchdogKeepAlive: WATCHDOG=1 comes while the service is healthy and stops while it is not
// (so that systemd restarts it), and keepAlive returns when its context ends.
func TestWatchdogKeepAlive(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "notify")
	conn := listenNotify(t, sock)
	var sick atomic.Bool
	checks := make(chan bool, 1000)
	healthy := func(context.Context) error {
		s := sick.Load()
		select {
		case checks <- s:
		default: // the test no longer counts: never block the loop
		}
		if s {
			return errors.New("data directory: replaced")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		notifier{socket: sock}.keepAlive(ctx, 10*time.Millisecond, healthy, slog.New(slog.NewTextHandler(io.Discard, nil)))
		close(done)
	}()
	if got := readNotify(t, conn, 10*time.Second); got != "WATCHDOG=1" {
		t.Fatalf("healthy: %q, want WATCHDOG=1", got)
	}
	sick.Store(true)
	for seen := 0; seen < 2; { // two checks that saw it sick: any ping sent before is in the socket
		if <-checks {
			seen++
		}
	}
	for { // drain what was sent while it was healthy
		conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := conn.Read(make([]byte, 64)); err != nil {
			break
		}
	}
	for seen := 0; seen < 3; { // three more sick checks, and no ping from them
		if <-checks {
			seen++
		}
	}
	conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 64)); err == nil {
		t.Errorf("a ping while unhealthy (%d bytes)", n)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("keepAlive did not return when its context ended")
	}
}
