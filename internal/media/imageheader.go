package media

// Readers of image headers: sizes and structure read without decoding a pixel.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
)

// HeaderError is why a JPEG's or PNG's header cannot be read: a structure the format forbids,
// or a feature decoders commonly lack. Its text is what Go's image/jpeg or image/png says of the
// same file, word for word, for the service's messages to stay as they were when it asked them.
type HeaderError struct {
	Format      string // JPEG or PNG
	Unsupported bool   // a feature decoders lack, not a broken structure
	Reason      string // what is wrong, such as "short segment length"
}

func (e *HeaderError) Error() string {
	switch {
	case e.Format == PNG && e.Unsupported:
		return "png: unsupported feature: " + e.Reason
	case e.Format == PNG:
		return "png: invalid format: " + e.Reason
	case e.Unsupported:
		return "unsupported JPEG feature: " + e.Reason
	}
	return "invalid JPEG format: " + e.Reason
}

// TIFFSize reads the width and height tags of a TIFF's first image (its IFD may sit anywhere in
// the file), or 0, 0.
func TIFFSize(f io.ReaderAt) (int, int) {
	var hdr [8]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return 0, 0
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if hdr[0] == 'M' {
		bo = binary.BigEndian
	}
	off := int64(bo.Uint32(hdr[4:]))
	var n [2]byte
	if _, err := f.ReadAt(n[:], off); err != nil {
		return 0, 0
	}
	entries := make([]byte, 12*int(bo.Uint16(n[:])))
	if _, err := f.ReadAt(entries, off+2); err != nil {
		return 0, 0
	}
	var w, h int
	for e := entries; len(e) >= 12; e = e[12:] {
		v := int(bo.Uint32(e[8:]))
		if bo.Uint16(e[2:]) == 3 { // SHORT: the value's first two bytes
			v = int(bo.Uint16(e[8:]))
		}
		switch bo.Uint16(e) {
		case 256:
			w = v
		case 257:
			h = v
		}
	}
	return w, h
}

// JPEGHeader is what one walk of a JPEG's markers yields (ReadJPEGHeader).
type JPEGHeader struct {
	// Width and Height are the first frame header's (SOFn), 0 when none comes before the first scan.
	Width, Height int
	// FrameErr is why the frame header, the picture's size and components, cannot be read: a
	// *HeaderError or the error of a read cut short (io.ErrUnexpectedEOF at the file's end), in the
	// words Go's image/jpeg says it of the file. It is nil when the header reads as Go's decoder
	// reads it, or reads so once the metadata segments (APP1-APP13, APP15, comments) are left out
	// and those of a bogus length read as empty, as libjpeg reads them: cameras write such EXIF
	// blocks, and browsers show the picture.
	FrameErr error
	// RGB reports whether the picture has three components that libjpeg (and so every browser)
	// reads as RGB, not YCbCr: an Adobe marker with transform 0 or components named R, G, B, and
	// no JFIF marker (JFIF means YCbCr). A header with a second start of image before its first
	// scan is not RGB: libjpeg refuses it.
	RGB bool
	// Orientation is the EXIF orientation (1-8) of the first EXIF block that holds one, as a
	// reader of the header's segments back to back from the start of image finds it: it stops at
	// a stray byte, a bogus length or the first scan (1 when it finds none). 0 is a header whose
	// segments that reader would part differently (fill bytes, a stray restart marker): read it
	// with such a reader from the file.
	Orientation int
	// End is the offset just past the first end-of-image marker; Complete is false when the file
	// ends (or breaks the JPEG's structure) before that marker, and End is then 0.
	End      int64
	Complete bool
}

// ReadJPEGHeader walks the JPEG r's markers once, through every scan's entropy-coded data, to its
// first end-of-image marker. Bytes after it (a phone's "motion photo" video, a second image) are
// left unread in r's stream but for a buffer's worth.
func ReadJPEGHeader(r io.Reader) JPEGHeader {
	cr := &countingReader{r: r}
	br := bufio.NewReaderSize(cr, 64<<10)
	var w jpegWalk
	ok := w.walk(br, false)
	w.hdr.FrameErr = w.frameErr()
	switch {
	case w.lost:
		w.hdr.Orientation = 0
	case w.hdr.Orientation == 0:
		w.hdr.Orientation = 1
	}
	if !ok {
		w.hdr.End, w.hdr.Complete = 0, false
		return w.hdr
	}
	w.hdr.End, w.hdr.Complete = cr.n-int64(br.Buffered()), true
	return w.hdr
}

