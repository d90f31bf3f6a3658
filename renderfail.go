package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"vidgen/internal/ffmpeg"
)

// This file decides whose fault a failed render is, and what the job's message says: a message
// names an uploaded file only when that file is at fault.

// renderFailure is a failed render step: final says whether trying again cannot help (the job
// FAILS at once with msg) or the cause is passing (it is tried again).
type renderFailure struct {
	final bool
	msg   string // for the user when final
	err   error  // for the log
}

func (f *renderFailure) Error() string { return f.err.Error() }

func (f *renderFailure) Unwrap() error { return f.err }

// What a failed job says, by the cause.
const (
	imageFailure = "The image could not be decoded; it may be damaged. Export it again as JPEG or PNG and submit a new job."
	audioFailure = "The audio could not be decoded; it may be damaged. Export it again and submit a new job."
	// childMemoryFailure is the operator's problem, not the files': the same render under the same
	// limit would fail again.
	childMemoryFailure = "The server ran out of memory for this render: its -child-memory setting is too low for this job (your files are not at fault). Ask the server's operator to raise it, then submit the job again."
	// invalidRender is a render ffmpeg refused for the frame the job's options make of its picture:
	// the server's fault, and the same every time.
	invalidRender = "This picture could not be rendered with this job's options: the renderer refused the frame they make of it, and would every time (your files are not at fault). Submit the job again with another size or background, or tell the server's operator."
	// inputsDamaged: a file checked at upload that no longer reads as it did.
	inputsDamaged = "The uploaded files of this job were damaged on the server before it could be rendered; please submit the job again"
)

// passingCause is why a render that is tried again failed, for the job's message should it be its
// last attempt (exhausted): the time limit, when the render ran out of its time (timedOut, 0 when
// it did not), else what err says of the server. It names nothing of the server's insides (paths,
// ffmpeg's log); a cause it cannot tell is the server's error, not the files'.
func passingCause(err error, timedOut time.Duration) string {
	var fe *ffmpeg.Error
	isFFmpeg := errors.As(err, &fe)
	var ee *exec.ExitError
	switch {
	case timedOut > 0:
		return "the render took longer than the " + fmtDuration(timedOut.Seconds()) + " allowed for it"
	case errors.Is(err, syscall.ENOSPC):
		return "the server's disk was full"
	case errors.Is(err, errDiskFilling):
		return "the server's disk was filling up"
	case isFFmpeg && fe.Reason == ffmpeg.Killed:
		return "the renderer was killed, most likely because the server ran out of memory"
	case isFFmpeg && fe.Reason == ffmpeg.OutOfMemory:
		return "the renderer ran out of the memory the server's -child-memory setting allows"
	case isFFmpeg && fe.Reason == ffmpeg.NotStarted:
		return "the server could not start the renderer"
	case errors.As(err, &ee) && !ee.Exited():
		return "the renderer crashed"
	}
	return "an error on the server, not in your files"
}

// stepFailed turns a failed ffmpeg run of a render step (args) that reads the job's part (its image
// or its audio) from path into a renderFailure:
//
//   - out of memory under -child-memory FAILS the job at once with childMemoryFailure: the limit is
//     on address space, which does not depend on how busy the server is, so a retry would fail the
//     same way;
//   - killed, crashed, timed out or short of disk is passing, and tried again;
//   - an ffmpeg that exits with an error FAILS the job with the part's message only when the part is
//     at fault: ffmpeg's log says it could not read or decode that input, or the part fails the
//     upload's check again (a decode that stops at its first error, -xerror, says nothing more than
//     the decoder's own words). Else an ffmpeg that refused its own arguments (ffmpeg.Invalid: a
//     frame size out of range) FAILS the job with invalidRender, since a retry runs the same
//     arguments. Any other error is the server's (its encoders, its disk) and is tried again, so
//     the job never blames a file that is not at fault.
func (rd *renderer) stepFailed(ctx context.Context, err error, job Job, part inputKind, path string, args []string) error {
	wrapped := fmt.Errorf("%s step: %w", part, err)
	if rf := serverFailure(ctx, err, wrapped); rf != nil {
		return rf
	}
	var fe *ffmpeg.Error
	isFFmpeg := errors.As(err, &fe)
	if isFFmpeg && readFailed(fe.Log, inputIndex(args, path), path) {
		return &renderFailure{final: true, msg: partFailure(part), err: wrapped}
	}
	if cerr := rd.checkAgain(ctx, job, part, path); cerr != nil {
		return &renderFailure{final: true, msg: partFailure(part), err: fmt.Errorf("%w; checked again: %v", wrapped, cerr)}
	}
	if isFFmpeg && fe.Reason == ffmpeg.Invalid {
		return &renderFailure{final: true, msg: invalidRender, err: wrapped}
	}
	return &renderFailure{err: wrapped}
}

// serverFailure is the renderFailure of a failed ffmpeg run, err (wrapped for the log), whose cause
// is the server's whatever the run read, as stepFailed tells it: out of memory under -child-memory
// (final), or killed, crashed, stopped, not started or short of disk (passing); nil when ffmpeg
// exited with an error of its own, which only its log and its inputs can explain.
func serverFailure(ctx context.Context, err, wrapped error) *renderFailure {
	var fe *ffmpeg.Error
	if errors.As(err, &fe) && fe.Reason == ffmpeg.OutOfMemory {
		return &renderFailure{final: true, msg: childMemoryFailure, err: wrapped}
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Exited() || ee.ExitCode() == 0 || errors.Is(err, syscall.ENOSPC) || ctx.Err() != nil {
		return &renderFailure{err: wrapped}
	}
	return nil
}

// partFailure is the message of a job that failed for its part.
func partFailure(part inputKind) string {
	if part == inputImage {
		return imageFailure
	}
	return audioFailure
}

// inputIndex is the number ffmpeg gives the input that args read from path (-1 when none does).
func inputIndex(args []string, path string) int {
	n := 0
	for i, a := range args {
		if a != "-i" || i+1 >= len(args) {
			continue
		}
		if args[i+1] == "file:"+path {
			return n
		}
		n++
	}
	return -1
}

// readFailed reports whether ffmpeg's log says it could not read or decode its input number index,
// the file at path: a decode error names the input's number, an error opening or reading it the
// input's name, at the start of a line.
func readFailed(log []byte, index int, path string) bool {
	if index < 0 {
		return false
	}
	if bytes.Contains(log, fmt.Appendf(nil, "Error while decoding stream #%d:", index)) {
		return true
	}
	for line := range strings.Lines(string(log)) {
		if strings.HasPrefix(line, "file:"+path+": ") {
			return true
		}
	}
	return false
}

// checkAgain runs the upload's check of the job's part once more, and returns why it fails, when it
// fails for the file (not for the server's memory, a missing tool or a stop).
func (rd *renderer) checkAgain(ctx context.Context, job Job, part inputKind, path string) error {
	var err error
	if part == inputImage {
		err = ffDecodeCheck(ctx, rd.tools, path, job.ImageType)
	} else {
		_, err = probeAudio(ctx, rd.tools, path, job.AudioType)
	}
	if err == nil || ctx.Err() != nil || errors.Is(err, errChildMemory) || kindOf(err) == kindUnavailable {
		return nil
	}
	return err
}
