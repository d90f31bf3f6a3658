package main

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
)

// Tests of what a hostile client or file can make the service spend: each closes one way of
// exhausting disk, memory, descriptors or workers, or of making the service say too much.

// TestMalformedPartHeaderNotEchoed: a part header line of 1 MB without a colon is a 400 whose body
// quotes at most a short, printable prefix of it.
func TestMalformedPartHeaderNotEchoed(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, hangConfig(t, 1))
	line := bytes.Repeat([]byte{'A', 0x07, 0xff}, 1<<20/3)
	body := "--b\r\n" + string(line) + "\r\n\r\nx\r\n--b--\r\n"
	resp, b := e.do(t, "POST", "/api/jobs", e.key, strings.NewReader(body), "Content-Type", "multipart/form-data; boundary=b")
	msg := errorBody(t, resp, b, 400)
	if len(b) >= 8<<10 {
		t.Errorf("a 1 MB header line gave a %d-byte answer", len(b))
	}
	if strings.ContainsAny(msg, "\x07\xff") {
		t.Errorf("the message quotes control or invalid bytes: %q", msg)
	}
}

// TestLongRenderTimeoutFailsOnce: a long job that runs out of render time FAILS on its first try
// instead of holding a worker three times over.
func TestLongRenderTimeoutFailsOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig(t.TempDir())
	cfg.FFmpeg, cfg.Workers = hangScript(t, dir), 1
	e := newTestEnv(t, &cfg, func(s *server) {
		s.renderer.timeout = func(float64) time.Duration { return time.Second }
	})
	// The files are in place before the job exists, as a submission leaves them: the renderer may
	// claim the job the moment it is stored.
	id, err := newJobID(time.Now(), e.srv.rand)
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, fixture(t, "img.png"), e.srv.dirs.input(id, inputImage))
	copyFile(t, fixture(t, "tone.wav"), e.srv.dirs.input(id, inputAudio))
	j := Job{ID: id, KeyID: e.accountOf(t, e.key).ID, ImageType: media.PNG, AudioType: media.WAV, AudioCodec: "pcm_s16le//2/44100",
		AudioDuration: longAudio.Seconds() + 1, CreatedAt: time.Now()}
	if err := e.srv.store.CreateJob(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	e.srv.renderer.Notify()
	got := waitStored(t, e.srv.store, j.ID, StatusFailed)
	if got.Retries != 0 || !strings.Contains(got.ErrorMessage, "took longer") {
		t.Errorf("retries %d, errorMessage %q", got.Retries, got.ErrorMessage)
	}
	checkGone(t, endedPids(t, dir, false))
}

// TestDataDirPermissions: the data directory is private to the service's user from the first
// start (it holds webhook secrets and users' uploads), and tightened when found looser.
func TestDataDirPermissions(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	check := func(when string) {
		t.Helper()
		for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "inputs"): 0o700, filepath.Join(dir, "vidgen.db"): 0o600} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: %s is %v, want %v", when, filepath.Base(path), fi.Mode().Perm(), want)
			}
		}
	}
	_, st, err := openData(context.Background(), dir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	check("first start")
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Join(dir, "inputs"), 0o777)
	os.Chmod(filepath.Join(dir, "vidgen.db"), 0o644)
	_, st, err = openData(context.Background(), dir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	check("restart")
}

// TestDataDirLock: keys commands share the data directory with each other, never with a serve; a
// serve starting while a keys command has it waits for it rather than refusing to start.
func TestDataDirLock(t *testing.T) {
	t.Parallel()
	dirs, err := openDataDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, err := dirs.share()
	if err != nil {
		t.Fatal(err)
	}
	b, err := dirs.share()
	if err != nil {
		t.Fatalf("a second keys command: %v", err)
	}
	b()
	released := make(chan struct{})
	go func() {
		time.Sleep(200 * time.Millisecond) // a keys command opening the database
		close(released)
		a()
	}()
	unlock, err := dirs.lock()
	if err != nil {
		t.Fatalf("serve starting beside a keys command: %v", err)
	}
	select {
	case <-released:
	default:
		t.Error("serve took the lock while a keys command held it")
	}
	if other, err := dirs.share(); !errors.Is(err, errDataDirInUse) {
		t.Errorf("a keys command beside a serve: %v, want errDataDirInUse", err)
		if err == nil {
			other()
		}
	}
	if other, err := dirs.lock(); !errors.Is(err, errDataDirInUse) || !strings.Contains(err.Error(), dirs.root) {
		t.Errorf("a second serve: %v", err)
		if err == nil {
			other()
		}
	}
	unlock()
}

