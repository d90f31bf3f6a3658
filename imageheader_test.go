package main

import (
	"image"
	"testing"

	"vidgen/internal/media"
	"vidgen/internal/media/heiftest"
)

// TestInspectImageHeader: the header inspectImage reads once at upload, to check the picture and
// to weigh it, is the one imageSize reads, and the weight made from it (headerCost) is pictureCost,
// for every image type, 16-bit PNGs and HEIF grids included.
func TestInspectImageHeader(t *testing.T) {
	t.Parallel()
	deep := image.NewNRGBA64(image.Rect(0, 0, 24, 10))
	for _, c := range []struct {
		name string
		file []byte
		typ  string
		w, h int
		deep bool
	}{
		{"a.jpg", encodeJPEG(t, quad(40, 30)), media.JPEG, 40, 30, false},
		{"a.png", encodePNG(t, quad(40, 30)), media.PNG, 40, 30, false},
		{"deep.png", encodePNG(t, deep), media.PNG, 24, 10, true},
		{"a.gif", paletteGIF(t, quad(40, 30)), media.GIF, 40, 30, false},
		{"a.tiff", encodeWith(t, tiffEncode, quad(40, 30)), media.TIFF, 40, 30, true},
		{"a.webp", readFile(t, fixture(t, "img.webp")), media.WebP, 320, 240, false},
		{"a.bmp", readFile(t, fixture(t, "img.bmp")), media.BMP, 320, 240, false},
		{"grid.heic", heiftest.HEVCGrid(2, 2, 64, 16), media.HEIC, 128, 128, true},
	} {
		path := writeFixture(t, c.name, c.file)
		hdr, err := inspectImage(path, c.typ)
		w, h, deep, sizeErr := imageSize(path, c.typ)
		switch {
		case err != nil || sizeErr != nil:
			t.Errorf("%s: %v, %v", c.name, err, sizeErr)
		case hdr.w != w || hdr.h != h || hdr.deep != deep || w != c.w || h != c.h || deep != c.deep:
			t.Errorf("%s: inspectImage read %+v, imageSize %d×%d deep %v, want %d×%d deep %v", c.name, hdr, w, h, deep, c.w, c.h, c.deep)
		case headerCost(hdr, path, c.typ) != pictureCost(path, c.typ):
			t.Errorf("%s: headerCost %d, pictureCost %d", c.name, headerCost(hdr, path, c.typ), pictureCost(path, c.typ))
		}
	}
}
