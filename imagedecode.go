package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
)

// Images are checked at upload by decoding them the way the render will (ffmpeg), and when ffmpeg
// 5.1 decodes a file wrongly or not at all while a browser shows it, the file is rewritten at upload
// into a PNG that ffmpeg decodes right:
//
//   - PNG: bytes after IEND are cut off; a PNG with no IEND, a cut final CRC, a bad zlib checksum
//     with every row intact or a broken optional chunk (iCCP) is rewritten from its rows, as
//     browsers draw it. A PNG whose rows are missing is refused.
//   - JPEG stored as RGB (Adobe transform 0, or components named R, G, B): ffmpeg decodes it as
//     YCbCr when the Adobe marker comes after the frame header (false colours); Go's decoder follows
//     libjpeg's rules, so such files are decoded in Go. A JPEG whose decode reports errors is
//     checked again without its metadata (jpegmeta.go: a malformed EXIF block is the error browsers
//     ignore) and kept so when that decodes cleanly; otherwise its picture has errors (which ffmpeg
//     survives with black blocks and exit 0), and it is decoded in Go, and refused if Go fails.
//   - GIF: the first frame, decoded in Go (as a browser's still of it).
//   - HEIC/AVIF: converted by heif-convert (libheif), when the server has it.
//
// A Go decode holds the picture in vidgen's own memory (up to ~0.7 GB for the largest accepted
// image), so it runs only for the files above, never for a clean JPEG, PNG or WebP, and one at a
// time (decodeGate).

// decodeGate admits one Go decode at a time: uploads that need one wait their turn, so a burst of
// them costs the service one picture's memory rather than one per validation slot.
type decodeGate chan struct{}

// newDecodeGate returns an open gate for one decode at a time.
func newDecodeGate() decodeGate { return make(decodeGate, 1) }

// toPNG runs goToPNG (orientation is a JPEG's, as goToPNG takes it) when the gate is free (or
// returns ctx's error), and afterwards hands the picture's memory back to the system: the service
// shares its memory limit with its renders.
func (g decodeGate) toPNG(ctx context.Context, path, typ string, orientation int) error {
	select {
	case g <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-g }()
	defer debug.FreeOSMemory()
	return noPanic(func() error { return goToPNG(path, typ, orientation) })
}

// noPanic runs decode, a Go decoder reading an upload, and turns a panic in it into errUndecodable:
// a decoder's bug that a file sets off is that file's refusal, never the service's crash (the
// decode runs beside the request's goroutine, where nothing else would recover it).
func noPanic(decode func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: the decoder panicked: %v", errUndecodable, v)
		}
	}()
	return decode()
}

// errUndecodable is a picture that vidgen's own decoders (goToPNG, salvagePNG) cannot read: the
// file's fault, unlike a failure to write the PNG made from it.
var errUndecodable = errors.New("the picture cannot be decoded")

// rewriteFailed is the error of a rewrite of an upload into a PNG that failed with err: fault (a 400
// for the file) when the file could not be read, and otherwise the server's trouble: 507 for a full
// disk, else an internal error.
func rewriteFailed(err, fault error) error {
	switch {
	case errors.Is(err, errUndecodable):
		return fault
	case diskFull(err):
		return lowDisk(err)
	}
	return fmt.Errorf("rewrite image: %w", err)
}

