package main

import (
	"bufio"
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

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

// TestPNGWalker: the walker finds every chunk and IEND's end, and a PNG cut anywhere short of its
// end has no IEND.
func TestPNGWalker(t *testing.T) {
	t.Parallel()
	b := encodePNG(t, quad(64, 32))
	w, ok := newPNGWalker(bytes.NewReader(b))
	var kinds []string
	for ok && w.next() {
		kinds = append(kinds, string(w.kind[:]))
	}
	if got := strings.Join(kinds, " "); got != "IHDR IDAT IEND" || w.end != int64(len(b)) || w.err != nil {
		t.Fatalf("chunks %q, IEND ends at %d of %d (%v)", got, w.end, len(b), w.err)
	}
	for i := 1; i < 8; i++ {
		n := len(b) * i / 8
		w, ok := newPNGWalker(bytes.NewReader(b[:n]))
		for ok && w.next() {
		}
		if w.end != 0 {
			t.Errorf("cut at %d of %d bytes: IEND found", n, len(b))
		}
	}
	if _, ok := newPNGWalker(strings.NewReader("GIF89a")); ok {
		t.Error("a GIF walked as a PNG")
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