// TestDataDirLockJustReleased: a serve's lock that lingers for a moment after it was released (a
// process being started held a copy of its descriptor between fork and exec) does not read as a
// serve still running, to another serve or to a keys command.
func TestDataDirLockJustReleased(t *testing.T) {
	t.Parallel()
	dirs := must(openDataDir(t.TempDir()))(t)
	for _, take := range []func() (func(), error){dirs.lock, dirs.share} {
		held := must(dirs.lock())(t)
		go func() {
			time.Sleep(200 * time.Millisecond)
			held()
		}()
		unlock, err := take()
		if err != nil {
			t.Fatalf("the lock released 200 ms later: %v", err)
		}
		unlock()
	}
}

// TestShareAndMethodHeaders: the share page cannot be framed and sends no Referer with its token;
// a 405 lists only the methods the route answers.
func TestShareAndMethodHeaders(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	id := e.mustSubmit(t, e.key, fixture(t, "img.png"), fixture(t, "tone.wav"))
	st := e.wait(t, e.key, id, StatusCompleted)
	resp, _ := mustRequest(t, "GET", st["outputShareLink"].(string), "", nil)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("share page CSP %q", csp)
	}
	if rp := resp.Header.Get("Referrer-Policy"); rp != "no-referrer" {
		t.Errorf("share page Referrer-Policy %q", rp)
	}
	resp, b := e.do(t, "OPTIONS", "/api/jobs", e.key, nil)
	errorBody(t, resp, b, 405)
	if allow := resp.Header.Get("Allow"); strings.Contains(allow, "OPTIONS") || !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow %q", allow)
	}
}

// TestRedeliveryFloodDoesNotStarve: one account floods the sender with redeliveries to a receiver
// that accepts connections and never answers; another account's webhook still goes out at once,
// while the first account's attempts are all still hanging.
func TestRedeliveryFloodDoesNotStarve(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	// What the receiver sees at once: attempts end at the sender's timeout and are retried, so on a
	// slow machine the total grows; the number under way at any moment must not.
	var mu sync.Mutex
	inFlight, most := 0, 0
	slow := newHookReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	fast := newHookReceiver(t, nil)
	e := newTestEnv(t, hookConfig(t.TempDir(), slow, fast), hookTrust(slow, fast),
		func(s *server) { s.hooks.client.Timeout = 5 * time.Minute })
	flooder := e.key
	id, _ := e.endWithHook(t, flooder, slow.url())
	for range 20 {
		e.redeliver(t, flooder, e.cloneJob(t, id))
	}
	resp, b := e.do(t, "POST", "/api/jobs/"+id+"/deliveries/redeliver", flooder, nil)
	if msg := errorBody(t, resp, b, 409); !strings.Contains(msg, "msg_") {
		t.Errorf("a second redelivery of a job with one queued: %q", msg)
	}

	other := e.newKey(t, "other")
	e.endWithHook(t, other, fast.url())
	fast.waitFor(t, 1)
	eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if inFlight == 0 {
			return errors.New("none of the flooding account's attempts was hanging: the test proves nothing")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if most > webhookPerKey || len(slow.requests()) == 0 {
		t.Errorf("the flooding account had %d attempts under way at once (%d in all), want 1 to %d", most, len(slow.requests()), webhookPerKey)
	}
}

// TestRedeliveryRate: one account may ask for at most redeliveriesPerMinute redeliveries a minute,
// whatever addresses it asks from.
func TestRedeliveryRate(t *testing.T) {
	t.Parallel()
	recv := newHookReceiver(t, nil)
	clk := &fakeClock{t: time.Now()}
	e := newTestEnv(t, hookConfig(t.TempDir(), recv), hookTrust(recv))
	e.srv.redeliverLimit.now = clk.Now
	id, _ := e.endWithHook(t, e.key, recv.url())
	e.settle(t)
	var jobs []string
	for range redeliveriesPerMinute + 1 {
		jobs = append(jobs, e.cloneJob(t, id))
	}
	for _, j := range jobs[:redeliveriesPerMinute] {
		e.redeliver(t, e.key, j)
	}
	resp, b := e.do(t, "POST", "/api/jobs/"+jobs[redeliveriesPerMinute]+"/deliveries/redeliver", e.key, nil)
	errorBody(t, resp, b, 429)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// Its RateLimit headers are the redeliveries' policy, not the API's with room left.
	if l, r := resp.Header.Get("RateLimit-Limit"), resp.Header.Get("RateLimit-Remaining"); l != strconv.Itoa(redeliveriesPerMinute) || r != "0" {
		t.Errorf("429 with RateLimit-Limit %q, RateLimit-Remaining %q", l, r)
	}
	clk.Advance(time.Minute)
	e.redeliver(t, e.key, jobs[redeliveriesPerMinute])
}

// stalledUpload opens a raw connection to the test server and sends a submission's headers and
// the first bytes of its body, then nothing more: a client trickling or stalling its upload. It
// returns the connection; the test reads the answer from it or closes it.
func stalledUpload(t testing.TB, e *testEnv) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", e.hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	body := "--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n" + strings.Repeat("x", 10<<10)
	fmt.Fprintf(conn, "POST /api/jobs HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n%s",
		e.key, 50<<20, body)
	return conn
}

