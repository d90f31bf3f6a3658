package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"strings"
	"vidgen/internal/media"
)

// maxPixels caps the images vidgen accepts, checked from the header before anything is decoded.
const maxPixels = 100_000_000

// demuxer names the ffmpeg input format for each type, so ffmpeg never guesses one from the content
// (an .mp3 that is really an HLS playlist is never opened as a playlist). GIF, HEIC and AVIF are
// absent: ffmpeg never reads them, they are turned into PNG at upload (see prepareImage).
var demuxer = map[string]string{
	media.JPEG: "jpeg_pipe", media.PNG: "png_pipe", media.WebP: "webp_pipe", media.BMP: "bmp_pipe", media.TIFF: "tiff_pipe",
	media.MP3: "mp3", media.WAV: "wav", media.M4A: "mov", media.Ogg: "ogg",
	media.FLAC: "flac", media.AIFF: "aiff", media.AAC: "aac", media.Matroska: "matroska",
}

// typeName is how messages name a type.
func typeName(typ string) string {
	if typ == media.Matroska {
		return "WebM/Matroska"
	}
	return strings.ToUpper(typ)
}

// badMedia is an uploaded file that claims a supported type but cannot be used as it is.
func badMedia(format string, args ...any) error { return errorf(kindInvalid, format, args...) }

// unsupportedMedia is an uploaded file of a type vidgen does not take.
func unsupportedMedia(format string, args ...any) error {
	return errorf(kindUnsupported, format, args...)
}

// containerName names the container of type typ as people know it: an M4A is an MP4 that holds
// only audio, and a phone's video is an MP4 too.
func containerName(typ string) string {
	if typ == media.M4A {
		return "MP4/M4A"
	}
	return typeName(typ)
}

// audioTypes lists the audio an upload may hold, for the messages that refuse one.
const audioTypes = "MP3, WAV, M4A (AAC, ALAC), Ogg (Vorbis, Opus), FLAC, AIFF, AAC or WebM/Matroska (Opus, Vorbis, FLAC, AAC, MP3) audio"

// withArticle puts "a" or "an" before a type's name, as it is read aloud: an MP3, a WAV.
func withArticle(name string) string {
	if strings.ContainsRune("AEIOUM", rune(name[0])) {
		return "an " + name
	}
	return "a " + name
}

// describe names what a file looks like, for error messages.
func describe(head []byte) string {
	if t := media.SniffImage(head); t != "" {
		return withArticle(typeName(t)) + " image"
	}
	switch t := media.SniffAudio(head); t {
	case "":
	case media.M4A, media.Matroska:
		// These containers hold video as often as audio; which one is for probeAudio to read.
		return withArticle(containerName(t)) + " (video or audio)"
	default:
		return withArticle(typeName(t)) + " audio file"
	}
	for _, k := range []struct{ magic, name string }{
		{"%PDF", "a PDF document"}, {"PK\x03\x04", "a ZIP archive"}, {"#EXTM3U", "a playlist"},
		{"\xef\xbb\xbf#EXTM3U", "a playlist"}, {"<", "a text or HTML document"},
	} {
		if bytes.HasPrefix(head, []byte(k.magic)) {
			return k.name
		}
	}
	switch {
	case len(head) == 0:
		return "empty"
	case bytes.HasPrefix(head, []byte("RIFF")) && len(head) >= 12 && string(head[8:12]) == "AVI ":
		return "an AVI video"
	case media.IsText(head, len(head) >= media.SniffLen):
		return "a text file"
	}
	return "not a supported format"
}

// checkImage validates the image at path, of sniffed type typ, without decoding its pixels: the
// header's dimensions against maxPixels, a JPEG's or WebP's structure against truncation, a HEIC's
// or AVIF's pictures against what heif-convert may decode (heifDecodedPictures), and a PNG's chunk
// layout (readPNGLayout: one header, first, and a bounded chunk count). The rest of a
// PNG's structure (checksums, a missing IEND) is prepareImage's to judge: browsers show some PNGs
// that break those rules.
func checkImage(path, typ string) error {
	_, err := inspectImage(path, typ)
	return err
}

// imageHeader is what inspectImage read of an image's header: its size, and whether it may hold
// 16 bits a channel (deep), as imageSize gives them.
type imageHeader struct {
	w, h int
	deep bool
}

