//go:build e2e

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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
		start := time.Now()
		header := []string{}
		if ctype != "" {
			header = append(header, "Content-Type", ctype)
		}
		resp, b, err := request(client, method, p.url+path, key, body, header...)
		if err != nil {
			t.Fatalf("%s %s during the flood: no answer after %s: %v", method, path, time.Since(start).Round(time.Millisecond), err)
		}
		if resp.StatusCode != want {
			t.Fatalf("%s %s during the flood: %d %s, want %d", method, path, resp.StatusCode, b, want)
		}
		t.Logf("%s %s: %d in %s", method, path, resp.StatusCode, time.Since(start).Round(time.Millisecond))
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
