package ffmpeg

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKilledIsNotCrashed: a tool killed from outside is the server's trouble, a crash the file's.
func TestKilledIsNotCrashed(t *testing.T) {
	t.Parallel()
	for sig, want := range map[string]bool{"KILL": true, "TERM": true, "SEGV": false, "ABRT": false} {
		cmd := exec.Command("sh", "-c", "ulimit -c 0; kill -"+sig+" $$")
		cmd.Dir = t.TempDir() // no core file in the package, whatever the machine's settings
		err := cmd.Run()
		if killed(err) != want {
			t.Errorf("SIG%s: killed %v, want %v (%v)", sig, killed(err), want, err)
		}
	}
	if killed(exec.Command("false").Run()) || killed(nil) {
		t.Error("an exit status or no error counted as killed")
	}
}

// TestRunReasons: every way a run fails has its own Reason, and an allocation failure counts as
// out of memory only under a limit.
func TestRunReasons(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notExecutable := filepath.Join(dir, "ffprobe")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const oom = "echo 'Error while decoding stream #0:0: Cannot allocate memory' >&2; "
	cases := []struct {
		name    string
		argv    []string
		memory  int64
		timeout time.Duration
		want    Reason
		log     string
	}{
		{name: "not found", argv: []string{filepath.Join(dir, "gone", "ffprobe")}, want: NotStarted},
		{name: "not executable", argv: []string{notExecutable}, want: NotStarted},
		{name: "killed", argv: []string{"sh", "-c", "kill -KILL $$"}, want: Killed},
		{name: "killed out of memory", argv: []string{"sh", "-c", oom + "kill -TERM $$"}, memory: 1 << 30, want: Killed},
		{name: "crashed", argv: []string{"sh", "-c", "ulimit -c 0; kill -SEGV $$"}, want: Failed},
		{name: "error exit", argv: []string{"sh", "-c", "echo '  damaged input' >&2; exit 1"}, want: Failed, log: "damaged input"},
		{name: "out of memory", argv: []string{"sh", "-c", oom + "exit 1"}, memory: 1 << 30, want: OutOfMemory},
		{name: "allocation failure, no limit", argv: []string{"sh", "-c", oom + "exit 1"}, want: Failed},
		{name: "timed out", argv: []string{"sleep", "60"}, timeout: 100 * time.Millisecond, want: Stopped},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			if c.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, c.timeout)
				defer cancel()
			}
			cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
			cmd.Dir = t.TempDir() // no core file in the package
			err := Tools{Memory: c.memory}.Run(ctx, cmd)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T), want an *Error", err, err)
			}
			if e.Reason != c.want || e.Tool != filepath.Base(c.argv[0]) {
				t.Errorf("%s: reason %d tool %q, want %d %q", err, e.Reason, e.Tool, c.want, filepath.Base(c.argv[0]))
			}
			if c.log != "" && string(e.Log) != c.log {
				t.Errorf("log %q, want %q", e.Log, c.log)
			}
		})
	}
	if err := (Tools{Memory: 1 << 30}).Run(t.Context(), exec.Command("true")); err != nil {
		t.Errorf("a clean run: %v", err)
	}
}

// TestRunOutput: the caller's writers get all of the tool's output, in order when stdout and stderr
// are one writer (heif-convert's messages are read that way), and the error keeps the last 4 KB of
// stderr.
func TestRunOutput(t *testing.T) {
	t.Parallel()
	var both bytes.Buffer
	cmd := exec.Command("sh", "-c", "for i in 1 2 3 4 5 6; do echo out$i; echo err$i >&2; done")
	cmd.Stdout, cmd.Stderr = &both, &both
	if err := (Tools{}).Run(t.Context(), cmd); err != nil {
		t.Fatal(err)
	}
	if want := "out1\nerr1\nout2\nerr2\nout3\nerr3\nout4\nerr4\nout5\nerr5\nout6\nerr6\n"; both.String() != want {
		t.Errorf("one writer for both: %q, want %q", both.String(), want)
	}

	var stderr bytes.Buffer
	cmd = exec.Command("sh", "-c", "i=0; while [ $i -lt 1000 ]; do echo line $i >&2; i=$((i+1)); done; exit 3")
	cmd.Stderr = &stderr
	err := (Tools{}).Run(t.Context(), cmd)
	var e *Error
	if !errors.As(err, &e) || e.Reason != Failed {
		t.Fatalf("%v, want a failure", err)
	}
	if stderr.Len() < 8000 || len(e.Log) > 4096 || !strings.HasSuffix(string(e.Log), "line 999") || !bytes.HasSuffix(bytes.TrimSpace(stderr.Bytes()), e.Log) {
		t.Errorf("stderr %d bytes; log %d bytes ending %q, want its last 4 KB", stderr.Len(), len(e.Log), e.Log[max(0, len(e.Log)-20):])
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("%v does not unwrap to exit status 3", err)
	}
}

// limitScript is a stand-in tool that waits until its address-space limit is set (just after it
// starts) and writes it down, in KiB, to $0.out, with its CPU priority.
func limitScript(t testing.TB) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "ffmpeg")
	body := "#!/bin/sh\nfor i in $(seq 100); do l=$(ulimit -v); [ \"$l\" != unlimited ] && break; sleep 0.05; done\n" +
		"echo $l $(cut -d' ' -f19 /proc/$$/stat) > \"$0.out\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// TestLimits: every child runs under the memory limit; a render also at priority Nice.
