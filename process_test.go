//go:build e2e

package main

// Process-level tests: the real binary, built once per test run, killed with SIGKILL or stopped with
// SIGTERM, then started again on the same data directory.

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// vidgenBinary builds the real binary once per test run, into the run's fixture directory.
func vidgenBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binPath = filepath.Join(fixtureDir, "vidgen")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// cliKey is what `vidgen keys create -json` prints.
type cliKey struct {
	ID, Name, APIKey, WebhookSecret string
}

func createKeyCLI(t testing.TB, dataDir, name string) cliKey {
	t.Helper()
	out, err := exec.Command(vidgenBinary(t), "keys", "create", "-name", name, "-json", "-data", dataDir).Output()
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	var k cliKey
	if err := json.Unmarshal(out, &k); err != nil || k.APIKey == "" || k.ID == "" {
		t.Fatalf("keys create printed %q (%v)", out, err)
	}
	return k
}

// vidgenProc is one running vidgen process.
type vidgenProc struct {
	cmd    *exec.Cmd
	url    string
	logs   *syncBuffer
	exited chan struct{}
	client *http.Client
}

// startVidgen runs `vidgen serve` on dataDir with ffmpeg, on a free loopback port, with rate limits
// and the disk check off unless args (later flags win) say otherwise, and waits until it listens.
func startVidgen(t testing.TB, dataDir, ffmpeg string, env []string, args ...string) *vidgenProc {
	t.Helper()
	return startVidgenVia(t, nil, dataDir, ffmpeg, env, args...)
}

// startVidgenVia is startVidgen through a command prefix that execs it (prlimit, say), so the pid is
// vidgen's.
func startVidgenVia(t testing.TB, via []string, dataDir, ffmpeg string, env []string, args ...string) *vidgenProc {
	t.Helper()
	// A metrics listener of its own on a free port: tests run side by side and never meet on the default.
	all := append([]string{"serve", "-data", dataDir, "-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0", "-ffmpeg", ffmpeg, "-workers", "1",
		"-rate-api", "0", "-rate-submit", "0", "-min-free", "0"}, args...)
	name, argv := vidgenBinary(t), all
	if len(via) > 0 {
		name, argv = via[0], append(append(slices.Clip(via[1:]), name), all...)
	}
	cmd := exec.Command(name, argv...)
	cmd.Env = append(os.Environ(), env...)
	return runVidgen(t, cmd)
}

// runVidgen starts cmd, a `vidgen serve` whose text log goes to its standard error, waits until it
// listens (a render-only node: its metrics listener, p.url then), and kills it when the test ends.
func runVidgen(t testing.TB, cmd *exec.Cmd) *vidgenProc {
	t.Helper()
	p := &vidgenProc{cmd: cmd, logs: &syncBuffer{}, exited: make(chan struct{}), client: &http.Client{Timeout: 20 * time.Second}}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			if i := strings.Index(line, " addr="); i >= 0 && strings.Contains(line, "vidgen listening") {
				select {
				case addr <- strings.Fields(line[i+6:])[0]:
				default:
				}
			}
			// A render-only node (-api=false) answers on its metrics listener alone.
			if i := strings.Index(line, " metrics="); i >= 0 && strings.Contains(line, "vidgen rendering") {
				select {
				case addr <- strings.Fields(line[i+9:])[0]:
				default:
				}
			}
		}
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		if t.Failed() {
			t.Logf("vidgen log:\n%s", p.logs.String())
		}
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-p.exited:
		t.Fatalf("vidgen exited at start-up:\n%s", p.logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("vidgen did not start listening:\n%s", p.logs.String())
	}
	return p
}

