package main

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"vidgen/internal/media"
)

// pngIHDR is the data of an IHDR chunk: w×h, depth bits a channel, colour type ctype, not
// interlaced.
func pngIHDR(w, h uint32, depth, ctype byte) []byte {
	b := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, w), h)
	return append(b, depth, ctype, 0, 0, 0)
}

// pngFile is the PNG signature followed by chunks, each made by rawPNGChunk.
func pngFile(chunks ...[]byte) []byte {
	return bytes.Join(append([][]byte{[]byte(media.PNGSignature)}, chunks...), nil)
}

// onePixelIDAT is the IDAT chunk of a 1×1 8-bit RGB picture, one red pixel.
func onePixelIDAT() []byte {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte{0, 0xff, 0, 0}) // filter none, then R, G, B
	zw.Close()
	return rawPNGChunk("IDAT", z.Bytes())
}

// zlibZeros is a zlib stream of at least n zero bytes: the image data of a zeroPNG (made in
// microseconds, where compressing them takes seconds under the race detector).
func zlibZeros(n int) []byte {
	w := 2048
	b := zeroPNG(w, (n+8*w)/(1+8*w))[8+25:] // past the signature and IHDR: the IDAT chunk
	return b[8 : 8+binary.BigEndian.Uint32(b)]
}