func TestLimits(t *testing.T) {
	t.Parallel()
	script := limitScript(t)
	const limit = 600 << 20
	tl := Tools{FFmpeg: script, FFprobe: script, Memory: limit}
	for name, c := range map[string]struct {
		run  func() error
		nice int
	}{
		"render": {func() error { return tl.Render(t.Context(), nil) }, Nice},
		"probe":  {func() error { return tl.Run(t.Context(), exec.CommandContext(t.Context(), script)) }, 0},
	} {
		os.Remove(script + ".out")
		if err := c.run(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := os.ReadFile(script + ".out")
		want := strconv.Itoa(limit>>10) + " " + strconv.Itoa(c.nice)
		if err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("%s child's limit and priority: %q, want %q (%v)", name, got, want, err)
		}
	}
}

// TestRenderStopKillsGroup: a render whose context ends is killed with every process it started,
// and says it was stopped, not that it failed.
func TestRenderStopKillsGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	script := filepath.Join(dir, "ffmpeg")
	body := "#!/bin/sh\nsleep 3600 &\necho $! $$ > " + pids + ".tmp\nmv " + pids + ".tmp " + pids + "\nwait\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Tools{FFmpeg: script}.Render(ctx, nil, "-i", "nothing") }()
	var got []string
	for deadline := time.Now().Add(30 * time.Second); len(got) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stand-in never started")
		}
		b, _ := os.ReadFile(pids)
		got = strings.Fields(string(b))
	}
	cancel()
	err := <-done
	var e *Error
	if !errors.As(err, &e) || e.Reason != Stopped || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled render: %v, want Stopped by context.Canceled", err)
	}
	for _, p := range got {
		pid, _ := strconv.Atoi(p)
		for deadline := time.Now().Add(30 * time.Second); alive(pid); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("process %d outlived its render", pid)
				break
			}
		}
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// TestRenderOutcomes runs the real ffmpeg: its position is reported as it goes; a full disk is
// ENOSPC whether ffmpeg exits 0 (the failed write was its last) or not.
func TestRenderOutcomes(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("no ffmpeg")
	}
	tl := Tools{FFmpeg: "ffmpeg"}
	var seen []float64
	out := filepath.Join(t.TempDir(), "ok.wav")
	if err := tl.Render(t.Context(), func(s float64) { seen = append(seen, s) }, "-f", "lavfi", "-i", "sine=d=2", "-f", "wav", "file:"+out); err != nil {
		t.Fatal(err)
	}
	if len(seen) == 0 || seen[len(seen)-1] < 1.9 || seen[len(seen)-1] > 2.1 {
		t.Errorf("progress %v, want it to reach 2 s", seen)
	}
	for _, seconds := range []string{"1", "10"} { // exits 0, exits 1
		err := tl.Render(t.Context(), nil, "-f", "lavfi", "-i", "sine=d="+seconds, "-f", "wav", "file:/dev/full")
		var e *Error
		if !errors.Is(err, syscall.ENOSPC) || !errors.As(err, &e) || e.Reason != Failed || len(e.Log) == 0 {
			t.Errorf("%s s to /dev/full: %v, want a failure with ENOSPC and its log", seconds, err)
		}
	}
	err := Tools{FFmpeg: filepath.Join(t.TempDir(), "ffmpeg")}.Render(t.Context(), nil)
	if e := (*Error)(nil); !errors.As(err, &e) || e.Reason != NotStarted {
		t.Errorf("missing ffmpeg: %v, want NotStarted", err)
	}
}

// TestVersion: the first line of -version, or why there is none.
func TestVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := filepath.Join(dir, "ffmpeg")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho '  ffmpeg version 9.9 '\necho 'built with gcc'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if v, err := Version(t.Context(), script); err != nil || v != "ffmpeg version 9.9" {
		t.Errorf("Version: %q, %v", v, err)
	}
	if v, err := Version(t.Context(), filepath.Join(dir, "gone")); err == nil {
		t.Errorf("Version of a missing tool: %q, want an error", v)
	}
}

// FuzzTail: however the output comes in pieces, the tail is its last 4 KB.
func FuzzTail(f *testing.F) {
	f.Add([]byte("Error while decoding stream #0:0"), 7, 3)
	f.Add(bytes.Repeat([]byte("x"), 5000), 4097, 1000)
	f.Fuzz(func(t *testing.T, out []byte, cut, repeat int) {
		out = bytes.Repeat(out, 1+int(uint(repeat)%8))
		var tail Tail
		for rest := out; len(rest) > 0; {
			n := min(len(rest), 1+int(uint(cut)%5000))
			if w, err := tail.Write(rest[:n]); w != n || err != nil {
				t.Fatalf("Write %d: %d, %v", n, w, err)
			}
			rest = rest[n:]
		}
		if want := out[max(0, len(out)-4096):]; !bytes.Equal(tail.Bytes(), want) {
			t.Errorf("tail of %d bytes: %d bytes, want the last %d", len(out), len(tail.Bytes()), len(want))
		}
	})
}