// TestTrickledUploadCut: an upload that falls below the minimum rate once its grace has passed is
// cut with a 408, and its temp file is removed.
func TestTrickledUploadCut(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, hangConfig(t, 1), func(s *server) { s.uploadGrace = 300 * time.Millisecond })
	conn := stalledUpload(t, e)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled upload: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if msg := errorBody(t, resp, b, http.StatusRequestTimeout); !strings.Contains(msg, "too slow") {
		t.Errorf("408 says %q", msg)
	}
	if files := dirFiles(t, filepath.Join(e.srv.cfg.DataDir, "tmp")); len(files) != 0 {
		t.Errorf("temp files left: %v", files)
	}
}

// TestUploadsPerClient: one address may have maxUploadsPerClient uploads under way; one more gets a
// 429, and a slot frees when an upload ends.
func TestUploadsPerClient(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, hangConfig(t, 1))
	var conns []net.Conn
	for range maxUploadsPerClient {
		conns = append(conns, stalledUpload(t, e))
	}
	// The stalled uploads are being received once their temp files exist.
	eventually(t, 20*time.Second, func() error {
		if files := dirFiles(t, filepath.Join(e.srv.cfg.DataDir, "tmp")); len(files) < maxUploadsPerClient {
			return fmt.Errorf("the stalled uploads were not taken: temp files %v, want %d", files, maxUploadsPerClient)
		}
		return nil
	})
	code, body := e.submit(t, e.key, fixture(t, "img.png"), fixture(t, "tone.wav"), nil)
	if code != http.StatusTooManyRequests || !strings.Contains(body["error"].(string), "uploads at once") {
		t.Errorf("one upload too many: %d %v", code, body)
	}
	conns[0].Close()
	eventually(t, 20*time.Second, func() error {
		if code, body := e.submit(t, e.key, fixture(t, "img.png"), fixture(t, "tone.wav"), nil); code != http.StatusCreated {
			return fmt.Errorf("after one upload ended: %d %v", code, body)
		}
		return nil
	})
}

// TestDownloadsPerClient: one address may be receiving maxDownloadsPerClient responses at once;
// one more gets a 429 with Retry-After.
func TestDownloadsPerClient(t *testing.T) {
	t.Parallel()
	s, _, _ := limitServer(t)
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(maxDownloadsPerClient)
	h := s.limitDownloads(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Done()
		<-release
	}))
	var wg sync.WaitGroup
	for range maxDownloadsPerClient {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest("GET", "/v/x.mp4", nil)
			req.RemoteAddr = "198.51.100.7:1000"
			h.ServeHTTP(httptest.NewRecorder(), req)
		}()
	}
	started.Wait()
	for _, c := range []struct {
		addr string
		want int
	}{{"198.51.100.7:2000", 429}, {"198.51.100.8:2000", 0}} {
		req := httptest.NewRequest("GET", "/v/x.mp4", nil)
		req.RemoteAddr = c.addr
		w := httptest.NewRecorder()
		if c.want == 0 {
			started.Add(1)
			go h.ServeHTTP(w, req)
			started.Wait() // another address is served at once
			continue
		}
		h.ServeHTTP(w, req)
		if w.Code != c.want || w.Header().Get("Retry-After") == "" {
			t.Errorf("%s: %d, Retry-After %q", c.addr, w.Code, w.Header().Get("Retry-After"))
		}
	}
	close(release)
	wg.Wait()
}

