package main

import (
	"crypto/rand"
	"net"
	"path/filepath"
	"strings"
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
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@vidgen-test-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + randomSuffix(t)} {
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

// randomSuffix keeps abstract socket names of tests run side by side apart.
func randomSuffix(t testing.TB) string {
	t.Helper()
	s, err := randomHex(rand.Reader, 6)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
