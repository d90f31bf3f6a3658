package main

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

// This file runs the programs that read and render uploaded files (ffprobe, heif-convert, ffmpeg):
// each is started here under its memory limit, and ffmpeg is watched and killed here too. The one
// other child, toolVersion's `-version` at start-up, reads no upload.

// tools are the programs vidgen runs on uploaded files, and the memory each run may take.
type tools struct {
	ffmpeg, ffprobe string
	heifConvert     string // optional: "" when the server has none
	// memory is the address space, in bytes, each child may map (0: no limit). Decoding is where a
	// hostile file asks for memory (a picture whose header lies, a decoder's corner case): past the
	// limit the child's allocations fail, so the file fails on its own instead of taking the machine.
	memory int64
}

// defaultChildMemory is -child-memory's default. The largest picture accepted (100 megapixels at 16
// bits a channel) needs 1.1 GB of address space to decode with ffprobe and at most 1.7 GB to render
// (its moving picture's still, measured with ffmpeg 5.1 as on a 32-core machine: -cpucount 32, x264
// on 8 threads); 3 GiB leaves a margin over both.
const defaultChildMemory = 3 << 30

// minChildMemory is the least -child-memory accepted: what every ordinary job needs, with a margin.
// ffmpeg maps ~270 MB of shared libraries before it reads a byte; a render's frames, filters and
// encoder threads come on top. Measured with ffmpeg 5.1 as on a 32-core machine (-cpucount 32, x264
// on 8 threads), the most an ordinary job took was 1381 MiB: a 3000x3000 JPEG as a 1920x1920 moving
// picture with a line waveform and captions (a 1080p waveform 1032-1087 MiB, a 1080p still 436
// MiB, a 12-megapixel 16-bit PNG still 579 MiB; on 2 cores, x264 on 3 threads, ~300 MiB less for
// a moving picture). 2 GiB leaves ~50% for other builds of ffmpeg and their libraries.
const minChildMemory = 2 << 30

// encoderThreads is the most threads x264 may use in a moving render: its default, 1.5 a core, maps
// ~75 MB of address space a thread at 1080p, so that on a 32-core machine a render of the largest
// picture needed over 3 GB. (The still render's clip uses one.)
func encoderThreads() int { return min(8, (3*runtime.NumCPU()+1)/2) }

// run starts cmd under t's memory limit and waits for it. Nothing else may start cmd: its stdout and
// stderr are set by the caller as for cmd.Run.
func (t tools) run(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return toolFailed(filepath.Base(cmd.Path), err)
	}
	t.limit(cmd)
	return cmd.Wait()
}

// output is run that returns what cmd wrote to its stdout, like cmd.Output.
func (t tools) output(cmd *exec.Cmd) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout = &out
	err := t.run(cmd)
	return out.Bytes(), err
}

// limit applies the memory limit to cmd's freshly started process. It runs while the process is
// still loading its ~100 shared libraries, before it opens a file; a process past the limit already
// could only shrink. os/exec offers no hook between fork and exec, and a re-exec of vidgen itself
// to set the limit first would cost a Go runtime start-up per child.
func (t tools) limit(cmd *exec.Cmd) {
	if t.memory <= 0 {
		return
	}
	lim := unix.Rlimit{Cur: uint64(t.memory), Max: uint64(t.memory)}
	unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_AS, &lim, nil) // fails only if the process is gone
}

// errChildMemory is a child that stopped at the memory limit.
var errChildMemory = errors.New("a child ran out of the address space -child-memory allows")

// outOfMemory reports whether a tool's error output says an allocation failed, which under the limit
// means "needs more memory", not "damaged": ffmpeg's words for ENOMEM, for a frame buffer or a
// packet it could not get, and x264's for a failed malloc.
func outOfMemory(stderr []byte) bool {
	for _, words := range []string{"Cannot allocate memory", "get_buffer() failed", "Failed to allocate", "x264 [error]: malloc of size"} {
		if bytes.Contains(stderr, []byte(words)) {
			return true
		}
	}
	return false
}

// ffmpegRun runs ffmpeg with args, in its own process group at a lower CPU priority, restricted to
// local files. When duration is positive it reports ffmpeg's position as the fraction of the job's
// current step done. A failure is an *ffmpegError, which holds the tail of ffmpeg's log, and
// errChildMemory when ffmpeg ran out of memory under the limit.
func (rd *renderer) ffmpegRun(ctx context.Context, jobID string, duration float64, args ...string) error {
	full := append([]string{"-nostdin", "-hide_banner", "-v", "error", "-y", "-protocol_whitelist", "file",
		"-progress", "pipe:1", "-stats_period", "0.25", "-nostats"}, args...)
	cmd := exec.CommandContext(ctx, rd.tools.ffmpeg, full...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // so the whole group can be killed
		Pdeathsig: syscall.SIGKILL, // and it dies with vidgen even on kill -9
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr tailBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	release, err := startNice(cmd, renderNice)
	if err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}
	defer release() // after Wait
	rd.tools.limit(cmd)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "out_time_us=")
		if !ok || duration <= 0 {
			continue
		}
		if us, err := strconv.ParseInt(v, 10, 64); err == nil && us > 0 {
			rd.stepDone(jobID, float64(us)/1e6/duration)
		}
	}
	io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("ffmpeg stopped: %w", ctx.Err())
	}
	msgs := bytes.TrimSpace(stderr.Bytes())
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	// ffmpeg reports a failed write of its output only in its log, and exits 0 when that write was
	// the last (the trailer, or the buffer flushed as the file closes): 1 s of AAC written to a full
	// disk exits 0. The output is incomplete all the same. ENOSPC is carried as the errno the
	// renderer's own writes fail with, so that one errors.Is finds both.
	switch {
	case bytes.Contains(msgs, []byte("No space left on device")):
		errs = append(errs, syscall.ENOSPC)
	case err == nil && (bytes.Contains(msgs, []byte("Error writing trailer")) || bytes.Contains(msgs, []byte("Error closing file"))):
		errs = append(errs, errOutputIncomplete)
	case err != nil && rd.tools.memory > 0 && outOfMemory(msgs):
		errs = append(errs, errChildMemory)
	}
	if len(errs) == 0 {
		return nil
	}
	return &ffmpegError{err: errors.Join(errs...), log: msgs}
}

// ffmpegError is a failed ffmpeg run: why, and the tail of its log, for the server's log and for
// telling whose fault the failure is (stepFailed).
type ffmpegError struct {
	err error
	log []byte
}

func (e *ffmpegError) Error() string { return fmt.Sprintf("ffmpeg: %v: %s", e.err, e.log) }

func (e *ffmpegError) Unwrap() error { return e.err }

// errOutputIncomplete is an ffmpeg run that exited 0 after it failed to finish writing its output.
var errOutputIncomplete = errors.New("ffmpeg could not finish writing its output")

// renderNice is ffmpeg's CPU priority: renders yield the CPU to the API, so a status poll does not
// wait behind an encode.
const renderNice = 10

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

// tailBuffer keeps the last 4 KB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte { return t.b }
