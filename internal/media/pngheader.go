package media

// Whether a PNG's header (its size, colour type and bit depth, and a paletted picture's palette)
// can be read, told as Go's image/png tells it (HeaderError), followed on the chunks the layout
// walk reads anyway.

import (
	"encoding/binary"
	"fmt"
	"io"
)

func pngInvalid(reason string) error { return &HeaderError{Format: PNG, Reason: reason} }
func pngUnsupported(reason string) error {
	return &HeaderError{Format: PNG, Unsupported: true, Reason: reason}
}

var errPNGOrder = pngInvalid("chunk out of order")

// pngHeaderCheck follows what Go's image/png DecodeConfig reads of a PNG whose first chunk is a
// 13-byte IHDR (ReadPNGLayout refuses any other): the IHDR and its CRC, and for a paletted
// picture the chunks after it up to its transparency or image data, each checked against its CRC.
// done is set once the outcome is known, err is its error.
type pngHeaderCheck struct {
	done              bool
	err               error
	paletted, palette bool // the picture is paletted; its palette was read
	depth             int
}

// end records the outcome, unless one was recorded.
func (c *pngHeaderCheck) end(err error) {
	if !c.done {
		c.done, c.err = true, err
	}
}

// ihdr checks the header's data as Go's decoder checks it, before its CRC.
func (c *pngHeaderCheck) ihdr(d []byte) {
	switch {
	case d[10] != 0:
		c.end(pngUnsupported("compression method"))
		return
	case d[11] != 0:
		c.end(pngUnsupported("filter method"))
		return
	case d[12] > 1:
		c.end(pngInvalid("invalid interlace method"))
		return
	}
	w, h := int32(binary.BigEndian.Uint32(d)), int32(binary.BigEndian.Uint32(d[4:]))
	if w <= 0 || h <= 0 {
		c.end(pngInvalid("non-positive dimension"))
		return
	}
	if n := int64(w) * int64(h); n != n*8/8 { // room for 8 bytes a pixel
		c.end(pngUnsupported("dimension overflow"))
		return
	}
	c.depth = int(d[8])
	ok := false
	switch ctype := d[9]; {
	case ctype == 0:
		ok = c.depth == 1 || c.depth == 2 || c.depth == 4 || c.depth == 8 || c.depth == 16
	case ctype == 3:
		ok = c.depth == 1 || c.depth == 2 || c.depth == 4 || c.depth == 8
		c.paletted = true
	case ctype == 2 || ctype == 4 || ctype == 6:
		ok = c.depth == 8 || c.depth == 16
	}
	if !ok {
		c.end(pngUnsupported(fmt.Sprintf("bit depth %d, color type %d", d[8], d[9])))
	}
}

// chunk checks a chunk after the IHDR, of type kind and size bytes by its header, as Go's decoder
// reads a paletted picture's: order first, then size; sum reads the rest of its data and its CRC
// and reports whether they match (err: the file ended first).
func (c *pngHeaderCheck) chunk(kind string, size int64, sum func() (bool, error)) {
	if c.done {
		return
	}
	switch kind {
	case "IHDR", "IEND":
		c.end(errPNGOrder)
		return
	case "PLTE":
		n := size / 3
		switch {
		case c.palette:
			c.end(errPNGOrder)
		case size%3 != 0 || n <= 0 || n > 256 || n > 1<<c.depth:
			c.end(pngInvalid("bad PLTE length"))
		}
		c.palette = true
	case "tRNS":
		switch {
		case !c.palette:
			c.end(errPNGOrder)
		case size > 256:
			c.end(pngInvalid("bad tRNS length"))
		}
	case "IDAT":
		if !c.palette {
			c.end(errPNGOrder)
		}
		c.end(nil) // the header is read: image/png stops before the image data
		return
	default:
		if size > 0x7fffffff {
			c.end(pngInvalid(fmt.Sprintf("Bad chunk length: %d", size)))
		}
	}
	c.sum(sum)
	if kind == "tRNS" {
		c.end(nil)
	}
}

// sum ends the check at a chunk whose data or CRC the file cuts short, or whose CRC is wrong.
func (c *pngHeaderCheck) sum(sum func() (bool, error)) {
	if c.done {
		return
	}
	switch ok, err := sum(); {
	case err != nil:
		c.end(err)
	case !ok:
		c.end(pngInvalid("invalid checksum"))
	}
}

// checksum reads what is left of the current chunk's data and its stored CRC, and reports whether
// the CRC matches the chunk's type and data; err is io.ErrUnexpectedEOF when the file ends first,
// as Go's decoder reports it, or the read's error.
func (w *PNGWalker) checksum() (bool, error) {
	if !w.hashing {
		panic("media: a PNG chunk checksummed without hashing")
	}
	if _, err := io.Copy(io.Discard, w); err != nil {
		return false, err
	}
	if w.left > 0 || w.done && w.kind == [4]byte{} { // the file ended inside the data
		return false, io.ErrUnexpectedEOF
	}
	var stored [4]byte
	if _, err := io.ReadFull(w.r, stored[:]); err != nil {
		w.stop(err)
		if w.err != nil {
			return false, w.err
		}
		return false, io.ErrUnexpectedEOF
	}
	w.summed = true
	return binary.BigEndian.Uint32(stored[:]) == w.crc, nil
}
