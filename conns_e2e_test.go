//go:build e2e

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// floodAddrs is how many loopback addresses the descriptor flood comes from (127.0.0.2 on: all of
// 127/8 reaches lo on Linux), each within its own per-address caps.
const floodAddrs = 39

func init() {
	// A picture of noise: its video is large (0.7 MB) for a still, so a download of it fills the
	// socket's buffers and blocks, holding the file open, when its client does not read.
	fixtureRecipes["noise.png"] = []string{"-f", "lavfi", "-i", "nullsrc=s=1280x720:d=1,geq=r='random(1)*255':g='random(2)*255':b='random(3)*255'", "-frames:v", "1"}
	soloFixtures["noise.png"] = true
}

// loopbackClient is an HTTP client whose connections come from the loopback address ip, and which
// gives up on a request after timeout.
func loopbackClient(ip net.IP, timeout time.Duration) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: timeout}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// stuckDownload opens a connection from the loopback address ip to host and asks for path, and
// never reads the answer: small buffers and segments fill at once, so the server's write blocks
// and the download holds its socket and its open file. nil when the server would not take it.
func stuckDownload(t testing.TB, ip net.IP, host, path string) net.Conn {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 5 * time.Second,
		Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
				// Loopback's 64 KB segments would let the server's send buffer grow to megabytes
				// at once, enough to hold the whole video.
				syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 536)
			})
		}}
	c, err := d.Dial("tcp", host)
	if err != nil {
		return nil
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	return c
}

// openFDs is a census of a process's descriptors: all of them, its sockets, and the videos it has
// open.
type openFDs struct{ total, sockets, videos int }

func procFDs(t testing.TB, pid int) (n openFDs) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		l, _ := os.Readlink(filepath.Join(dir, e.Name()))
		n.total++
		switch {
		case strings.HasPrefix(l, "socket:"):
			n.sockets++
		case strings.HasSuffix(l, ".mp4"):
			n.videos++
		}
	}
	return n
}

// vital sends a request that must be answered during a flood, on a new connection from client,
// and fails the test unless want comes within the client's timeout. It gives the body, and how
// long the answer took.
func vital(t testing.TB, client *http.Client, base, method, path, key string, body io.Reader, ctype string, want int) ([]byte, time.Duration) {
	t.Helper()
	start := time.Now()
	header := []string{}
	if ctype != "" {
		header = append(header, "Content-Type", ctype)
	}
	resp, b, err := request(client, method, base+path, key, body, header...)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%s %s during the flood: no answer after %s: %v", method, path, took.Round(time.Millisecond), err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s during the flood: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	return b, took
}