// ReadJPEGFrame reads the JPEG r's frame header, as ReadJPEGHeader does, but reads no further
// than its first scan's header: the size of a picture, and FrameErr, without a walk of its data.
func ReadJPEGFrame(r io.Reader) (width, height int, err error) {
	var w jpegWalk
	w.walk(bufio.NewReaderSize(r, 4<<10), true)
	return w.hdr.Width, w.hdr.Height, w.frameErr()
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// jpegWalk is the state of one walk of a JPEG's markers: what the segments before the first scan
// said of the picture.
type jpegWalk struct {
	hdr          JPEGHeader
	scanned      bool // the first scan was reached: the header is read
	secondSOI    bool
	jfif, adobe0 bool
	sof          bool
	ids          []byte
	// The orientation reader stopped (oriented) or would have parted the segments differently (lost).
	oriented, lost bool
	// Whether the frame header reads as it is (asIs) and without the metadata (bare).
	asIs, bare frameCheck
}

// segment takes in the segment of marker m (data, its length word left out) met before the first scan.
func (w *jpegWalk) segment(m byte, data []byte) {
	switch {
	case m == 0xe0 && bytes.HasPrefix(data, []byte("JFIF\x00")):
		w.jfif = true
	case m == 0xee && len(data) >= 12 && bytes.HasPrefix(data, []byte("Adobe")):
		w.adobe0 = data[11] == 0
	case m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc && len(data) >= 6:
		if !w.sof {
			w.sof = true
			w.hdr.Height, w.hdr.Width = int(binary.BigEndian.Uint16(data[1:])), int(binary.BigEndian.Uint16(data[3:]))
		}
		for i := 0; i < int(data[5]) && 6+3*i < len(data); i++ {
			w.ids = append(w.ids, data[6+3*i])
		}
	case m == 0xe1 && !w.oriented && bytes.HasPrefix(data, []byte("Exif\x00\x00")):
		if o := EXIFOrientation(data[6:]); o != 0 {
			w.hdr.Orientation, w.oriented = o, true
		}
	case m == 0xda:
		w.scanned, w.oriented = true, true
		w.hdr.RGB = !w.secondSOI && len(w.ids) == 3 && !w.jfif && (w.adobe0 || string(w.ids) == "RGB")
	}
}

// lose records that the orientation reader, had it not stopped, would part the segments from here
// differently than the walk does.
func (w *jpegWalk) lose() {
	if !w.oriented {
		w.lost, w.oriented = true, true
	}
}

// wanted reports whether the walk needs the data of a segment of marker m: the header's, up to
// and including the first scan's.
func (w *jpegWalk) wanted(m byte) bool {
	return !w.scanned && (m == 0xe0 || m == 0xe1 || m == 0xee || m >= 0xc0 && m <= 0xcf || m == 0xda)
}

// walk reports whether the JPEG r reaches its end-of-image marker, taking in its header on the way;
// with headerOnly, it stops after the first scan's header.
func (w *jpegWalk) walk(r *bufio.Reader, headerOnly bool) bool {
	if b, err := r.Peek(2); err != nil || b[0] != 0xff || b[1] != 0xd8 {
		if err == nil {
			w.asIs.end(jpegInvalid("missing SOI marker"))
		}
		return w.stopFrame(err)
	}
	r.Discard(2)
	sawFF := false // the 0xFF of the next marker was consumed by a scan
	for {
		if !sawFF {
			b, err := r.ReadByte()
			if err != nil {
				return w.stopFrame(err)
			}
			if b != 0xff {
				w.oriented = true // the orientation reader stops at a stray byte
				continue          // stray byte between segments; decoders skip these too
			}
		}
		sawFF = false
		m, err := r.ReadByte()
		filled := m == 0xff
		if filled {
			w.lose()
		}
		for err == nil && m == 0xff {
			m, err = r.ReadByte()
		}
		if err != nil {
			return w.stopFrame(err)
		}
		switch {
		case m == 0xd9:
			w.asIs.end(jpegInvalid("missing SOS marker"))
			w.bare.end(errNoFrame)
			return true
		case m == 0x01 || m == 0x00 && filled:
			w.frameMarker(r, m) // Go's decoder reads these as segments
			fallthrough
		case m == 0x00, m >= 0xd0 && m <= 0xd7:
			w.lose()
			continue
		case m == 0xd8 && !w.scanned:
			w.secondSOI = true // libjpeg refuses it; the walk reads on as before, for the end
		}
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return w.stopFrame(err)
		}
		n := int(binary.BigEndian.Uint16(l[:])) - 2
		length := n
		if n < 0 && (m >= 0xe0 && m <= 0xef || m == 0xfe) {
			n = 0             // an APPn segment or comment with a bogus length: libjpeg reads it as empty
			w.oriented = true // and the orientation reader stops there
		}
		if n < 0 {
			w.frameSegment(m, length, nil, nil)
			return false
		}
		var data []byte
		var cut error
		if w.wanted(m) {
			data = make([]byte, n)
			if _, err := io.ReadFull(r, data); err != nil {
				cut = readErr(err)
			}
		} else if k, err := r.Discard(n); k != n {
			cut = readErr(err)
		}
		w.frameSegment(m, length, data, cut)
		if cut != nil {
			return false
		}
		if w.wanted(m) {
			w.segment(m, data)
		}
		if m == 0xda {
			if headerOnly {
				return false
			}
			// Entropy-coded data follows a scan header: FF is stuffed as FF 00 and restart markers
			// are FF D0-D7, so the first other FF xx ends the scan.
			for !sawFF {
				b, err := r.ReadByte()
				if err != nil {
					return false
				}
				if b != 0xff {
					continue
				}
				nb, err := r.Peek(1)
				if err != nil {
					return false
				}
				switch {
				case nb[0] == 0x00, nb[0] >= 0xd0 && nb[0] <= 0xd7:
					r.Discard(1)
				case nb[0] != 0xff:
					sawFF = true
				}
			}
		}
	}
}