// kill9 kills the process with SIGKILL and waits for it to be gone.
func (p *vidgenProc) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// do sends a request; err is non-nil when no response came (the process may be dead).
func (p *vidgenProc) do(method, path, key string, body io.Reader, ctype string, header ...string) (int, []byte, error) {
	if ctype != "" {
		header = append(header, "Content-Type", ctype)
	}
	resp, b, err := request(p.client, method, p.url+path, key, body, header...)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

func (p *vidgenProc) mustDo(t testing.TB, method, path, key string, body io.Reader, ctype string, want int) map[string]any {
	t.Helper()
	code, b, err := p.do(method, path, key, body, ctype)
	if err != nil || code != want {
		t.Fatalf("%s %s: %d %s (%v), want %d", method, path, code, b, err, want)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s %s: %s: %v", method, path, b, err)
	}
	return v
}

func (p *vidgenProc) submit(t testing.TB, key string) string {
	t.Helper()
	body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav")}, nil)
	return p.mustDo(t, "POST", "/api/jobs", key, body, ctype, 201)["jobId"].(string)
}

// waitStatus polls a job until it reaches want, within renderDeadline, and fails on any other
// final status.
func (p *vidgenProc) waitStatus(t testing.TB, key, id string, want JobStatus) map[string]any {
	t.Helper()
	var st map[string]any
	eventually(t, renderDeadline(t), func() error {
		st = p.mustDo(t, "GET", "/api/status/"+id, key, nil, "", 200)
		s := JobStatus(st["status"].(string))
		if s == want {
			return nil
		}
		if s.Final() {
			t.Fatalf("job %s ended %s, want %s: %v", id, s, want, st)
		}
		return fmt.Errorf("job %s did not reach %s: %v", id, want, st)
	})
	return st
}

// listItem returns the job's entry in the key's list (which carries retries).
func (p *vidgenProc) listItem(t testing.TB, key, id string) map[string]any {
	t.Helper()
	res := p.mustDo(t, "GET", "/api/jobs?limit=100", key, nil, "", 200)
	for _, j := range res["jobs"].([]any) {
		if item := j.(map[string]any); item["id"] == id {
			return item
		}
	}
	t.Fatalf("job %s not in the list", id)
	return nil
}

// processGone reports whether pid has exited (a zombie counts: it runs nothing).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) == 0 || f[0] == "Z" || f[0] == "X"
}

