package media

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"reflect"
	"strings"
	"testing"
)

// pngChunk is a PNG chunk of type kind holding data, with its CRC.
func pngChunk(kind string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(append(b, kind...), data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// pngOf is the PNG signature followed by chunks.
func pngOf(chunks ...[]byte) []byte {
	return bytes.Join(append([][]byte{[]byte(PNGSignature)}, chunks...), nil)
}

// ihdr is the data of an IHDR chunk: w×h, depth bits a channel, colour type ctype, not interlaced.
func ihdr(w, h uint32, depth, ctype byte) []byte {
	return append(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, w), h), depth, ctype, 0, 0, 0)
}

// zlibOf is data compressed as a zlib stream.
func zlibOf(data []byte) []byte {
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestSpeed)
	zw.Write(data)
	zw.Close()
	return z.Bytes()
}

// encodePNG is the PNG Go's encoder makes of img.
func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPNGWalker: the walker finds every chunk and IEND's end, and a PNG cut anywhere short of its
// end has no IEND.
func TestPNGWalker(t *testing.T) {
	t.Parallel()
	b := encodePNG(t, image.NewRGBA(image.Rect(0, 0, 64, 32)))
	w, ok := NewPNGWalker(bytes.NewReader(b))
	var kinds []string
	for ok && w.Next() {
		kinds = append(kinds, string(w.kind[:]))
	}
	if got := strings.Join(kinds, " "); got != "IHDR IDAT IEND" || w.End() != int64(len(b)) || w.Err() != nil {
		t.Fatalf("chunks %q, IEND ends at %d of %d (%v)", got, w.End(), len(b), w.Err())
	}
	for i := 1; i < 8; i++ {
		n := len(b) * i / 8
		w, ok := NewPNGWalker(bytes.NewReader(b[:n]))
		for ok && w.Next() {
		}
		if w.End() != 0 {
			t.Errorf("cut at %d of %d bytes: IEND found", n, len(b))
		}
	}
	if _, ok := NewPNGWalker(strings.NewReader("GIF89a")); ok {
		t.Error("a GIF walked as a PNG")
	}
}

// TestReadPNGLayout: the layouts ReadPNGLayout takes, with what it keeps of them for a repair, and
// the ones it refuses, each with its own error.
func TestReadPNGLayout(t *testing.T) {
	t.Parallel()
	hdr := ihdr(1, 1, 8, 3)
	head, idat, iend := pngChunk("IHDR", hdr), pngChunk("IDAT", zlibOf([]byte{0, 0})), pngChunk("IEND", nil)
	plte, trns := pngChunk("PLTE", []byte{1, 2, 3, 4, 5, 6}), pngChunk("tRNS", []byte{9})
	ztxt := func(n int) []byte {
		return pngChunk("zTXt", append([]byte("Comment\x00\x00"), zlibOf(make([]byte, n))...))
	}
	many := func(n int) []byte { return pngOf(head, plte, idat, bytes.Repeat(pngChunk("IDAT", nil), n-4), iend) }
	for _, c := range []struct {
		name string
		file []byte
		err  error
		full bool // IHDR, PLTE, tRNS and IDAT all found
		end  int  // End, when accepted
	}{
		{"palette, transparency, data", pngOf(head, plte, trns, idat, iend), nil, true, len(pngOf(head, plte, trns, idat, iend))},
		{"bytes after IEND", append(pngOf(head, plte, trns, idat, iend), "\n\x00IHDR"...), nil, true, len(pngOf(head, plte, trns, idat, iend))},
		{"no IEND", pngOf(head, plte, trns, idat), nil, true, 0},
		{"as many chunks as allowed", many(MaxPNGChunks), nil, false, len(many(MaxPNGChunks))},
		{"a compressed text of 1 MB", pngOf(head, ztxt(1<<20), idat, iend), nil, false, len(pngOf(head, ztxt(1<<20), idat, iend))},
		{"not a PNG", []byte("GIF89a"), ErrPNGSignature, false, 0},
		{"a text first", pngOf(pngChunk("tEXt", []byte("a\x00b")), head, idat, iend), ErrPNGFirstChunk, false, 0},
		{"a header of 12 bytes", pngOf(pngChunk("IHDR", hdr[:12]), idat, iend), ErrPNGFirstChunk, false, 0},
		{"two headers", pngOf(head, head, idat, iend), ErrPNGSecondHeader, false, 0},
		{"signature only", pngOf(), ErrPNGNoHeader, false, 0},
		{"a header cut short", pngOf(head)[:8+20], ErrPNGNoHeader, false, 0},
		{"one chunk too many", many(MaxPNGChunks + 1), ErrPNGChunks, false, 0},
		{"a compressed text of 17 MB", pngOf(head, ztxt(17<<20), idat, iend), ErrPNGInflated, false, 0},
	} {
		l, err := ReadPNGLayout(bytes.NewReader(c.file))
		if !errors.Is(err, c.err) || err == nil && c.err != nil {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
			continue
		}
		if c.err != nil {
			continue
		}
		full := bytes.Equal(l.IHDR, hdr) && bytes.Equal(l.PLTE, plte[8:14]) && bytes.Equal(l.TRNS, []byte{9}) && l.IDAT
		if full != c.full || l.End != int64(c.end) || !bytes.Equal(l.IHDR, hdr) {
			t.Errorf("%s: %+v, want all chunks %v, end %d", c.name, l, c.full, c.end)
		}
	}
}