// TestConnsPerAddress: past maxConnsPerAddr connections from one address, more are closed at once;
// a trusted proxy's are not counted against it.
func TestConnsPerAddress(t *testing.T) {
	t.Parallel()
	for _, trusted := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lim := limitConns(ln, func(netip.Addr) bool { return trusted }, newFDBudget(0, 0, time.Now))
		go func() {
			for {
				c, err := lim.Accept()
				if err != nil {
					return
				}
				defer c.Close() // held open until the listener closes
			}
		}()
		var conns []net.Conn
		for range maxConnsPerAddr + 6 {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		// The connections over the cap are closed by the server: wait for their EOFs however slow
		// the machine, then a little longer for any extra one, and close the rest ourselves.
		want := 6
		if trusted {
			want = 0
		}
		eofs := make(chan struct{}, len(conns))
		for _, c := range conns {
			go func() {
				if _, err := c.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
					eofs <- struct{}{}
				}
			}()
		}
		closed := 0
		timeout := time.After(10 * time.Second)
	wait:
		for closed < want {
			select {
			case <-eofs:
				closed++
			case <-timeout:
				break wait
			}
		}
		extra := time.After(300 * time.Millisecond)
	more:
		for {
			select {
			case <-eofs:
				closed++
			case <-extra:
				break more
			}
		}
		for _, c := range conns {
			c.Close()
		}
		if closed != want {
			t.Errorf("trusted %v: %d connections closed by the server, want %d", trusted, closed, want)
		}
		ln.Close()
	}
}

// TestDiskBudget: a render whose estimated output would take free space under -min-free FAILS
// before its long step with a message that says so, and writes nothing; with room, it renders.
func TestDiskBudget(t *testing.T) {
	t.Parallel()
	const minFree = 1 << 30
	var spare atomic.Int64
	spare.Store(1 << 10) // 1 KB to spare: less than any video
	free := func(string) (int64, error) { return minFree + spare.Load(), nil }
	e := newTestEnv(t, nil, func(s *server) {
		s.cfg.MinFree, s.diskFree = minFree, free
		s.renderer.minFree, s.renderer.diskFree = minFree, free
	})
	for _, audio := range []string{"tone.wav", "tone.m4a"} { // audio encoded, and audio copied
		id := e.mustSubmit(t, e.key, fixture(t, "img.png"), fixture(t, audio))
		st := e.wait(t, e.key, id, StatusFailed)
		if msg := st["errorMessage"].(string); !strings.Contains(msg, "short of disk space") {
			t.Errorf("%s: errorMessage %q", audio, msg)
		}
		if files := dirFiles(t, filepath.Join(e.srv.cfg.DataDir, "outputs")); len(files) != 0 {
			t.Errorf("%s: outputs written: %v", audio, files)
		}
	}
	spare.Store(100 << 20)
	id := e.mustSubmit(t, e.key, fixture(t, "img.png"), fixture(t, "tone.wav"))
	e.wait(t, e.key, id, StatusCompleted)
}

// TestEncodeBudgetFirst: a render whose encoded audio alone cannot fit FAILS before it starts an
// ffmpeg, so it is never requeued to fill the disk again: here ffmpeg cannot even start, and the
// failure is the disk's message all the same.
func TestEncodeBudgetFirst(t *testing.T) {
	t.Parallel()
	if got := fmt.Sprintf("%dk", encodedBitsPerSecond/1000); got != audioRate {
		t.Fatalf("encodedBitsPerSecond is %s, audioRate %s", got, audioRate)
	}
	const minFree = 1 << 30
	dirs, err := openDataDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rd := &renderer{dirs: dirs, files: diskFiles{dirs}, tools: ffmpeg.Tools{FFmpeg: "/nonexistent/ffmpeg"}, now: time.Now, progress: map[string]*jobProgress{},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), rand: rand.Reader, minFree: minFree, audioCores: 2,
		pictures: newMemoryGate(1 << 30), diskFree: func(string) (int64, error) { return minFree + 18<<20, nil }} // 18 MB to spare
	job := Job{ID: "c0mx4budget000000000000000", ImageType: media.JPEG, AudioType: media.MP3, AudioCodec: "mp3//2/44100", AudioDuration: 300}
	copyFile(t, fixture(t, "img.jpg"), dirs.input(job.ID, inputImage))
	copyFile(t, fixture(t, "tone.mp3"), dirs.input(job.ID, inputAudio))
	// 300 s at 192 kbit/s is 7.2 MB: twice over (14.4 MB) would fit the 18 MB to spare, three times
	// (21.6 MB: the segments, their join and the video's copy) does not.
	_, _, err = rd.renderFiles(t.Context(), job)
	var f *renderFailure
	if !errors.As(err, &f) || !f.final || !strings.Contains(f.msg, "needs about 21 MB of disk for its audio") {
		t.Fatalf("render: %v, want a final failure for the disk before any ffmpeg", err)
	}
}

