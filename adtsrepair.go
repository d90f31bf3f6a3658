package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"vidgen/internal/aac"
	"vidgen/internal/media"
)

// An ADTS AAC upload is copied into the video as it is, frame by frame, when its codec fits (see
// audioArgs). A frame that does not decode (a damaged last frame, where a recorder or a copy
// stopped; a flipped byte in the middle) would be copied too, and the video would not decode
// cleanly there. The upload's probe decodes every frame already, so it notes the bytes of the
// packets that decoded, and an ADTS file whose decode reported errors is cut down to those: the
// sound it holds is what decoded, which is the length the probe counts and the job renders.
//
// ffprobe's packet positions come from ffmpeg's ADTS parser, which counts them right only while
// the frames follow one another: after bytes that are no frame (inserted, or a frame cut short
// in the middle), it reports the next frame hundreds of bytes from where it is, and a cut made
// there keeps garbage and loses sound. So the positions are never trusted alone: the file's own
// frames are walked, and the cut is made only when every decoded packet is one of them, whole, in a
// stream whose frames follow one another with no byte between them up to the last packet kept. A
// file damaged otherwise is not cut, nor copied: the render encodes what decodes of it
// (damagedMark), as it encodes any audio it cannot copy.

// maxDecodedRuns bounds the runs of decoded packets a probe notes (24 bytes each): a file broken in
// more places than that is refused rather than mended.
const maxDecodedRuns = 4096

// byteSpan is the bytes [start, end) of a file.
type byteSpan struct{ start, end int64 }

// packetRun is a run of adjacent decoded packets: the bytes they came from, and how many they are.
type packetRun struct {
	byteSpan
	packets int64
}

// decodedPackets records which bytes of an ADTS file the decoded frames came from, as runs of
// adjacent packets in file order.
type decodedPackets struct {
	runs    []packetRun
	unknown bool // a frame came without its packet's position, or out of order: nothing can be cut
	tooMany bool // more than maxDecodedRuns runs
}

// add notes a decoded frame whose packet is size bytes at pos (negative: not known).
func (d *decodedPackets) add(pos, size int64) {
	n := len(d.runs)
	if pos < 0 || size <= 0 || n > 0 && pos < d.runs[n-1].end {
		d.unknown = true
		return
	}
	if n > 0 && d.runs[n-1].end == pos {
		d.runs[n-1].end += size
		d.runs[n-1].packets++
		return
	}
	if n == maxDecodedRuns {
		d.tooMany = true
		return
	}
	d.runs = append(d.runs, packetRun{byteSpan{pos, pos + size}, 1})
}

// mendADTS makes the ADTS file at path, whose decode reported errors, fit to be copied into a
// video, if it can be done with certainty: when the decoded packets d are whole frames of the file
// (decodedFrames), the file is cut down to them (keepDecoded) and copyable is true. Otherwise the
// file is left as it is and copyable is false: the render must encode it. An error is the server's
// trouble (for rewriteFailed), or a kindInvalid error for a file damaged in too many places.
func mendADTS(path string, d *decodedPackets) (copyable bool, err error) {
	if d.tooMany {
		return false, badMedia("audio: the AAC is damaged in more than %d places; check that the file plays and upload it again", maxDecodedRuns)
	}
	if d.unknown || len(d.runs) == 0 {
		return false, nil
	}
	ok, err := decodedFrames(path, d)
	if err != nil || !ok {
		return false, err
	}
	return true, keepDecoded(path, d)
}

// decodedFrames reports whether each run of decoded packets d is that many whole frames of the
// ADTS file at path, all of the stream's format (that of the first frame decoded), and whether the
// file's frames, from its start (after an ID3 tag and the zeros some taggers pad it with, which
// the ADTS demuxer skips) up to the last run's end, follow one another with no byte between them:
// then ffmpeg's parser never lost its place, and its positions are the file's. Bytes after the last
// run, which are dropped, may be anything.
func decodedFrames(path string, d *decodedPackets) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	start, err := adtsStart(f)
	if err != nil {
		return false, err
	}
	if len(d.runs) == 0 || d.runs[0].start < start {
		return false, nil
	}
	a := aac.NewReader(io.NewSectionReader(f, start, d.runs[len(d.runs)-1].end-start))
	at := start
	var format uint32
	for i, r := range d.runs {
		for at < r.start { // frames that did not decode
			frame, err := a.Next()
			if err != nil {
				return false, notFrames(err)
			}
			at += int64(len(frame))
		}
		if at != r.start {
			return false, nil
		}
		for k := range r.packets {
			frame, err := a.Next()
			if err != nil {
				return false, notFrames(err)
			}
			if i == 0 && k == 0 {
				format = aac.Format(frame)
			}
			if aac.Format(frame) != format {
				return false, nil
			}
			at += int64(len(frame))
		}
		if at != r.end {
			return false, nil
		}
	}
	return true, nil
}

// notFrames is nil for an error of aac.Reader that says the bytes are no ADTS frame there, and the
// error itself for the disk's trouble.
func notFrames(err error) error {
	if errors.Is(err, aac.ErrADTS) || err == io.EOF {
		return nil
	}
	return err
}

// adtsStart is where the ADTS frames of the file f begin: after an ID3v2 tag at its start, and the
// zeros some taggers pad one with; else at 0.
func adtsStart(f io.ReaderAt) (int64, error) {
	head := make([]byte, 10)
	if n, err := f.ReadAt(head, 0); n < len(head) || string(head[:3]) != "ID3" {
		if err != nil && err != io.EOF {
			return 0, err
		}
		return 0, nil
	}
	at := int64(media.ID3Len(head))
	r := bufio.NewReader(io.NewSectionReader(f, at, 1<<62))
	for {
		b, err := r.ReadByte()
		if err == io.EOF || err == nil && b != 0 {
			return at, nil
		}
		if err != nil {
			return 0, err
		}
		at++
	}
}

// keepDecoded cuts the ADTS file at path down to the bytes of the packets that decoded, in place:
// each run moves down to follow the one before it, then the file is cut after the last. A file
// that is already just those bytes is left alone. The runs must be whole frames of the file
// (decodedFrames); an error is the server's trouble.
func keepDecoded(path string, d *decodedPackets) error {
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
