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

// FuzzReadPNGLayout: the layout read never panics; a layout it takes has its 13-byte header, and
// the file cut at the end it finds (as the upload cuts it) reads as the same layout.
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
		if l.End == 0 || l.End > int64(len(b)) {
			return
		}
		cut, err := ReadPNGLayout(bytes.NewReader(b[:l.End]))
		if err != nil || !reflect.DeepEqual(cut, l) {
			t.Fatalf("cut at %d: %+v (%v), whole: %+v", l.End, cut, err, l)
		}
	})
}