// prepareInspected makes the uploaded image at path, of sniffed type typ, whose header
// inspectImage has read (hdr), ready for the render and returns the type it has then (media.PNG
// when it was rewritten). A file that cannot be made to decode is a 400 naming the image part; a
// type this server cannot decode is a 415. Go decodes go through gate.
func prepareInspected(ctx context.Context, t ffmpeg.Tools, gate decodeGate, path, typ string, hdr imageHeader) (string, error) {
	broken := badMedia("image: the %s could not be decoded; it may be damaged. Export it again and upload it", typeName(typ))
	toPNG := func() error {
		if err := gate.toPNG(ctx, path, typ, hdr.jpeg.Orientation); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return rewriteFailed(err, broken)
		}
		typ = media.PNG
		return nil
	}
	switch typ {
	case media.GIF:
		if err := toPNG(); err != nil {
			return "", err
		}
	case media.HEIC, media.AVIF:
		if err := convertHEIF(ctx, t, path, typ, hdr.heif); err != nil {
			return "", err
		}
		typ = media.PNG
	case media.JPEG:
		if err := trimJPEG(path, hdr.jpeg); err != nil {
			return "", err
		}
		if hdr.jpeg.RGB {
			if err := toPNG(); err != nil {
				return "", err
			}
		}
	case media.PNG:
		if err := cutAfter(path, hdr.pngEnd); err != nil {
			return "", err
		}
	}
	err := ffDecodeCheck(ctx, t, path, typ)
	if err == nil || ctx.Err() != nil || kindOf(err) == kindUnavailable {
		return typ, err
	}
	if errors.Is(err, errChildMemory) {
		return "", badMedia("image: decoding it takes more memory than this server gives one file; send a smaller picture")
	}
	if typ == media.JPEG {
		// What ffmpeg reported may be the metadata's fault, not the picture's: a damaged EXIF block
		// that browsers ignore. Without it the picture may decode cleanly, and stays a JPEG.
		bare, err := withoutMetadata(ctx, t, path)
		switch {
		case err != nil && (ctx.Err() != nil || kindOf(err) == kindUnavailable):
			return "", err
		case err != nil:
			return "", rewriteFailed(err, broken)
		case bare:
			return typ, nil
		}
	}
	// ffmpeg could not decode it cleanly: try the repair each type allows, then check again.
	switch typ {
	case media.PNG:
		if err := salvagePNG(path); err != nil {
			return "", rewriteFailed(err, badMedia("image: the PNG is truncated or damaged (its rows are incomplete); upload the whole file"))
		}
	case media.JPEG, media.BMP, media.TIFF, media.WebP:
		if err := toPNG(); err != nil {
			return "", err
		}
	default:
		return "", broken
	}
	if err := ffDecodeCheck(ctx, t, path, media.PNG); err != nil {
		if ctx.Err() != nil || kindOf(err) == kindUnavailable {
			return "", err
		}
		return "", broken
	}
	return media.PNG, nil
}

