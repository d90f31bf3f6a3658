package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/gif"
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
// absent: ffmpeg never reads them, they are turned into PNG at upload (see prepareInspected).
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

// imageHeader is what inspectImage read of an image's header: its size, and whether it may hold
// 16 bits a channel (deep), as imageSize gives them; for a JPEG, also what the walk of its markers
// found (whether it is stored as RGB, where its first image ends) and for a PNG where its IEND
// ends (0: none), for prepareInspected.
type imageHeader struct {
	w, h   int
	deep   bool
	jpeg   media.JPEGHeader
	pngEnd int64
	heif   media.HEIFPictures // a HEIC's or AVIF's pictures, as heif-convert will decode them
}

// inspectImage validates the image at path, of sniffed type typ, without decoding its pixels: the
// header's dimensions against maxPixels, a JPEG's or WebP's structure against truncation, a HEIC's
// or AVIF's pictures against what heif-convert may decode (heifBudget), and a PNG's chunk
// layout (media.ReadPNGLayout: one header, first, and a bounded chunk count), read in the same
// walk of its chunks as its header. The rest of a PNG's
// structure (checksums, a missing IEND) is prepareInspected's to judge: browsers show some PNGs
// that break those rules. It returns the header it read, so that the upload weighs the picture
// (headerCost) and prepares it (prepareInspected) without reading the header again. A HEIC's or
// AVIF's structure is walked once, for its size and for what heif-convert may decode; a JPEG's
// markers are walked once, for its size, its structure and what the upload's preparation needs
// (media.ReadJPEGHeader).
func inspectImage(path, typ string) (imageHeader, error) {
	var hdr imageHeader
	var err error
	switch typ {
	case media.HEIC, media.AVIF:
		hdr.heif, err = heifPicturesAt(path, typ)
		hdr.w, hdr.h, hdr.deep = hdr.heif.Width, hdr.heif.Height, true
	case media.JPEG:
		hdr.jpeg, err = readJPEGHeader(path)
		if err == nil && hdr.jpeg.FrameErr != nil {
			err = unreadableImage(typ, hdr.jpeg.FrameErr)
		}
		hdr.w, hdr.h = hdr.jpeg.Width, hdr.jpeg.Height
	case media.PNG:
		var l media.PNGLayout
		l, err = checkPNGLayout(path)
		if err == nil && l.HeaderErr != nil {
			err = unreadableImage(typ, l.HeaderErr)
		}
		hdr.pngEnd, hdr.w, hdr.h, hdr.deep = l.End, l.Width, l.Height, l.BitDepth == 16
	default:
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
	switch typ {
	case media.HEIC, media.AVIF:
		return hdr, heifBudget(hdr.heif, typ)
	case media.JPEG:
		if !hdr.jpeg.Complete {
			return imageHeader{}, badMedia("image: the %s is truncated or damaged; upload the whole file", typeName(typ))
		}
	}
	return hdr, nil
}

// readJPEGHeader is media.ReadJPEGHeader of the JPEG at path.
func readJPEGHeader(path string) (media.JPEGHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return media.JPEGHeader{}, err
	}
	defer f.Close()
	return media.ReadJPEGHeader(f), nil
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
	case media.JPEG:
		w, h, err := media.ReadJPEGFrame(f)
		if err != nil {
			return 0, 0, false, unreadable(err)
		}
		return w, h, false, nil // a frame header that reads is of 8 bits a channel
	case media.PNG, media.GIF:
		decode := map[string]func(io.Reader) (image.Config, error){media.PNG: png.DecodeConfig, media.GIF: gif.DecodeConfig}[typ]
		cfg, err := decode(bufio.NewReader(f))
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
		w, h = media.TIFFSize(f)
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

// webpSize is media.WebPSize of the WebP f, its errors made the service's refusals.
func webpSize(f *os.File) (int, int, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	w, h, err := media.WebPSize(f, fi.Size())
	switch {
	case errors.Is(err, media.ErrWebPAnimated):
		return 0, 0, unsupportedMedia("image: animated WebP is not supported; send a still image (JPEG, PNG or a still WebP)")
	case errors.Is(err, media.ErrWebPDamaged):
		return 0, 0, badMedia("image: the WebP is truncated or damaged; upload the whole file")
	}
	return w, h, err
}
