package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
)

// A JPEG's header: its segments up to the first scan, and the metadata among them. Cameras, phones
// and editors write EXIF blocks that break their own rules (an IFD offset or entry count past the
// segment, a TIFF header overwritten, a segment length below the length word's own two bytes);
// browsers and libjpeg show such a file and ignore what they cannot read. ffmpeg decodes the
// picture too but reports the EXIF as an error, which the upload's check cannot tell from an error
// in the picture. So a JPEG whose check fails is checked again without its metadata (see
// withoutMetadata), and kept without it when the picture alone decodes cleanly.

// errJPEGHeader is a JPEG header that libjpeg would refuse as well: a segment of the picture's own
// with a bogus length, a second start of image, or no scan.
var errJPEGHeader = errors.New("jpeg: damaged header")

// nextJPEGSegment reads the next segment of a JPEG's header from r (after its start of image): its
// marker and its data, the length word left out. Stray bytes between segments are skipped, as
// libjpeg skips them; so are restart markers and FF 00, which no header holds. A metadata segment
// whose length is below 2 is empty, as libjpeg reads it, and the bytes after its length word are
// stray. At the end of image data is nil.
func nextJPEGSegment(r *bufio.Reader) (byte, []byte, error) {
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		if b != 0xff {
			continue
		}
		m, err := r.ReadByte()
		for err == nil && m == 0xff {
			m, err = r.ReadByte()
		}
		switch {
		case err != nil:
			return 0, nil, err
		case m == 0x00 || m == 0x01 || m >= 0xd0 && m <= 0xd7:
			continue
		case m == 0xd8:
			return 0, nil, fmt.Errorf("%w: a second start of image", errJPEGHeader)
		case m == 0xd9:
			return m, nil, nil
		}
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return 0, nil, err
		}
		n := int(binary.BigEndian.Uint16(l[:])) - 2
		if n < 0 {
			if m < 0xe0 && m != 0xfe { // neither an APPn segment nor a comment
				return 0, nil, fmt.Errorf("%w: marker %02X has length %d", errJPEGHeader, m, n+2)
			}
			n = 0
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return 0, nil, err
		}
		return m, data, nil
	}
}

// copyWithoutMetadata writes the JPEG read from r to w without its metadata segments and the stray
// bytes between segments; the first EXIF block is replaced by a clean one that holds only its
// orientation (as media.EXIFOrientation reads it, which is what browsers show), or dropped when it has
// none. Everything from the first scan on is copied as it is. It returns how many metadata
// segments it left out.
func copyWithoutMetadata(w io.Writer, r *bufio.Reader) (int, error) {
	var soi [2]byte
	if _, err := io.ReadFull(r, soi[:]); err != nil || soi != [2]byte{0xff, 0xd8} {
		return 0, fmt.Errorf("%w: no start of image", errJPEGHeader)
	}
	if _, err := w.Write(soi[:]); err != nil {
		return 0, err
	}
	dropped := 0
	oriented := false // the orientation is the first EXIF block's that holds one, as jpegOrientation reads it
	for {
		m, data, err := nextJPEGSegment(r)
		if err == io.EOF || err == io.ErrUnexpectedEOF || err == nil && m == 0xd9 {
			return dropped, fmt.Errorf("%w: no scan", errJPEGHeader)
		}
		if err != nil {
			return dropped, err
		}
		if media.IsJPEGMetadata(m) {
			dropped++
			if m == 0xe1 && !oriented && bytes.HasPrefix(data, []byte("Exif\x00\x00")) {
				o := media.EXIFOrientation(data[6:])
				oriented = o != 0
				if o > 1 {
					if _, err := w.Write(orientationSegment(o)); err != nil {
						return dropped, err
					}
				}
			}
			continue
		}
		if err := writeJPEGSegment(w, m, data); err != nil {
			return dropped, err
		}
		if m == 0xda {
			_, err := io.Copy(w, r)
			return dropped, err
		}
	}
}

// writeJPEGSegment writes a segment: its marker, length word and data.
func writeJPEGSegment(w io.Writer, m byte, data []byte) error {
	hdr := binary.BigEndian.AppendUint16([]byte{0xff, m}, uint16(len(data)+2))
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// orientationSegment is an APP1 EXIF segment whose IFD0 holds only Orientation o.
func orientationSegment(o int) []byte {
	tiff := []byte("MM\x00\x2a\x00\x00\x00\x08")
	tiff = binary.BigEndian.AppendUint16(tiff, 1)                       // one entry
	tiff = append(tiff, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, byte(o), 0, 0) // Orientation, SHORT, 1 value
	tiff = binary.BigEndian.AppendUint32(tiff, 0)                       // no next IFD
	var seg bytes.Buffer
	writeJPEGSegment(&seg, 0xe1, append([]byte("Exif\x00\x00"), tiff...))
	return seg.Bytes()
}

// withoutMetadata checks whether the JPEG at path, which ffmpeg reported errors for, decodes
// cleanly without its metadata (copyWithoutMetadata), and if so replaces it with that copy and
// returns true. false means it has no metadata, or the picture itself does not decode cleanly (or
// its header is damaged past what libjpeg reads): the file is left as it was. Its errors are the server's trouble or
// ctx's, for rewriteFailed.
func withoutMetadata(ctx context.Context, t ffmpeg.Tools, path string) (bool, error) {
	in, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer in.Close()
	tmp := path + ".bare.jpg"
	out, err := os.Create(tmp)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	defer out.Close()
	w := bufio.NewWriterSize(out, 1<<20)
	dropped, err := copyWithoutMetadata(w, bufio.NewReaderSize(in, 64<<10))
	if errors.Is(err, errJPEGHeader) || err == nil && dropped == 0 {
		return false, nil // no metadata to blame
	}
	if err != nil {
		return false, err
	}
	if err := w.Flush(); err != nil {
		return false, err
	}
	if err := ffDecodeCheck(ctx, t, tmp, media.JPEG); err != nil {
		if ctx.Err() != nil || kindOf(err) == kindUnavailable {
			return false, err
		}
		return false, nil
	}
	if err := out.Sync(); err != nil {
		return false, err
	}
	return true, os.Rename(tmp, path)
}

// jpegOrientation returns the EXIF orientation (1-8) of the JPEG b, 1 when it has none.
func jpegOrientation(b []byte) int { return readJPEGOrientation(bytes.NewReader(b)) }

// readJPEGOrientation is jpegOrientation of the JPEG read from r, which it reads no further than
// the header's segments back to back from the start of image: it stops at the first scan, a stray
// byte or a bogus length, as browsers do, and holds one segment at a time (64 KB at most).
func readJPEGOrientation(r io.Reader) int {
	br := bufio.NewReaderSize(r, 4<<10)
	if _, err := br.Discard(2); err != nil {
		return 1
	}
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil || hdr[0] != 0xff || hdr[1] == 0xda || hdr[1] == 0xd9 {
			return 1
		}
		n := int(binary.BigEndian.Uint16(hdr[2:])) - 2
		if n < 0 {
			return 1 // a bogus length: libjpeg reads the segment as empty, and what follows as stray bytes
		}
		if hdr[1] != 0xe1 {
			if _, err := br.Discard(n); err != nil {
				return 1
			}
			continue
		}
		seg := make([]byte, n)
		if _, err := io.ReadFull(br, seg); err != nil {
			return 1
		}
		if bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			if o := media.EXIFOrientation(seg[6:]); o != 0 {
				return o
			}
		}
	}
}