// ffDecodeCheck has ffprobe decode the image at path (in its own process, so a large image costs
// vidgen no memory). Any error ffmpeg reports counts, even when it goes on and exits 0: the render
// would show its guess (black or grey blocks) instead of the picture.
func ffDecodeCheck(ctx context.Context, t ffmpeg.Tools, path, typ string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, t.FFprobe, "-v", "error", "-threads", "1", "-protocol_whitelist", "file", "-f", demuxer[typ],
		"-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0",
		"file:"+path)
	var out, stderr bytes.Buffer // all of stderr: the check fails on any of it
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := t.Run(ctx, cmd)
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	if terr := toolTrouble("ffprobe", err); terr != nil {
		return terr // nothing is known of the file
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(out.String())); err != nil || n < 1 || stderr.Len() > 0 {
		if t.Memory > 0 && ffmpeg.OutOfMemoryLog(stderr.Bytes()) {
			return fmt.Errorf("ffprobe: %w: %s", errChildMemory, bytes.TrimSpace(stderr.Bytes()))
		}
		if fe := (*ffmpeg.Error)(nil); errors.As(err, &fe) {
			err = fe.Err // its log is all of stderr, below
		}
		return fmt.Errorf("ffprobe: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

// trimJPEG cuts whatever follows a JPEG's first image (a phone's "motion photo" video, or a second,
// huge image placed there to pass the pixel cap, which the decoder would read as a next frame),
// which its header hdr places. An incomplete JPEG, which inspectImage has refused, is left as it is.
func trimJPEG(path string, hdr media.JPEGHeader) error {
	return cutAfter(path, hdr.End)
}

// goToPNG decodes the image at path, of type typ, with Go's decoders and replaces it with a PNG of
// the picture a person sees (EXIF orientation applied to a JPEG: orientation, as its header's walk
// found it, or 0 to read it here, media.JPEGHeader). inspectImage has already held its
// size to maxPixels. The decoded picture is the only copy held: the PNG's rows are made from it one
// at a time, turned as they are written (a 100-megapixel RGB JPEG: ~0.5 GB, where decoding, turning
// and encoding whole pictures took 1.5 GB).
func goToPNG(path, typ string, orientation int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var img image.Image
	if typ != media.JPEG {
		orientation = 1
	}
	switch typ {
	case media.JPEG:
		if orientation == 0 {
			orientation = jpegOrientation(b)
		}
		img, err = jpeg.Decode(bytes.NewReader(b))
	case media.GIF:
		img, err = gifFirstFrame(b)
	case media.BMP:
		img, err = bmp.Decode(bytes.NewReader(b))
	case media.TIFF:
		img, err = tiff.Decode(bytes.NewReader(b))
	case media.WebP:
		img, err = webp.Decode(bytes.NewReader(b))
	case media.PNG:
		img, err = png.Decode(bytes.NewReader(b))
	default:
		err = fmt.Errorf("no Go decoder for %s", typ)
	}
	b = nil
	if err != nil {
		return fmt.Errorf("%w: %v", errUndecodable, err)
	}
	rows := newPictureRows(img, orientation)
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(rows.w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(rows.h))
	ihdr[8], ihdr[9] = 8, 2 // 8 bits, RGB
	if rows.bpp == 4 {
		ihdr[9] = 6 // RGBA
	}
	return replaceWithPNG(path, ihdr, nil, nil, rows, int64(rows.h)*int64(1+rows.w*rows.bpp))
}

// pictureRows reads a decoded picture as 8-bit PNG image data (each row its filter byte, Up, then
// RGB, or RGBA when the picture has transparency), turned as an EXIF orientation says.
type pictureRows struct {
	px        func(x, y int) (r, g, b, a uint8) // the source's pixel, in its own coordinates
	src       func(x, y int) (int, int)         // the source pixel shown at (x, y) of the output
	w, h, bpp int                               // the output's size, and its bytes a pixel
	cur, prev []byte                            // this row's and the previous row's pixels
	out       []byte                            // this row as written: filter byte, filtered pixels
	y, off    int                               // the row being read out, and how much of it was
}

// newPictureRows reads img turned as EXIF orientation (1-8; anything else is upright) says.
func newPictureRows(img image.Image, orientation int) *pictureRows {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	p := &pictureRows{px: pixelReader(img), w: sw, h: sh, bpp: 3, y: -1}
	if o, ok := img.(interface{ Opaque() bool }); !ok || !o.Opaque() {
		p.bpp = 4
	}
	if orientation >= 5 && orientation <= 8 {
		p.w, p.h = sh, sw
	}
	p.src = func(x, y int) (int, int) {
		switch orientation {
		case 2:
			x = sw - 1 - x
		case 3:
			x, y = sw-1-x, sh-1-y
		case 4:
			y = sh - 1 - y
		case 5:
			x, y = y, x
		case 6:
			x, y = y, sh-1-x
		case 7:
			x, y = sw-1-y, sh-1-x
		case 8:
			x, y = sw-1-y, x
		}
		return b.Min.X + x, b.Min.Y + y
	}
	n := p.w * p.bpp
	p.cur, p.prev, p.out = make([]byte, n), make([]byte, n), make([]byte, 1+n)
	p.off = len(p.out)
	return p
}

// Read gives the image data row after row, then io.EOF.
func (p *pictureRows) Read(b []byte) (int, error) {
	if p.off == len(p.out) {
		if p.y+1 >= p.h {
			return 0, io.EOF
		}
		p.y++
		p.fill()
	}
	n := copy(b, p.out[p.off:])
	p.off += n
	return n, nil
}

// fill makes row p.y with the Up filter (each byte less the one above it), which deflate
// compresses much better than a photograph's raw rows, at almost no cost.
func (p *pictureRows) fill() {
	p.cur, p.prev = p.prev, p.cur
	for x := range p.w {
		r, g, b, a := p.px(p.src(x, p.y))
		i := x * p.bpp
		p.cur[i], p.cur[i+1], p.cur[i+2] = r, g, b
		if p.bpp == 4 {
			p.cur[i+3] = a
		}
	}
	p.out[0] = 2 // Up; above the first row is zero
	for i, v := range p.cur {
		p.out[1+i] = v - p.prev[i]
	}
	p.off = 0
}

// pixelReader returns a function reading img's pixels as 8-bit non-premultiplied RGBA, without the
// allocation per pixel that image.Image's At costs, for every type Go's decoders return.
func pixelReader(img image.Image) func(x, y int) (r, g, b, a uint8) {
	unpremultiply := func(r, g, b, a uint32) (uint8, uint8, uint8, uint8) { // 16-bit premultiplied
		if a == 0 {
			return 0, 0, 0, 0
		}
		return uint8(r * 0xffff / a >> 8), uint8(g * 0xffff / a >> 8), uint8(b * 0xffff / a >> 8), uint8(a >> 8)
	}
	switch m := img.(type) {
	case *image.NRGBA:
		return func(x, y int) (uint8, uint8, uint8, uint8) {
			i := m.PixOffset(x, y)
			return m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3]
		}
	case *image.RGBA:
		return func(x, y int) (uint8, uint8, uint8, uint8) {
			i := m.PixOffset(x, y)
			if a := m.Pix[i+3]; a != 0xff {
				return unpremultiply(uint32(m.Pix[i])*0x101, uint32(m.Pix[i+1])*0x101, uint32(m.Pix[i+2])*0x101, uint32(a)*0x101)
			}
			return m.Pix[i], m.Pix[i+1], m.Pix[i+2], 0xff
		}
	case *image.YCbCr:
		return func(x, y int) (uint8, uint8, uint8, uint8) {
			c := m.YCbCrAt(x, y)
			r, g, b := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
			return r, g, b, 0xff
		}
	case *image.NYCbCrA:
		return func(x, y int) (uint8, uint8, uint8, uint8) {
			c := m.NYCbCrAAt(x, y)
			r, g, b := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
			return r, g, b, c.A
		}
	case *image.Gray:
		return func(x, y int) (uint8, uint8, uint8, uint8) {
			v := m.Pix[m.PixOffset(x, y)]
			return v, v, v, 0xff
		}
	case *image.Gray16:
		return func(x, y int) (uint8, uint8, uint8, uint8) {
			v := m.Pix[m.PixOffset(x, y)]
			return v, v, v, 0xff
		}
	case *image.NRGBA64:
		return func(x, y int) (uint8, uint8, uint8, uint8) {
			c := m.NRGBA64At(x, y)
			return uint8(c.R >> 8), uint8(c.G >> 8), uint8(c.B >> 8), uint8(c.A >> 8)
		}
	case *image.RGBA64:
		return func(x, y int) (uint8, uint8, uint8, uint8) {
			c := m.RGBA64At(x, y)
			return unpremultiply(uint32(c.R), uint32(c.G), uint32(c.B), uint32(c.A))
		}
	case *image.CMYK:
		return func(x, y int) (uint8, uint8, uint8, uint8) {
			c := m.CMYKAt(x, y)
			r, g, b := color.CMYKToRGB(c.C, c.M, c.Y, c.K)
			return r, g, b, 0xff
		}
	case *image.Paletted:
		// An index past the palette (BMP and TIFF decoders do not check) is opaque black, as
		// libpng and image/png read it.
		var pal [256]color.NRGBA
		for i := range pal {
			pal[i] = color.NRGBA{A: 0xff}
		}
		for i, c := range m.Palette[:min(len(m.Palette), len(pal))] {
			pal[i] = color.NRGBAModel.Convert(c).(color.NRGBA)
		}
		return func(x, y int) (uint8, uint8, uint8, uint8) {
			c := pal[m.Pix[m.PixOffset(x, y)]]
			return c.R, c.G, c.B, c.A
		}
	}
	return func(x, y int) (uint8, uint8, uint8, uint8) {
		c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
		return c.R, c.G, c.B, c.A
	}
}

// gifFirstFrame is a GIF's first frame drawn on its logical screen, as a browser shows a still of it
// (the screen outside the frame is transparent, so it ends up white like any transparency).
func gifFirstFrame(b []byte) (image.Image, error) {
	cfg, err := gif.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	frame, err := gif.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	screen := image.Rect(0, 0, cfg.Width, cfg.Height)
	if frame.Bounds() == screen {
		return frame, nil
	}
	canvas := image.NewNRGBA(screen)
	draw.Draw(canvas, frame.Bounds(), frame, frame.Bounds().Min, draw.Src)
	return canvas, nil
}

// lastLine is the last non-empty line of a tool's output, for a message.
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