// writeChunkedPNG writes to path a PNG of img whose image data is preceded by empty IDAT chunks,
// empty in all, and that ends without IEND when cut: a file only the salvage reads (ffmpeg
// reports the missing end), with as many chunks as a hostile file may hold. It streams, so a
// file of millions of chunks takes no more memory than a small one.
func writeChunkedPNG(t testing.TB, path string, img image.Image, empty int, cut bool) {
	t.Helper()
	var enc bytes.Buffer
	if err := png.Encode(&enc, img); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	b := enc.Bytes()
	w.Write(b[:8+25]) // the signature and IHDR
	emptyIDAT := rawPNGChunk("IDAT", nil)
	for range empty {
		w.Write(emptyIDAT)
	}
	rest := b[8+25:]
	if cut {
		rest = rest[:len(rest)-12]
	}
	w.Write(rest)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestPNGLayout: the chunk layouts checkImage takes and refuses, and what trimPNG then leaves. A
// PNG has one IHDR, first: the one Go's decoder reads to weigh the picture is then the one ffmpeg
// decodes by. Bytes after IEND are never looked at, since trimPNG cuts them before any decode.
func TestPNGLayout(t *testing.T) {
	t.Parallel()
	normal := encodePNG(t, quad(64, 32))
	small := rawPNGChunk("IHDR", pngIHDR(1, 1, 8, 2))
	huge := rawPNGChunk("IHDR", pngIHDR(10000, 10000, 16, 6)) // 100 megapixels at 16 bits
	idat, iend := onePixelIDAT(), rawPNGChunk("IEND", nil)
	text := rawPNGChunk("tEXt", []byte("Comment\x00hello"))
	ztxt := func(n int) []byte { return rawPNGChunk("zTXt", append([]byte("Comment\x00\x00"), zlibZeros(n)...)) }
	iccp := func(n int) []byte { return rawPNGChunk("iCCP", append([]byte("icc\x00\x00"), zlibZeros(n)...)) }
	itxt := func(compressed byte, translated, text []byte) []byte { // keyword, flag, method, language, translated keyword
		b := append([]byte("XML:com.adobe.xmp\x00"), compressed, 0)
		b = append(append(append(b, "en\x00"...), translated...), 0)
		return rawPNGChunk("iTXt", append(b, text...))
	}
	many := func(n int) []byte { // the 1×1 picture in n chunks in all
		return pngFile(small, idat, bytes.Repeat(rawPNGChunk("IDAT", nil), n-3), iend)
	}
	for _, c := range []struct {
		name string
		file []byte
		want string // a part of the 400's message, "" when accepted
		size int    // the file's size after trimPNG, when accepted
	}{
		{"normal", normal, "", len(normal)},
		{"newline after IEND", append(bytes.Clone(normal), '\n'), "", len(normal)},
		{"a second header after IEND", pngFile(small, idat, iend, huge), "", len(pngFile(small, idat, iend))},
		{"no IEND", pngFile(small, idat), "", len(pngFile(small, idat))},
		{"cut inside a chunk", normal[:len(normal)-20], "", len(normal) - 20},
		{"two headers, 1×1 then 100 MP 16-bit", pngFile(small, huge, idat, iend), "it has a second header", 0},
		{"a second header after the image data", pngFile(small, idat, huge, iend), "it has a second header", 0},
		{"the same header twice", pngFile(small, small, idat, iend), "it has a second header", 0},
		{"the header not first", pngFile(text, small, idat, iend), "it does not start with its header", 0},
		{"no header", pngFile(idat, iend), "it does not start with its header", 0},
		{"a header of 12 bytes", pngFile(rawPNGChunk("IHDR", pngIHDR(1, 1, 8, 2)[:12]), idat, iend), "it does not start with its header", 0},
		{"signature only", pngFile(), "it has no header", 0},
		{"a header cut short", pngFile(small)[:8+20], "it has no header", 0},
		{"as many chunks as allowed", many(media.MaxPNGChunks), "", len(many(media.MaxPNGChunks))},
		{"an ICC profile of 1 MB", pngFile(small, iccp(1<<20), idat, iend), "", len(pngFile(small, iccp(1<<20), idat, iend))},
		{"a text of 1 MB, not compressed", pngFile(small, itxt(0, []byte("x"), make([]byte, 1<<20)), idat, iend), "", len(pngFile(small, itxt(0, []byte("x"), make([]byte, 1<<20)), idat, iend))},
		{"a compressed text of 17 MB", pngFile(small, ztxt(17<<20), idat, iend), "inflate to more than 16 MB", 0},
		{"an ICC profile of 17 MB", pngFile(small, iccp(17<<20), idat, iend), "inflate to more than 16 MB", 0},
		{"two compressed texts of 9 MB", pngFile(small, ztxt(9<<20), ztxt(9<<20), idat, iend), "inflate to more than 16 MB", 0},
		{"an international text of 17 MB, long keyword", pngFile(small, itxt(1, bytes.Repeat([]byte("k"), 5000), zlibZeros(17<<20)), idat, iend), "inflate to more than 16 MB", 0},
		{"one chunk too many", many(media.MaxPNGChunks + 1), "more than 262144 chunks", 0},
	} {
		path := writeFixture(t, "layout.png", c.file)
		err := checkImage(path, media.PNG)
		if c.want != "" {
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			if kindOf(err) != kindInvalid || !strings.Contains(msg, c.want) || !strings.Contains(msg, "the PNG is damaged") {
				t.Errorf("%s: %v, want a 400 saying %q", c.name, err, c.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if err := trimPNG(path); err != nil {
			t.Fatal(err)
		}
		if got := len(readFile(t, path)); got != c.size {
			t.Errorf("%s: %d bytes after the trim, want %d", c.name, got, c.size)
		}
	}
}

// TestSalvagePNGStreams: the salvage of a PNG of many chunks holds one chunk at a time, so what it
// allocates does not grow with the chunk count (it kept a reader per image data chunk: 31 MB and
// 400,000 allocations for 200,000 chunks), and the picture comes out whole.
func TestSalvagePNGStreams(t *testing.T) {
	// Not parallel: the allocation counts are the process's, and parallel tests wait until this
	// one is done.
	pic := quad(64, 32)
	dir := t.TempDir()
	measure := func(empty int) (allocated, mallocs uint64) {
		path := filepath.Join(dir, "many.png")
		writeChunkedPNG(t, path, pic, empty, true)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := salvagePNG(path)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("%d empty chunks: %v", empty, err)
		}
		got, err := png.Decode(bytes.NewReader(readFile(t, path)))
		if err != nil {
			t.Fatalf("%d empty chunks: the salvaged file does not decode: %v", empty, err)
		}
		if d := maxDiff(got, pic); d != 0 {
			t.Errorf("%d empty chunks: a pixel is off by %d", empty, d)
		}
		return after.TotalAlloc - before.TotalAlloc, after.Mallocs - before.Mallocs
	}
	fewBytes, fewMallocs := measure(1000)
	manyBytes, manyMallocs := measure(200_000)
	t.Logf("1,000 empty chunks: %d KB in %d allocations; 200,000: %d KB in %d", fewBytes>>10, fewMallocs, manyBytes>>10, manyMallocs)
	if manyMallocs > fewMallocs+1000 || manyBytes > fewBytes+1<<20 {
		t.Errorf("the salvage's allocations grow with the chunk count: %d KB in %d allocations for 1,000 chunks, %d KB in %d for 200,000",
			fewBytes>>10, fewMallocs, manyBytes>>10, manyMallocs)
	}
	if manyBytes > 8<<20 {
		t.Errorf("the salvage allocated %d MB", manyBytes>>20)
	}
}

// TestSalvagePNGLayout: the salvage, which reads a PNG ffmpeg could not, refuses the layouts
// checkImage refuses, as undecodable, rather than rewrite a picture by a header nobody weighed.
func TestSalvagePNGLayout(t *testing.T) {
	t.Parallel()
	small := rawPNGChunk("IHDR", pngIHDR(1, 1, 8, 2))
	for name, file := range map[string][]byte{
		"two headers":      pngFile(small, rawPNGChunk("IHDR", pngIHDR(64, 64, 8, 2)), onePixelIDAT()),
		"header not first": pngFile(onePixelIDAT(), small),
	} {
		path := writeFixture(t, "salvage.png", file)
		if err := salvagePNG(path); !errors.Is(err, errUndecodable) {
			t.Errorf("%s: %v, want undecodable", name, err)
		}
		if got := readFile(t, path); !bytes.Equal(got, file) {
			t.Errorf("%s: the file was rewritten", name)
		}
	}
	// A 1×1 picture with no IEND and its image data after 1,000 empty chunks is salvaged.
	path := filepath.Join(t.TempDir(), "ok.png")
	writeChunkedPNG(t, path, image.NewRGBA(image.Rect(0, 0, 1, 1)), 1000, true)
	if err := salvagePNG(path); err != nil {
		t.Fatal(err)
	}
	if cfg, err := png.DecodeConfig(bytes.NewReader(readFile(t, path))); err != nil || cfg.Width != 1 {
		t.Errorf("salvaged: %+v %v", cfg, err)
	}
}
