package main

// Readiness for systemd (Type=notify): the service manager learns that vidgen listens, and that it
// is stopping, from datagrams on the socket it names in NOTIFY_SOCKET. No library: the protocol is
// one write of "KEY=VALUE" lines to a unix datagram socket.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
)

// notifier tells the service manager about the service's state. Its zero value (no NOTIFY_SOCKET:
// not started by systemd, or by a unit that is not Type=notify) says nothing and never fails.
type notifier struct {
	// socket is NOTIFY_SOCKET: a path, or an abstract socket's name after '@'.
	socket string
}

// notify sends state ("READY=1", "STOPPING=1", with optional "STATUS=…" lines) to the service
// manager. A failure is returned for the log and changes nothing else: systemd, not vidgen, decides
// what an unready service means.
func (n notifier) notify(state string) error {
	if n.socket == "" {
		return nil
	}
	// An abstract socket's name starts with a NUL byte, which NOTIFY_SOCKET spells '@'; the net
	// package turns a leading '@' into that NUL on Linux.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	return nil
}

// watchdogEvery is how often the service must tell systemd it is alive when the unit sets
// WatchdogSec: half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; 0 when systemd asked for
// no watchdog, or asked it of another process (WATCHDOG_PID), or the value is not a count.
func watchdogEvery(env func(string) string, pid int) time.Duration {
	usec, err := strconv.ParseInt(env("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if p := env("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// keepAlive sends WATCHDOG=1 every interval, until ctx is done, as long as healthy finds no fault
// a restart would fix (server.healthy: its data directory gone or replaced). When it finds one, it
// says nothing, and systemd restarts the service once WatchdogSec passes: the restart that
// /health's 503 asks of an operator.
func (n notifier) keepAlive(ctx context.Context, every time.Duration, healthy func(context.Context) error, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		check, cancel := context.WithTimeout(ctx, every)
		err := healthy(check)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Error("unhealthy: not telling systemd's watchdog the service is alive, so that it restarts it", "err", err)
		default:
			if err := n.notify("WATCHDOG=1"); err != nil {
				log.Warn("cannot tell systemd's watchdog the service is alive", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
