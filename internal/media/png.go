package media

// A PNG's chunk layout, read in one walk of its chunks without decoding its image data.

import (
	"bufio"
	"compress/flate"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
)

// PNGSignature starts every PNG.
const PNGSignature = "\x89PNG\r\n\x1a\n"

// MaxPNGChunks is the most chunks a PNG may have up to IEND. Encoders cut the image data into
// chunks of 4 KB (ffmpeg), 8 KB (libpng), 32 KB (Go), 256 KB (vidgen's own repair) or one chunk,
// so a 50 MB upload holds at most ~13,000; even an encoder writing a chunk a row would reach this
// cap only for a picture 262,144 rows tall, under 100 megapixels at most 381 pixels wide. A
// hostile file of empty chunks holds 4.4 million in 50 MB, each a turn of ffmpeg's decoding loop
// and of every walk of the file, so past the cap ReadPNGLayout refuses it (ErrPNGChunks).
const MaxPNGChunks = 1 << 18

// MaxPNGInflated is the most a PNG's compressed text (zTXt, iTXt) and ICC profile (iCCP) chunks
// may inflate to, together. ffmpeg inflates each whole into memory when it decodes the picture
// (twice over: a 1 MB zTXt of 1 GB of zeros took ffprobe to 2.1 GB; 16 MB inflated costs it
// 29 MB), and none of it shows in the render. Real ICC profiles and XMP packets are kilobytes to
// a few megabytes.
const MaxPNGInflated = 16 << 20

// The layouts ReadPNGLayout refuses: decoders read them in different ways, or only a hostile file
// has them.
var (
	ErrPNGSignature    = errors.New("png: no PNG signature")
	ErrPNGFirstChunk   = errors.New("png: the first chunk is not a 13-byte IHDR")
	ErrPNGSecondHeader = errors.New("png: a second IHDR")
	ErrPNGNoHeader     = errors.New("png: no complete IHDR")
	ErrPNGChunks       = errors.New("png: more than MaxPNGChunks chunks")
	ErrPNGInflated     = errors.New("png: compressed text and ICC profiles inflate to more than MaxPNGInflated")
)

// PNGWalker walks a PNG's chunks in file order, reading the file once from its start. It holds
// one chunk's header at a time: memory stays flat whatever the chunk count. Every reader of a
// PNG's chunk layout walks with it, so they all agree on where the chunks and IEND are.
type PNGWalker struct {
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

	// For the check of the header (pngHeaderCheck): while hashing, crc is the CRC of the current
	// chunk's type and the data read of it; summed is set once its stored CRC was read (checksum).
	hashing, summed bool
	crc             uint32
	// over is the header of a chunk whose length is over 2^31-1, where the walk stopped.
	over     [4]byte
	overSize int64
}

// NewPNGWalker starts a walk of the PNG r; it reports false when r does not start with the PNG
// signature.
func NewPNGWalker(r io.Reader) (*PNGWalker, bool) {
	w := &PNGWalker{r: bufio.NewReaderSize(r, 64<<10), pos: 8}
	sig, err := w.r.Peek(8)
	if err != nil || string(sig) != PNGSignature {
		return w, false
	}
	w.r.Discard(8)
	return w, true
}

// Next moves to the next chunk, past what is left of the current one and its CRC. It reports
// false after IEND, at the file's end, at a header cut short, or at a length over 2^31-1 (the
// most the format allows; ffmpeg stops there too).
func (w *PNGWalker) Next() bool {
	if w.done {
		return false
	}
	if w.count > 0 {
		skip := int(w.left + 4)
		if w.summed {
			skip -= 4
		}
		if k, err := w.r.Discard(skip); k != skip {
			return w.stop(err)
		}
	}
	if _, err := io.ReadFull(w.r, w.hdr[:]); err != nil {
		return w.stop(err)
	}
	n := binary.BigEndian.Uint32(w.hdr[:4])
	if n > 1<<31-1 {
		w.over, w.overSize = [4]byte(w.hdr[4:]), int64(n)
		return w.stop(nil)
	}
	w.kind, w.size, w.left = [4]byte(w.hdr[4:]), int64(n), int64(n)
	w.summed = false
	if w.hashing {
		w.crc = crc32.ChecksumIEEE(w.hdr[4:])
	}
	w.count++
	w.pos += 12 + w.size
	if w.Is("IEND") {
		w.end, w.done = w.pos, true
	}
	return true
}

// Is reports whether the current chunk is of type kind.
func (w *PNGWalker) Is(kind string) bool { return string(w.kind[:]) == kind }

// Left is how many bytes of the current chunk's data are not read yet.
func (w *PNGWalker) Left() int64 { return w.left }

// End is the offset just past IEND, once the walk passed it; 0 before, and for a PNG without one.
func (w *PNGWalker) End() int64 { return w.end }

// Err is the I/O error that ended the walk, other than the file's end.
func (w *PNGWalker) Err() error { return w.err }

