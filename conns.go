package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// Bounds on what one client can hold open. Every connection costs a file descriptor, a download or
// an upload two (the socket and its file), and the process has a fixed number: past it, every
// request and the database fail. These keep one address from taking them all; the descriptor
// budget (fdbudget.go) keeps many from doing it together.
const (
	// maxConnsPerAddr is the most TCP connections one address (an IPv6 /64) may hold; a reverse
	// proxy named by -trust-proxy is exempt and is expected to limit its clients itself.
	maxConnsPerAddr = 64
	// maxDownloadsPerClient is the most video, poster and share page responses one client may be
	// receiving at once; a player needs a few for its range requests.
	maxDownloadsPerClient = 16
	// maxUploads and maxUploadsPerClient bound the submissions being received at once, in all and
	// from one client.
	maxUploads          = 64
	maxUploadsPerClient = 4
	// maxValidations is how many submissions may decode their files at once (each runs two or three
	// ffmpeg/ffprobe processes; a 100-megapixel picture takes ~0.5 GB to decode).
	maxValidations = 4
	// downloadStall is how long a download may wait for its client to take the next bytes before it
	// is cut: a slow link keeps reading, a client that stopped does not.
	downloadStall = time.Minute
)

// prefixOf is the unit one client is counted by: the address itself for IPv4, its /64 for IPv6,
// since one IPv6 user typically holds a whole /64.
func prefixOf(a netip.Addr) netip.Prefix {
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// counter counts what each client holds at once, against a per-client and an overall bound.
type counter struct {
	mu        sync.Mutex
	n         map[netip.Prefix]int
	total     int
	perClient int
	max       int // 0: no overall bound
}

func newCounter(perClient, max int) *counter {
	return &counter{n: map[netip.Prefix]int{}, perClient: perClient, max: max}
}

// acquire takes one for client p, and says whether it was within both bounds (exempt clients
// count only toward the overall one).
func (c *counter) acquire(p netip.Prefix, exempt bool) (ok, overall bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max > 0 && c.total >= c.max {
		return false, true
	}
	if !exempt && c.n[p] >= c.perClient {
		return false, false
	}
	c.n[p]++
	c.total++
	return true, false
}

func (c *counter) release(p netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[p]--; c.n[p] <= 0 {
		delete(c.n, p)
	}
	c.total--
}

// connLimitListener closes at once every connection past its address's share or past the process's
// descriptor budget, so a flood from one address leaves room for everyone else, and counts the rest
// in the budget.
type connLimitListener struct {
	net.Listener
	conns   *counter
	trusted func(netip.Addr) bool
	fds     *fdBudget
}

// limitConns wraps ln with the per-address bound, and counts its connections in fds.
func limitConns(ln net.Listener, trusted func(netip.Addr) bool, fds *fdBudget) net.Listener {
	return &connLimitListener{Listener: ln, conns: newCounter(maxConnsPerAddr, 0), trusted: trusted, fds: fds}
}

func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
		if err != nil {
			return c, nil // not an IP connection (tests' pipes): nothing to count
		}
		a := ap.Addr().Unmap()
		p := prefixOf(a)
		if ok, _ := l.conns.acquire(p, l.trusted(a)); !ok {
			c.Close()
			continue
		}
		cc := &countedConn{Conn: c}
		fds, ok := l.fds.accept(cc.Close)
		if !ok {
			l.conns.release(p)
			c.Close()
			continue
		}
		cc.fds = fds
		cc.release = sync.OnceFunc(func() {
			fds.release()
			l.conns.release(p)
		})
		return cc, nil
	}
}

// countedConn is an accepted connection, counted against its address and in the descriptor budget
// until it closes.
type countedConn struct {
	net.Conn
	fds     *fdConn
	release func()
}

func (c *countedConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// limitDownloads refuses a client more than maxDownloadsPerClient responses under way at once, and
// any client one when the descriptor budget has no room for its file (a share page, which holds
// none, is counted as one all the same: it is small and over at once) even after idle downloads
// were cut for it. It cuts a response whose client has stopped reading for downloadStall, and lets
// the budget cut it sooner, once idle for downloadIdle, when another connection needs the room.
func (s *server) limitDownloads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := s.clients.key(r)
		if ok, _ := s.downloads.acquire(p, false); !ok {
			w.Header().Set("Retry-After", "1")
			s.writeError(w, r, errorf(kindRateLimited, "Too many downloads at once from one address; at most %d", maxDownloadsPerClient))
			return
		}
		defer s.downloads.release(p)
		conn := fdConnOf(r)
		give, ok := s.fds.take(conn, 1, fdDownload)
		if !ok {
			// The connection goes too: its descriptor is what health checks need.
			w.Header().Set("Retry-After", "5")
			w.Header().Set("Connection", "close")
			s.writeError(w, r, errorf(kindUnavailable, "The server is sending as many downloads as it can; try again in a few seconds"))
			return
		}
		defer give()
		conn.setDownloading(true)
		defer conn.setDownloading(false)
		next.ServeHTTP(&stallWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: downloadStall, conn: conn}, r)
	})
}

// stallWriter moves the connection's write deadline forward before every write, so a response may
// take as long as it needs on a slow link but not one that has stopped, and tells the descriptor
// budget when its client took bytes: a write blocked on a full socket buffer is idle.
type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
	conn  *fdConn // nil when the connection is not counted
}

func (w *stallWriter) Write(p []byte) (int, error) {
	w.rc.SetWriteDeadline(time.Now().Add(w.stall))
	n, err := w.ResponseWriter.Write(p)
	if n > 0 {
		w.conn.progress()
	}
	return n, err
}

func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// rateReader is an upload's body that must keep arriving at minRate bytes a second on average once
// grace has passed, and be whole by deadline: before each read it sets the connection's read
// deadline to when the next byte is due, so a client that trickles or stalls is cut as soon as it
// falls behind, without a timer of its own.
type rateReader struct {
	io.ReadCloser
	rc       *http.ResponseController
	start    time.Time
	grace    time.Duration
	minRate  float64 // bytes a second
	deadline time.Time
	n        int64
	// cut is set when the body ended short of its length: the client closed or reset the connection.
	cut bool
}

func (u *rateReader) Read(p []byte) (int, error) {
	due := u.start.Add(u.grace + time.Duration(float64(u.n+1)/u.minRate*float64(time.Second)))
	if u.deadline.Before(due) {
		due = u.deadline
	}
	u.rc.SetReadDeadline(due)
	n, err := u.ReadCloser.Read(p)
	u.n += int64(n)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		u.cut = true
	}
	return n, err
}