// TestE2EDescriptorFloodFromManyAddresses: vidgen under a 512-descriptor limit (soft = hard, so it
// cannot raise it), and 39 addresses each holding as many never-read downloads of a video as their
// per-address caps allow: 624 downloads, over 1,200 descriptors if all were served. Health, a job's
// status and a submission still answer at once with their usual status, a new download is served
// once the flood's have sat idle (the oldest idle ones are shed for it), and the service is healthy
// after the flood.
func TestE2EDescriptorFloodFromManyAddresses(t *testing.T) {
	const limit = 512
	dir := t.TempDir()
	k := createKeyCLI(t, dir, "a")
	p := startVidgenVia(t, []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", limit, limit), "--"}, dir, "ffmpeg", nil)
	if !strings.Contains(p.logs.String(), fmt.Sprintf("fd_limit=%d", limit)) {
		t.Errorf("the start-up line does not give fd_limit=%d:\n%s", limit, p.logs.String())
	}
	noise, ctype := multipartBody(t, map[string]string{"image": fixture(t, "noise.png"), "audio": fixture(t, "tone.wav")}, nil)
	id := p.mustDo(t, "POST", "/api/jobs", k.APIKey, noise, ctype, http.StatusCreated)["jobId"].(string)
	st := p.waitStatus(t, k.APIKey, id, StatusCompleted)
	video := st["outputVideo"].(string)
	host := strings.TrimPrefix(p.url, "http://")
	path := strings.TrimPrefix(video, p.url)
	_, whole, err := p.do("GET", path, "", nil, "")
	if err != nil {
		t.Fatal(err)
	}

	var flood []net.Conn
	for a := range floodAddrs {
		ip := net.IPv4(127, 0, 0, byte(2+a))
		for range maxDownloadsPerClient {
			if c := stuckDownload(t, ip, host, path); c != nil {
				flood = append(flood, c)
			}
		}
	}
	t.Logf("%d downloads opened from %d addresses; the video is %d bytes", len(flood), floodAddrs, len(whole))
	// The server takes them in: those that fit hold a socket and the video open, the rest are
	// refused. Wait until the count stops changing.
	settle := func() (held openFDs) {
		for deadline, stable := time.Now().Add(20*time.Second), 0; stable < 5 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			n := procFDs(t, p.cmd.Process.Pid)
			if stable++; n != held {
				stable = 0
			}
			held = n
		}
		return held
	}
	held := settle()
	// On a loaded machine the flood's last downloads can be refused while the connections of
	// those being refused still count, leaving the share short at the end; the flood tops it up,
	// from addresses of its own (127.0.1.x), so no per-address cap refuses them.
	want := (limit - fdReserve(1, runtime.NumCPU()) - fdVital) / 2
	topped := 0
	for round := 0; held.videos < want-1 && round < 3; round++ {
		for range want - held.videos {
			ip := net.IPv4(127, 0, 1, byte(1+topped/maxDownloadsPerClient))
			topped++
			if c := stuckDownload(t, ip, host, path); c != nil {
				flood = append(flood, c)
			}
		}
		held = settle()
	}
	t.Logf("during the flood (%d more opened to top it up): %+v", topped, held)

	// The vital requests answer within a bound far above their usual milliseconds.
	const bound = 10 * time.Second
	client := loopbackClient(net.IPv4(127, 0, 0, 1), bound)
	check := func(method, path, key string, body io.Reader, ctype string, want int) []byte {
		t.Helper()
		b, took := vital(t, client, p.url, method, path, key, body, ctype, want)
		t.Logf("%s %s: %d in %s", method, path, want, took.Round(time.Millisecond))
		return b
	}
	check("GET", "/api/health", "", nil, "", http.StatusOK)
	if n := procFDs(t, p.cmd.Process.Pid); n.total >= limit {
		t.Errorf("%+v descriptors open: the limit is %d", n, limit)
	}
	check("GET", "/health", "", nil, "", http.StatusOK)
	check("GET", "/api/status/"+id, k.APIKey, nil, "", http.StatusOK)
	check("GET", "/api/jobs/"+id, k.APIKey, nil, "", http.StatusOK)
	body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav")}, nil)
	var created struct{ JobID string }
	if err := json.Unmarshal(check("POST", "/api/jobs", k.APIKey, body, ctype, http.StatusCreated), &created); err != nil {
		t.Fatal(err)
	}

	// Enough downloads were held for the downloads' share of the budget to be spent (else the
	// requests above proved nothing), and the process stayed within its limit.
	if held.videos < want-1 || held.total >= limit {
		t.Errorf("during the flood %+v: want about %d videos open, under %d descriptors in all", held, want, limit)
	}

	// Once the flood's downloads have sat idle, a new one from yet another address is served whole:
	// the oldest idle ones make room for it.
	time.Sleep(downloadIdle)
	other := loopbackClient(net.IPv4(127, 0, 0, byte(2+floodAddrs)), bound)
	resp, b, err := request(other, "GET", video, "", nil)
	if err != nil || resp.StatusCode != http.StatusOK || len(b) != len(whole) {
		t.Fatalf("a new download during the flood: %v, %v, %d bytes of %d", err, resp, len(b), len(whole))
	}

	// The flood ends; the service is healthy and renders the job submitted during it.
	for _, c := range flood {
		c.Close()
	}
	check("GET", "/api/health", "", nil, "", http.StatusOK)
	p.waitStatus(t, k.APIKey, created.JobID, StatusCompleted)
}