// TestDiskFillingRequeues: when free space falls under -min-free while a render writes, the render
// stops, cleans up and goes back in the queue without counting a retry; it completes once there is
// room again. The long writing step is ffmpeg's mux of audio that is copied (encoded audio is
// written by vidgen in milliseconds, after the same budget check).
func TestDiskFillingRequeues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	real, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	started := filepath.Join(dir, "started")
	// The first long step blocks until killed; every other run is the real ffmpeg.
	script := fmt.Sprintf("#!/bin/sh\nfor a; do if [ \"$a\" = -stream_loop ] && [ ! -e %q ]; then touch %q; exec sleep 3600; fi; done\nexec %q \"$@\"\n", started, started, real)
	ffmpeg := filepath.Join(dir, "ffmpeg")
	if err := os.WriteFile(ffmpeg, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var full atomic.Bool
	const minFree = 1 << 30
	free := func(string) (int64, error) {
		if full.CompareAndSwap(true, false) { // full once, for the watch during the long step
			return minFree - 1, nil
		}
		return 100 << 30, nil
	}
	cfg := testConfig(t.TempDir())
	cfg.FFmpeg = ffmpeg
	e := newTestEnv(t, &cfg, func(s *server) { s.renderer.minFree, s.renderer.diskFree = minFree, free })
	id := e.mustSubmit(t, e.key, fixture(t, "img.png"), fixture(t, "tone.m4a"))
	eventually(t, renderDeadline(t), func() error {
		if _, err := os.Stat(started); err != nil {
			return fmt.Errorf("the long step did not start: %w", err)
		}
		return nil
	})
	full.Store(true)
	eventually(t, 30*time.Second, func() error {
		if !strings.Contains(e.logs.String(), "disk filling") {
			return errors.New("the render did not stop when the disk filled")
		}
		return nil
	})
	e.wait(t, e.key, id, StatusCompleted)
	if j, err := e.srv.store.JobByID(context.Background(), id); err != nil || j.Retries != 0 {
		t.Errorf("retries %d (%v): a full disk is not the job's fault", j.Retries, err)
	}
}

// childrenMaxRSS is the peak resident memory, in bytes, of the largest child process the test
// binary has waited for (ffmpeg and ffprobe run by the servers under test).
func childrenMaxRSS(t testing.TB) int64 {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		t.Fatal(err)
	}
	return ru.Maxrss << 10 // kilobytes on Linux
}

// TestTrailingImageBomb: a small valid PNG or JPEG followed by a second image that would decode to
// 16000×16000 is accepted as the small picture: the bytes after the first image are cut before any
// decode, so neither the upload's check nor the render ever reads the second one.
func TestTrailingImageBomb(t *testing.T) {
	t.Parallel()
	if os.Getenv("VIDGEN_BOMB_ALONE") == "" {
		// The peak memory of child processes is only this test's in a process of its own: the test
		// binary runs again for this test alone, and that run checks its children's peak.
		cmd := exec.Command(os.Args[0], "-test.run=^TestTrailingImageBomb$", "-test.count=1")
		cmd.Env = append(os.Environ(), "VIDGEN_BOMB_ALONE=1")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS") {
			t.Fatalf("the test run alone: %v\n%s", err, out)
		}
		return
	}
	e := newTestEnv(t, nil)
	// The second PNG is real: 16000×16000 1-bit grey (256 megapixels), 16000 rows of 2,000 zero
	// bytes that deflate to ~30 KB.
	var idat bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&idat, zlib.BestSpeed)
	row := make([]byte, 1+16000/8)
	for range 16000 {
		zw.Write(row)
	}
	zw.Close()
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 16000), 16000)
	ihdr = append(ihdr, 1, 0, 0, 0, 0) // bit depth 1, greyscale
	hugePNG := append([]byte("\x89PNG\r\n\x1a\n"), rawPNGChunk("IHDR", ihdr)...)
	hugePNG = append(hugePNG, rawPNGChunk("IDAT", idat.Bytes())...)
	hugePNG = append(hugePNG, rawPNGChunk("IEND", nil)...)
	// The second JPEG claims 16000×16000 in its frame header.
	hugeJPEG := encodeJPEG(t, quad(16, 16))
	sof := bytes.Index(hugeJPEG, []byte{0xff, 0xc0})
	binary.BigEndian.PutUint16(hugeJPEG[sof+5:], 16000)
	binary.BigEndian.PutUint16(hugeJPEG[sof+7:], 16000)

	for _, c := range []struct{ small, bomb string }{{"img.png", string(hugePNG)}, {"img.jpg", string(hugeJPEG)}} {
		path := writeFixture(t, "bomb-"+c.small, append(readFile(t, fixture(t, c.small)), c.bomb...))
		key := e.newKey(t, "bomb-"+c.small)
		id := e.mustSubmit(t, key, path, fixture(t, "tone.wav"))
		st := e.wait(t, key, id, StatusCompleted)
		video, _ := download(t, st["outputVideo"].(string))
		if p := checkVideo(t, video, fixture(t, "tone.wav")); p.Width != 320 || p.Height != 240 {
			t.Errorf("%s + bomb: %dx%d, want the small picture's 320x240", c.small, p.Width, p.Height)
		}
	}
	if rss := childrenMaxRSS(t); rss > 400<<20 {
		t.Errorf("a child process peaked at %d MB", rss>>20)
	}
}

