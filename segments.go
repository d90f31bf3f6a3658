package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"vidgen/internal/aac"
)

// Long audio is encoded in segments side by side, one ffmpeg each, because ffmpeg's AAC encoder
// uses one core: ten minutes of music take ~19 s of twoloop on one core of this 2-core machine,
// and the render of a still picture is otherwise that encode alone. aac.Plan cuts the audio and
// aac.Join joins the segments' frames; this file decides how many segments a job gets and runs
// their encodes.
const (
	// defaultMinSegment is the least audio, in seconds, worth a segment of its own: an ffmpeg start
	// costs ~0.16 s of CPU and a segment decodes the audio before its cut again (~0.05 s a minute),
	// which pays off only when the encode it spares takes seconds.
	defaultMinSegment = 60
	// maxSegments bounds the processes one render starts for its audio.
	maxSegments = 8
)

// audioSegments is how many segments the audio of a job lasting seconds is encoded in, on a
// machine with cpus cores: one per minSegment seconds, at most one per core.
func audioSegments(seconds, minSegment float64, cpus int) int {
	if minSegment <= 0 {
		return 1
	}
	return max(1, min(int(seconds/minSegment), cpus, maxSegments))
}

// segmentArgs are ffmpeg's arguments for encoding segment s of a job's audio to an ADTS stream at
// out. The cut is made on the decoded sound after it is resampled and downmixed as audioArgs
// would, so it falls at the same sample in every segment.
func segmentArgs(job Job, audio, out string, s aac.Segment) []string {
	chain, _ := encodedFormat(job)
	trim := fmt.Sprintf("atrim=start_sample=%d", s.Start)
	if s.End > 0 {
		trim += fmt.Sprintf(":end_sample=%d", s.End)
	}
	chain = append(chain, trim, "asetpts=N/SR/TB")
	return append(audioInput(job, audio), "-map", "0:a:0",
		"-af", strings.Join(chain, ","),
		"-c:a", "aac", "-aac_coder", aacCoder, "-b:a", audioRate,
		"-map_metadata", "-1", "-f", "adts", "file:"+out)
}

// encodedFormat returns the filters that give a job's audio the channels, rate and level audioArgs
// asks for with -ac, -ar and -af, and the sample rate the audio is encoded at.
func encodedFormat(job Job) (filters []string, rate int) {
	f := strings.Split(job.AudioCodec, "/")
	rate, _ = strconv.Atoi(f[len(f)-1])
	args := audioArgs(job.AudioCodec, job.Options)
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-ar":
			filters = append(filters, "aresample="+args[i+1])
			rate, _ = strconv.Atoi(args[i+1])
		case "-ac":
			filters = append(filters, "aformat=channel_layouts=stereo")
		case "-af":
			filters = append(filters, args[i+1])
		}
	}
	return filters, rate
}

// joinSegments writes to dst the frames each segment's ADTS stream (the files parts, in order)
// contributes.
func joinSegments(dst string, parts []string, segs []aac.Segment) error {
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("join audio: %w", err)
	}
	readers := make([]io.Reader, len(parts))
	for k, p := range parts {
		f, err := os.Open(p)
		if err != nil {
			out.Close()
			return fmt.Errorf("join audio: segment %d: %w", k, err)
		}
		defer f.Close()
		readers[k] = f
	}
	if err := aac.Join(out, readers, segs); err != nil {
		out.Close()
		return fmt.Errorf("join audio: %w", err)
	}
	return out.Close()
}
