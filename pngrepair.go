package main

// This file repairs PNGs the way browsers read them: bytes after IEND are cut, and a file whose
// checksums or optional chunks are broken is rewritten from its rows, checked as a strict decoder
// would check them.

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image/png"
	"io"
	"os"

	"vidgen/internal/media"
)

// checkPNGLayout is media.ReadPNGLayout of the file at path, its refusals made the service's
// (pngLayoutRefusal). Its End is where the upload cuts.
func checkPNGLayout(path string) (media.PNGLayout, error) {
	f, err := os.Open(path)
	if err != nil {
		return media.PNGLayout{}, err
	}
	defer f.Close()
	l, err := media.ReadPNGLayout(f)
	return l, pngLayoutRefusal(err)
}

// pngLayoutRefusal turns media.ReadPNGLayout's refusals into what the user reads; other errors
// (the upload could not be read) are the server's trouble and stay as they are.
func pngLayoutRefusal(err error) error {
	var why string
	switch {
	case err == nil:
		return nil
	case errors.Is(err, media.ErrPNGSignature):
		why = "it does not start with the PNG signature"
	case errors.Is(err, media.ErrPNGChunks):
		why = fmt.Sprintf("it has more than %d chunks, which no picture needs", media.MaxPNGChunks)
	case errors.Is(err, media.ErrPNGFirstChunk):
		why = "it does not start with its header"
	case errors.Is(err, media.ErrPNGSecondHeader):
		why = "it has a second header"
	case errors.Is(err, media.ErrPNGInflated):
		why = fmt.Sprintf("its compressed text and colour profile chunks inflate to more than %d MB", media.MaxPNGInflated>>20)
	case errors.Is(err, media.ErrPNGNoHeader):
		why = "it has no header"
	default:
		return err
	}
	return badMedia("image: the PNG is damaged (%s); export it again and upload it", why)
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
// and on a layout media.ReadPNGLayout refuses. It streams, in two walks of the chunks (the first finds
// the header and palette, the second reads the image data as it comes): whatever the image's size
// or its chunk count it allocates ~2.5 MB in ~70 allocations (its buffers and the zlib state),
// within the pictureBaseCost its caller holds.
func salvagePNG(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	l, err := media.ReadPNGLayout(f)
	if err = pngLayoutRefusal(err); err != nil {
		if kindOf(err) == kindInvalid {
			return fmt.Errorf("%w: %v", errUndecodable, err)
		}
		return err
	}
	if !l.IDAT {
		return fmt.Errorf("%w: png: no image data", errUndecodable)
	}
	runs, err := pngRows(l.IHDR)
	if err != nil {
		return fmt.Errorf("%w: %v", errUndecodable, err)
	}
	plte, trns, err := pngColourChunks(l.IHDR, l.PLTE, l.TRNS)
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
	w, _ := media.NewPNGWalker(f)
	zr := &idatReader{w: w}
	if _, err := io.CopyN(io.Discard, zr, 2); err != nil { // the zlib header; its checksum is ignored
		if w.Err() != nil {
			return w.Err()
		}
		return fmt.Errorf("%w: png: no zlib header: %v", errUndecodable, err)
	}
	inflated := flate.NewReader(zr)
	defer inflated.Close()
	rows := &pngRowReader{r: inflated, runs: runs}
	if err := replaceWithPNG(path, l.IHDR, plte, trns, rows, raw); err != nil {
		if w.Err() != nil {
			return w.Err() // the upload could not be read: the server's trouble, not the file's
		}
		return err
	}
	return nil
}

// idatReader reads the data of a PNG's IDAT chunks one after the other, up to IEND or the file's
// end, passing over the other chunks.
type idatReader struct{ w *media.PNGWalker }

func (r *idatReader) Read(p []byte) (int, error) {
	for !r.w.Is("IDAT") || r.w.Left() == 0 {
		if !r.w.Next() {
			if r.w.Err() != nil {
				return 0, r.w.Err()
			}
			return 0, io.EOF
		}
	}
	return r.w.Read(p)
}

// pngColourChunks returns the palette and transparency (nil when dropped) a salvaged PNG of header
// ihdr is written with: the file's own when a strict decoder (Go's image/png) reads them with that
// header, else without the transparency, the palette or both, whichever first reads. A damaged
// file may keep chunks its colour type forbids (a palette in a grey picture, transparency of the
// wrong length); a decoder refuses the picture for them, so the salvage leaves out what it can do
// without and refuses a paletted picture whose palette is missing or unreadable.
func pngColourChunks(ihdr, plte, trns []byte) ([]byte, []byte, error) {
	err := pngHeaderDecodes(ihdr, plte, trns)
	if err == nil {
		return plte, trns, nil
	}
	for _, c := range [][2][]byte{{plte, nil}, {nil, trns}, {nil, nil}} {
		if pngHeaderDecodes(ihdr, c[0], c[1]) == nil {
			return c[0], c[1], nil
		}
	}
	return nil, nil, err
}

// pngHeaderDecodes decodes, with Go's image/png, a one-pixel picture of ihdr's colour type, bit
// depth and interlace with palette plte and transparency trns (nil: none), so a salvaged file is
// written only with colour chunks a strict decoder reads.
func pngHeaderDecodes(ihdr, plte, trns []byte) error {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	one := bytes.Clone(ihdr)
	binary.BigEndian.PutUint32(one[0:], 1)
	binary.BigEndian.PutUint32(one[4:], 1)
	writePNGChunk(&b, "IHDR", one)
	if plte != nil {
		writePNGChunk(&b, "PLTE", plte)
	}
	if trns != nil {
		writePNGChunk(&b, "tRNS", trns)
	}
	runs, err := pngRows(one)
	if err != nil {
		return err
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	for _, r := range runs {
		zw.Write(make([]byte, r.size*r.count)) // filter type 0 and index 0: the palette's first colour
	}
	zw.Close()
	writePNGChunk(&b, "IDAT", z.Bytes())
	writePNGChunk(&b, "IEND", nil)
	_, err = png.Decode(&b)
	return err
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
