package main

// This file repairs PNGs the way browsers read them: bytes after IEND are cut, and a file whose
// checksums or optional chunks are broken is rewritten from its rows, checked as a strict decoder
// would check them.

import (
	"bufio"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// maxPNGChunks is the most chunks a PNG may have up to IEND. Encoders cut the image data into
// chunks of 4 KB (ffmpeg), 8 KB (libpng), 32 KB (Go), 256 KB (vidgen's own repair) or one chunk,
// so a 50 MB upload holds at most ~13,000; even an encoder writing a chunk a row would reach this
// cap only for a picture 262,144 rows tall, under maxPixels at most 381 pixels wide. A hostile
// file of empty chunks holds 4.4 million in 50 MB, each a turn of ffmpeg's decoding loop and of
// every walk of the file, so past the cap a PNG is refused as damaged.
const maxPNGChunks = 1 << 18

// maxPNGInflated is the most a PNG's compressed text (zTXt, iTXt) and ICC profile (iCCP) chunks
// may inflate to, together. ffmpeg inflates each whole into memory when it decodes the picture
// (twice over: a 1 MB zTXt of 1 GB of zeros took ffprobe to 2.1 GB; 16 MB inflated costs it
// 29 MB), and none of it shows in the render. Real ICC profiles and XMP packets are kilobytes to
// a few megabytes.
const maxPNGInflated = 16 << 20

// pngWalker walks a PNG's chunks in file order, reading the file once from its start. It holds
// one chunk's header at a time: memory stays flat whatever the chunk count. Every reader of a
// PNG's chunk layout (inspectImage's check, the trim, the salvage) walks with it, so they all agree
// on where the chunks and IEND are.
type pngWalker struct {
	r     *bufio.Reader
	kind  [4]byte // the current chunk's type; zero before the first and after the last
	size  int64   // the current chunk's data length, as its header says
	left  int64   // bytes of its data not read yet
	pos   int64   // where the chunk after the current one starts
	end   int64   // the offset just past IEND, once passed; 0 before
	count int     // chunks walked
	done  bool    // the file ended, or IEND was passed
	err   error   // an I/O error other than the file's end
	hdr   [8]byte // the header being read (a local would escape: an allocation a chunk)
}

// newPNGWalker starts a walk of the PNG r; it reports false when r does not start with the PNG
// signature.
func newPNGWalker(r io.Reader) (*pngWalker, bool) {
	w := &pngWalker{r: bufio.NewReaderSize(r, 64<<10), pos: 8}
	sig, err := w.r.Peek(8)
	if err != nil || string(sig) != pngSignature {
		return w, false
	}
	w.r.Discard(8)
	return w, true
}

// pngSignature starts every PNG.
const pngSignature = "\x89PNG\r\n\x1a\n"

// next moves to the next chunk, past what is left of the current one and its CRC. It reports
// false after IEND, at the file's end, at a header cut short, or at a length over 2^31-1 (the
// most the format allows; ffmpeg stops there too).
func (w *pngWalker) next() bool {
	if w.done {
		return false
	}
	if w.count > 0 {
		if k, err := w.r.Discard(int(w.left + 4)); k != int(w.left+4) {
			return w.stop(err)
		}
	}
	if _, err := io.ReadFull(w.r, w.hdr[:]); err != nil {
		return w.stop(err)
	}
	n := binary.BigEndian.Uint32(w.hdr[:4])
	if n > 1<<31-1 {
		return w.stop(nil)
	}
	w.kind, w.size, w.left = [4]byte(w.hdr[4:]), int64(n), int64(n)
	w.count++
	w.pos += 12 + w.size
	if w.is("IEND") {
		w.end, w.done = w.pos, true
	}
	return true
}

// is reports whether the current chunk is of type kind.
func (w *pngWalker) is(kind string) bool { return string(w.kind[:]) == kind }

// stop ends the walk, keeping err unless it is the file's end.
func (w *pngWalker) stop(err error) bool {
	w.done, w.kind = true, [4]byte{}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		w.err = err
	}
	return false
}

