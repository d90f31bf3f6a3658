package main

// Readiness for systemd (Type=notify): the service manager learns that vidgen listens, and that it
// is stopping, from datagrams on the socket it names in NOTIFY_SOCKET. No library: the protocol is
// one write of "KEY=VALUE" lines to a unix datagram socket.

import (
	"fmt"
	"net"
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
