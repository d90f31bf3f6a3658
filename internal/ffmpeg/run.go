// Package ffmpeg runs the programs that read and render uploaded files (ffmpeg, ffprobe,
// heif-convert) under their limits: an address-space limit on every child, and for a render a lower
// CPU priority, a process group of its own that is killed whole when the run's context ends, and
// death with its parent. A failed run is an *Error that keeps the tail of the tool's stderr and says
// why it failed (its Reason): it did not start, a signal from outside killed it, it ran out of
// memory under the limit, its context stopped it, ffmpeg refused a render's own arguments, or it
// failed on its own (an error exit or a crash). It knows nothing of jobs or users: callers turn an *Error into their own messages.
package ffmpeg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Tools are the programs run on uploaded files, and the memory each run may take.
type Tools struct {
	FFmpeg, FFprobe string
	HeifConvert     string // optional: "" when the server has none
	// Memory is the address space, in bytes, each child may map (0: no limit). Decoding is where a
	// hostile file asks for memory (a picture whose header lies, a decoder's corner case): past the
	// limit the child's allocations fail, so the file fails on its own instead of taking the machine.
	Memory int64
}

// Reason is why a run failed.
type Reason int

const (
	// Failed is a tool that failed on its own: an error exit, or a crash (SIGSEGV, SIGABRT), which a
	// file can cause.
	Failed Reason = iota
	// NotStarted is a tool that could not be started: not found, not executable, no processes left.
	NotStarted
	// Killed is a tool ended by a signal from outside (SIGKILL, SIGTERM: the kernel's OOM killer, an
	// operator) while its context was still live.
	Killed
	// OutOfMemory is a tool that failed under Tools.Memory with an allocation failure in its log.
	OutOfMemory
	// Stopped is a tool killed because its context was cancelled or passed its deadline.
	Stopped
	// Invalid is a render that ffmpeg refused for its own arguments (InvalidLog): a filter asked
	// for a picture size or an option value out of range. It depends on nothing but the arguments
	// and their inputs, so the same render fails the same way every time.
	Invalid
)

// Error is a failed run of Tool. Err is the cause (the *exec.ExitError, the start error, the
// context's error), and for a render syscall.ENOSPC or ErrOutputIncomplete besides; Log is the tail
// of the tool's stderr, trimmed.
type Error struct {
	Tool   string
	Reason Reason
	Err    error
	Log    []byte
}

func (e *Error) Error() string {
	switch e.Reason {
	case NotStarted:
		return fmt.Sprintf("start %s: %v", e.Tool, e.Err)
	case Stopped:
		return fmt.Sprintf("%s stopped: %v", e.Tool, e.Err)
	case OutOfMemory:
		return fmt.Sprintf("%s: %v (out of the memory its limit allows): %s", e.Tool, e.Err, e.Log)
	}
	return fmt.Sprintf("%s: %v: %s", e.Tool, e.Err, e.Log)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrOutputIncomplete is an ffmpeg run that exited 0 after it failed to finish writing its output.
var ErrOutputIncomplete = errors.New("ffmpeg could not finish writing its output")

// Run starts cmd, made with exec.CommandContext(ctx, …), under t's memory limit and waits for it.
// Nothing else may start cmd: its stdout and stderr are set by the caller as for cmd.Run (stderr
// also goes to the *Error's Log, its last 4 KB).
func (t Tools) Run(ctx context.Context, cmd *exec.Cmd) error {
	var tail Tail
	if cmd.Stderr == nil {
		cmd.Stderr = &tail
	} else {
		w := io.MultiWriter(cmd.Stderr, &tail)
		if cmd.Stdout == cmd.Stderr {
			cmd.Stdout = w // one pipe for both, as os/exec does for the same writer
		}
		cmd.Stderr = w
	}
	tool := filepath.Base(cmd.Path)
	if err := cmd.Start(); err != nil {
		return &Error{Tool: tool, Reason: NotStarted, Err: err}
	}
	t.limit(cmd)
	err := cmd.Wait()
	if err == nil {
		return nil
	}
	e := &Error{Tool: tool, Err: err, Log: bytes.TrimSpace(tail.Bytes())}
	switch {
	case ctx.Err() == nil && killed(err):
		e.Reason = Killed
	case t.Memory > 0 && OutOfMemoryLog(e.Log):
		e.Reason = OutOfMemory
	case ctx.Err() != nil:
		e.Reason = Stopped
	}
	return e
}

// limit applies the memory limit to cmd's freshly started process. It runs while the process is
// still loading its ~100 shared libraries, before it opens a file; a process past the limit already
// could only shrink. os/exec offers no hook between fork and exec, and a re-exec of the caller
// itself to set the limit first would cost a Go runtime start-up per child.
func (t Tools) limit(cmd *exec.Cmd) {
	if t.Memory <= 0 {
		return
	}
	lim := unix.Rlimit{Cur: uint64(t.Memory), Max: uint64(t.Memory)}
	unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_AS, &lim, nil) // fails only if the process is gone
}

// OutOfMemoryLog reports whether a tool's error output says an allocation failed, which under the
// limit means "needs more memory", not "damaged": ffmpeg's words for ENOMEM, for a frame buffer or
// a packet it could not get, and x264's for a failed malloc.
func OutOfMemoryLog(stderr []byte) bool {
	for _, words := range []string{"Cannot allocate memory", "get_buffer() failed", "Failed to allocate", "x264 [error]: malloc of size"} {
		if bytes.Contains(stderr, []byte(words)) {
			return true
		}
	}
	return false
}

