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

// trimPNG cuts whatever follows a PNG's IEND chunk (a newline added by a transfer, a tool's
// trailer): ffmpeg reads it as a second, broken image and the render would fail.
func trimPNG(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	if _, err := r.Discard(8); err != nil {
		return nil
	}
	off := int64(8)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil // no IEND: ffprobe and salvagePNG deal with it
		}
		n := int64(binary.BigEndian.Uint32(hdr[:4]))
		off += 12 + n
		if string(hdr[4:]) == "IEND" {
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			if fi.Size() > off {
				return f.Truncate(off)
			}
			return nil
		}
		if k, err := io.CopyN(io.Discard, r, n+4); err != nil || k != n+4 {
			return nil
		}
	}
}

// salvagePNG rewrites the PNG at path from its header, palette, transparency and image data, as a
// browser draws it: chunk CRCs and the zlib checksum are not required, and other chunks (a broken
// ICC profile; ffmpeg applies none anyway) are dropped. It fails when the rows are not all there.
// It streams: memory stays flat whatever the image's size.
func salvagePNG(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	var ihdr, plte, trns []byte
	var idat []io.Reader
	off := int64(8)
	for off+8 <= fi.Size() {
		var hdr [8]byte
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			break
		}
		n := int64(binary.BigEndian.Uint32(hdr[:4]))
		kind := string(hdr[4:])
		data := io.NewSectionReader(f, off+8, min(n, fi.Size()-off-8))
		small := func() []byte {
			if n > 1<<16 {
				return nil
			}
			b := make([]byte, data.Size())
			data.ReadAt(b, 0)
			return b
		}
		switch kind {
		case "IHDR":
			ihdr = small()
		case "PLTE":
			plte = small()
		case "tRNS":
			trns = small()
		case "IDAT":
			idat = append(idat, data)
		}
		if kind == "IEND" {
			break
		}
		off += 12 + n
	}
	if len(ihdr) != 13 || len(idat) == 0 {
		return fmt.Errorf("%w: png: no header or no image data", errUndecodable)
	}
	runs, err := pngRows(ihdr)
	if err != nil {
		return fmt.Errorf("%w: %v", errUndecodable, err)
	}
	var raw int64
	for _, r := range runs {
		raw += r.size * r.count
	}
	zr := io.MultiReader(idat...)
	if _, err := io.CopyN(io.Discard, zr, 2); err != nil { // the zlib header; its checksum is ignored
		return fmt.Errorf("%w: png: no zlib header: %v", errUndecodable, err)
	}
	inflated := flate.NewReader(zr)
	defer inflated.Close()
	rows := &pngRowReader{r: inflated, runs: runs}
	return replaceWithPNG(path, ihdr, plte, trns, rows, raw)
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
