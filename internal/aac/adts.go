// Package aac reads AAC audio in ADTS, the stream ffmpeg's AAC encoder writes: frame by frame,
// each frame whole with its header, and the arithmetic of those headers. It plans an encode of
// long audio in segments cut at frame boundaries (Plan) and joins the segments' streams frame by
// frame into one (Join). It checks the frames' framing (sync word, layer, lengths), not their
// payloads, and reads and writes nothing but the io.Reader and io.Writer it is given: it knows no
// container, file, encoder process or job.
package aac

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// FrameSamples is how many samples (each channel's) one AAC frame holds.
const FrameSamples = 1024

// ErrADTS is a stream that is not ADTS where an ADTS stream was expected: no sync word, a frame
// shorter than its header or cut short by the end of the stream. Every such error of this package,
// and those of streams built on it, wraps ErrADTS.
var ErrADTS = errors.New("not an ADTS stream")

// maxFrame bounds an ADTS frame: its length field has 13 bits.
const maxFrame = 1 << 13

// Reader reads an ADTS stream frame by frame.
type Reader struct {
	r     *bufio.Reader
	frame [maxFrame]byte
	n     int // frames read
}

// NewReader is a Reader of the ADTS stream r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 1<<16)}
}

// Next returns the next frame, header included, valid until the following call; io.EOF after the
// last. A stream that is not ADTS there is an error that wraps ErrADTS; a read error of r (the
// disk's fault, not the stream's) is returned wrapped as it is.
func (a *Reader) Next() ([]byte, error) {
	head, err := a.r.Peek(7)
	if err == io.EOF && len(head) == 0 {
		return nil, io.EOF
	}
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("frame %d: %w", a.n, err)
	}
	if err != nil || head[0] != 0xFF || head[1]&0xF6 != 0xF0 {
		return nil, fmt.Errorf("frame %d: %w", a.n, ErrADTS)
	}
	n := int(head[3]&3)<<11 | int(head[4])<<3 | int(head[5])>>5
	if n < HeaderLen(head) {
		return nil, fmt.Errorf("frame %d: %w", a.n, ErrADTS)
	}
	if _, err := io.ReadFull(a.r, a.frame[:n]); err == io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("frame %d: %w: cut short", a.n, ErrADTS)
	} else if err != nil {
		return nil, fmt.Errorf("frame %d: %w", a.n, err)
	}
	a.n++
	return a.frame[:n], nil
}

// HeaderLen is the length of the ADTS header head starts with (at least its first two bytes): 9
// bytes with a CRC, 7 without.
func HeaderLen(head []byte) int {
	if head[1]&1 == 0 {
		return 9
	}
	return 7
}

// Format is what the ADTS header head starts with (at least its first 7 bytes) says of its
// stream: MPEG version, layer, CRC or not, profile, sample rate, channels, the bits beside them
// that do not change in a stream, and how many AAC frames the ADTS frame holds. Every frame of one
// stream has the same; a frame with another is damaged, or another stream's.
func Format(head []byte) uint32 {
	return uint32(head[1])<<24 | uint32(head[2])<<16 | uint32(head[3]&0xF0)<<8 | uint32(head[6]&3)
}