// InvalidLog reports whether ffmpeg's error output says a filter was set up with a picture size or
// an option value it refuses ("Picture size 0x1080 is invalid", "Value 0.000000 for parameter
// 'dstw' out of range"): a fault of the arguments, which ffmpeg goes on to report as "Invalid
// argument" or, for the scaler, as "Cannot allocate memory".
func InvalidLog(stderr []byte) bool {
	for line := range bytes.Lines(stderr) {
		if bytes.Contains(line, []byte("Picture size ")) && bytes.Contains(line, []byte(" is invalid")) ||
			bytes.Contains(line, []byte("Value ")) && bytes.Contains(line, []byte(" out of range [")) {
			return true
		}
	}
	return false
}

// killed says whether err is a process's end by a signal from outside it (SIGKILL, SIGTERM). A
// crash (SIGSEGV, SIGABRT) is not: a file can cause that, and it is the file's refusal.
func killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && (ws.Signal() == syscall.SIGKILL || ws.Signal() == syscall.SIGTERM)
}

// Render runs ffmpeg with args, in its own process group at CPU priority Nice, restricted to local
// files; the whole group is killed when ctx ends, and when the caller's process dies. progress, when
// not nil, is called with ffmpeg's position in its output, in seconds, as it goes.
//
// A failure is an *Error. Besides its Reason (Invalid only here, where the arguments are the
// caller's own), Err holds syscall.ENOSPC when ffmpeg's log says the
// disk is full, and ErrOutputIncomplete when ffmpeg exited 0 without finishing its output.
func (t Tools) Render(ctx context.Context, progress func(seconds float64), args ...string) error {
	full := append([]string{"-nostdin", "-hide_banner", "-v", "error", "-y", "-protocol_whitelist", "file",
		"-progress", "pipe:1", "-stats_period", "0.25", "-nostats"}, args...)
	cmd := exec.CommandContext(ctx, t.FFmpeg, full...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // so the whole group can be killed
		Pdeathsig: syscall.SIGKILL, // and it dies with its parent even on kill -9
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr Tail
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	release, err := startNice(cmd, Nice)
	if err != nil {
		return &Error{Tool: "ffmpeg", Reason: NotStarted, Err: err}
	}
	defer release() // after Wait
	t.limit(cmd)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "out_time_us=")
		if !ok || progress == nil {
			continue
		}
		if us, err := strconv.ParseInt(v, 10, 64); err == nil && us > 0 {
			progress(float64(us) / 1e6)
		}
	}
	io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if err != nil && ctx.Err() != nil {
		return &Error{Tool: "ffmpeg", Reason: Stopped, Err: ctx.Err()}
	}
	msgs := bytes.TrimSpace(stderr.Bytes())
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	reason := Failed
	// ffmpeg reports a failed write of its output only in its log, and exits 0 when that write was
	// the last (the trailer, or the buffer flushed as the file closes): 1 s of AAC written to a full
	// disk exits 0. The output is incomplete all the same. ENOSPC is carried as the errno the
	// caller's own writes fail with, so that one errors.Is finds both.
	switch {
	case bytes.Contains(msgs, []byte("No space left on device")):
		errs = append(errs, syscall.ENOSPC)
	case err == nil && (bytes.Contains(msgs, []byte("Error writing trailer")) || bytes.Contains(msgs, []byte("Error closing file"))):
		errs = append(errs, ErrOutputIncomplete)
	case killed(err): // a signal ended it, whatever its log said before
		reason = Killed
	case err != nil && InvalidLog(msgs): // before memory: the scaler reports a size it refuses as ENOMEM
		reason = Invalid
	case err != nil && t.Memory > 0 && OutOfMemoryLog(msgs):
		reason = OutOfMemory
	}
	if len(errs) == 0 {
		return nil
	}
	return &Error{Tool: "ffmpeg", Reason: reason, Err: errors.Join(errs...), Log: msgs}
}

// Nice is a render's CPU priority: renders yield the CPU to the service, so a request does not wait
// behind an encode.
const Nice = 10

// startNice starts cmd at CPU priority nice from its first instruction, so every thread and child it
// makes inherits it (setting it on the pid after Start races with ffmpeg's threads, which keep the
// priority they were born with). On Linux the priority belongs to a thread and a child inherits its
// forking thread's, so a thread of its own is lowered and forks it. That thread lives until the
// caller has waited for cmd (the release func): Pdeathsig fires when the forking thread ends, not
// the process. It is then discarded, never reused at the lower priority.
func startNice(cmd *exec.Cmd, nice int) (release func(), err error) {
	started, done := make(chan error, 1), make(chan struct{})
	go func() {
		runtime.LockOSThread()                             // never unlocked: the thread exits with this goroutine
		syscall.Setpriority(syscall.PRIO_PROCESS, 0, nice) // 0: the calling thread
		started <- cmd.Start()
		<-done
	}()
	if err := <-started; err != nil {
		close(done)
		return nil, err
	}
	return func() { close(done) }, nil
}

// Tail is an io.Writer that keeps the last 4 KB written to it: the end of a tool's stderr, where
// its errors are, however much it writes.
type Tail struct{ b []byte }

func (t *Tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *Tail) Bytes() []byte { return t.b }

// Version returns the first line of `tool -version`, which also proves the tool runs. It gives up
// after VersionTimeout: a tool that never answers must be reported, not wait forever.
func Version(ctx context.Context, tool string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, VersionTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, "-version")
	cmd.WaitDelay = time.Second // a child of its own may hold its output open
	out, err := cmd.Output()
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "", fmt.Errorf("-version did not answer within %s: %w", VersionTimeout, err)
	}
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line), nil
}

// VersionTimeout bounds `tool -version` (0.13 s for Debian's ffmpeg).
const VersionTimeout = 5 * time.Second