// ErrWebPDamaged is a WebP whose chunks run past its end, or whose picture size cannot be read or
// differs from its canvas.
var ErrWebPDamaged = errors.New("the WebP is truncated or damaged")

// ErrWebPAnimated is an animated WebP.
var ErrWebPAnimated = errors.New("the WebP is animated")

// WebPSize returns the size of the picture the WebP r (fileSize bytes) decodes to. Its first
// chunk may be a VP8X header whose canvas size is only a claim: the image chunk after it (VP8 or
// VP8L) holds the size the decoder allocates, so it is read too, and a file whose two sizes differ is refused (libwebp
// refuses it as well), so a small canvas cannot smuggle a huge bitstream past the pixel cap.
// An animated WebP is ErrWebPAnimated (ffmpeg cannot decode it, and a user would rather hear so
// now than see a failed job); a damaged one is ErrWebPDamaged.
func WebPSize(r io.ReaderAt, fileSize int64) (int, int, error) {
	broken := ErrWebPDamaged
	var hdr [12]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil || int64(binary.LittleEndian.Uint32(hdr[4:8]))+8 > fileSize {
		return 0, 0, broken
	}
	canvasW, canvasH := 0, 0
	for off := int64(12); ; {
		var ch [8 + 10]byte
		n, _ := r.ReadAt(ch[:], off)
		if n < 8 {
			return 0, 0, broken
		}
		size := int64(binary.LittleEndian.Uint32(ch[4:8]))
		d := ch[8:n]
		switch string(ch[:4]) {
		case "VP8X":
			if len(d) < 10 {
				return 0, 0, broken
			}
			if d[0]&0x02 != 0 {
				return 0, 0, ErrWebPAnimated
			}
			canvasW = int(d[4]) | int(d[5])<<8 | int(d[6])<<16 + 1
			canvasH = int(d[7]) | int(d[8])<<8 | int(d[9])<<16 + 1
		case "VP8L", "VP8 ":
			w, h, ok := webpBitstreamSize(string(ch[:4]), d)
			if !ok || canvasW != 0 && (w != canvasW || h != canvasH) {
				return 0, 0, broken
			}
			return w, h, nil
		}
		off += 8 + size + size&1 // chunks are padded to an even size
		if off >= fileSize {
			return 0, 0, broken
		}
	}
}

// webpBitstreamSize reads the picture size from the start of a VP8L or VP8 chunk's data.
func webpBitstreamSize(kind string, d []byte) (w, h int, ok bool) {
	if kind == "VP8L" {
		if len(d) < 5 || d[0] != 0x2f {
			return 0, 0, false
		}
		v := binary.LittleEndian.Uint32(d[1:5])
		return int(v&0x3fff) + 1, int((v>>14)&0x3fff) + 1, true
	}
	if len(d) < 10 || d[3] != 0x9d || d[4] != 0x01 || d[5] != 0x2a {
		return 0, 0, false
	}
	w, h = int(binary.LittleEndian.Uint16(d[6:8])&0x3fff), int(binary.LittleEndian.Uint16(d[8:10])&0x3fff)
	return w, h, w > 0 && h > 0 // a lossy frame's size is stored as is: 0 is no picture
}

// EXIFOrientation reads tag 0x0112 of IFD0 of the TIFF structure t, or 0. Like browsers, it reads
// the entries that lie within t and ignores the rest.
func EXIFOrientation(t []byte) int {
	if len(t) < 8 {
		return 0
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0
	}
	ifd := int64(bo.Uint32(t[4:]))
	if ifd+2 > int64(len(t)) {
		return 0
	}
	for i, n := 0, int(bo.Uint16(t[ifd:])); i < n; i++ {
		e := int(ifd) + 2 + 12*i
		if e+12 > len(t) {
			return 0
		}
		if bo.Uint16(t[e:]) == 0x0112 {
			if o := int(bo.Uint16(t[e+8:])); o >= 1 && o <= 8 {
				return o
			}
			return 0
		}
	}
	return 0
}
