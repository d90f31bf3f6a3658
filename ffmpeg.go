package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file runs ffmpeg: the one place a render's child process is started, watched and killed.

// ffmpegRun runs ffmpeg with args, in its own process group at a lower CPU priority, restricted to
// local files. When duration is positive it reports ffmpeg's position as the fraction of the job's
// current step done. The error holds the tail of ffmpeg's log (for the server log only).
func (rd *renderer) ffmpegRun(ctx context.Context, jobID string, duration float64, args ...string) error {
	full := append([]string{"-nostdin", "-hide_banner", "-v", "error", "-y", "-protocol_whitelist", "file",
		"-progress", "pipe:1", "-stats_period", "0.25", "-nostats"}, args...)
	cmd := exec.CommandContext(ctx, rd.ffmpeg, full...)
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
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("ffmpeg stopped: %w", ctx.Err())
		}
		return fmt.Errorf("ffmpeg: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

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
