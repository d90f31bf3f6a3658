package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// TestWebPSize reads the picture's size from the bitstream chunk, checks it against a VP8X
// canvas, and tells an animated WebP from a damaged one.
func TestWebPSize(t *testing.T) {
	t.Parallel()
	vp8x := func(flags byte, w, h int) string {
		return "VP8X\x0a\x00\x00\x00" + string([]byte{flags, 0, 0, 0, byte(w - 1), byte((w - 1) >> 8), 0, byte(h - 1), byte((h - 1) >> 8), 0})
	}
	vp8l := "VP8L\x06\x00\x00\x00\x2f\x3f\xc0\x0f\x00\x00" // 64×64
	riff := func(chunks string) []byte {
		return append(binary.LittleEndian.AppendUint32([]byte("RIFF"), uint32(4+len(chunks))), "WEBP"+chunks...)
	}
	for _, c := range []struct {
		name string
		file []byte
		w, h int
		err  error
	}{
		{"lossless", riff(vp8l), 64, 64, nil},
		{"lossy", riff("VP8 \x0e\x00\x00\x00\x00\x00\x00\x9d\x01\x2a\x10\x00\x20\x00\x00\x00"), 16, 32, nil},
		{"canvas and bitstream agree", riff(vp8x(0, 64, 64) + vp8l), 64, 64, nil},
		{"canvas smaller than the bitstream", riff(vp8x(0, 16, 16) + vp8l), 0, 0, ErrWebPDamaged},
		{"animated", riff(vp8x(0x02, 64, 64) + "ANIM\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00"), 0, 0, ErrWebPAnimated},
		{"cut short", riff(vp8l)[:20], 0, 0, ErrWebPDamaged},
		{"no picture chunk", riff("JUNK\x04\x00\x00\x00abcd"), 0, 0, ErrWebPDamaged},
		{"lossy of no pixels", riff("VP8 \x0e\x00\x00\x00\x00\x00\x00\x9d\x01\x2a\x00\x00\x20\x00\x00\x00"), 0, 0, ErrWebPDamaged},
	} {
		w, h, err := WebPSize(bytes.NewReader(c.file), int64(len(c.file)))
		if w != c.w || h != c.h || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("%s: %d×%d %v, want %d×%d %v", c.name, w, h, err, c.w, c.h, c.err)
		}
	}
}

// TestJPEGEnd has ReadJPEGHeader find the end of a JPEG's first image, past its scans' data, and no end in a JPEG cut
// short.
func TestJPEGEnd(t *testing.T) {
	t.Parallel()
	jpg := "\xff\xd8\xff\xe0\x00\x04ab\xff\xda\x00\x02\x01\xff\x00\x02\xff\xd0\x03\xff\xd9"
	for _, c := range []struct {
		name     string
		file     string
		end      int64
		complete bool
	}{
		{"whole", jpg, int64(len(jpg)), true},
		{"motion photo after it", jpg + "\x00\x00\x00\x18ftypmp42", int64(len(jpg)), true},
		{"APP0 of a bogus length", "\xff\xd8\xff\xe0\x00\x01\xff\xd9", 8, true},
		{"cut in the scan", jpg[:len(jpg)-3], 0, false},
		{"no end of image", jpg[:len(jpg)-2], 0, false},
		{"a segment past the end", "\xff\xd8\xff\xe0\xff\xff", 0, false},
		{"not a JPEG", "not a jpeg", 0, false},
	} {
		hdr := ReadJPEGHeader(bytes.NewReader([]byte(c.file)))
		if end, complete := hdr.End, hdr.Complete; end != c.end || complete != c.complete {
			t.Errorf("%s: %d %v, want %d %v", c.name, end, complete, c.end, c.complete)
		}
	}
}

// TestTIFFSize reads the width and height tags of the first IFD, SHORT or LONG, in either byte
// order, and 0×0 from an IFD past the end.
func TestTIFFSize(t *testing.T) {
	t.Parallel()
	tiff := func(bo binary.AppendByteOrder, magic string, w, h uint32, long bool) []byte {
		b := bo.AppendUint32([]byte(magic), 8)
		b = bo.AppendUint16(b, 2)
		for tag, v := range map[uint16]uint32{256: w, 257: h} {
			typ := uint16(3)
			if long {
				typ = 4
			}
			b = bo.AppendUint16(bo.AppendUint16(b, tag), typ)
			b = bo.AppendUint32(b, 1)
			if long {
				b = bo.AppendUint32(b, v)
			} else {
				b = bo.AppendUint16(bo.AppendUint16(b, uint16(v)), 0)
			}
		}
		return bo.AppendUint32(b, 0)
	}
	for _, c := range []struct {
		name string
		file []byte
		w, h int
	}{
		{"little-endian SHORT", tiff(binary.LittleEndian, "II*\x00", 640, 480, false), 640, 480},
		{"big-endian SHORT", tiff(binary.BigEndian, "MM\x00*", 640, 480, false), 640, 480},
		{"big-endian LONG", tiff(binary.BigEndian, "MM\x00*", 70000, 3, true), 70000, 3},
		{"IFD past the end", []byte("II*\x00\xff\x00\x00\x00"), 0, 0},
	} {
		if w, h := TIFFSize(bytes.NewReader(c.file)); w != c.w || h != c.h {
			t.Errorf("%s: %d×%d, want %d×%d", c.name, w, h, c.w, c.h)
		}
	}
}
