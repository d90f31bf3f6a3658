package main

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// This file shares out the process's file descriptors. Every connection holds one, a download one
// more for its file, an upload one more for its temporary file; past the limit (RLIMIT_NOFILE)
// every accept, open and pipe fails, the health check's with them. The per-address caps keep one
// address from taking them all; the budget keeps many addresses, each within its caps, from doing
// it together.

const (
	// fdBase is what the process holds whatever it serves: stdio, the log, epoll, the listeners, the
	// data directory's lock, the database pool (maxOpenConns connections of two descriptors each and
	// the shared-memory file) and the webhook deliveries under way (webhookInFlight sockets). 14 of
	// them are open at rest.
	fdBase = 64
	// fdPerChild is what one ffmpeg, ffprobe or heif-convert child holds in vidgen: its pidfd,
	// /dev/null, the pipes of its output, and two more while it starts. Measured: a render of a
	// 150 s audio (three children at once) held 10 descriptors more than the server at rest.
	fdPerChild = 6
	// fdVital is how much of the budget downloads may not take. It is kept for the requests that
	// must answer when downloads hold the rest: health checks, job status and submissions (whose
	// temporary files may take half of it). A connection whose request is not read yet may use it
	// too, since its route is not known; a request answered from it holds it for milliseconds.
	fdVital = 32
	// downloadIdle is how long a download's client must have taken no bytes before the download
	// may be cut to make room for another connection: a paused player, a client that stopped
	// reading. A client cut this way gets its video again with a range request.
	downloadIdle = 5 * time.Second
	// waitGrace is how long a connection without a request in progress (a new one whose request's
	// headers have not all come, a keep-alive one between requests) is left alone before it may be
	// cut to make room for another. A client sends its request as its connection opens: it is in
	// within milliseconds (a health check's whole answer took 4-140 ms on loopback amid 2,560
	// silent connections), within a second on a link of 300 ms round trip that loses a segment.
	// Longer would only help a flood: to keep every waiting connection younger than this, so that
	// none may be cut, it must open budget/waitGrace connections a second, over 300 under a limit
	// of 512, some 65,000 under the unit's 65536.
	waitGrace = time.Second
)

// fdReserve is how many descriptors the budget keeps back for what is not a connection's: the
// process's own (fdBase), workers renders of a picture step and up to min(cpus, maxSegments) audio
// segments at once, two files each, and maxValidations checks of a submission's files, two
// children and two files each.
func fdReserve(workers, cpus int) int {
	render := 2 + (1+min(cpus, maxSegments))*fdPerChild
	check := 2 + 2*fdPerChild
	return fdBase + workers*render + maxValidations*check
}

// fdLimit is the process's descriptor limit, 0 when there is none to speak of. It is not raised
// here: Go's syscall package already raised the soft limit as the process started (since Go 1.19),
// to one below the hard limit, and puts the old one back for children, so ffmpeg is unaffected.
// What it reads is the real limit (TestE2EDescriptorLimitRaised checks it).
func fdLimit() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur >= 1<<30 {
		return 0
	}
	return int(lim.Cur)
}

// fdClass is how far into the budget a taker may reach.
type fdClass uint8

const (
	fdDownload fdClass = iota // a download's file: all but fdVital
	fdUpload                  // an upload's temporary file: all but half of fdVital
	fdAccept                  // a new connection, whose route is not known yet: all of it
)

// fdBudget counts the descriptors connections and the files of their requests hold, against what
// the process's limit leaves once the reserve is kept back. When a taker would go past its share,
// the oldest idle downloads are cut first, then the connections that have waited longest for a
// request: keep-alive ones between requests, new ones that have sent nothing or only part of their
// headers (slowloris). Both give their descriptors back as their connection closes.
type fdBudget struct {
	now     func() time.Time
	limit   int // the process's descriptor limit; 0 when there is none
	reserve int // of limit, kept back for what is not a connection's
	max     int // what connections and their files may hold at once; 0: no bound

	mu    sync.Mutex
	used  int
	conns map[*fdConn]struct{}
}

// newFDBudget is the budget of a process whose descriptor limit is limit (0: none), reserve of
// them kept back. A limit that leaves less than twice fdVital still gets that much: a process that
// starved would serve nobody, and its start-up line says to raise the limit.
func newFDBudget(limit, reserve int, now func() time.Time) *fdBudget {
	b := &fdBudget{now: now, limit: limit, reserve: reserve, conns: map[*fdConn]struct{}{}}
	if limit > 0 {
		b.max = max(limit-reserve, 2*fdVital)
	}
	return b
}

// low says whether the limit left connections less than they were given: an operator should raise
// it (LimitNOFILE in the unit).
func (b *fdBudget) low() bool { return b.limit > 0 && b.max > b.limit-b.reserve }

// share is how many descriptors may be in use once a taker of class c has taken its own.
func (b *fdBudget) share(c fdClass) int {
	switch c {
	case fdDownload:
		return b.max - fdVital
	case fdUpload:
		return b.max - fdVital/2
	}
	return b.max
}

