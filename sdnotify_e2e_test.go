//go:build e2e

package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2ESdNotifyReady: the real binary, started as systemd starts a Type=notify unit (NOTIFY_SOCKET
// in its environment), says READY=1 only once /api/health answers, on the address its STATUS line
// names, then WATCHDOG=1 as the unit's WatchdogSec asks (WATCHDOG_USEC), and STOPPING=1 when SIGTERM
// starts its shutdown.
func TestE2ESdNotifyReady(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "notify")
	conn := listenNotify(t, sock)
	p := startVidgen(t, t.TempDir(), "ffmpeg", []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=2000000"})

	ready := readNotify(t, conn, 30*time.Second)
	if !strings.HasPrefix(ready, "READY=1\n") {
		t.Fatalf("first notification %q, want READY=1 first", ready)
	}
	addr, ok := strings.CutPrefix(ready[len("READY=1\n"):], "STATUS=listening on ")
	if !ok || "http://"+addr != p.url {
		t.Fatalf("READY's status %q does not name the listener %s", ready, p.url)
	}
	// One try, no retry: READY=1 promises the service answers now.
	resp, err := http.Get(p.url + "/api/health")
	if err != nil {
		t.Fatalf("READY=1 came, but /api/health: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("READY=1 came, but /api/health answered %d", resp.StatusCode)
	}

	if got := readNotify(t, conn, 30*time.Second); got != "WATCHDOG=1" {
		t.Fatalf("after READY=1: %q, want WATCHDOG=1", got)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	for {
		got := readNotify(t, conn, 30*time.Second)
		if got == "STOPPING=1" {
			break
		}
		if got != "WATCHDOG=1" {
			t.Fatalf("on SIGTERM: %q, want STOPPING=1", got)
		}
	}
	select {
	case <-p.exited:
	case <-time.After(time.Minute):
		t.Fatal("vidgen did not exit within a minute of SIGTERM")
	}
}
