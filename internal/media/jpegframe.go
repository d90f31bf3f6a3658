package media

// Whether a JPEG's frame header (the picture's size and components) can be read, told as Go's
// image/jpeg tells it (HeaderError), followed on the segments the walk of the markers reads anyway.

import (
	"bufio"
	"errors"
	"io"
)

func jpegInvalid(reason string) error { return &HeaderError{Format: JPEG, Reason: reason} }
func jpegUnsupported(reason string) error {
	return &HeaderError{Format: JPEG, Unsupported: true, Reason: reason}
}

// errNoFrame ends the check of a JPEG read without its metadata: that reading cannot go on.
var errNoFrame = errors.New("jpeg: no frame header without the metadata")

// frameCheck follows what Go's image/jpeg DecodeConfig reads of a JPEG's segments up to its first
// scan, fed the segments one at a time: the picture's size comes from the first frame header
// (SOF0-SOF2), which ends the reading when a JFIF marker came first, and the first scan header
// ends it otherwise. done is set once the outcome is known, err is its error.
type frameCheck struct {
	done, sof, jfif bool
	err             error
}

// end records the outcome, unless one was recorded.
func (c *frameCheck) end(err error) {
	if !c.done {
		c.done, c.err = true, err
	}
}

// segment takes in a segment of marker m whose length word says n bytes of data follow (n < 0: a
// length word below 2); data holds them, or cut is why they could not all be read.
func (c *frameCheck) segment(m byte, n int, data []byte, cut error) {
	if c.done {
		return
	}
	switch {
	case n < 0:
		c.end(jpegInvalid("short segment length"))
	case m == 0xc0 || m == 0xc1 || m == 0xc2: // baseline, extended and progressive Huffman
		switch {
		case c.sof:
			c.end(jpegInvalid("multiple SOF markers"))
		case n != 6+3*1 && n != 6+3*3 && n != 6+3*4:
			c.end(jpegUnsupported("number of components"))
		case cut != nil:
			c.end(cut)
		default:
			c.sof = true
			if err := frameError(data); err != nil || c.jfif {
				c.end(err)
			}
		}
	case m == 0xda:
		if !c.sof {
			c.end(jpegInvalid("missing SOF marker"))
		}
		c.end(nil)
	case m == 0xc4 || m == 0xdb || m == 0xdd || m >= 0xe0 && m <= 0xef || m == 0xfe: // tables, APPn, comments
		if cut != nil {
			c.end(cut)
		} else if m == 0xe0 && len(data) >= 5 {
			c.jfif = string(data[:5]) == "JFIF\x00"
		}
	case m < 0xc0:
		c.end(jpegInvalid("unknown marker"))
	default:
		c.end(jpegUnsupported("unknown marker"))
	}
}

// errSubsampling is a sampling of the components that Go's decoder lacks.
var errSubsampling = jpegUnsupported("luma/chroma subsampling ratio")

// frameError checks a frame header's data (6+3×components bytes, 1, 3 or 4 components) as Go's
// decoder checks it: 8-bit precision, a component count that matches the length, distinct
// component IDs, quantisation tables 0-3, and the samplings it decodes.
func frameError(d []byte) error {
	comps := (len(d) - 6) / 3
	if d[0] != 8 {
		return jpegUnsupported("precision")
	}
	if int(d[5]) != comps {
		return jpegInvalid("SOF has wrong length")
	}
	var hs, vs [4]int
	for i := range comps {
		c := d[6+3*i : 9+3*i]
		for j := range i {
			if d[6+3*j] == c[0] {
				return jpegInvalid("repeated component identifier")
			}
		}
		if c[2] > 3 {
			return jpegInvalid("bad Tq value")
		}
		h, v := int(c[1]>>4), int(c[1]&0x0f)
		if h < 1 || h > 4 || v < 1 || v > 4 {
			return jpegInvalid("luma/chroma subsampling ratio")
		}
		if h == 3 || v == 3 {
			return errSubsampling
		}
		switch {
		case comps == 1:
			h, v = 1, 1 // one component is not interleaved: its sampling does not matter
		case comps == 3 && i == 0 && v == 4,
			comps == 3 && i == 1 && (hs[0]%h != 0 || vs[0]%v != 0),
			comps == 3 && i == 2 && (hs[1] != h || vs[1] != v),
			comps == 4 && i == 0 && c[1] != 0x11 && c[1] != 0x22,
			comps == 4 && (i == 1 || i == 2) && c[1] != 0x11,
			comps == 4 && i == 3 && (hs[0] != h || vs[0] != v):
			return errSubsampling
		}
		hs[i], vs[i] = h, v
	}
	return nil
}

// IsJPEGMetadata reports whether JPEG marker m starts a segment the picture does not need to be drawn:
// APP1-APP13 and APP15 (EXIF, XMP, ICC profiles, maker data) and comments. APP0 (JFIF) and APP14
// (Adobe) stay: they say whether the components are YCbCr or RGB.
func IsJPEGMetadata(m byte) bool {
	return m >= 0xe1 && m <= 0xef && m != 0xee || m == 0xfe
}

// readErr is how Go's decoder reports a read that failed: the file's end, inside a header, is
// io.ErrUnexpectedEOF.
func readErr(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// stopFrame ends both frame checks at a read that failed (err), and reports false.
func (w *jpegWalk) stopFrame(err error) bool {
	w.asIs.end(readErr(err))
	w.bare.end(errNoFrame)
	return false
}

// frameSegment feeds a segment of marker m, with n bytes of data by its length word (below 0: a
// bogus length) to both frame checks: as it is, and without the metadata, whose segments of a
// bogus length are read as empty, as libjpeg reads them.
func (w *jpegWalk) frameSegment(m byte, n int, data []byte, cut error) {
	w.asIs.segment(m, n, data, cut)
	switch {
	case cut != nil || n < 0 && m < 0xe0 && m != 0xfe || m == 0xd8:
		w.bare.end(errNoFrame)
	case !IsJPEGMetadata(m):
		w.bare.segment(m, max(n, 0), data, nil)
	}
}

// frameMarker feeds a marker m that has no length word, read before the first scan, to the check
// of the JPEG as it is: Go's decoder reads a length word after a stray 01, and after a 00 that
// follows fill bytes (it skips only FF 00 itself), all the same.
func (w *jpegWalk) frameMarker(r *bufio.Reader, m byte) {
	if w.asIs.done {
		return
	}
	l, err := r.Peek(2)
	if err != nil {
		w.asIs.end(readErr(err))
		return
	}
	w.asIs.segment(m, int(l[0])<<8|int(l[1])-2, nil, nil)
}

// frameErr is the outcome of the frame checks: nil when the JPEG's frame header reads as it is or
// without its metadata; else why it does not read as it is.
func (w *jpegWalk) frameErr() error {
	w.stopFrame(nil) // a check still open is a file that ended before its outcome
	if w.bare.err == nil {
		return nil
	}
	return w.asIs.err
}