// FuzzReadPNGLayout: the layout read never panics; a layout it takes has its 13-byte header, its
// header reads as Go's image/png DecodeConfig reads it (the same size and depth, or the same error
// text), and the file cut at the end it finds (as the upload cuts it) reads as the same layout.
func FuzzReadPNGLayout(f *testing.F) {
	f.Add(encodePNG(f, image.NewRGBA(image.Rect(0, 0, 3, 2))))
	f.Add(encodePNG(f, image.NewPaletted(image.Rect(0, 0, 3, 2), color.Palette{color.RGBA{1, 2, 3, 255}, color.NRGBA{4, 5, 6, 0}})))
	f.Add(pngOf(pngChunk("IHDR", ihdr(1, 1, 8, 2)), pngChunk("zTXt", append([]byte("k\x00\x00"), zlibOf(make([]byte, 100))...)), pngChunk("IEND", nil)))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ReadPNGLayout(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(l.IHDR) != 13 || !bytes.HasPrefix(b, []byte(PNGSignature)) {
			t.Fatalf("a layout without its header taken: %+v", l)
		}
		cfg, goErr := png.DecodeConfig(bytes.NewReader(b))
		switch {
		case (goErr == nil) != (l.HeaderErr == nil):
			t.Fatalf("walk: %v; image/png: %v", l.HeaderErr, goErr)
		case goErr != nil && goErr.Error() != l.HeaderErr.Error():
			t.Fatalf("walk: %q; image/png: %q", l.HeaderErr, goErr)
		case goErr == nil && (cfg.Width != l.Width || cfg.Height != l.Height || deepModel(cfg.ColorModel) != (l.BitDepth == 16)):
			t.Fatalf("walk: %d×%d depth %d; image/png: %d×%d %T", l.Width, l.Height, l.BitDepth, cfg.Width, cfg.Height, cfg.ColorModel)
		}
		if l.End == 0 || l.End > int64(len(b)) {
			return
		}
		cut, err := ReadPNGLayout(bytes.NewReader(b[:l.End]))
		if err != nil || !reflect.DeepEqual(cut, l) {
			t.Fatalf("cut at %d: %+v (%v), whole: %+v", l.End, cut, err, l)
		}
	})
}

// deepModel reports whether image/png's colour model m holds 16 bits a channel.
func deepModel(m color.Model) bool {
	return m == color.RGBA64Model || m == color.NRGBA64Model || m == color.Gray16Model
}

// TestPNGHeaderErr: the layout carries the header's size, depth and colour type, and why it cannot
// be read: a *HeaderError that tells a broken structure from a feature decoders lack, or the file's
// end. A paletted picture's chunks are checked up to its image data, an RGB one's only its header.
func TestPNGHeaderErr(t *testing.T) {
	t.Parallel()
	idat, iend := pngChunk("IDAT", zlibOf([]byte{0, 0})), pngChunk("IEND", nil)
	broken := pngChunk("tEXt", []byte("a\x00b"))
	broken[len(broken)-1] ^= 1
	for _, c := range []struct {
		name        string
		file        []byte
		unsupported bool
		reason      string // "": no *HeaderError
		eof         bool
	}{
		{"RGB, a broken text after the header", pngOf(pngChunk("IHDR", ihdr(5, 4, 16, 2)), broken, idat, iend), false, "", false},
		{"paletted, a broken text before the palette", pngOf(pngChunk("IHDR", ihdr(5, 4, 8, 3)), broken, pngChunk("PLTE", make([]byte, 3)), idat, iend), false, "invalid checksum", false},
		{"paletted without a palette", pngOf(pngChunk("IHDR", ihdr(5, 4, 8, 3)), idat, iend), false, "chunk out of order", false},
		{"interlace method 2", pngOf(pngChunk("IHDR", append(ihdr(5, 4, 8, 2)[:12], 2)), idat, iend), false, "invalid interlace method", false},
		{"12-bit RGB", pngOf(pngChunk("IHDR", ihdr(5, 4, 12, 2)), idat, iend), true, "bit depth 12, color type 2", false},
		{"cut in the header's CRC", pngOf(pngChunk("IHDR", ihdr(5, 4, 8, 2)))[:8+8+13+2], false, "", true},
	} {
		l, err := ReadPNGLayout(bytes.NewReader(c.file))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if l.Width != 5 || l.Height != 4 || l.ColorType != int(c.file[8+8+9]) || l.BitDepth != int(c.file[8+8+8]) {
			t.Errorf("%s: %+v, want 5×4 and the header's depth and colour type", c.name, l)
		}
		var e *HeaderError
		switch {
		case c.eof:
			if !errors.Is(l.HeaderErr, io.ErrUnexpectedEOF) {
				t.Errorf("%s: %v, want io.ErrUnexpectedEOF", c.name, l.HeaderErr)
			}
		case c.reason == "":
			if l.HeaderErr != nil {
				t.Errorf("%s: %v, want none", c.name, l.HeaderErr)
			}
		case !errors.As(l.HeaderErr, &e) || e.Unsupported != c.unsupported || e.Reason != c.reason:
			t.Errorf("%s: %#v, want unsupported %v, %q", c.name, l.HeaderErr, c.unsupported, c.reason)
		}
	}
}