// stop ends the walk, keeping err unless it is the file's end.
func (w *PNGWalker) stop(err error) bool {
	w.done, w.kind = true, [4]byte{}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		w.err = err
	}
	return false
}

// Read reads the current chunk's data; a chunk the file's end cuts short gives what is there.
func (w *PNGWalker) Read(p []byte) (int, error) {
	if w.left == 0 {
		return 0, io.EOF
	}
	n, err := w.r.Read(p[:min(int64(len(p)), w.left)])
	w.left -= int64(n)
	if w.hashing {
		w.crc = crc32.Update(w.crc, crc32.IEEETable, p[:n])
	}
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
func (w *PNGWalker) data(limit int64) []byte {
	if w.size > limit {
		return nil
	}
	b, _ := io.ReadAll(w)
	return b
}

// PNGLayout is what a walk of a PNG's chunks up to IEND finds (ReadPNGLayout).
type PNGLayout struct {
	IHDR, PLTE, TRNS []byte // the header's data, and the last palette and transparency (nil: none)
	IDAT             bool   // whether it has image data
	End              int64  // the offset just past IEND; 0 when the file has none

	// Width, Height, BitDepth and ColorType are the header's, as it states them.
	Width, Height       int
	BitDepth, ColorType int
	// HeaderErr is why the header cannot be read as Go's image/png DecodeConfig reads it (the IHDR
	// and its CRC; a paletted picture's chunks up to its transparency or image data, their order,
	// sizes and CRCs): a *HeaderError, or io.ErrUnexpectedEOF for a file that ends first, in the
	// words image/png says it. nil when it reads.
	HeaderErr error
}

// ReadPNGLayout walks the PNG r up to IEND (or the file's end: a PNG cut short is for its reader
// to judge) and refuses a layout that decoders read in different ways or that only a hostile file
// has: no signature (ErrPNGSignature), a first chunk other than a 13-byte IHDR (ErrPNGFirstChunk),
// a second IHDR (ErrPNGSecondHeader: Go's decoder, which sizes the picture, reads the first one
// and ffmpeg may decode by a later one, so a 1×1 header would hide a 100-megapixel picture), no
// complete IHDR (ErrPNGNoHeader), more than MaxPNGChunks chunks (ErrPNGChunks), or compressed
// text and ICC profiles that inflate to more than MaxPNGInflated (ErrPNGInflated). Other errors
// are r's. Bytes after IEND are never read.
func ReadPNGLayout(r io.Reader) (PNGLayout, error) {
	var l PNGLayout
	w, ok := NewPNGWalker(r)
	if !ok {
		return l, ErrPNGSignature
	}
	var in pngInflater
	defer in.close()
	inflated := int64(0)
	var check pngHeaderCheck
	for w.hashing = true; w.Next(); w.hashing = !check.done {
		kind, size := string(w.kind[:]), w.size // a read cut short by the file's end clears them
		switch {
		case w.count > MaxPNGChunks:
			return l, ErrPNGChunks
		case w.count == 1 && (!w.Is("IHDR") || w.size != 13):
			return l, ErrPNGFirstChunk
		case w.Is("IHDR") && w.count > 1:
			return l, ErrPNGSecondHeader
		case w.Is("IHDR"):
			l.IHDR = w.data(13)
		case w.Is("PLTE"):
			l.PLTE = w.data(1 << 16)
		case w.Is("tRNS"):
			l.TRNS = w.data(1 << 16)
		case w.Is("IDAT"):
			l.IDAT = true
		case w.Is("zTXt"), w.Is("iTXt"), w.Is("iCCP"):
			if inflated += in.size(w, MaxPNGInflated-inflated+1); inflated > MaxPNGInflated {
				return l, ErrPNGInflated
			}
		}
		if w.count == 1 {
			if len(l.IHDR) == 13 {
				check.ihdr(l.IHDR)
				check.sum(w.checksum)
				if !check.paletted {
					check.end(nil)
				}
			}
		} else {
			check.chunk(kind, size, w.checksum)
		}
	}
	if w.err != nil {
		return l, w.err
	}
	if len(l.IHDR) != 13 {
		return l, ErrPNGNoHeader
	}
	if w.overSize > 0 {
		check.chunk(string(w.over[:]), w.overSize, func() (bool, error) { return false, io.ErrUnexpectedEOF })
	}
	check.end(io.ErrUnexpectedEOF) // the file ended before the header was read
	l.End, l.HeaderErr = w.end, check.err
	l.Width, l.Height = int(binary.BigEndian.Uint32(l.IHDR)), int(binary.BigEndian.Uint32(l.IHDR[4:]))
	l.BitDepth, l.ColorType = int(l.IHDR[8]), int(l.IHDR[9])
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
func (in *pngInflater) size(w *PNGWalker, limit int64) int64 {
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
	if w.Is("iTXt") {
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
