package main

import (
	"context"
	"errors"
	"runtime"

	"golang.org/x/sys/unix"
)

// This file sizes the children that read and render uploaded files (internal/ffmpeg runs them):
// the memory each may take, the threads a render's encoder may use.

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

// noHugePagesForChildren turns transparent huge pages off for this process, and so for every child
// it starts from then on: the kernel keeps the setting across fork and exec. x264 asks for huge
// pages for each of its large buffers (madvise), and the kernel then zeroes, and on a virtual
// machine often first has its host fault in, 2 MB at a time, more than x264 touches: in the render of
// a 1080p still beside its two audio segments, x264's step took 0.03-0.31 s of system CPU with huge
// pages and 0.04-0.08 s without, and a 60 s speech job 0.70-0.84 s from createdAt against
// 0.63-0.72 s (-0.12 s of CPU a job). A moving picture's long encode was no slower without them
// (11.8-12.6 s of CPU either way). A kernel without huge pages has none to turn off: an error is
// no reason not to render.
func noHugePagesForChildren() { unix.Prctl(unix.PR_SET_THP_DISABLE, 1, 0, 0, 0) }

// errChildMemory is a child that stopped at the memory limit.
var errChildMemory = errors.New("a child ran out of the address space -child-memory allows")

// ffmpegRun runs ffmpeg with args for a step of job jobID (ffmpeg.Tools.Render: its own process
// group at a lower CPU priority, local files only). When duration is positive it reports ffmpeg's
// position as the fraction of the job's current step done. A failure is an *ffmpeg.Error, which
// holds the tail of ffmpeg's log; stepFailed tells whose fault it is.
func (rd *renderer) ffmpegRun(ctx context.Context, jobID string, duration float64, args ...string) error {
	var progress func(float64)
	if duration > 0 {
		progress = func(seconds float64) { rd.stepDone(jobID, seconds/duration) }
	}
	return rd.tools.Render(ctx, progress, args...)
}
