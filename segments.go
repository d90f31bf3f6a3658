package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"vidgen/internal/aac"
)

// Long audio is encoded in segments side by side, one ffmpeg each, because ffmpeg's AAC encoder
// uses one core: ten minutes of music take ~19 s of twoloop on one core of this 2-core machine,
// and the render of a still picture is otherwise that encode alone.
//
// The segments are cut at AAC frame boundaries (1024 samples at the output rate) of the decoded
// sound and joined frame by frame into one ADTS stream. An encoder that starts or stops at a cut
// would not produce the frames a single encode makes there (AAC frames overlap by half a window
// and the first frame is the encoder's priming), so each segment also encodes segmentOverlap
// frames of sound before and after its share, and only its share's frames are kept. With that
// margin the frames around a join decode sample for sample like one encode's, transients and
// short windows included (measured on music with noise bursts at cuts on and beside a burst);
// segmentKeep is where, counted in frames from a segment's first input sample, the frames that
// sound from the cut onwards begin.
const (
	aacFrame       = aac.FrameSamples
	segmentOverlap = 4
	segmentKeep    = 3
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

// segment is one part of a segmented audio encode, in samples at the output rate: the sound from
// Start to End (End 0: to the end) is encoded, of which the frames from Keep to Stop (Stop 0: to
// the end) are used.
type segment struct {
	Start, End int64
	Keep, Stop int
}

// planSegments cuts audio lasting seconds at rate samples a second into n segments of about
// equal length, at frame boundaries.
func planSegments(seconds float64, rate, n int) []segment {
	frames := int64(seconds * float64(rate) / aacFrame)
	cuts := make([]int64, n+1) // in frames; cuts[n] is the end
	for k := 1; k < n; k++ {
		cuts[k] = frames * int64(k) / int64(n)
	}
	segs := make([]segment, n)
	for k := range segs {
		first := max(cuts[k]-segmentOverlap, 0) // the first frame encoded
		s := segment{Start: first * aacFrame}
		if k > 0 {
			s.Keep = int(cuts[k]-first) + segmentKeep
		}
		if k < n-1 {
			s.End = (cuts[k+1] + segmentOverlap) * aacFrame
			s.Stop = int(cuts[k+1]-first) + segmentKeep
		}
		segs[k] = s
	}
	return segs
}

// segmentArgs are ffmpeg's arguments for encoding segment s of a job's audio to an ADTS stream at
// out. The cut is made on the decoded sound after it is resampled and downmixed as audioArgs
// would, so it falls at the same sample in every segment.
func segmentArgs(job Job, audio, out string, s segment) []string {
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

// encodedFormat returns the filters that give a job's audio the channels and rate audioArgs asks
// for with -ac and -ar, and the sample rate the audio is encoded at.
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
		}
	}
	return filters, rate
}

// joinSegments writes to dst the frames each segment's ADTS stream (parts, in order) contributes.
func joinSegments(dst string, parts []string, segs []segment) error {
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("join audio: %w", err)
	}
	w := bufio.NewWriterSize(out, 1<<16)
	for k, p := range parts {
		if err := copyFrames(w, p, segs[k].Keep, segs[k].Stop); err != nil {
			out.Close()
			return fmt.Errorf("join audio: segment %d: %w", k, err)
		}
	}
	if err := w.Flush(); err != nil {
		out.Close()
		return fmt.Errorf("join audio: %w", err)
	}
	return out.Close()
}

// copyFrames copies the ADTS frames from index from up to index to (0: to the end) of the stream
// at path to w. A stream with fewer frames than to is an error: the join would have a gap.
func copyFrames(w io.Writer, path string, from, to int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	a := aac.NewReader(f)
	for i := 0; to == 0 || i < to; i++ {
		frame, err := a.Next()
		if err == io.EOF {
			if to != 0 {
				return fmt.Errorf("%d frames, %d needed", i, to)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if i >= from {
			if _, err := w.Write(frame); err != nil {
				return err
			}
		}
	}
	return nil
}