// rawPNGChunk is a PNG chunk of type typ holding data, with its CRC.
func rawPNGChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(append([]byte(typ), data...)))
}

// lyingOgg returns the Ogg file at path with its last page's granule position changed so that it
// claims to last claim seconds (48 kHz Opus), checksum mended: a container that lies about its length.
func lyingOgg(t testing.TB, path string, claim float64) string {
	t.Helper()
	b := readFile(t, path)
	last := bytes.LastIndex(b, []byte("OggS"))
	if last < 0 {
		t.Fatal("no Ogg page")
	}
	page := b[last:]
	binary.LittleEndian.PutUint64(page[6:], uint64(claim*48000)+312) // + the encoder's pre-skip
	binary.LittleEndian.PutUint32(page[22:], 0)
	binary.LittleEndian.PutUint32(page[22:], oggCRC(page))
	return writeFixture(t, "lying.ogg", b)
}

func init() {
	fixtureRecipes["long.opus"] = []string{"-f", "lavfi", "-i", "sine=f=440:d=120", "-ac", "1", "-c:a", "libopus", "-b:a", "16k", "-f", "ogg"}
}

// TestLyingOggDuration: an Ogg whose last page claims 59 minutes for 2 s of sound renders 2 s, and
// one whose last page claims 5 s for 120 s of sound is measured at 120 s, so -max-duration holds.
func TestLyingOggDuration(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.MaxDuration = time.Minute
	e := newTestEnv(t, &cfg)
	short := lyingOgg(t, fixture(t, "tone.opus"), 3540)
	if claim := mediaDuration(t, short); claim < 3000 {
		t.Fatalf("the lying file claims only %.0f s: the test proves nothing", claim)
	}
	id := e.mustSubmit(t, e.key, fixture(t, "img.png"), short)
	st := e.wait(t, e.key, id, StatusCompleted)
	video, _ := download(t, st["outputVideo"].(string))
	if d := mediaDuration(t, writeFixture(t, "out.mp4", video)); d > 3 {
		t.Errorf("the video lasts %.1f s for 2.5 s of sound", d)
	}

	long := lyingOgg(t, fixture(t, "long.opus"), 5)
	if claim := mediaDuration(t, long); claim > 10 {
		t.Fatalf("the lying file claims %.0f s: the test proves nothing", claim)
	}
	code, body := e.submit(t, e.key, fixture(t, "img.png"), long, nil)
	if msg, _ := body["error"].(string); code != 400 || !strings.Contains(msg, "0:02:00") {
		t.Errorf("120 s claiming 5 s, with -max-duration 1m: %d %v", code, body)
	}
}

