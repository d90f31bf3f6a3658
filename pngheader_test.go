package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"testing"

	"vidgen/internal/media"
)

// goPNGSize is how the upload read a PNG's size before the walk of its chunks did: Go's
// DecodeConfig, deep when its colour model holds 16 bits a channel. The walk (media.ReadPNGLayout's
// HeaderErr) must say what it said.
func goPNGSize(b []byte) (w, h int, deep bool, err error) {
	cfg, err := png.DecodeConfig(bufio.NewReader(bytes.NewReader(b)))
	switch cfg.ColorModel {
	case color.RGBA64Model, color.NRGBA64Model, color.Gray16Model:
		deep = true
	}
	return cfg.Width, cfg.Height, deep, err
}

// TestPNGHeaderAsGoReadsIt: a PNG's header is read in the upload's one walk of its chunks as Go's
// DecodeConfig read it before: the same size and depth, or the same refusal word for word ("could
// not be read (…)"), for each class of broken header. Each case also names what it must give, so
// the test cannot pass by agreeing with a broken oracle.
func TestPNGHeaderAsGoReadsIt(t *testing.T) {
	t.Parallel()
	ihdr := func(w, h uint32, depth, ctype byte, rest ...byte) []byte {
		return rawPNGChunk("IHDR", append(pngIHDR(w, h, depth, ctype)[:10], append(rest, 0, 0, 0)[:3]...))
	}
	badCRC := func(chunk []byte) []byte {
		b := bytes.Clone(chunk)
		b[len(b)-1] ^= 1
		return b
	}
	rgb, pal := ihdr(3, 2, 8, 2), ihdr(3, 2, 8, 3)
	plte, trns := rawPNGChunk("PLTE", []byte{1, 2, 3, 4, 5, 6}), rawPNGChunk("tRNS", []byte{0})
	idat, iend := onePixelIDAT(), rawPNGChunk("IEND", nil)
	text := rawPNGChunk("tEXt", []byte("Comment\x00hi"))
	over := binary.BigEndian.AppendUint32(nil, 0x80000000) // a chunk header whose length is over 2^31-1
	for _, c := range []struct {
		name string
		file []byte
		want string // the refusal's reason; "" for a header that reads
		deep bool
	}{
		{"RGB", pngFile(rgb, idat, iend), "", false},
		{"16-bit RGBA", pngFile(ihdr(3, 2, 16, 6), idat, iend), "", true},
		{"16-bit grey", pngFile(ihdr(3, 2, 16, 0), idat, iend), "", true},
		{"RGB, a text with a bad CRC after the header", pngFile(rgb, badCRC(text), idat, iend), "", false},
		{"paletted", pngFile(pal, plte, idat, iend), "", false},
		{"paletted, transparent", pngFile(pal, text, plte, trns, idat, iend), "", false},
		{"paletted, an image data chunk over 2^31-1", pngFile(pal, plte, append(over, "IDAT"...)), "", false},
		{"header's CRC wrong", pngFile(badCRC(rgb), idat, iend), "png: invalid format: invalid checksum", false},
		{"cut before the header's CRC", pngFile(rgb)[:8+8+13], "unexpected EOF", false},
		{"compression method 1", pngFile(ihdr(3, 2, 8, 2, 1), idat, iend), "png: unsupported feature: compression method", false},
		{"filter method 1", pngFile(ihdr(3, 2, 8, 2, 0, 1), idat, iend), "png: unsupported feature: filter method", false},
		{"interlace method 2", pngFile(ihdr(3, 2, 8, 2, 0, 0, 2), idat, iend), "png: invalid format: invalid interlace method", false},
		{"width 0", pngFile(ihdr(0, 2, 8, 2), idat, iend), "png: invalid format: non-positive dimension", false},
		{"height over 2^31-1", pngFile(ihdr(3, 0x80000000, 8, 2), idat, iend), "png: invalid format: non-positive dimension", false},
		{"2^31-1 square", pngFile(ihdr(0x7fffffff, 0x7fffffff, 8, 2), idat, iend), "png: unsupported feature: dimension overflow", false},
		{"16-bit paletted", pngFile(ihdr(3, 2, 16, 3), idat, iend), "png: unsupported feature: bit depth 16, color type 3", false},
		{"colour type 5", pngFile(ihdr(3, 2, 8, 5), idat, iend), "png: unsupported feature: bit depth 8, color type 5", false},
		{"paletted without a palette", pngFile(pal, idat, iend), "png: invalid format: chunk out of order", false},
		{"transparency before the palette", pngFile(pal, trns, plte, idat, iend), "png: invalid format: chunk out of order", false},
		{"two palettes", pngFile(pal, plte, plte, idat, iend), "png: invalid format: chunk out of order", false},
		{"paletted, IEND first", pngFile(pal, iend), "png: invalid format: chunk out of order", false},
		{"palette of 4 bytes", pngFile(pal, rawPNGChunk("PLTE", []byte{1, 2, 3, 4}), idat, iend), "png: invalid format: bad PLTE length", false},
		{"palette over the depth", pngFile(ihdr(3, 2, 1, 3), rawPNGChunk("PLTE", make([]byte, 9)), idat, iend), "png: invalid format: bad PLTE length", false},
		{"palette's CRC wrong", pngFile(pal, badCRC(plte), idat, iend), "png: invalid format: invalid checksum", false},
		{"a text with a bad CRC before the palette", pngFile(pal, badCRC(text), plte, idat, iend), "png: invalid format: invalid checksum", false},
		{"transparency of 257 entries", pngFile(pal, plte, rawPNGChunk("tRNS", make([]byte, 257)), idat, iend), "png: invalid format: bad tRNS length", false},
		{"a chunk over 2^31-1 before the palette", pngFile(pal, append(over, "tEXt"...)), "png: invalid format: Bad chunk length: 2147483648", false},
		{"cut in the palette", pngFile(pal, plte)[:8+25+10], "unexpected EOF", false},
		{"paletted, cut after the header", pngFile(pal), "unexpected EOF", false},
	} {
		_, _, _, goErr := goPNGSize(c.file)
		if (goErr == nil) != (c.want == "") || goErr != nil && goErr.Error() != c.want {
			t.Fatalf("%s: Go's DecodeConfig says %v, the case wants %q: the fixture is not of its class", c.name, goErr, c.want)
		}
		path := writeFixture(t, "header.png", c.file)
		hdr, err := inspectImage(path, media.PNG)
		if c.want == "" {
			if err != nil || hdr.w != 3 || hdr.h != 2 || hdr.deep != c.deep {
				t.Errorf("%s: %+v, %v; want 3×2, deep %v", c.name, hdr, err, c.deep)
			}
			continue
		}
		if want := unreadableImage(media.PNG, goErr).Error(); err == nil || err.Error() != want || kindOf(err) != kindInvalid {
			t.Errorf("%s: %v; want %q (400)", c.name, err, want)
		}
	}
}

// BenchmarkInspectPNG measures the upload's read of a photo-sized PNG's header (inspectImage): its
// chunk layout, its size and depth.
func BenchmarkInspectPNG(b *testing.B) {
	img := image.NewNRGBA(image.Rect(0, 0, 1000, 750))
	rng := rand.New(rand.NewPCG(1, 2)) // noise: a file as large as a photo's
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.UintN(256))
	}
	path := writeFixture(b, "photo.png", encodePNG(b, img))
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inspectImage(path, media.PNG); err != nil {
			b.Fatal(err)
		}
	}
}
