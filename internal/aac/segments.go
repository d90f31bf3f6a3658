package aac

import (
	"bufio"
	"fmt"
	"io"
)

// Long audio can be encoded in segments side by side, one encoder each, and joined into one ADTS
// stream: ffmpeg's AAC encoder uses one core, so on a machine of several cores the segments take
// about the time of one.
//
// The segments are cut at AAC frame boundaries (FrameSamples at the output rate) of the decoded
// sound and joined frame by frame. An encoder that starts or stops at a cut would not produce the
// frames a single encode makes there (AAC frames overlap by half a window and the first frame is
// the encoder's priming), so each segment also encodes Overlap frames of sound before and after
// its share, and only its share's frames are kept. With that margin the frames around a join
// decode sample for sample like one encode's, transients and short windows included (measured with
// ffmpeg's encoder on music with noise bursts at cuts on and beside a burst).
const (
	// Overlap is how many frames of sound a segment encodes on each side of its share (fewer before
	// the first cut when the audio does not have them).
	Overlap = 4
	// Lag is where, counted in frames from a segment's first input sample, the encoded frames that
	// sound from the cut onwards begin: the frame that sounds from input frame i is output frame
	// i+Lag.
	Lag = 3
)

// Segment is one part of a segmented encode, in samples at the output rate: the sound from Start
// to End (End 0: to the end) is encoded, of which the frames from Keep to Stop (Stop 0: to the
// end) are used. Start and End fall on frame boundaries.
type Segment struct {
	Start, End int64
	Keep, Stop int
}

// Plan cuts audio lasting seconds at rate samples a second into n segments (n ≥ 1) whose shares
// are whole frames, about as many in each (a share may be empty when the audio has fewer frames
// than n), follow each other without a gap or an overlap and cover the audio: the first starts
// with the sound, the last (End and Stop 0) goes to its end. A tail shorter than a frame belongs
// to the last segment.
func Plan(seconds float64, rate, n int) []Segment {
	frames := int64(seconds * float64(rate) / FrameSamples)
	cuts := make([]int64, n+1) // in frames; cuts[n] is the end
	for k := 1; k < n; k++ {
		cuts[k] = frames * int64(k) / int64(n)
	}
	return planCuts(cuts)
}

// PlanWeighted is Plan with shares in proportion to weights, one a segment (at least one; each
// finite and ≥ 0, not all 0): segment k's share is within a frame of weights[k]/sum(weights) of
// the audio's frames.
func PlanWeighted(seconds float64, rate int, weights []float64) []Segment {
	frames := int64(seconds * float64(rate) / FrameSamples)
	var sum float64
	for _, w := range weights {
		sum += w
	}
	cuts := make([]int64, len(weights)+1)
	var before float64 // the weights of the shares before cut k
	for k := 1; k < len(weights); k++ {
		before += weights[k-1]
		cuts[k] = min(max(int64(float64(frames)*before/sum), cuts[k-1]), frames)
	}
	return planCuts(cuts)
}

// planCuts makes the segments whose shares start at cuts[k], in frames, the last to the end.
func planCuts(cuts []int64) []Segment {
	n := len(cuts) - 1
	segs := make([]Segment, n)
	for k := range segs {
		first := max(cuts[k]-Overlap, 0) // the first frame encoded
		s := Segment{Start: first * FrameSamples}
		if k > 0 {
			s.Keep = int(cuts[k]-first) + Lag
		}
		if k < n-1 {
			s.End = (cuts[k+1] + Overlap) * FrameSamples
			s.Stop = int(cuts[k+1]-first) + Lag
		}
		segs[k] = s
	}
	return segs
}

// Join writes to w, through a buffer it flushes, the frames each segment contributes: parts[k] is
// the ADTS stream encoded for segs[k], read to its end for the last segment and to frame Stop for
// the others. An error names the segment (from 0): a part that is not ADTS before the frames it
// must give wraps ErrADTS; a part with fewer frames than its Stop is an error too (the join would
// have a gap), as is a read error of a part or a write error of w.
func Join(w io.Writer, parts []io.Reader, segs []Segment) error {
	b := bufio.NewWriterSize(w, 1<<16)
	for k, p := range parts {
		if err := copyFrames(b, p, segs[k].Keep, segs[k].Stop); err != nil {
			return fmt.Errorf("segment %d: %w", k, err)
		}
	}
	return b.Flush()
}

// copyFrames copies the ADTS frames from index from up to index to (0: to the end) of the stream r
// to w. A stream with fewer frames than to is an error: the join would have a gap.
func copyFrames(w io.Writer, r io.Reader, from, to int) error {
	a := NewReader(r)
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