func readPids(t testing.TB, path string) []int {
	b, _ := os.ReadFile(path)
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

func waitGone(t testing.TB, pids []int) {
	t.Helper()
	eventually(t, 5*time.Second, func() error {
		for _, pid := range pids {
			if !processGone(pid) {
				return fmt.Errorf("ffmpeg pid %d outlived the server", pid)
			}
		}
		return nil
	})
}

// openStoreAfter opens the data directory's database once no process uses it.
func openStoreAfter(t testing.TB, dataDir string) *Store {
	t.Helper()
	st, err := OpenStore(context.Background(), filepath.Join(dataDir, "vidgen.db"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestE2EKill9DuringRender: SIGKILL while ffmpeg renders. The render dies with the server, and the
// restarted server puts the job back (retries 1), cleans the partial output and completes it.
func TestE2EKill9DuringRender(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(t.TempDir(), "pids")
	k := createKeyCLI(t, dir, "x")
	block, _ := filepath.Abs("testdata/ffmpeg-block")
	p := startVidgen(t, dir, block, []string{"FAKE_FFMPEG_PIDS=" + pids})
	id := p.submit(t, k.APIKey)
	p.waitStatus(t, k.APIKey, id, StatusProcessing)
	// The render has started when the fake ffmpeg wrote its pid.
	eventually(t, 20*time.Second, func() error {
		if len(readPids(t, pids)) == 0 {
			return errors.New("the fake ffmpeg wrote no pid")
		}
		return nil
	})
	if partial, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(partial) == 0 {
		t.Fatal("no render directory in tmp/ while rendering")
	}
	p.kill9()
	waitGone(t, readPids(t, pids)) // Pdeathsig: no ffmpeg outlives a killed server

	p2 := startVidgen(t, dir, "ffmpeg", nil)
	st := p2.waitStatus(t, k.APIKey, id, StatusCompleted)
	if item := p2.listItem(t, k.APIKey, id); item["retries"].(float64) != 1 {
		t.Errorf("retries %v, want 1", item["retries"])
	}
	if code, _, err := p2.do("GET", strings.TrimPrefix(st["outputVideo"].(string), p2.url), "", nil, ""); err != nil || code != 200 {
		t.Errorf("video: %d %v", code, err)
	}
	if left := dirFiles(t, filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Errorf("partial files left in tmp/: %v", left)
	}
	checkInputsGone(t, filepath.Join(dir, "inputs"))
	if !strings.Contains(p2.logs.String(), "interrupted by a crash") {
		t.Error("recovery not logged")
	}
}

// TestE2EDataDirMovedAfterKill9: one job rendering and one queued, kill -9, the data directory
// renamed (a new disk, a restore from backup), a restart with the new path: both complete.
func TestE2EDataDirMovedAfterKill9(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil { // keys never create a data directory
		t.Fatal(err)
	}
	a, b := createKeyCLI(t, dir, "a"), createKeyCLI(t, dir, "b")
	block, _ := filepath.Abs("testdata/ffmpeg-block")
	p := startVidgen(t, dir, block, nil)
	running := p.submit(t, a.APIKey)
	p.waitStatus(t, a.APIKey, running, StatusProcessing)
	queued := p.submit(t, b.APIKey)
	p.kill9()

	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	p2 := startVidgen(t, moved, "ffmpeg", nil)
	p2.waitStatus(t, a.APIKey, running, StatusCompleted)
	p2.waitStatus(t, b.APIKey, queued, StatusCompleted)
	checkInputsGone(t, filepath.Join(moved, "inputs"))
}

// TestE2EDownloadFlood: vidgen under a 1024-descriptor limit, one address opens 1,100 connections
// that ask for a video and never read. Another address's requests are still answered, and once the
// flood's connections close the process holds no more descriptors than before it.
func TestE2EDownloadFlood(t *testing.T) {
	dir := t.TempDir()
	k := createKeyCLI(t, dir, "a")
	p := startVidgenVia(t, []string{"prlimit", "--nofile=1024:1024", "--"}, dir, "ffmpeg", nil)
	id := p.submit(t, k.APIKey)
	st := p.waitStatus(t, k.APIKey, id, StatusCompleted)
	video := st["outputVideo"].(string) // under the listener's address: no -public-url
	// fds counts the process's descriptors: sockets, those on the database files, and the rest;
	// targets names what they point at, for the failure message.
	type count struct{ sockets, database, other int }
	targets := map[string]int{}
	fds := func() (c count) {
		dir := fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		clear(targets)
		for _, e := range entries {
			l, _ := os.Readlink(filepath.Join(dir, e.Name()))
			switch base := filepath.Base(l); {
			case strings.HasPrefix(l, "socket:"):
				c.sockets++
				l = "socket"
			case strings.HasPrefix(base, "vidgen.db"):
				c.database++
			default:
				c.other++
			}
			targets[filepath.Base(l)]++
		}
		return c
	}
	time.Sleep(500 * time.Millisecond) // let the submission's keep-alive connection settle
	before := fds()
	targetsBefore := fmt.Sprint(targets)

	host := strings.TrimPrefix(p.url, "http://")
	path := strings.TrimPrefix(video, p.url)
	var flood []net.Conn
	for range 1100 {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatalf("dial %d: %v", len(flood), err)
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		flood = append(flood, c)
	}
	// Another address (127.0.0.2 is loopback too) is still served, the API and the video.
	other := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	for _, u := range []string{p.url + "/api/health", video} {
		resp, b, err := request(other, "GET", u, "", nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s from another address during the flood: %v %v", u, err, resp)
		}
		_ = b
	}
	if c := fds(); c.sockets+c.database+c.other > 1024-fdReserve(1, runtime.NumCPU())/2 {
		t.Errorf("%+v descriptors open during the flood", c)
	}
	other.CloseIdleConnections()
	for _, c := range flood {
		c.Close()
	}
	// Every socket of the flood goes, and so does every other descriptor it opened, except on the
	// database: the pool keeps at most maxOpenConns connections (each one a descriptor on the
	// database and one on its WAL, plus the shared memory file), and SQLite keeps the database
	// descriptors of closed connections open to reuse for as long as another connection holds a
	// lock on the file, which under WAL is always. Bounded is what matters: before the pool had a
	// limit, thousands stayed open.
	eventually(t, 45*time.Second, func() error {
		if c := fds(); c.sockets > before.sockets || c.other > before.other || c.database > 2*maxOpenConns+1 {
			return fmt.Errorf("descriptors after the flood %+v, before %+v\nafter:  %v\nbefore: %s", c, before, targets, targetsBefore)
		}
		return nil
	})
}

// TestE2ESIGTERMRequeues: SIGTERM with one job rendering, one queued and an upload in flight. The
// upload still gets its 201, the running render gets -shutdown-grace and is then stopped, the
// process exits 0 soon after, and a restart completes all three jobs, none counted as a retry.
func TestE2ESIGTERMRequeues(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(t.TempDir(), "pids")
	a, b, c := createKeyCLI(t, dir, "a"), createKeyCLI(t, dir, "b"), createKeyCLI(t, dir, "c")
	block, _ := filepath.Abs("testdata/ffmpeg-block")
	const grace = time.Second
	p := startVidgen(t, dir, block, []string{"FAKE_FFMPEG_PIDS=" + pids}, "-shutdown-grace", grace.String())
	running := p.submit(t, a.APIKey)
	p.waitStatus(t, a.APIKey, running, StatusProcessing)
	queued := p.submit(t, b.APIKey)
	if st := p.mustDo(t, "GET", "/api/status/"+queued, b.APIKey, nil, "", 200); st["status"] != string(StatusPending) {
		t.Fatalf("queued job: %v", st)
	}

	// Half an upload is on the wire when the signal comes.
	body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav")}, nil)
	raw, _ := io.ReadAll(body)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", p.url+"/api/jobs", pr)
	req.ContentLength = int64(len(raw))
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("X-API-Key", c.APIKey)
	type result struct {
		code int
		body []byte
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := p.client.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		res <- result{code: resp.StatusCode, body: b}
	}()
	pw.Write(raw[:len(raw)/2])
	time.Sleep(200 * time.Millisecond)

	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	if code, _, err := p.do("GET", "/api/health", "", nil, ""); err == nil {
		t.Errorf("a new request was served during shutdown: %d", code)
	}
	pw.Write(raw[len(raw)/2:])
	pw.Close()
	r := <-res
	if r.err != nil || r.code != 201 {
		t.Fatalf("upload in flight at SIGTERM: %d %s %v", r.code, r.body, r.err)
	}
	var created map[string]string
	json.Unmarshal(r.body, &created)
	inflight := created["jobId"]

	select {
	case <-p.exited:
	case <-time.After(grace + 10*time.Second):
		t.Fatal("vidgen did not exit after SIGTERM")
	}
	took := time.Since(start)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
	if took < grace || took > grace+5*time.Second {
		t.Errorf("exited %v after SIGTERM, want the grace (%v) and little more", took, grace)
	}
	waitGone(t, readPids(t, pids))

	// All three are waiting, and the stopped render did not count as a retry.
	st := openStoreAfter(t, dir)
	for key, id := range map[string]string{a.ID: running, b.ID: queued, c.ID: inflight} {
		j, err := st.Job(context.Background(), key, id)
		if err != nil || j.Status != StatusPending || j.Retries != 0 {
			t.Errorf("job %s after shutdown: %s retries %d (%v)", id, j.Status, j.Retries, err)
		}
	}
	st.Close()

	p2 := startVidgen(t, dir, "ffmpeg", nil, "-workers", "2")
	for key, id := range map[string]string{a.APIKey: running, b.APIKey: queued, c.APIKey: inflight} {
		p2.waitStatus(t, key, id, StatusCompleted)
		if item := p2.listItem(t, key, id); item["retries"].(float64) != 0 {
			t.Errorf("job %s: retries %v, want 0", id, item["retries"])
		}
	}
}

// kill9Cycles is how many times TestE2EKill9Cycles kills the server: 100, or 20 with -short. A
// cycle takes 0.7-2 s on a 2-CPU machine (start-up alone runs ffmpeg and ffprobe -version, and
// every submission runs ffprobe), so 100 cycles take one to two minutes.
func kill9Cycles() int {
	if testing.Short() {
		return 20
	}
	return 100
}

// TestE2EKill9Cycles starts the server, loads it with submissions, polls, lists and cancels from
// several keys, and kills it with SIGKILL at a random moment, again and again. Afterwards the
// database passes integrity_check, every job that got a 201 is there, no response was a 5xx, and
// once the server has drained no job is left PENDING or PROCESSING.
func TestE2EKill9Cycles(t *testing.T) {
	dir := t.TempDir()
	const nKeys = 8
	var keys []cliKey
	lastJob := make([]string, nKeys) // each key's latest accepted job, kept across cycles
	for i := range nKeys {
		keys = append(keys, createKeyCLI(t, dir, fmt.Sprintf("load%d", i)))
	}
	body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav")}, nil)
	submission, _ := io.ReadAll(body)

	var mu sync.Mutex
	accepted := map[string]string{} // job id -> key id
	var fivexx, requests atomic.Int64
	cycles := kill9Cycles()
	for cycle := range cycles {
		// Each key's requests come from an address of its own, through a trusted proxy, as eight
		// users' would: one address may have only a few uploads under way.
		p := startVidgen(t, dir, "ffmpeg", nil, "-workers", "2", "-trust-proxy", "127.0.0.1/32")
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for ki, k := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				last := lastJob[ki]
				defer func() { lastJob[ki] = last }()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					var code int
					var b []byte
					var err error
					// Each key submits, polls, lists and cancels in turn: cancelling a PENDING job frees
					// the key for the next submission.
					switch {
					case last == "" || i%4 == 0:
						code, b, err = p.do("POST", "/api/jobs", k.APIKey, strings.NewReader(string(submission)), ctype,
							"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", ki+1))
						if err == nil && code == 201 {
							var v map[string]string
							json.Unmarshal(b, &v)
							last = v["jobId"]
							mu.Lock()
							accepted[last] = k.ID
							mu.Unlock()
						}
					case i%4 == 3:
						code, _, err = p.do("POST", "/api/jobs/"+last+"/cancel", k.APIKey, nil, "")
					case i%4 == 2:
						code, _, err = p.do("GET", "/api/jobs?limit=5", k.APIKey, nil, "")
					default:
						code, _, err = p.do("GET", "/api/status/"+last, k.APIKey, nil, "")
					}
					if err != nil {
						continue // the server is being killed
					}
					requests.Add(1)
					if code >= 500 {
						fivexx.Add(1)
						t.Errorf("cycle %d: %d %s", cycle, code, b)
					}
				}
			}()
		}
		// Long enough for several submissions to be answered (each runs two ffprobes; eight keys
		// share two CPUs), short enough that most cycles kill renders and uploads mid-way.
		time.Sleep(time.Duration(1000+rand.IntN(2000)) * time.Millisecond) // long enough for a submission on a busy machine
		p.kill9()
		close(stop)
		wg.Wait()
	}

	// A last run drains every job, then stops cleanly.
	p := startVidgen(t, dir, "ffmpeg", nil, "-workers", "2")
	eventually(t, renderDeadline(t), func() error {
		for _, k := range keys {
			for _, status := range []JobStatus{StatusPending, StatusProcessing} {
				res := p.mustDo(t, "GET", "/api/jobs?status="+string(status), k.APIKey, nil, "", 200)
				if jobs := res["jobs"].([]any); len(jobs) != 0 {
					return fmt.Errorf("jobs still %s: %v", status, jobs)
				}
			}
		}
		return nil
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited

	st := openStoreAfter(t, dir)
	requireIntegrity(t, st)
	counts := map[JobStatus]int{}
	for id, keyID := range accepted {
		j, err := st.Job(context.Background(), keyID, id)
		if err != nil {
			t.Errorf("accepted job %s lost: %v", id, err)
			continue
		}
		counts[j.Status]++
	}
	if counts[StatusPending]+counts[StatusProcessing] != 0 {
		t.Errorf("stuck jobs: %v", counts)
	}
	t.Logf("%d kill -9 cycles: %d requests answered, %d jobs accepted (%v), %d 5xx, integrity ok",
		cycles, requests.Load(), len(accepted), counts, fivexx.Load())
	if len(accepted) < cycles/4 {
		t.Errorf("only %d jobs accepted in %d cycles: the load did not run", len(accepted), cycles)
	}
}

// TestE2ESoakVerify is bench/soak.sh's checker when the sqlite3 CLI is missing; it is skipped unless
// VIDGEN_SOAK_DATA names a soak's data directory (the server stopped) and VIDGEN_SOAK_IDS a file of
// accepted job ids, one a line. It prints the figures and fails on a lost or stuck job or a damaged
// database.
func TestE2ESoakVerify(t *testing.T) {
	dir, idsFile := os.Getenv("VIDGEN_SOAK_DATA"), os.Getenv("VIDGEN_SOAK_IDS")
	if dir == "" || idsFile == "" {
		t.Skip("VIDGEN_SOAK_DATA and VIDGEN_SOAK_IDS not set: run by bench/soak.sh")
	}
	st := openStoreAfter(t, dir)
	integrity, err := st.IntegrityCheck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ids, err := os.ReadFile(idsFile)
	if err != nil {
		t.Fatal(err)
	}
	lost, stuck, total := 0, 0, 0
	for _, id := range strings.Fields(string(ids)) {
		total++
		var status string
		if err := st.db.QueryRow(`SELECT status FROM jobs WHERE id = ?`, id).Scan(&status); err != nil {
			lost++
			continue
		}
	}
	if err := st.db.QueryRow(`SELECT count(*) FROM jobs WHERE status IN ('PENDING','PROCESSING')`).Scan(&stuck); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("accepted=%d lost=%d stuck=%d integrity=%s\n", total, lost, stuck, integrity)
	if lost != 0 || stuck != 0 || integrity != "ok" {
		t.Fail()
	}
}

// TestE2EWebhookSurvivesKill9: SIGKILL while a webhook attempt is in flight (the job's end and its
// outbox row committed, the receiver holding the request unanswered). The attempt was never
// recorded, so the restarted server makes it again at once: the same webhook-id, both signatures
// valid with the account's secret, and the delivery then shows as delivered.
func TestE2EWebhookSurvivesKill9(t *testing.T) {
	first := make(chan hookRequest, 1)
	later := make(chan hookRequest, 8)
	release := make(chan struct{})
	var n atomic.Int64
	recv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := hookRequest{Header: r.Header.Clone(), Body: body}
		if n.Add(1) == 1 {
			first <- req
			<-release // never answered: the server is killed with this attempt in flight
			return
		}
		select {
		case later <- req:
		default:
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(recv.Close)
	t.Cleanup(func() { close(release) }) // runs before recv.Close, which waits for the handler

	certFile := filepath.Join(t.TempDir(), "receiver.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: recv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(recv.Listener.Addr().(*net.TCPAddr).Port)
	hookURL := "https://127.0.0.1:" + port + "/hook"
	env := []string{"SSL_CERT_FILE=" + certFile}
	// Both processes answer under one public URL, as a deployment does, so the body is the same
	// bytes after the restart.
	args := []string{"-webhook-allow-private", "-webhook-ports", port, "-public-url", "https://videos.example.com"}

	dir := t.TempDir()
	k := createKeyCLI(t, dir, "x")
	rendered := renderDeadline(t) // measured before the attempt is in flight, not while it is
	p := startVidgen(t, dir, "ffmpeg", env, args...)
	body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.jpg"), "audio": fixture(t, "tone.wav")},
		map[string]string{"webhookUrl": hookURL})
	id := p.mustDo(t, "POST", "/api/jobs", k.APIKey, body, ctype, 201)["jobId"].(string)

	var blocked hookRequest
	select {
	case blocked = <-first:
	case <-p.exited:
		t.Fatal("vidgen exited before the webhook was sent")
	case <-time.After(rendered):
		t.Fatal("the webhook did not arrive at the receiver")
	}
	p.kill9()

	p2 := startVidgen(t, dir, "ffmpeg", env, args...)
	var got hookRequest
	select {
	case got = <-later:
	case <-time.After(15 * time.Second):
		t.Fatalf("no delivery within 15 s of the restart (%d requests seen)", n.Load())
	}

	wantID := blocked.Header.Get("webhook-id")
	if wantID == "" || got.Header.Get("webhook-id") != wantID {
		t.Errorf("webhook-id %q after the restart, %q before", got.Header.Get("webhook-id"), wantID)
	}
	for _, r := range []hookRequest{blocked, got} {
		if !docsVerify(k.WebhookSecret, r.Header, r.Body) {
			t.Errorf("X-Webhook-Signature %q does not verify", r.Header.Get("X-Webhook-Signature"))
		}
		if err := standardVerify(k.WebhookSecret, r.Header, r.Body, time.Now()); err != nil {
			t.Errorf("webhook-signature %q: %v", r.Header.Get("webhook-signature"), err)
		}
	}
	var payload statusBody
	if err := json.Unmarshal(got.Body, &payload); err != nil || payload.JobID != id || payload.Status != StatusCompleted {
		t.Errorf("payload %s (%v), want job %s COMPLETED", got.Body, err, id)
	}
	if string(got.Body) != string(blocked.Body) {
		t.Errorf("payload changed across the restart:\n%s\n%s", blocked.Body, got.Body)
	}

	// The attempt is recorded just after the receiver answered: poll for it.
	var d map[string]any
	eventually(t, 5*time.Second, func() error {
		res := p2.mustDo(t, "GET", "/api/jobs/"+id+"/deliveries", k.APIKey, nil, "", 200)
		ds := res["deliveries"].([]any)
		if len(ds) != 1 {
			t.Fatalf("deliveries: %v", res)
		}
		if d = ds[0].(map[string]any); d["state"] != "delivered" {
			return fmt.Errorf("delivery not marked delivered: %v", d)
		}
		return nil
	})
	if d["id"] != wantID {
		t.Errorf("delivery id %v, want %s", d["id"], wantID)
	}
	if atts := d["attempts"].([]any); len(atts) != 1 {
		t.Errorf("attempts %v, want the one that reached a response", atts)
	}
	if n := n.Load(); n != 2 {
		t.Errorf("%d requests reached the receiver, want 2", n)
	}
}