// TestChildMemoryLimit: every ffmpeg and ffprobe runs under -child-memory. A picture that needs
// more to decode is refused with a 400 that says so, not "damaged"; the same picture passes under
// the default limit. (That each child gets the limit it is given is internal/ffmpeg's TestLimits.)
func TestChildMemoryLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// 6000x6000 at 16 bits a channel: a 288 MB frame, more than 512 MiB leaves once ffprobe has
	// loaded its ~300 MB of libraries.
	deep := filepath.Join(dir, "deep.png")
	if err := os.WriteFile(deep, zeroPNG(6000, 6000), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := hangConfig(t, 1)
	cfg.ChildMemory = 512 << 20
	e := newTestEnv(t, cfg)
	status, body := e.submit(t, e.key, deep, fixture(t, "tone.wav"), nil)
	if msg, _ := body["error"].(string); status != 400 || !strings.Contains(msg, "more memory than this server gives one file") {
		t.Errorf("picture over the limit: %d %v", status, body)
	}
	under := filepath.Join(dir, "copy.png")
	copyFile(t, deep, under)
	if _, err := prepareImage(t.Context(), ffmpeg.Tools{FFmpeg: "ffmpeg", FFprobe: "ffprobe", Memory: defaultChildMemory}, newDecodeGate(), under, media.PNG); err != nil {
		t.Errorf("the same picture under the default limit: %v", err)
	}

}

// zeroPNG is a PNG of w×h transparent black pixels at 16 bits a channel (8 bytes a pixel), whose
// image data is one hand-built deflate block (a zero, then copies of 258 zeros at 2 bits each): a
// decoder's frame for 6000×6000 is 288 MB from a 280 KB file, made in milliseconds where running
// 288 MB through a compressor takes seconds (half a minute under the race detector).
func zeroPNG(w, h int) []byte {
	n := h * (1 + w*8) // the rows, each with its filter byte (0: none)
	var bw bitWriter
	bw.bits(1, 1)  // the final block
	bw.bits(2, 2)  // with dynamic Huffman codes
	bw.bits(29, 5) // 286 literal/length codes, up to 285 (a copy of 258 bytes)
	bw.bits(0, 5)  // one distance code
	bw.bits(14, 4) // 18 code-length codes are given, in the order deflate defines:
	for _, l := range []uint64{0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2} {
		bw.bits(l, 3) // 18 (a run of zeros) gets 1 bit; lengths 1 and 2 get 2 bits
	}
	sym18, sym1, sym2 := func(run uint64) { bw.code(0b0, 1); bw.bits(run-11, 7) }, func() { bw.code(0b10, 2) }, func() { bw.code(0b11, 2) }
	// Literal/length code lengths: 0 → 2 bits, 256 (end) → 2 bits, 285 → 1 bit; then the distance
	// code 0 (a distance of 1) → 1 bit.
	sym2()
	sym18(138)
	sym18(117)
	sym2()
	sym18(28)
	sym1()
	sym1()
	zero, copy258, end := func() { bw.code(0b10, 2) }, func() { bw.code(0b0, 1); bw.code(0b0, 1) }, func() { bw.code(0b11, 2) }
	zero()
	for range (n - 1) / 258 {
		copy258()
	}
	for range (n - 1) % 258 {
		zero()
	}
	end()
	idat := append([]byte{0x78, 0x01}, bw.flush()...)
	idat = binary.BigEndian.AppendUint32(idat, uint32(n%65521)<<16|1) // Adler-32 of n zeros
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(w)), uint32(h))
	writePNGChunk(&out, "IHDR", append(ihdr, 16, 6, 0, 0, 0))
	writePNGChunk(&out, "IDAT", idat)
	writePNGChunk(&out, "IEND", nil)
	return out.Bytes()
}

// bitWriter writes a deflate bit stream: values least significant bit first, Huffman codes most
// significant bit first.
type bitWriter struct {
	buf []byte
	acc uint64
	n   uint
}

func (b *bitWriter) bits(v uint64, n uint) {
	b.acc |= v << b.n
	for b.n += n; b.n >= 8; b.n -= 8 {
		b.buf = append(b.buf, byte(b.acc))
		b.acc >>= 8
	}
}

func (b *bitWriter) code(c uint64, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		b.bits(c>>uint(i)&1, 1)
	}
}

func (b *bitWriter) flush() []byte {
	if b.n > 0 {
		b.buf = append(b.buf, byte(b.acc))
	}
	return b.buf
}

// TestZeroPNG checks the fixture above against Go's decoder.
func TestZeroPNG(t *testing.T) {
	t.Parallel()
	b := zeroPNG(37, 5)
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds() != image.Rect(0, 0, 37, 5) || img.ColorModel() != color.NRGBA64Model {
		t.Fatalf("%v %T", img.Bounds(), img)
	}
	if r, g, bl, a := img.At(36, 4).RGBA(); r|g|bl|a != 0 {
		t.Errorf("pixel %d %d %d %d, want transparent black", r, g, bl, a)
	}
	if n := len(zeroPNG(6000, 6000)); n > 300<<10 {
		t.Errorf("6000x6000 is %d bytes", n)
	}
}