// Read reads the current chunk's data; a chunk the file's end cuts short gives what is there.
func (w *pngWalker) Read(p []byte) (int, error) {
	if w.left == 0 {
		return 0, io.EOF
	}
	n, err := w.r.Read(p[:min(int64(len(p)), w.left)])
	w.left -= int64(n)
	if err != nil {
		w.stop(err)
		if w.err != nil {
			return n, w.err
		}
		w.left = 0
		return n, io.EOF
	}
	return n, nil
}

// data reads the current chunk's data whole when it holds at most limit bytes, else returns nil.
func (w *pngWalker) data(limit int64) []byte {
	if w.size > limit {
		return nil
	}
	b, _ := io.ReadAll(w)
	return b
}

// pngLayout is what a walk of a PNG's chunks up to IEND finds.
type pngLayout struct {
	ihdr, plte, trns []byte // the header's data, and the last palette and transparency (nil: none)
	idat             bool   // whether it has image data
	end              int64  // the offset just past IEND; 0 when the file has none
}

// readPNGLayout walks the PNG r up to IEND (or the file's end: a PNG cut short is the salvage's
// to judge) and refuses, as damaged, a layout that decoders read in different ways or that only a
// hostile file has: a first chunk other than a 13-byte IHDR, a second IHDR (Go's decoder, which
// sizes the picture, reads the first one and ffmpeg may decode by a later one, so a 1×1 header
// would hide a 100-megapixel picture), or more than maxPNGChunks chunks. Bytes after IEND are
// never read: the upload cuts them (cutAfter) before any decode.
func readPNGLayout(r io.Reader) (pngLayout, error) {
	damaged := func(why string, args ...any) error {
		return badMedia("image: the PNG is damaged (%s); export it again and upload it", fmt.Sprintf(why, args...))
	}
	var l pngLayout
	w, ok := newPNGWalker(r)
	if !ok {
		return l, damaged("it does not start with the PNG signature")
	}
	var in pngInflater
	defer in.close()
	inflated := int64(0)
	for w.next() {
		switch {
		case w.count > maxPNGChunks:
			return l, damaged("it has more than %d chunks, which no picture needs", maxPNGChunks)
		case w.count == 1 && (!w.is("IHDR") || w.size != 13):
			return l, damaged("it does not start with its header")
		case w.is("IHDR") && w.count > 1:
			return l, damaged("it has a second header")
		case w.is("IHDR"):
			l.ihdr = w.data(13)
		case w.is("PLTE"):
			l.plte = w.data(1 << 16)
		case w.is("tRNS"):
			l.trns = w.data(1 << 16)
		case w.is("IDAT"):
			l.idat = true
		case w.is("zTXt"), w.is("iTXt"), w.is("iCCP"):
			if inflated += in.size(w, maxPNGInflated-inflated+1); inflated > maxPNGInflated {
				return l, damaged("its compressed text and colour profile chunks inflate to more than %d MB", maxPNGInflated>>20)
			}
		}
	}
	if w.err != nil {
		return l, w.err
	}
	if len(l.ihdr) != 13 {
		return l, damaged("it has no header")
	}
	l.end = w.end
	return l, nil
}

// pngInflater measures what compressed chunks inflate to, reusing its buffers from chunk to chunk.
type pngInflater struct {
	br *bufio.Reader
	fr io.ReadCloser
}

// size is how many bytes, up to limit, the current chunk of w (a zTXt, iTXt or iCCP) inflates
// to; a chunk whose stream is broken counts what inflates before the break, and an iTXt whose
// text is not compressed counts nothing.
func (in *pngInflater) size(w *pngWalker, limit int64) int64 {
	if in.br == nil {
		in.br = bufio.NewReaderSize(w, 512)
	}
	in.br.Reset(w)
	skipTo := func() bool { // past a field that ends with a NUL, however long
		for {
			_, err := in.br.ReadSlice(0)
			if err != bufio.ErrBufferFull {
				return err == nil
			}
		}
	}
	if !skipTo() { // the keyword
		return 0
	}
	if w.is("iTXt") {
		// A compression flag and method, then a language tag and a translated keyword.
		if flag, err := in.br.ReadByte(); err != nil || flag == 0 {
			return 0
		}
		if _, err := in.br.Discard(1); err != nil || !skipTo() || !skipTo() {
			return 0
		}
	} else if _, err := in.br.Discard(1); err != nil { // the method
		return 0
	}
	if _, err := in.br.Discard(2); err != nil { // the zlib header
		return 0
	}
	if in.fr == nil {
		in.fr = flate.NewReader(in.br)
	} else if in.fr.(flate.Resetter).Reset(in.br, nil) != nil {
		return 0
	}
	n, _ := io.Copy(io.Discard, io.LimitReader(in.fr, limit))
	return n
}