// inspectImage is checkImage, which it does, also giving the header it read, so that the upload
// weighs the picture (headerCost) without reading the header again. A HEIC's or AVIF's structure
// is walked once, for its size and for what heif-convert may decode.
func inspectImage(path, typ string) (imageHeader, error) {
	if typ == media.PNG {
		if err := checkPNGLayout(path); err != nil {
			return imageHeader{}, err
		}
	}
	var hdr imageHeader
	var pics media.HEIFPictures
	var err error
	heif := typ == media.HEIC || typ == media.AVIF
	if heif {
		pics, err = heifPicturesAt(path, typ)
		hdr = imageHeader{pics.Width, pics.Height, true}
	} else {
		hdr.w, hdr.h, hdr.deep, err = imageSize(path, typ)
	}
	if err != nil {
		return imageHeader{}, err
	}
	if hdr.w <= 0 || hdr.h <= 0 {
		return imageHeader{}, badMedia("image: it has no pixels")
	}
	if int64(hdr.w)*int64(hdr.h) > maxPixels {
		return imageHeader{}, tooManyPixels(hdr.w, hdr.h)
	}
	if heif {
		return hdr, heifBudget(pics, typ)
	}
	return hdr, checkJPEGComplete(path, typ)
}

// checkJPEGComplete refuses a JPEG (of type typ; any other type passes) that ends before its
// end-of-image marker (jpegComplete).
func checkJPEGComplete(path, typ string) error {
	if typ != media.JPEG {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if !jpegComplete(bufio.NewReaderSize(f, 64<<10)) {
		return badMedia("image: the %s is truncated or damaged; upload the whole file", typeName(typ))
	}
	return nil
}

// unreadableImage is the refusal of an image of type typ whose header cannot be read (err).
func unreadableImage(typ string, err error) error {
	return badMedia("image: the %s could not be read (%v); re-export it and try again", typeName(typ), err)
}

// tooManyPixels is the refusal of a w×h picture, over maxPixels.
func tooManyPixels(w, h int) error {
	// Exact sizes: a rounded count would read "100 megapixels; the most accepted is 100".
	return badMedia("image: %d×%d is more than the %d megapixels accepted (%d pixels, such as 10000×10000); send a smaller picture",
		w, h, maxPixels/1_000_000, maxPixels)
}

// imageSize reads the width and height of the image at path, of sniffed type typ, from its header,
// and whether it may hold 16 bits a channel (deep). A header that cannot be read is a kindInvalid
// error; a size it does not give is 0×0.
func imageSize(path, typ string) (w, h int, deep bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, false, err
	}
	defer f.Close()
	unreadable := func(err error) error { return unreadableImage(typ, err) }
	switch typ {
	case media.JPEG, media.PNG, media.GIF:
		decode := map[string]func(io.Reader) (image.Config, error){
			media.JPEG: jpeg.DecodeConfig, media.PNG: png.DecodeConfig, media.GIF: gif.DecodeConfig,
		}[typ]
		cfg, err := decode(bufio.NewReader(f))
		if err != nil && typ == media.JPEG {
			if c, err2 := jpegConfigWithoutMetadata(f); err2 == nil {
				cfg, err = c, nil
			}
		}
		if err != nil {
			return 0, 0, false, unreadable(err)
		}
		switch cfg.ColorModel {
		case color.RGBA64Model, color.NRGBA64Model, color.Gray16Model:
			deep = true
		}
		return cfg.Width, cfg.Height, deep, nil
	case media.BMP:
		var hdr [26]byte
		if _, err := io.ReadFull(f, hdr[:]); err != nil {
			return 0, 0, false, unreadable(err)
		}
		if binary.LittleEndian.Uint32(hdr[14:18]) == 12 { // OS/2 header: 16-bit sizes
			return int(binary.LittleEndian.Uint16(hdr[18:])), int(binary.LittleEndian.Uint16(hdr[20:])), false, nil
		}
		w, h = int(int32(binary.LittleEndian.Uint32(hdr[18:]))), int(int32(binary.LittleEndian.Uint32(hdr[22:])))
		return w, max(h, -h), false, nil // negative: stored top-down
	case media.TIFF:
		w, h = tiffSize(f)
		return w, h, true, nil
	case media.HEIC, media.AVIF:
		pics, err := heifPicturesOf(f, typ)
		return pics.Width, pics.Height, true, err
	case media.WebP:
		w, h, err = webpSize(f)
		return w, h, false, err
	}
	return 0, 0, false, nil
}

// tiffSize reads the width and height tags of a TIFF's first image (its IFD may sit anywhere in
// the file), or 0, 0.
func tiffSize(f io.ReaderAt) (int, int) {
	var hdr [8]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return 0, 0
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if hdr[0] == 'M' {
		bo = binary.BigEndian
	}
	off := int64(bo.Uint32(hdr[4:]))
	var n [2]byte
	if _, err := f.ReadAt(n[:], off); err != nil {
		return 0, 0
	}
	entries := make([]byte, 12*int(bo.Uint16(n[:])))
	if _, err := f.ReadAt(entries, off+2); err != nil {
		return 0, 0
	}
	var w, h int
	for e := entries; len(e) >= 12; e = e[12:] {
		v := int(bo.Uint32(e[8:]))
		if bo.Uint16(e[2:]) == 3 { // SHORT: the value's first two bytes
			v = int(bo.Uint16(e[8:]))
		}
		switch bo.Uint16(e) {
		case 256:
			w = v
		case 257:
			h = v
		}
	}
	return w, h
}

