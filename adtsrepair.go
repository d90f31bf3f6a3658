package main

import (
	"fmt"
	"io"
	"os"
)

// An ADTS AAC upload is copied into the video as it is, frame by frame, when its codec fits (see
// audioArgs). A frame that does not decode (a damaged last frame, where a recorder or a copy
// stopped; a flipped byte in the middle) would be copied too, and the video would not decode
// cleanly there. The upload's probe decodes every frame already, so it notes the bytes of the
// packets that decoded, and an ADTS file whose decode reported errors is cut down to those: the
// sound it holds is what decoded, which is the length the probe counts and the job renders.

// maxDecodedRuns bounds the runs of decoded packets a probe notes (16 bytes each): a file broken in
// more places than that is refused rather than mended.
const maxDecodedRuns = 4096

// byteSpan is the bytes [start, end) of a file.
type byteSpan struct{ start, end int64 }

// decodedPackets records which bytes of an ADTS file the decoded frames came from, as runs of
// adjacent packets in file order.
type decodedPackets struct {
	runs    []byteSpan
	unknown bool // a frame came without its packet's position: nothing can be cut
	tooMany bool // more than maxDecodedRuns runs
}

// add notes a decoded frame whose packet is size bytes at pos (negative: not known).
func (d *decodedPackets) add(pos, size int64) {
	if pos < 0 || size <= 0 {
		d.unknown = true
		return
	}
	if n := len(d.runs); n > 0 && d.runs[n-1].end == pos {
		d.runs[n-1].end += size
		return
	}
	if len(d.runs) == maxDecodedRuns {
		d.tooMany = true
		return
	}
	d.runs = append(d.runs, byteSpan{pos, pos + size})
}

// keepDecoded cuts the ADTS file at path down to the bytes of the packets that decoded, in place:
// each run moves down to follow the one before it, then the file is cut after the last. A file
// that is already just those bytes is left alone. An error is the server's trouble (for
// rewriteFailed), or a kindInvalid error for a file damaged in too many places.
func keepDecoded(path string, d *decodedPackets) error {
	if d == nil || d.unknown || len(d.runs) == 0 {
		return nil
	}
	if d.tooMany {
		return badMedia("audio: the AAC is damaged in more than %d places; check that the file plays and upload it again", maxDecodedRuns)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if len(d.runs) == 1 && d.runs[0].start == 0 && d.runs[0].end == fi.Size() {
		return nil
	}
	buf := make([]byte, 1<<16)
	var at int64
	for _, r := range d.runs {
		if r.start < at || r.end > fi.Size() {
			return fmt.Errorf("audio: decoded packet at %d-%d of a %d-byte file", r.start, r.end, fi.Size())
		}
		if r.start > at {
			// Writing behind the reading: the bytes moved are read before they are overwritten.
			src := io.NewSectionReader(f, r.start, r.end-r.start)
			if _, err := io.CopyBuffer(io.NewOffsetWriter(f, at), src, buf); err != nil {
				return err
			}
		}
		at += r.end - r.start
	}
	if err := f.Truncate(at); err != nil {
		return err
	}
	return f.Sync()
}
