package main

import (
	"bytes"
	"encoding/binary"
	"image/png"
	"testing"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
)

// TestUploadTurnsRGBJPEG: a JPEG stored as RGB (components R, G, B), which the upload rewrites as
// a PNG in Go, comes out turned as the EXIF orientation that the upload's one walk of its header
// read (6: a quarter turn clockwise), and that walk agrees with jpegOrientation.
func TestUploadTurnsRGBJPEG(t *testing.T) {
	t.Parallel()
	jpg := rgbJPEG(64, 32, corpusPicture, "ids")
	jpg = withOrientation(jpg, 6, binary.LittleEndian)
	path := writeFixture(t, "rgb.jpg", jpg)
	hdr, err := inspectImage(path, media.JPEG)
	if err != nil {
		t.Fatal(err)
	}
	if !hdr.jpeg.RGB || hdr.jpeg.Orientation != 6 || jpegOrientation(jpg) != 6 {
		t.Fatalf("header %+v, jpegOrientation %d; want RGB, orientation 6", hdr.jpeg, jpegOrientation(jpg))
	}
	tl := ffmpeg.Tools{FFmpeg: "ffmpeg", FFprobe: "ffprobe"}
	typ, err := prepareInspected(t.Context(), tl, newDecodeGate(), path, media.JPEG, hdr)
	if err != nil || typ != media.PNG {
		t.Fatalf("prepareInspected: %q, %v; want a PNG", typ, err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(readFile(t, path)))
	if err != nil || cfg.Width != 32 || cfg.Height != 64 {
		t.Fatalf("the PNG is %d×%d (%v), want 32×64: turned a quarter", cfg.Width, cfg.Height, err)
	}
}