// jpegComplete walks a JPEG's markers, through every scan's entropy-coded data, and reports whether
// it reaches the end-of-image marker. Bytes after it (a phone's "motion photo" video) are allowed.
func jpegComplete(r *bufio.Reader) bool {
	if b, err := r.Peek(2); err != nil || b[0] != 0xff || b[1] != 0xd8 {
		return false
	}
	r.Discard(2)
	sawFF := false // the 0xFF of the next marker was consumed by a scan
	for {
		if !sawFF {
			b, err := r.ReadByte()
			if err != nil {
				return false
			}
			if b != 0xff {
				continue // stray byte between segments; decoders skip these too
			}
		}
		sawFF = false
		m, err := r.ReadByte()
		for err == nil && m == 0xff {
			m, err = r.ReadByte()
		}
		if err != nil {
			return false
		}
		switch {
		case m == 0xd9:
			return true
		case m == 0x00, m == 0x01, m >= 0xd0 && m <= 0xd7:
			continue
		}
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return false
		}
		n := int(binary.BigEndian.Uint16(l[:])) - 2
		if n < 0 && (m >= 0xe0 && m <= 0xef || m == 0xfe) {
			n = 0 // an APPn segment or comment with a bogus length: libjpeg reads it as empty
		}
		if n < 0 {
			return false
		}
		if k, err := r.Discard(n); err != nil || k != n {
			return false
		}
		if m == 0xda {
			// Entropy-coded data follows a scan header: FF is stuffed as FF 00 and restart markers
			// are FF D0-D7, so the first other FF xx ends the scan.
			for !sawFF {
				b, err := r.ReadByte()
				if err != nil {
					return false
				}
				if b != 0xff {
					continue
				}
				nb, err := r.Peek(1)
				if err != nil {
					return false
				}
				switch {
				case nb[0] == 0x00, nb[0] >= 0xd0 && nb[0] <= 0xd7:
					r.Discard(1)
				case nb[0] != 0xff:
					sawFF = true
				}
			}
		}
	}
}

// webpSize returns the size of the picture a WebP decodes to. Its first chunk may be a VP8X
// header whose canvas size is only a claim: the image chunk after it (VP8 or VP8L) holds the size
// the decoder allocates, so it is read too, and a file whose two sizes differ is refused (libwebp
// refuses it as well), so a small canvas cannot smuggle a huge bitstream past the pixel cap.
// Animated WebP is refused: ffmpeg cannot decode it, and a user would rather hear so now than see a
// failed job.
func webpSize(f *os.File) (int, int, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	broken := badMedia("image: the WebP is truncated or damaged; upload the whole file")
	var hdr [12]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil || int64(binary.LittleEndian.Uint32(hdr[4:8]))+8 > fi.Size() {
		return 0, 0, broken
	}
	canvasW, canvasH := 0, 0
	for off := int64(12); ; {
		var ch [8 + 10]byte
		n, _ := f.ReadAt(ch[:], off)
		if n < 8 {
			return 0, 0, broken
		}
		size := int64(binary.LittleEndian.Uint32(ch[4:8]))
		d := ch[8:n]
		switch string(ch[:4]) {
		case "VP8X":
			if len(d) < 10 {
				return 0, 0, broken
			}
			if d[0]&0x02 != 0 {
				return 0, 0, unsupportedMedia("image: animated WebP is not supported; send a still image (JPEG, PNG or a still WebP)")
			}
			canvasW = int(d[4]) | int(d[5])<<8 | int(d[6])<<16 + 1
			canvasH = int(d[7]) | int(d[8])<<8 | int(d[9])<<16 + 1
		case "VP8L", "VP8 ":
			w, h, ok := webpBitstreamSize(string(ch[:4]), d)
			if !ok || canvasW != 0 && (w != canvasW || h != canvasH) {
				return 0, 0, broken
			}
			return w, h, nil
		}
		off += 8 + size + size&1 // chunks are padded to an even size
		if off >= fi.Size() {
			return 0, 0, broken
		}
	}
}

// webpBitstreamSize reads the picture size from the start of a VP8L or VP8 chunk's data.
func webpBitstreamSize(kind string, d []byte) (w, h int, ok bool) {
	if kind == "VP8L" {
		if len(d) < 5 || d[0] != 0x2f {
			return 0, 0, false
		}
		v := binary.LittleEndian.Uint32(d[1:5])
		return int(v&0x3fff) + 1, int((v>>14)&0x3fff) + 1, true
	}
	if len(d) < 10 || d[3] != 0x9d || d[4] != 0x01 || d[5] != 0x2a {
		return 0, 0, false
	}
	w, h = int(binary.LittleEndian.Uint16(d[6:8])&0x3fff), int(binary.LittleEndian.Uint16(d[8:10])&0x3fff)
	return w, h, w > 0 && h > 0 // a lossy frame's size is stored as is: 0 is no picture
}