// TestE2EDescriptorLimitRaised: started with a soft descriptor limit below its hard one, vidgen
// runs with one less than the hard one (Go's syscall package raises it so as the process starts;
// the one less lets it notice another process changing the limit), and its start-up line says so.
func TestE2EDescriptorLimitRaised(t *testing.T) {
	p := startVidgenVia(t, []string{"prlimit", "--nofile=256:1024", "--"}, t.TempDir(), "ffmpeg", nil)
	if logs := p.logs.String(); !strings.Contains(logs, "fd_limit=1023 ") {
		t.Errorf("started at 256 of a hard limit of 1024, the start-up line says:\n%s", logs)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); strings.HasPrefix(line, "Max open files") {
			found = len(f) >= 5 && f[3] == "1023"
			if !found {
				t.Errorf("the process runs with %q", line)
			}
		}
	}
	if !found {
		t.Errorf("no soft limit of 1023 in /proc/PID/limits:\n%s", b)
	}
}

// silentRole is what a connection of the silent flood does once connected.
type silentRole int

const (
	roleSilent    silentRole = iota // sends nothing
	roleTrickle                     // sends a request's headers a byte every trickleEvery
	roleKeepAlive                   // asks for /api/health, then waits on the open connection
)

const trickleEvery = 3 * time.Second

// silentSlot holds one connection from ip to host open in its role until ctx ends, and opens
// another reopen after the server closes it (reopen spreads the flood's reconnections, as a
// slowloris client's cycle does). It counts the connections the server closed at once (refused),
// and by role those it closed after they waited the grace and before the header timeout (cut to
// make room).
func silentSlot(ctx context.Context, ip net.IP, host string, role silentRole, reopen func() time.Duration, refused *atomic.Int64, cut *[3]atomic.Int64) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 5 * time.Second}
	for {
		if c, err := d.DialContext(ctx, "tcp", host); err == nil {
			start := time.Now()
			if holdSilent(ctx, c, role) {
				switch age := time.Since(start); {
				case age < waitGrace:
					refused.Add(1)
				case age < headerTimeout-time.Second:
					cut[role].Add(1)
				}
			}
			c.Close()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(reopen()):
		}
	}
}