// fdConn is one connection's part of the budget: its socket, and the file its request holds.
type fdConn struct {
	b     *fdBudget
	close func() error // closes the connection, which gives back what it holds
	// Guarded by b.mu: held is what it counts for, gone that it gave all back (cut or closed),
	// downloading and idle what may cut it. idle is true while no request is in progress: from
	// accept until its first request's headers are read, and between requests.
	held        int
	gone        bool
	downloading bool
	idle        bool
	// last is when it last made progress, in Unix nanoseconds: it was accepted, its request began
	// or ended, or its download's client took bytes. Atomic, so a download's writes take no lock.
	last atomic.Int64
}

// accept takes a descriptor for a new connection that close closes. It cuts idle downloads and
// connections while the budget is past what downloads may take, so that accepting never eats the
// reserve while something idle could give way, and says false only when the budget is spent.
func (b *fdBudget) accept(close func() error) (*fdConn, bool) {
	c := &fdConn{b: b, close: close, idle: true}
	c.last.Store(b.now().UnixNano())
	if _, ok := b.take(c, 1, fdAccept); !ok {
		return nil, false
	}
	return c, true
}

// take counts n more descriptors for c (nil, or a connection already cut: on their own), within
// class's share, cutting what is idle while the budget is past the downloads' share. It says
// whether they were taken, and gives the function that gives them back.
func (b *fdBudget) take(c *fdConn, n int, class fdClass) (give func(), ok bool) {
	b.mu.Lock()
	var victims []*fdConn
	for b.max > 0 && b.used+n > b.share(fdDownload) {
		v := b.oldestIdle()
		if v == nil {
			break
		}
		b.drop(v)
		victims = append(victims, v)
	}
	if ok = b.max == 0 || b.used+n <= b.share(class); ok {
		b.used += n
		give = func() { b.give(nil, n) }
		if c != nil && !c.gone {
			b.conns[c] = struct{}{}
			c.held += n
			give = func() { b.give(c, n) }
		}
	}
	b.mu.Unlock()
	for _, v := range victims {
		v.close() // after the lock: closing gives back through release, which takes it
	}
	return give, ok
}

// oldestIdle is the connection to cut first, nil when none may be: the download whose client has
// taken nothing for longest, if for downloadIdle at least, else the connection that has waited for
// a request for longest, if for waitGrace at least. Called with b.mu held; a scan, since it runs
// only when the budget is nearly spent.
func (b *fdBudget) oldestIdle() *fdConn {
	var download, conn *fdConn
	now := b.now()
	stalled, waited := now.Add(-downloadIdle).UnixNano(), now.Add(-waitGrace).UnixNano()
	for c := range b.conns {
		last := c.last.Load()
		switch {
		case c.downloading && last <= stalled && (download == nil || last < download.last.Load()):
			download = c
		case c.idle && !c.downloading && last <= waited && (conn == nil || last < conn.last.Load()):
			conn = c
		}
	}
	if download != nil {
		return download
	}
	return conn
}

// drop gives back all c holds, for good. Called with b.mu held.
func (b *fdBudget) drop(c *fdConn) {
	b.used -= c.held
	c.held, c.gone = 0, true
	delete(b.conns, c)
}

// give gives back n descriptors taken for c (nil: on their own), unless c was cut or closed since,
// which gave back all it held.
func (b *fdBudget) give(c *fdConn, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case c == nil:
		b.used -= n
	case !c.gone:
		c.held -= n
		b.used -= n
	}
}

// release gives back all the connection holds, as it closes.
func (c *fdConn) release() {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	c.b.drop(c)
}

// progress notes that the connection's client took bytes.
func (c *fdConn) progress() {
	if c != nil {
		c.last.Store(c.b.now().UnixNano())
	}
}

// setDownloading marks the connection as serving a download, which may be cut once its client has
// taken nothing for downloadIdle.
func (c *fdConn) setDownloading(on bool) {
	if c == nil {
		return
	}
	c.b.mu.Lock()
	c.downloading = on
	c.b.mu.Unlock()
	c.progress()
}

// connState follows the server's connections (http.Server.ConnState): one waiting for a request
// may be closed to make room, one in a request may not. The server reports a connection active
// once its request's headers are read, so one that trickles them stays idle from accept.
func (b *fdBudget) connState(nc net.Conn, state http.ConnState) {
	cc, ok := nc.(*countedConn)
	if !ok || cc.fds == nil || (state != http.StateIdle && state != http.StateActive) {
		return
	}
	b.mu.Lock()
	cc.fds.idle = state == http.StateIdle
	b.mu.Unlock()
	cc.fds.progress()
}

// inUse is how many descriptors connections and their files hold now.
func (b *fdBudget) inUse() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

type fdConnKey struct{}

// withFDConn puts a connection's part of the budget in its requests' context
// (http.Server.ConnContext), so a download can be cut through it.
func withFDConn(ctx context.Context, nc net.Conn) context.Context {
	if cc, ok := nc.(*countedConn); ok && cc.fds != nil {
		return context.WithValue(ctx, fdConnKey{}, cc.fds)
	}
	return ctx
}

// fdConnOf is r's connection in the budget, nil when it is not counted (tests' servers).
func fdConnOf(r *http.Request) *fdConn {
	c, _ := r.Context().Value(fdConnKey{}).(*fdConn)
	return c
}