func (in *pngInflater) close() {
	if in.fr != nil {
		in.fr.Close()
	}
}

// checkPNGLayout is readPNGLayout of the file at path; it returns the offset just past IEND (0:
// none), where the upload cuts.
func checkPNGLayout(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	l, err := readPNGLayout(f)
	return l.end, err
}

// cutAfter truncates the file at path to end bytes when it is longer; an end of 0 (none found)
// leaves it as it is.
func cutAfter(path string, end int64) error {
	if end <= 0 {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() <= end {
		return err
	}
	return os.Truncate(path, end)
}

// salvagePNG rewrites the PNG at path from its header, palette, transparency and image data, as a
// browser draws it: chunk CRCs and the zlib checksum are not required, and other chunks (a broken
// ICC profile; ffmpeg applies none anyway) are dropped. It fails when the rows are not all there,
// and on a layout readPNGLayout refuses. It streams, in two walks of the chunks (the first finds
// the header and palette, the second reads the image data as it comes): whatever the image's size
// or its chunk count it allocates ~2.5 MB in ~70 allocations (its buffers and the zlib state),
// within the pictureBaseCost its caller holds.
func salvagePNG(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	l, err := readPNGLayout(f)
	if err != nil {
		if kindOf(err) == kindInvalid {
			return fmt.Errorf("%w: %v", errUndecodable, err)
		}
		return err
	}
	if !l.idat {
		return fmt.Errorf("%w: png: no image data", errUndecodable)
	}
	runs, err := pngRows(l.ihdr)
	if err != nil {
		return fmt.Errorf("%w: %v", errUndecodable, err)
	}
	var raw int64
	for _, r := range runs {
		raw += r.size * r.count
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	w, _ := newPNGWalker(f)
	zr := &idatReader{w: w}
	if _, err := io.CopyN(io.Discard, zr, 2); err != nil { // the zlib header; its checksum is ignored
		if w.err != nil {
			return w.err
		}
		return fmt.Errorf("%w: png: no zlib header: %v", errUndecodable, err)
	}
	inflated := flate.NewReader(zr)
	defer inflated.Close()
	rows := &pngRowReader{r: inflated, runs: runs}
	if err := replaceWithPNG(path, l.ihdr, l.plte, l.trns, rows, raw); err != nil {
		if w.err != nil {
			return w.err // the upload could not be read: the server's trouble, not the file's
		}
		return err
	}
	return nil
}

// idatReader reads the data of a PNG's IDAT chunks one after the other, up to IEND or the file's
// end, passing over the other chunks.
type idatReader struct{ w *pngWalker }

func (r *idatReader) Read(p []byte) (int, error) {
	for !r.w.is("IDAT") || r.w.left == 0 {
		if !r.w.next() {
			if r.w.err != nil {
				return 0, r.w.err
			}
			return 0, io.EOF
		}
	}
	return r.w.Read(p)
}

// replaceWithPNG replaces the file at path, durably, with a PNG of header ihdr, palette plte and
// transparency trns (each nil when absent) whose image data (filtered rows, raw bytes in all) is
// read from rows. It fails, leaving path as it was, when rows gives fewer bytes.
func replaceWithPNG(path string, ihdr, plte, trns []byte, rows io.Reader, raw int64) error {
	tmp := path + ".new.png"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	defer out.Close()
	w := bufio.NewWriterSize(out, 1<<20)
	w.WriteString("\x89PNG\r\n\x1a\n")
	writePNGChunk(w, "IHDR", ihdr)
	if plte != nil {
		writePNGChunk(w, "PLTE", plte)
	}
	if trns != nil {
		writePNGChunk(w, "tRNS", trns)
	}
	cw := &idatWriter{w: w}
	zw, _ := zlib.NewWriterLevel(cw, zlib.BestSpeed)
	if k, err := io.Copy(zw, rows); k != raw {
		return fmt.Errorf("%w: png: %d of %d bytes of rows: %v", errUndecodable, k, raw, err)
	}
	if err := zw.Close(); err != nil {
		return err
	}
	cw.flush()
	writePNGChunk(w, "IEND", nil)
	if err := w.Flush(); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// pngRowRun is count rows of size bytes each (the filter byte included) in a PNG's image data.
type pngRowRun struct{ size, count int64 }

// pngRows is the layout of a PNG's decompressed image data per its header: one run of rows, or
// seven (one per Adam7 pass) when interlaced.
func pngRows(ihdr []byte) ([]pngRowRun, error) {
	w, h := int64(binary.BigEndian.Uint32(ihdr[0:4])), int64(binary.BigEndian.Uint32(ihdr[4:8]))
	depth, ctype, interlace := int64(ihdr[8]), ihdr[9], ihdr[12]
	channels := map[byte]int64{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
	// Each side is bounded before the product, which would overflow for two 32-bit sides.
	if channels == 0 || w == 0 || h == 0 || w > maxPixels || h > maxPixels || w*h > maxPixels ||
		!pngDepthOK(ctype, depth) || ihdr[10] != 0 || ihdr[11] != 0 || interlace > 1 { // compression, filter: one method each
		return nil, errors.New("png: bad header")
	}
	bits := depth * channels
	run := func(w, h int64) pngRowRun {
		if w == 0 || h == 0 {
			return pngRowRun{}
		}
		return pngRowRun{1 + (w*bits+7)/8, h}
	}
	if interlace == 0 {
		return []pngRowRun{run(w, h)}, nil
	}
	// Adam7: seven passes, each a sub-grid of the picture.
	var runs []pngRowRun
	for _, p := range [7][4]int64{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}} {
		runs = append(runs, run((w-p[0]+p[2]-1)/p[2], (h-p[1]+p[3]-1)/p[3]))
	}
	return runs, nil
}

// pngRowReader reads a PNG's decompressed image data and fails on a row whose filter type is not
// one of the five PNG defines: a decoder refuses such a file, so the salvage must too.
type pngRowReader struct {
	r    io.Reader
	runs []pngRowRun
	left int64 // bytes left in the current row
}

func (p *pngRowReader) Read(b []byte) (int, error) {
	for p.left == 0 {
		if len(p.runs) == 0 {
			return 0, io.EOF
		}
		if p.runs[0].count == 0 {
			p.runs = p.runs[1:]
			continue
		}
		p.runs[0].count--
		p.left = p.runs[0].size
	}
	n, err := p.r.Read(b[:min(int64(len(b)), p.left)])
	if n > 0 && p.left == p.runs[0].size && b[0] > 4 {
		return 0, fmt.Errorf("png: row filter type %d", b[0])
	}
	p.left -= int64(n)
	return n, err
}

// pngDepthOK reports whether a PNG's bit depth is one its colour type allows: a decoder refuses
// any other, so a salvaged file must not carry one.
func pngDepthOK(ctype byte, depth int64) bool {
	switch ctype {
	case 0:
		return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16
	case 3:
		return depth == 1 || depth == 2 || depth == 4 || depth == 8
	default:
		return depth == 8 || depth == 16
	}
}

func writePNGChunk(w io.Writer, kind string, data []byte) {
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(data)))
	copy(hdr[4:], kind)
	crc := crc32.NewIEEE()
	crc.Write(hdr[4:])
	crc.Write(data)
	w.Write(hdr[:])
	w.Write(data)
	binary.Write(w, binary.BigEndian, crc.Sum32())
}

// idatWriter cuts a zlib stream into IDAT chunks of up to 256 KB.
type idatWriter struct {
	w   io.Writer
	buf []byte
}

func (c *idatWriter) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	if len(c.buf) >= 256<<10 {
		c.flush()
	}
	return len(p), nil
}

func (c *idatWriter) flush() {
	if len(c.buf) > 0 {
		writePNGChunk(c.w, "IDAT", c.buf)
		c.buf = c.buf[:0]
	}
}