// holdSilent plays role on c until the server closes it (true) or ctx ends (false).
func holdSilent(ctx context.Context, c net.Conn, role silentRole) bool {
	defer context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })()
	br := bufio.NewReader(c)
	switch role {
	case roleTrickle:
		fmt.Fprint(c, "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Pad: ")
	case roleKeepAlive:
		fmt.Fprint(c, "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return ctx.Err() == nil
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for {
		if role == roleTrickle {
			c.SetReadDeadline(time.Now().Add(trickleEvery))
		}
		_, err := br.ReadByte()
		switch {
		case ctx.Err() != nil:
			return false
		case err == nil:
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return true
		default:
			c.Write([]byte("a"))
		}
	}
}

// TestE2ESilentConnectionsFromManyAddresses: vidgen under a 512-descriptor limit, and 40 addresses
// each holding as many connections as their per-address cap allows, 2,560 in all, that send no
// request (an eighth of them trickle a header byte every few seconds, a sixteenth asked for one
// answer and sit on their keep-alive connection), each reopened 15-30 s after the server closes it.
// For half a minute, spanning the header timeout and the flood's reconnections, health, a job's
// status and submissions still answer, on new connections, with their usual status: those that
// have waited longest for a request are cut to make room. The flood's kinds of connection are
// all among those cut. (A flood that reconnects faster than the budget over waitGrace, about 340
// connections a second under this limit, keeps every waiting connection younger than the grace;
// the budget does not stop that.)
func TestE2ESilentConnectionsFromManyAddresses(t *testing.T) {
	const limit, addrs = 512, 40
	dir := t.TempDir()
	k := createKeyCLI(t, dir, "a")
	p := startVidgenVia(t, []string{"prlimit", fmt.Sprintf("--nofile=%d:%d", limit, limit), "--"}, dir, "ffmpeg", nil)
	id := p.submit(t, k.APIKey)
	p.waitStatus(t, k.APIKey, id, StatusCompleted)
	host := strings.TrimPrefix(p.url, "http://")

	ctx, stop := context.WithCancel(context.Background())
	var refused atomic.Int64
	var cut [3]atomic.Int64
	var slots sync.WaitGroup
	t.Cleanup(func() {
		stop()
		slots.Wait()
	})
	reopen := func() time.Duration { return 15*time.Second + rand.N(15*time.Second) }
	for a := range addrs {
		ip := net.IPv4(127, 0, 0, byte(2+a))
		for i := range maxConnsPerAddr {
			role := roleSilent
			switch {
			case i%16 == 0:
				role = roleKeepAlive
			case i%8 == 1:
				role = roleTrickle
			}
			slots.Go(func() { silentSlot(ctx, ip, host, role, reopen, &refused, &cut) })
		}
	}
	// The flood takes the budget: wait until the server's sockets have stopped growing for a
	// second, so the first have waited a grace.
	var held openFDs
	for deadline, stable := time.Now().Add(20*time.Second), 0; stable < 5 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		n := procFDs(t, p.cmd.Process.Pid)
		if stable++; n.sockets > held.sockets {
			stable = 0
		}
		held = n
	}
	t.Logf("the flood holds %+v", held)
	if budget := limit - fdReserve(1, runtime.NumCPU()); held.sockets < budget-fdVital {
		t.Fatalf("the flood holds %d sockets, the budget is %d: it proves nothing", held.sockets, budget)
	}

	const bound = 10 * time.Second
	client := loopbackClient(net.IPv4(127, 0, 0, 1), bound)
	var slowest time.Duration
	defer func() {
		t.Logf("slowest answer %s; the flood's connections: %d refused; cut before the header timeout %d silent, %d trickling, %d keep-alive",
			slowest.Round(time.Millisecond), refused.Load(), cut[roleSilent].Load(), cut[roleTrickle].Load(), cut[roleKeepAlive].Load())
	}()
	check := func(method, path, key string, body io.Reader, ctype string, want int) []byte {
		t.Helper()
		b, took := vital(t, client, p.url, method, path, key, body, ctype, want)
		slowest = max(slowest, took)
		return b
	}
	var submitted []string
	for start, round := time.Now(), 0; time.Since(start) < 30*time.Second; round++ {
		check("GET", "/api/health", "", nil, "", http.StatusOK)
		check("GET", "/api/status/"+id, k.APIKey, nil, "", http.StatusOK)
		if round%5 == 0 {
			body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav")}, nil)
			var created struct{ JobID string }
			if err := json.Unmarshal(check("POST", "/api/jobs", k.APIKey, body, ctype, http.StatusCreated), &created); err != nil {
				t.Fatal(err)
			}
			submitted = append(submitted, created.JobID)
		}
		if n := procFDs(t, p.cmd.Process.Pid); n.total >= limit {
			t.Errorf("%+v descriptors open: the limit is %d", n, limit)
		}
		time.Sleep(time.Second)
	}
	for role, name := range []string{"silent", "trickling", "keep-alive"} {
		if cut[role].Load() == 0 {
			t.Errorf("no %s connection was cut to make room", name)
		}
	}
	for _, job := range submitted {
		p.waitStatus(t, k.APIKey, job, StatusCompleted)
	}
}