// BenchmarkDownload serves a 64 MB video through the whole middleware chain to curl on loopback
// and reports the CPU vidgen spends a download (server-cpu-ms/op), the number to compare when the
// way bytes reach the connection changes (a sendfile path measured 31-34 ms against 27-28 ms for
// the copy; see the commit that removed it). Wall time on loopback says little: the client's copy
// dominates it.
func BenchmarkDownload(b *testing.B) {
	e := newTestEnv(b, nil)
	id := e.mustSubmit(b, e.key, fixture(b, "img.png"), fixture(b, "tone.wav"))
	st := e.wait(b, e.key, id, StatusCompleted)
	videos, err := filepath.Glob(filepath.Join(e.srv.dirs.outputs(), "*.mp4"))
	if err != nil || len(videos) != 1 {
		b.Fatalf("outputs: %v %v", videos, err)
	}
	const size = 64 << 20
	if err := os.WriteFile(videos[0], bytes.Repeat([]byte{0x5a}, size), 0o600); err != nil {
		b.Fatal(err)
	}
	url := st["outputVideo"].(string)
	b.SetBytes(size)
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var spent time.Duration
	for b.Loop() {
		before := cpu()
		out, err := exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", url).Output()
		spent += cpu() - before
		if err != nil || string(out) != strconv.Itoa(size) {
			b.Fatalf("curl: %s %v", out, err)
		}
	}
	b.ReportMetric(float64(spent.Microseconds())/1000/float64(b.N), "server-cpu-ms/op")
}

// TestUploadDiskFull: an upload that fills the disk is the server's 507, its message names no path;
// a body that breaks off is not the server's (a 400, or the 499 of a client that left: see
// TestAbandonedUploadLogged499).
func TestUploadDiskFull(t *testing.T) {
	t.Parallel()
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer full.Close()
	_, err = io.Copy(diskWriter{full}, strings.NewReader("RIFF...."))
	var e *Error
	if !errors.As(copyFailed(err), &e) || e.Kind != kindNoSpace || strings.Contains(e.Error(), "/dev/full") {
		t.Errorf("a full disk: %v, want a 507 without the path", copyFailed(err))
	}
	room, err := os.Create(filepath.Join(t.TempDir(), "upload"))
	if err != nil {
		t.Fatal(err)
	}
	defer room.Close()
	_, err = io.Copy(diskWriter{room}, io.MultiReader(strings.NewReader("RIFF"), iotest.ErrReader(io.ErrUnexpectedEOF)))
	if !errors.As(copyFailed(err), &e) || e.Kind != kindInvalid {
		t.Errorf("a body that breaks off: %v, want the client's 400", copyFailed(err))
	}
}

// TestAbandonedUploadLogged499: a client that closes its connection mid-upload is logged as 499 (it
// left), not as a 400 for a malformed body, and its temp file goes.
func TestAbandonedUploadLogged499(t *testing.T) {
	t.Parallel()
	for _, reset := range []bool{false, true} {
		abandonUpload(t, reset)
	}
}

// abandonUpload is TestAbandonedUploadLogged499 for a client that closes its connection, or resets
// it (as an aborted client does).
func abandonUpload(t testing.TB, reset bool) {
	t.Helper()
	e := newTestEnv(t, nil)
	conn := stalledUpload(t, e)
	if reset {
		conn.(*net.TCPConn).SetLinger(0) // Close sends RST
	}
	tmp := filepath.Join(e.srv.cfg.DataDir, "tmp")
	eventually(t, 10*time.Second, func() error {
		if files := dirFiles(t, tmp); len(files) != 1 {
			return fmt.Errorf("the upload's temp file did not appear: temp files %v", files)
		}
		return nil
	})
	conn.Close()
	line := regexp.MustCompile(`msg=request .*route=/api/jobs .*status=(\d+)`)
	var status string
	eventually(t, 10*time.Second, func() error {
		m := line.FindStringSubmatch(e.logs.String())
		if m == nil {
			return fmt.Errorf("no request line:\n%s", e.logs.String())
		}
		status = m[1]
		return nil
	})
	if status != "499" {
		t.Errorf("an abandoned upload (reset %v) was logged with status %s, want 499", reset, status)
	}
	eventually(t, 10*time.Second, func() error {
		if files := dirFiles(t, tmp); len(files) != 0 {
			return fmt.Errorf("temp files left: %v", files)
		}
		return nil
	})
}
