package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
)

// The fidelity matrix: every picture is generated here, rendered by the real service, and one frame
// of the output is decoded and compared with the picture a person would see.

var (
	red    = color.NRGBA{255, 0, 0, 255}
	green  = color.NRGBA{0, 255, 0, 255}
	blue   = color.NRGBA{0, 0, 255, 255}
	yellow = color.NRGBA{255, 255, 0, 255}
	white  = color.NRGBA{255, 255, 255, 255}
)

// quadrants returns a w×h picture of four colours: top-left, top-right, bottom-left, bottom-right.
func quadrants(w, h int, tl, tr, bl, br color.Color) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := tl
			switch {
			case x >= w/2 && y < h/2:
				c = tr
			case x < w/2 && y >= h/2:
				c = bl
			case x >= w/2 && y >= h/2:
				c = br
			}
			img.Set(x, y, c)
		}
	}
	return img
}

func quad(w, h int) *image.NRGBA { return quadrants(w, h, red, green, blue, yellow) }

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withOrientation inserts an APP1 Exif segment whose IFD0 holds Orientation o right after the SOI.
func withOrientation(jpg []byte, o uint16, order binary.ByteOrder) []byte {
	var tiff bytes.Buffer
	if order == binary.BigEndian {
		tiff.WriteString("MM")
	} else {
		tiff.WriteString("II")
	}
	binary.Write(&tiff, order, uint16(42))
	binary.Write(&tiff, order, uint32(8)) // IFD0 right after the header
	binary.Write(&tiff, order, uint16(2)) // two entries, orientation second
	for _, e := range []struct{ tag, typ, val uint16 }{{0x0128, 3, 2}, {0x0112, 3, o}} {
		binary.Write(&tiff, order, e.tag)
		binary.Write(&tiff, order, e.typ)
		binary.Write(&tiff, order, uint32(1))
		binary.Write(&tiff, order, e.val)
		binary.Write(&tiff, order, uint16(0))
	}
	binary.Write(&tiff, order, uint32(0))
	payload := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	seg := []byte{0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(payload)+2))
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	out = append(out, payload...)
	return append(out, jpg[2:]...)
}

// oriented returns img as displayed under EXIF orientation o.
func oriented(img image.Image, o int) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	out := image.NewNRGBA(image.Rect(0, 0, dw, dh))
	for y := range dh {
		for x := range dw {
			sx, sy := x, y
			switch o {
			case 2:
				sx = w - 1 - x
			case 3:
				sx, sy = w-1-x, h-1-y
			case 4:
				sy = h - 1 - y
			case 5:
				sx, sy = y, x
			case 6:
				sx, sy = y, h-1-x
			case 7:
				sx, sy = w-1-y, h-1-x
			case 8:
				sx, sy = w-1-y, x
			}
			out.Set(x, y, img.At(b.Min.X+sx, b.Min.Y+sy))
		}
	}
	return out
}

// overWhite flattens img over white, as the service does with transparency.
func overWhite(img image.Image) image.Image {
	b := img.Bounds()
	out := image.NewNRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA() // premultiplied, 16-bit
			inv := 0xffff - a
			out.Set(x, y, color.NRGBA64{uint16(r + inv), uint16(g + inv), uint16(bl + inv), 0xffff})
		}
	}
	return out
}

// withTRNS inserts a tRNS chunk holding key (the transparent colour, 16 bits a sample) after the IHDR
// of a PNG made by image/png.
func withTRNS(png []byte, key []byte) []byte {
	c := binary.BigEndian.AppendUint32(nil, uint32(len(key)))
	c = append(append(c, "tRNS"...), key...)
	c = binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[4:]))
	const afterIHDR = 8 + 4 + 4 + 13 + 4
	return append(append(append([]byte{}, png[:afterIHDR]...), c...), png[afterIHDR:]...)
}

// cmykJPEG writes a baseline 4-component JPEG of solid 8×8 blocks, as Photoshop does: Adobe APP14
// with transform 0 (CMYK, stored inverted) or 2 (YCCK). px gives each pixel's ink (C, M, Y, K,
// 0 = none); every 8×8 block must be one colour, so each block is its DC coefficient alone.
func cmykJPEG(w, h int, transform byte, px func(x, y int) [4]byte) []byte {
	var b bytes.Buffer
	seg := func(marker byte, data []byte) {
		b.Write([]byte{0xff, marker, byte((len(data) + 2) >> 8), byte(len(data) + 2)})
		b.Write(data)
	}
	b.Write([]byte{0xff, 0xd8})
	seg(0xee, append([]byte("Adobe\x00\x64\x00\x00\x00\x00"), transform))
	seg(0xdb, append([]byte{0}, bytes.Repeat([]byte{8}, 64)...)) // DC of a solid block = sample-128
	seg(0xc0, []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 4, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 4, 0x11, 0})
	dcBits := []byte{0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0}
	dht := append([]byte{0x00}, dcBits...)
	dht = append(dht, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
	dht = append(dht, 0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00) // AC: EOB only, code "0"
	seg(0xc4, dht)
	seg(0xda, []byte{4, 1, 0x00, 2, 0x00, 3, 0x00, 4, 0x00, 0, 63, 0})
	scan := newDCScan(&b, dcBits)
	var prev [4]int
	for by := 0; by < h; by += 8 {
		for bx := 0; bx < w; bx += 8 {
			ink := px(bx, by)
			var s [4]int
			switch transform {
			case 0:
				for c := range 4 {
					s[c] = 255 - int(ink[c])
				}
			case 2: // YCCK: the stored (inverted) C, M, Y are 255 minus an RGB triple stored as YCbCr
				r, g, bl := float64(ink[0]), float64(ink[1]), float64(ink[2])
				s[0] = int(0.299*r + 0.587*g + 0.114*bl + 0.5)
				s[1] = int(-0.168736*r - 0.331264*g + 0.5*bl + 128.5)
				s[2] = int(0.5*r - 0.418688*g - 0.081312*bl + 128.5)
				s[3] = 255 - int(ink[3])
			}
			for c := range 4 {
				v := max(0, min(255, s[c])) - 128
				scan.block(v - prev[c])
				prev[c] = v
			}
		}
	}
	scan.flush()
	b.Write([]byte{0xff, 0xd9})
	return b.Bytes()
}

// slowSkip is why a slow case is skipped in the fast suite: it runs under make e2e.
func slowSkip() string {
	if fullMatrix {
		return ""
	}
	return "slow: runs under make e2e"
}

// dcScan writes the entropy-coded data of a baseline JPEG scan whose blocks hold a DC value only (a
// flat colour each), coded with the DC table dcBits (symbols 0-11) and an AC table whose one code,
// "0", is end-of-block.
type dcScan struct {
	b     *bytes.Buffer
	codes [12]struct{ code, n uint32 }
	acc   uint32
	n     uint32 // bits in acc
}

func newDCScan(b *bytes.Buffer, dcBits []byte) *dcScan {
	s := &dcScan{b: b}
	code, sym := uint32(0), 0 // the canonical codes, shortest first
	for l, count := range dcBits {
		for range count {
			s.codes[sym] = struct{ code, n uint32 }{code, uint32(l + 1)}
			code++
			sym++
		}
		code <<= 1
	}
	return s
}

// put writes the n low bits of v, most significant first, stuffing a zero byte after each 0xff.
func (s *dcScan) put(v, n uint32) {
	for i := int(n) - 1; i >= 0; i-- {
		s.acc = s.acc<<1 | (v>>uint(i))&1
		s.n++
		if s.n == 8 {
			s.b.WriteByte(byte(s.acc))
			if s.acc == 0xff {
				s.b.WriteByte(0)
			}
			s.acc, s.n = 0, 0
		}
	}
}

// block writes one block: its DC difference from the previous block of its component, then the end
// of block.
func (s *dcScan) block(diff int) {
	cat, bits := 0, diff
	for a := diff; a != 0; a /= 2 {
		cat++
	}
	if diff < 0 {
		bits = diff + (1 << cat) - 1
	}
	s.put(s.codes[cat].code, s.codes[cat].n)
	s.put(uint32(bits), uint32(cat))
	s.put(0, 1)
}

// flush pads the last byte with 1 bits, as before a marker.
func (s *dcScan) flush() {
	for s.n != 0 {
		s.put(1, 1)
	}
}

func absDiff(a uint32, b uint8) int {
	d := int(a) - int(b)
	return max(d, -d)
}

// ffmpegMake runs ffmpeg with args (the output path last) and fails the test on error.
func ffmpegMake(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ffmpeg", append([]string{"-v", "error", "-y"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

// decodeFrame decodes the first video frame of the MP4 at path to RGB (as a PPM, which carries the size).
func decodeFrame(t testing.TB, path string) (int, int, []byte) {
	t.Helper()
	return decodeFrameAt(t, path, 0)
}

// decodeFrameAt decodes the video frame shown at second at of the MP4 at path, as decodeFrame.
func decodeFrameAt(t testing.TB, path string, at float64) (int, int, []byte) {
	t.Helper()
	args := []string{"-v", "error"}
	if at > 0 {
		args = append(args, "-ss", strconv.FormatFloat(at, 'f', 3, 64))
	}
	out, err := exec.Command("ffmpeg", append(args, "-i", path, "-map", "0:v:0", "-frames:v", "1", "-f", "image2pipe", "-c:v", "ppm", "-")...).Output()
	if err != nil {
		t.Fatalf("decode frame: %v", err)
	}
	var magic string
	var w, h, maxval int
	n, err := fmt.Fscan(bytes.NewReader(out), &magic, &w, &h, &maxval)
	if err != nil || n != 4 || magic != "P6" || maxval != 255 || len(out) < w*h*3 {
		t.Fatalf("decode frame: not an 8-bit PPM: %q", out[:min(len(out), 20)])
	}
	rgb := out[len(out)-w*h*3:]
	return w, h, rgb
}

// comparePicture checks the decoded frame against want: the size and, at the centres of its four
// quadrants and at its centre, the colour (within tol per channel).
func comparePicture(t testing.TB, want image.Image, wantW, wantH, w, h int, rgb []byte, tol int) {
	t.Helper()
	if w != wantW || h != wantH {
		t.Errorf("frame is %dx%d, want %dx%d", w, h, wantW, wantH)
		return
	}
	b := want.Bounds()
	for _, f := range [][2]float64{{0.25, 0.25}, {0.75, 0.25}, {0.25, 0.75}, {0.75, 0.75}} {
		x, y := int(f[0]*float64(w)), int(f[1]*float64(h))
		got := rgb[(y*w+x)*3 : (y*w+x)*3+3]
		c := color.NRGBAModel.Convert(want.At(b.Min.X+int(f[0]*float64(b.Dx())), b.Min.Y+int(f[1]*float64(b.Dy())))).(color.NRGBA)
		exp := []byte{c.R, c.G, c.B}
		for i := range 3 {
			if d := int(got[i]) - int(exp[i]); d > tol || d < -tol {
				t.Errorf("pixel at (%d,%d): got rgb%v, want rgb%v", x, y, got, exp)
				break
			}
		}
	}
}

// renderPicture validates image as an upload is validated, renders it with the real renderer over
// a short audio, and returns the output's first frame.
func renderPicture(t testing.TB, e *testEnv, path string) (int, int, []byte) {
	t.Helper()
	head := readFile(t, path)
	typ := media.SniffImage(head)
	if typ == "" {
		t.Fatalf("%s: not sniffed as an image", filepath.Base(path))
	}
	if err := checkImage(path, typ); err != nil {
		t.Fatalf("checkImage: %v", err)
	}
	id, err := newJobID(time.Now(), e.srv.rand)
	if err != nil {
		t.Fatal(err)
	}
	image := e.srv.dirs.input(id, inputImage)
	copyFile(t, path, image)
	copyFile(t, fixture(t, "short.wav"), e.srv.dirs.input(id, inputAudio))
	typ, err = prepareImage(t.Context(), ffmpeg.Tools{FFmpeg: "ffmpeg", FFprobe: "ffprobe"}, newDecodeGate(), image, typ)
	if err != nil {
		t.Fatalf("prepareImage: %v", err)
	}
	job := Job{ID: id, ImageType: typ, AudioType: media.WAV, AudioCodec: "pcm_s16le//1/16000", AudioDuration: 0.6}
	token, _, err := e.srv.renderer.renderFiles(t.Context(), job)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return decodeFrame(t, e.srv.dirs.output(token, "mp4"))
}

func init() {
	fixtureRecipes["short.wav"] = []string{"-f", "lavfi", "-i", "sine=f=440:d=0.6", "-ac", "1", "-ar", "16000"}
}

// fidelityCase is one picture: the bytes uploaded, the picture expected and its output size.
type fidelityCase struct {
	name       string
	file       func(t *testing.T, dir string) string
	want       image.Image
	wantW      int
	wantH      int
	tol        int
	skipReason string
}

func TestPictureFidelity(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	base := quad(64, 32)
	bytesFile := func(name string, b []byte) func(*testing.T, string) string {
		return func(t *testing.T, dir string) string {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	jpg := encodeJPEG(t, base)
	var cases []fidelityCase
	for o := 1; o <= 8; o++ {
		order := binary.ByteOrder(binary.BigEndian)
		if o%2 == 0 {
			order = binary.LittleEndian
		}
		want := oriented(base, o)
		cases = append(cases, fidelityCase{name: fmt.Sprintf("jpeg-exif-orientation-%d", o),
			file: bytesFile("o.jpg", withOrientation(jpg, uint16(o), order)), want: want,
			wantW: want.Bounds().Dx(), wantH: want.Bounds().Dy()})
	}
	// CMYK: red, green, blue and 50% black, as ink.
	inks := func(x, y int) [4]byte {
		switch {
		case x < 32 && y < 16:
			return [4]byte{0, 255, 255, 0}
		case y < 16:
			return [4]byte{255, 0, 255, 0}
		case x < 32:
			return [4]byte{255, 255, 0, 0}
		}
		return [4]byte{0, 0, 0, 128}
	}
	gray50 := color.NRGBA{127, 127, 127, 255}
	cmykWant := quadrants(64, 32, red, green, blue, gray50)
	// Go's decoder (which follows libjpeg and Photoshop) is the reference for what the fixtures mean.
	for _, tr := range []byte{0, 2} {
		img, err := jpeg.Decode(bytes.NewReader(cmykJPEG(64, 32, tr, inks)))
		if err != nil {
			t.Fatalf("Go cannot decode the CMYK fixture (transform %d): %v", tr, err)
		}
		for _, p := range []image.Point{{16, 8}, {48, 8}, {16, 24}, {48, 24}} {
			r, g, b, _ := img.At(p.X, p.Y).RGBA()
			w := cmykWant.NRGBAAt(p.X, p.Y)
			if d := max(absDiff(r>>8, w.R), absDiff(g>>8, w.G), absDiff(b>>8, w.B)); d > 3 {
				t.Fatalf("CMYK fixture (transform %d) at %v decodes to %d,%d,%d in Go, want %v", tr, p, r>>8, g>>8, b>>8, w)
			}
		}
	}
	cases = append(cases,
		fidelityCase{name: "jpeg-cmyk-adobe", file: bytesFile("cmyk.jpg", cmykJPEG(64, 32, 0, inks)), want: cmykWant, wantW: 64, wantH: 32},
		fidelityCase{name: "jpeg-ycck-adobe", file: bytesFile("ycck.jpg", cmykJPEG(64, 32, 2, inks)), want: cmykWant, wantW: 64, wantH: 32},
	)
	grayQuad := quadrants(64, 32, color.Gray{0}, color.Gray{85}, color.Gray{170}, color.Gray{255})
	grayImg := image.NewGray(grayQuad.Bounds())
	for y := range 32 {
		for x := range 64 {
			grayImg.Set(x, y, grayQuad.At(x, y))
		}
	}
	cases = append(cases,
		fidelityCase{name: "jpeg-grayscale", file: bytesFile("gray.jpg", encodeJPEG(t, grayImg)), want: grayImg, wantW: 64, wantH: 32},
		fidelityCase{name: "png-grayscale", file: bytesFile("gray.png", encodePNG(t, grayImg)), want: grayImg, wantW: 64, wantH: 32},
		fidelityCase{name: "png-rgb", file: bytesFile("rgb.png", encodePNG(t, base)), want: base, wantW: 64, wantH: 32},
	)
	// 16 bits per channel, opaque and with alpha.
	rgb16 := image.NewRGBA64(base.Bounds())
	alpha := quadrants(64, 32, red, color.NRGBA{0, 0, 255, 128}, color.NRGBA{255, 0, 0, 0}, yellow)
	rgba16 := image.NewNRGBA64(base.Bounds())
	for y := range 32 {
		for x := range 64 {
			rgb16.Set(x, y, base.At(x, y))
			rgba16.Set(x, y, alpha.At(x, y))
		}
	}
	cases = append(cases,
		fidelityCase{name: "png-16bit", file: bytesFile("rgb16.png", encodePNG(t, rgb16)), want: base, wantW: 64, wantH: 32},
		fidelityCase{name: "png-16bit-alpha", file: bytesFile("rgba16.png", encodePNG(t, rgba16)), want: overWhite(alpha), wantW: 64, wantH: 32},
		fidelityCase{name: "png-alpha", file: bytesFile("rgba.png", encodePNG(t, alpha)), want: overWhite(alpha), wantW: 64, wantH: 32},
	)
	// Paletted, opaque and with a transparent entry (tRNS) whose stored colour is red.
	pal := color.Palette{red, green, blue, yellow, color.NRGBA{255, 0, 0, 0}}
	paletted := image.NewPaletted(base.Bounds(), pal)
	palAlpha := image.NewPaletted(base.Bounds(), pal)
	for y := range 32 {
		for x := range 64 {
			paletted.Set(x, y, base.At(x, y))
			palAlpha.Set(x, y, base.At(x, y))
			if x < 32 && y >= 16 {
				palAlpha.SetColorIndex(x, y, 4)
			}
		}
	}
	cases = append(cases,
		fidelityCase{name: "png-paletted", file: bytesFile("pal.png", encodePNG(t, paletted)), want: base, wantW: 64, wantH: 32},
		fidelityCase{name: "png-paletted-transparent", file: bytesFile("palt.png", encodePNG(t, palAlpha)), want: overWhite(palAlpha), wantW: 64, wantH: 32},
	)
	// Colour-key transparency (tRNS) in truecolour and grey PNGs: red, and black, are transparent.
	keyed := quadrants(64, 32, white, green, blue, yellow)
	grayKeyed := quadrants(64, 32, white, color.Gray{85}, color.Gray{170}, color.Gray{255})
	cases = append(cases,
		fidelityCase{name: "png-rgb-trns", file: bytesFile("rgbkey.png", withTRNS(encodePNG(t, base), []byte{0, 255, 0, 0, 0, 0})), want: keyed, wantW: 64, wantH: 32},
		fidelityCase{name: "png-gray-trns", file: bytesFile("graykey.png", withTRNS(encodePNG(t, grayImg), []byte{0, 0})), want: grayKeyed, wantW: 64, wantH: 32},
	)
	// WebP from the PNGs above, made by ffmpeg's libwebp.
	webp := func(name, src string, args ...string) func(*testing.T, string) string {
		return func(t *testing.T, dir string) string {
			in := filepath.Join(dir, "src.png")
			var img image.Image = base
			if src == "alpha" {
				img = alpha
			}
			os.WriteFile(in, encodePNG(t, img), 0o644)
			out := filepath.Join(dir, name)
			ffmpegMake(t, append(append([]string{"-i", in}, args...), "-c:v", "libwebp", out)...)
			return out
		}
	}
	cases = append(cases,
		fidelityCase{name: "webp-lossy", file: webp("lossy.webp", "", "-quality", "95"), want: base, wantW: 64, wantH: 32},
		fidelityCase{name: "webp-lossless", file: webp("lossless.webp", "", "-lossless", "1"), want: base, wantW: 64, wantH: 32},
		fidelityCase{name: "webp-lossy-alpha", file: webp("lossya.webp", "alpha", "-pix_fmt", "yuva420p", "-quality", "95"), want: overWhite(alpha), wantW: 64, wantH: 32},
		fidelityCase{name: "webp-lossless-alpha", file: webp("losslessa.webp", "alpha", "-lossless", "1", "-pix_fmt", "bgra"), want: overWhite(alpha), wantW: 64, wantH: 32},
	)
	// Sizes: odd, tiny, and large enough to be downscaled before the long step.
	odd := quad(33, 17)
	tiny := quad(16, 16)
	cases = append(cases,
		fidelityCase{name: "odd-33x17", file: bytesFile("odd.png", encodePNG(t, odd)), want: odd, wantW: 32, wantH: 16},
		fidelityCase{name: "tiny-16x16", file: bytesFile("tiny.png", encodePNG(t, tiny)), want: tiny, wantW: 16, wantH: 16},
		fidelityCase{name: "large-2400x1800", file: func(t *testing.T, dir string) string {
			in := filepath.Join(dir, "small.png")
			os.WriteFile(in, encodePNG(t, quad(40, 30)), 0o644)
			out := filepath.Join(dir, "large.jpg")
			ffmpegMake(t, "-i", in, "-vf", "scale=2400:1800:flags=neighbor", "-q:v", "3", out)
			return out
		}, want: quad(40, 30), wantW: 1920, wantH: 1440},
		fidelityCase{name: "tall-1000x3001", file: func(t *testing.T, dir string) string {
			in := filepath.Join(dir, "small.png")
			os.WriteFile(in, encodePNG(t, quad(10, 30)), 0o644)
			out := filepath.Join(dir, "tall.png")
			ffmpegMake(t, "-i", in, "-vf", "scale=1000:3001:flags=neighbor", out)
			return out
		}, want: quad(10, 30), wantW: 638, wantH: 1920},
	)
	// A camera JPEG: JFIF APP0 first, Exif after it. A motion photo: a JPEG with an MP4 appended.
	cases = append(cases,
		fidelityCase{name: "jpeg-jfif-then-exif-6", file: func(t *testing.T, dir string) string {
			app0 := []byte{0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0}
			exif := withOrientation([]byte{0xff, 0xd8}, 6, binary.BigEndian)[2:]
			b := append(append(append([]byte{0xff, 0xd8}, app0...), exif...), jpg[2:]...)
			out := filepath.Join(dir, "jfif.jpg")
			os.WriteFile(out, b, 0o644)
			return out
		}, want: oriented(base, 6), wantW: 32, wantH: 64},
		fidelityCase{name: "jpeg-motion-photo", file: func(t *testing.T, dir string) string {
			mp4 := filepath.Join(dir, "motion.mp4")
			ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=64x32:r=10:d=1", "-c:v", "mjpeg", "-f", "mp4", mp4)
			b := append(append([]byte{}, jpg...), readFile(t, mp4)...)
			if bytes.Count(b, []byte{0xff, 0xd8, 0xff}) < 2 {
				t.Fatalf("the appended video holds no JPEG markers; the case proves less than meant")
			}
			out := filepath.Join(dir, "motion.jpg")
			os.WriteFile(out, b, 0o644)
			return out
		}, want: base, wantW: 64, wantH: 32},
		// 100 megapixels costs ~20 s here, so it runs only on request.
		fidelityCase{name: "pixel-cap-10000x10000", skipReason: slowSkip(), file: func(t *testing.T, dir string) string {
			in := filepath.Join(dir, "small.png")
			os.WriteFile(in, encodePNG(t, grayImg), 0o644)
			out := filepath.Join(dir, "cap.jpg")
			ffmpegMake(t, "-i", in, "-vf", "scale=10000:10000:flags=neighbor", "-pix_fmt", "gray", "-q:v", "10", out)
			return out
		}, want: grayImg, wantW: 1920, wantH: 1920},
	)
	for _, c := range sampled(cases, matrixSample) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.skipReason != "" {
				t.Skip(c.skipReason)
			}
			path := c.file(t, t.TempDir())
			w, h, rgb := renderPicture(t, e, path)
			tol := c.tol
			if tol == 0 {
				tol = 40
			}
			comparePicture(t, c.want, c.wantW, c.wantH, w, h, rgb, tol)
		})
	}
}

// TestAnimatedWebP: ffmpeg 5.1 cannot decode animated WebP, so it is refused at upload with a 415
// that says so, not accepted into a job that would fail.
func TestAnimatedWebP(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	dir := t.TempDir()
	out := filepath.Join(dir, "anim.webp")
	ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=64x32:r=5:d=0.6", "-c:v", "libwebp_anim", "-loop", "0", out)
	if b := readFile(t, out); !bytes.Contains(b[:64], []byte("VP8X")) || !bytes.Contains(b, []byte("ANMF")) {
		t.Fatalf("fixture is not an animated WebP")
	}
	code, body := e.submit(t, e.key, out, fixture(t, "short.wav"), nil)
	if msg, _ := body["error"].(string); code != 415 || !strings.Contains(msg, "animated WebP") {
		t.Errorf("animated WebP: %d %v", code, body)
	}
}

// audioOut is what ffprobe says of an output's audio stream.
func audioOut(t testing.TB, path string) (codec string, channels, rate int) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "stream=codec_name,channels,sample_rate", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d audio streams: %q", len(lines), out)
	}
	f := strings.Split(lines[0], ",")
	if len(f) != 3 {
		t.Fatalf("ffprobe: %q", out)
	}
	rate, _ = strconv.Atoi(f[1])
	channels, _ = strconv.Atoi(f[2])
	return f[0], channels, rate
}

func TestAudioFidelity(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	dir := t.TempDir()
	picture := filepath.Join(dir, "picture.png")
	os.WriteFile(picture, encodePNG(t, quad(64, 32)), 0o644)
	// A cover that looks nothing like the picture, larger, so a wrong choice shows in size and colour.
	cover := filepath.Join(dir, "cover.png")
	os.WriteFile(cover, encodePNG(t, quadrants(200, 200, white, white, white, white)), 0o644)
	sine := func(d string, extra ...string) []string {
		return append([]string{"-f", "lavfi", "-i", "sine=f=440:d=" + d}, extra...)
	}
	cases := []struct {
		name     string
		args     []string // ffmpeg arguments before the output path
		ext      string
		duration float64 // the true duration, when ffprobe's own figure is not to be trusted
		channels int
		rate     int
	}{
		{"m4a-with-cover", append(sine("1", "-i", cover), "-map", "0", "-map", "1", "-c:a", "aac", "-c:v", "png", "-disposition:v", "attached_pic"), "m4a", 0, 1, 44100},
		{"mp3-with-cover", append(sine("1", "-i", cover), "-map", "0", "-map", "1", "-c:a", "libmp3lame", "-c:v", "png", "-disposition:v", "attached_pic", "-id3v2_version", "3"), "mp3", 0, 1, 44100},
		{"wav-mono-8k", sine("1", "-ac", "1", "-ar", "8000"), "wav", 0, 1, 8000},
		{"mp3-8k-no-id3", sine("1", "-ac", "1", "-ar", "8000", "-c:a", "libmp3lame", "-id3v2_version", "0", "-write_xing", "0"), "mp3", 0, 1, 8000},
		{"wav-stereo-96k", sine("1", "-ac", "2", "-ar", "96000"), "wav", 0, 2, 48000},
		{"m4a-aac-96k", sine("1", "-ac", "2", "-ar", "96000", "-c:a", "aac"), "m4a", 0, 2, 48000},
		{"m4a-5.1", sine("1", "-af", "aformat=channel_layouts=5.1", "-ar", "48000", "-c:a", "aac"), "m4a", 0, 2, 48000},
		{"ogg-5.1", sine("1", "-af", "aformat=channel_layouts=5.1", "-ar", "48000", "-c:a", "libvorbis"), "ogg", 0, 2, 48000},
		{"opus-mono", sine("1", "-ac", "1", "-c:a", "libopus", "-f", "ogg"), "opus", 0, 1, 48000},
		// VBR without a Xing header: 1 s of silence (tiny frames) then 3 s of noise (big frames), so a
		// duration guessed from the first frame's bitrate is far off.
		{"mp3-vbr-no-header", []string{"-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo:d=1", "-f", "lavfi", "-i", "anoisesrc=d=3:r=44100",
			"-filter_complex", "[1]aformat=channel_layouts=stereo[n];[0][n]concat=v=0:a=1", "-c:a", "libmp3lame", "-q:a", "0", "-write_xing", "0", "-id3v2_version", "0"}, "mp3", 4, 2, 44100},
	}
	for _, c := range sampled(cases, matrixSample) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			audio := filepath.Join(t.TempDir(), "audio."+c.ext)
			ffmpegMake(t, append(c.args, audio)...)
			if strings.Contains(c.name, "cover") {
				out, _ := exec.Command("ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "stream=codec_name", "-of", "csv=p=0", audio).Output()
				if len(bytes.TrimSpace(out)) == 0 {
					t.Fatalf("the fixture holds no cover picture; the case proves less than meant")
				}
			}
			want := c.duration
			if want == 0 {
				want = mediaDuration(t, audio)
			} else if got := mediaDuration(t, audio); got > want-0.3 && got < want+0.3 {
				t.Fatalf("ffprobe already gets %.3f s right; the case proves less than meant", got)
			}
			key := e.newKey(t, t.Name())
			id := e.mustSubmit(t, key, picture, audio)
			st := e.wait(t, key, id, StatusCompleted)
			video, _ := download(t, st["outputVideo"].(string))
			path := writeFixture(t, "out.mp4", video)
			p := ffprobe(t, path)
			if p.Duration < want-0.1 || p.Duration > want+0.1 {
				t.Errorf("duration %.3f s, want %.3f s", p.Duration, want)
			}
			codec, channels, rate := audioOut(t, path)
			if codec != "aac" || channels != c.channels || rate != c.rate {
				t.Errorf("audio %s %d ch %d Hz, want aac %d ch %d Hz", codec, channels, rate, c.channels, c.rate)
			}
			// One video stream, and it is the picture, not the cover.
			out, _ := exec.Command("ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "stream=index", "-of", "csv=p=0", path).Output()
			if n := len(strings.Fields(string(out))); n != 1 {
				t.Errorf("%d video streams", n)
			}
			w, h, rgb := decodeFrame(t, path)
			comparePicture(t, quad(64, 32), 64, 32, w, h, rgb, 40)
		})
	}
}

// TestPlaylistsNeverRead uploads playlists posing as audio (and as an image) that point at a local
// canary file and at an HTTP listener: each is refused at upload, no job exists, the listener is never
// connected to and the canary never opened (watched with inotify). A control run of ffprobe without
// vidgen's restrictions shows the same playlist would reach both.
func TestPlaylistsNeverRead(t *testing.T) {
	t.Parallel()
	addr, conns := countingListener(t, "127.0.0.1:0")
	url := "http://" + addr + "/segment.mp3"
	canary := filepath.Join(t.TempDir(), "canary.mp3")
	if err := os.WriteFile(canary, readFile(t, fixture(t, "tone.mp3")), 0o644); err != nil {
		t.Fatal(err)
	}
	ino, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(ino)
	if _, err := syscall.InotifyAddWatch(ino, canary, syscall.IN_OPEN|syscall.IN_ACCESS); err != nil {
		t.Fatal(err)
	}
	canaryOpened := func() bool {
		buf := make([]byte, 4096)
		n, _ := syscall.Read(ino, buf)
		return n > 0
	}
	hls := "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.5,\n" + url +
		"\n#EXTINF:2.5,\n" + canary + "\n#EXT-X-ENDLIST\n"
	id3 := []byte("ID3\x04\x00\x00\x00\x00\x00\x00") // an empty ID3v2 tag: the file sniffs as MP3
	playlists := []struct {
		name   string
		body   string
		status int
	}{
		{"hls.mp3", hls, 415},
		{"bom-hls.mp3", "\ufeff" + hls, 415},
		{"plain.m3u.mp3", canary + "\n" + url + "\n", 415},
		{"concat.mp3", "ffconcat version 1.0\nfile '" + canary + "'\nfile '" + url + "'\n", 415},
		{"sdp.mp3", "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio " + strings.Split(addr, ":")[1] + " RTP/AVP 0\n", 415},
		// Sniffed as MP3 by its tag; the mp3 demuxer, forced, finds no audio in it.
		{"id3-hls.mp3", string(id3) + hls, 400},
	}
	e := newTestEnv(t, nil)
	dir := t.TempDir()
	for _, p := range playlists {
		path := filepath.Join(dir, p.name)
		os.WriteFile(path, []byte(p.body), 0o644)
		if code, body := e.submit(t, e.key, fixture(t, "img.jpg"), path, nil); code != p.status {
			t.Errorf("%s as audio: %d %v, want %d", p.name, code, body, p.status)
		}
		img := filepath.Join(dir, strings.TrimSuffix(p.name, ".mp3")+".jpg")
		os.WriteFile(img, []byte(p.body), 0o644)
		if code, body := e.submit(t, e.key, img, fixture(t, "tone.mp3"), nil); code != 415 {
			t.Errorf("%s as image: %d %v, want 415", p.name, code, body)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the HTTP listener got %d connections", n)
	}
	if canaryOpened() {
		t.Error("the canary file was opened")
	}
	resp, b := e.do(t, "GET", "/api/jobs", e.key, nil)
	if jobs := decodeJSON(t, resp, b)["jobs"].([]any); len(jobs) != 0 {
		t.Errorf("playlists made jobs: %s", b)
	}
	// Control: unrestricted and left to guess the format (which ffmpeg 5.1 does for HLS only from an
	// .m3u8 name), ffprobe follows the playlist to both.
	control := filepath.Join(dir, "control.m3u8")
	os.WriteFile(control, []byte(hls), 0o644)
	exec.Command("ffprobe", "-v", "quiet", "-protocol_whitelist", "file,http,tcp", control).Run()
	// The listener counts a connection when its goroutine accepts it, which can be after ffprobe exits.
	eventually(t, 10*time.Second, func() error {
		if conns.Load() == 0 {
			return errors.New("control: unrestricted ffprobe did not reach the listener; the test proves nothing")
		}
		return nil
	})
	if !canaryOpened() {
		t.Error("control: unrestricted ffprobe did not reach the canary; the test proves nothing")
	}
}

// TestFFmpegInvocations records every ffmpeg and ffprobe run of an upload and a render: each has
// -protocol_whitelist file, an explicit input format before every input, ffmpeg has -nostdin, and
// every path is a server-made one inside the data directory (outputs written under tmp/).
func TestFFmpegInvocations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Each call writes its own record file, whole, then renames it into calls/: the image and audio
	// probes run side by side, and lines appended to one shared log would interleave.
	log := filepath.Join(dir, "calls")
	if err := os.Mkdir(log, 0o755); err != nil {
		t.Fatal(err)
	}
	wrap := func(tool string) string {
		real, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, tool)
		script := fmt.Sprintf("#!/bin/sh\nrec=$(mktemp %q)\n{ echo '@@ %s'; for a; do printf '%%s\\n' \"$a\"; done; } > \"$rec\"\nmv \"$rec\" \"$rec.call\"\nexec %q \"$@\"\n",
			filepath.Join(log, "rec.XXXXXXXX"), tool, real)
		if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg := testConfig(t.TempDir())
	cfg.FFmpeg, cfg.FFprobe = wrap("ffmpeg"), wrap("ffprobe")
	e := newTestEnv(t, &cfg)
	for _, audio := range []string{"tone.mp3", "tone.m4a"} {
		key := e.newKey(t, audio)
		id := e.mustSubmit(t, key, fixture(t, "img.png"), fixture(t, audio))
		e.wait(t, key, id, StatusCompleted)
	}
	// A moving picture runs ffmpeg differently (a lossless still, then a filter graph that reads the
	// captions): it keeps the same rules.
	key := e.newKey(t, "moving")
	body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.mp3"),
		"captions": writeFixture(t, "c.srt", []byte("1\n00:00:00,000 --> 00:00:01,000\nHi\n"))}, map[string]string{"waveform": "bars"})
	resp, b := e.do(t, "POST", "/api/jobs", key, body, "Content-Type", ctype)
	if resp.StatusCode != 201 {
		t.Fatalf("submit: %d %s", resp.StatusCode, b)
	}
	e.wait(t, key, decodeJSON(t, resp, b)["jobId"].(string), StatusCompleted)
	var calls [][]string
	recs, err := filepath.Glob(filepath.Join(log, "*.call"))
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		lines := strings.Split(strings.TrimSuffix(string(readFile(t, rec)), "\n"), "\n")
		tool, ok := strings.CutPrefix(lines[0], "@@ ")
		if !ok {
			t.Fatalf("record %s starts with %q", rec, lines[0])
		}
		calls = append(calls, append([]string{tool}, lines[1:]...))
	}
	if len(calls) < 6 {
		t.Fatalf("%d calls recorded", len(calls))
	}
	dataDir := e.srv.cfg.DataDir + "/"
	for _, c := range calls {
		tool, args := c[0], c[1:]
		joined := strings.Join(args, " ")
		if !strings.Contains(joined, "-protocol_whitelist file ") {
			t.Errorf("%s without -protocol_whitelist file: %q", tool, joined)
		}
		if tool == "ffmpeg" && !slices.Contains(args, "-nostdin") {
			t.Errorf("ffmpeg without -nostdin: %q", joined)
		}
		inputs := 0
		for i, a := range args {
			if a == "-i" {
				inputs++
				if i < 2 || args[i-2] != "-f" || !slices.Contains(append(slices.Collect(maps.Values(demuxer)), "mp4"), args[i-1]) {
					t.Errorf("%s input %q without an explicit format just before it: %q", tool, args[i+1], joined)
				}
			}
			if strings.Contains(a, "://") || strings.HasPrefix(a, "http") {
				t.Errorf("%s argument %q names a URL", tool, a)
			}
			if p, ok := strings.CutPrefix(a, "file:"); ok {
				if !strings.HasPrefix(p, dataDir) {
					t.Errorf("%s opens %q, outside the data directory", tool, p)
				}
				if i > 0 && args[i-1] != "-i" && tool == "ffmpeg" && !strings.HasPrefix(p, dataDir+"tmp/") {
					t.Errorf("ffmpeg writes %q, not under tmp/", p)
				}
			}
		}
		if tool == "ffprobe" && (!slices.Contains(args, "-f") || !strings.HasPrefix(args[len(args)-1], "file:")) {
			t.Errorf("ffprobe without an explicit format or server path: %q", joined)
		}
		if tool == "ffmpeg" && inputs == 0 {
			t.Errorf("ffmpeg with no input: %q", joined)
		}
	}
}

// hangScript writes a stand-in for ffmpeg into dir that records its pid and its child's in dir/pids
// and never finishes: a render that hangs, with a child of its own like ffmpeg's threads.
func hangScript(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "ffmpeg")
	// The upload's decode check (output format null) runs the real ffmpeg: only renders hang.
	// Its own pid first, at once: a render timeout may kill it before it gets further.
	pids := filepath.Join(dir, "pids")
	script := fmt.Sprintf("#!/bin/sh\nfor a; do [ \"$a\" = null ] && exec ffmpeg \"$@\"; done\necho sh $$ >> %q\nsleep 3600 &\necho child $! >> %q\nwait\n", pids, pids)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// hangPids waits until dir/pids lists at least n processes and returns them.
func hangPids(t testing.TB, dir string, n int) []int {
	t.Helper()
	var pids []int
	eventually(t, 20*time.Second, func() error {
		b, _ := os.ReadFile(filepath.Join(dir, "pids"))
		pids = nil
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		if len(pids) < n {
			return fmt.Errorf("the stand-in ffmpeg did not record %d pids: %q", n, b)
		}
		return nil
	})
	return pids
}

// endedPids returns the processes dir/pids lists, for a caller whose renders that ran the stand-in
// ffmpeg have all ended (their jobs FAILED): at least one stand-in must have recorded itself, and
// when needChild, at least one its child (which a render timeout can kill before it is recorded:
// only a test of several attempts can count on one).
func endedPids(t testing.TB, dir string, needChild bool) []int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(dir, "pids"))
	var pids []int
	children := 0
	for _, line := range strings.Split(string(b), "\n") {
		kind, v, _ := strings.Cut(line, " ")
		if pid, err := strconv.Atoi(v); err == nil {
			pids = append(pids, pid)
			if kind == "child" {
				children++
			}
		}
	}
	if len(pids) == 0 || needChild && children == 0 {
		t.Fatalf("the stand-in ffmpeg never ran, or never started its child: pids %q", b)
	}
	return pids
}

// procStat returns a process's state letter, parent pid and nice value, ok false when it is gone.
func procStat(pid int) (state byte, ppid, nice int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, false
	}
	// pid (comm) state ppid ... ; comm may hold spaces, so split after its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ppid, _ = strconv.Atoi(f[1])
	nice, _ = strconv.Atoi(f[16])
	return f[0][0], ppid, nice, true
}

// checkGone fails when a pid is still running 5 s on, or is left a zombie of this process.
func checkGone(t testing.TB, pids []int) {
	t.Helper()
	for _, pid := range pids {
		eventually(t, 5*time.Second, func() error {
			if state, ppid, _, ok := procStat(pid); ok && (state != 'Z' || ppid == os.Getpid()) {
				return fmt.Errorf("process %d left behind: state %c, parent %d (we are %d)", pid, state, ppid, os.Getpid())
			}
			return nil // gone, or dead and reparented (reaping it is init's job)
		})
	}
}

// hungRender starts a service whose ffmpeg hangs, submits a job and returns once its render is
// under way: the job and the stand-in processes, both of them (the picture step and the audio
// encode) with their children.
func hungRender(t testing.TB) (e *testEnv, id string, pids []int) {
	t.Helper()
	dir := t.TempDir()
	cfg := testConfig(t.TempDir())
	cfg.FFmpeg, cfg.Workers = hangScript(t, dir), 1
	e = newTestEnv(t, &cfg)
	id = e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.wav"))
	e.wait(t, e.key, id, StatusProcessing)
	return e, id, hangPids(t, dir, 4)
}

// TestRenderKilledOnShutdown: a hung render runs at lower priority, with its children, writes only
// into tmp/, and on shutdown its whole process group is killed and reaped.
func TestRenderKilledOnShutdown(t *testing.T) {
	t.Parallel()
	e, id, pids := hungRender(t)
	for _, pid := range pids {
		if _, _, nice, ok := procStat(pid); !ok || nice != ffmpeg.Nice {
			t.Errorf("process %d: nice %d (running %v), want %d", pid, nice, ok, ffmpeg.Nice)
		}
	}
	if files := dirFiles(t, filepath.Join(e.srv.cfg.DataDir, "outputs")); len(files) != 0 {
		t.Errorf("outputs before the render completed: %v", files)
	}
	start := time.Now()
	e.close() // one second of grace, then the renders are killed
	// One second of grace, not the stand-in's hour: the bound is loose for a loaded machine.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	checkGone(t, pids)
	// Shutting down is not a failure: the render's end is an INFO line, and nothing warns.
	logs := e.logs.String()
	if !strings.Contains(logs, `level=INFO msg="render stopped for shutdown, the job goes back to the queue" job=`+id) ||
		strings.Contains(logs, "level=WARN") {
		t.Errorf("log of a render stopped by shutdown:\n%s", logs)
	}
}

// TestShutdownDoesNotWaitForTheDatabase: when the database refuses a stopped render's outcome at
// shutdown, the render gives up after one try (the next start's recovery requeues the job) instead
// of retrying for minutes past the unit's TimeoutStopSec.
func TestShutdownDoesNotWaitForTheDatabase(t *testing.T) {
	t.Parallel()
	e, id, _ := hungRender(t)
	full := `CREATE TRIGGER full BEFORE UPDATE ON jobs BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`
	if _, err := e.srv.store.db.Exec(full); err != nil {
		t.Fatal(err)
	}
	account := e.accountOf(t, e.key).ID
	e.close()
	logs := e.logs.String()
	if strings.Count(logs, `level=ERROR msg="record render outcome"`) != 1 || strings.Contains(logs, "will retry") {
		t.Errorf("recording the outcome at shutdown was retried, or not tried:\n%s", logs)
	}
	st, err := OpenStore(t.Context(), e.srv.dirs.db(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if j, err := st.Job(t.Context(), account, id); err != nil || j.Status != StatusProcessing {
		t.Errorf("job after shutdown: %v %v, want PROCESSING for the next start to requeue", j.Status, err)
	}
}

// TestRenderTimeout: a render that outlives its timeout is killed with its process group, retried,
// and the job fails after the last attempt with a message for the user that names the time limit.
func TestRenderTimeout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig(t.TempDir())
	cfg.FFmpeg, cfg.Workers = hangScript(t, dir), 1
	e := newTestEnv(t, &cfg, func(s *server) {
		s.renderer.timeout = func(float64) time.Duration { return time.Second }
	})
	if d := renderTimeout(600); d < 10*time.Minute || d > time.Hour {
		t.Errorf("the timeout for 10 minutes of audio is %v", d)
	}
	id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.wav"))
	st := e.wait(t, e.key, id, StatusFailed)
	if msg, _ := st["errorMessage"].(string); !strings.Contains(msg, "(the last time, the render took longer than the 0:00:01 allowed for it)") ||
		strings.Contains(msg, "ffmpeg") || strings.Contains(msg, "/") {
		t.Errorf("errorMessage %q, want the time limit named", msg)
	}
	checkGone(t, endedPids(t, dir, true))
	if files := dirFiles(t, filepath.Join(cfg.DataDir, "tmp")); len(files) != 0 {
		t.Errorf("files left in tmp: %v", files)
	}
}

// TestMaxDuration: audio longer than -max-duration is refused at upload with 400.
func TestMaxDuration(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.MaxDuration = 10 * time.Second
	e := newTestEnv(t, &cfg)
	code, body := e.submit(t, e.key, fixture(t, "img.jpg"), fixture(t, "long.wav"), nil)
	if msg, _ := body["error"].(string); code != 400 || !strings.Contains(msg, "0:00:30") || !strings.Contains(msg, "0:00:10") {
		t.Errorf("30 s of audio with a 10 s limit: %d %v", code, body)
	}
	if code, body := e.submit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.wav"), nil); code != 201 {
		t.Errorf("2.5 s of audio: %d %v", code, body)
	}
}

// TestProgressModel drives the progress bar with a fake clock: it creeps through each step's span
// with time, jumps with ffmpeg's reported position, never goes down, stays below 100 while running,
// and has an ETA once past 3 %.
func TestProgressModel(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	rd := &renderer{now: func() time.Time { return now }, progress: map[string]*jobProgress{}}
	const id = "job"
	rd.progress[id] = &jobProgress{started: now}
	last := 0
	check := func(what string, lo, hi int) {
		t.Helper()
		p, eta := rd.Progress(id)
		if p < last || p < lo || p > hi {
			t.Errorf("%s: progress %d, want %d-%d and not below %d", what, p, lo, hi, last)
		}
		early := p < 3 || now.Sub(rd.progress[id].started) < time.Second // no estimate yet
		if early != (eta == nil) || eta != nil && *eta < 0 {
			t.Errorf("%s: progress %d with eta %v", what, p, eta)
		}
		last = p
	}
	check("claimed", 0, 0)
	clipEst, muxEst := renderEstimates(Job{AudioCodec: "aac/LC/2/44100", AudioDuration: 600}, fixture(t, "img.jpg"))
	if clipEst <= 0 || muxEst <= 0 {
		t.Fatalf("estimates %v %v", clipEst, muxEst)
	}
	rd.startStep(id, setupShare, 40, 1.0)
	check("image step started", setupShare, setupShare)
	now = now.Add(500 * time.Millisecond)
	check("half the image step's estimate", 10, 20)
	now = now.Add(30 * time.Second) // a much slower image than estimated
	check("image step overdue", 35, 36)
	rd.startStep(id, 40, 100, 2.0)
	check("mux step started", 40, 40)
	rd.stepDone(id, 0.5)
	check("ffmpeg halfway", 70, 70)
	rd.stepDone(id, 0.2) // an earlier position arriving late
	check("stale position", 70, 70)
	rd.stepDone(id, 1.5)
	check("past the end", 99, 99)
	now = now.Add(time.Hour)
	check("long after", 99, 99)
	if p, eta := rd.Progress("unknown"); p != 0 || eta != nil {
		t.Errorf("unknown job: %d %v", p, eta)
	}
}

// TestFFmpegFullDisk: ffmpeg writing to a full disk fails the step with ENOSPC, also when ffmpeg
// exits 0 because the failed write was its last (a short output is written whole as it closes),
// and the render counts it as a passing cause, not a file it cannot read.
func TestFFmpegFullDisk(t *testing.T) {
	t.Parallel()
	rd := &renderer{tools: ffmpeg.Tools{FFmpeg: "ffmpeg"}, now: time.Now, progress: map[string]*jobProgress{}}
	for _, seconds := range []string{"1", "10"} { // exits 0, exits 1
		err := rd.ffmpegRun(t.Context(), "job", 0, "-f", "lavfi", "-i", "sine=d="+seconds, "-f", "wav", "file:/dev/full")
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%s s to /dev/full: %v, want ENOSPC", seconds, err)
		}
		var f *renderFailure
		if !errors.As(rd.stepFailed(t.Context(), err, Job{}, inputAudio, "", nil), &f) || f.final {
			t.Errorf("%s s to /dev/full: classified %+v, want a failure worth retrying", seconds, f)
		}
	}
	if err := rd.ffmpegRun(t.Context(), "job", 0, "-f", "lavfi", "-i", "sine=d=1", "-f", "wav", "file:"+filepath.Join(t.TempDir(), "ok.wav")); err != nil {
		t.Errorf("with room: %v", err)
	}
}

// TestFFmpegDiesWithVidgen kills (-9) a process running a render and checks its ffmpeg dies too:
// Pdeathsig holds even though ffmpeg is forked by a thread of its own (see startNice).
func TestFFmpegDiesWithVidgen(t *testing.T) {
	if dir := os.Getenv("VIDGEN_TEST_HELPER_DIR"); dir != "" {
		// The helper: render with a hanging stand-in for ffmpeg until killed.
		script := filepath.Join(dir, "ffmpeg")
		rd := &renderer{tools: ffmpeg.Tools{FFmpeg: script}, now: time.Now, progress: map[string]*jobProgress{}}
		rd.ffmpegRun(context.Background(), "job", 0, "-i", "nothing")
		return
	}
	t.Parallel()
	dir := t.TempDir()
	script := fmt.Sprintf("#!/bin/sh\necho $$ >> %q\nexec sleep 3600\n", filepath.Join(dir, "pids"))
	os.WriteFile(filepath.Join(dir, "ffmpeg"), []byte(script), 0o755)
	helper := exec.Command(os.Args[0], "-test.run=^TestFFmpegDiesWithVidgen$")
	helper.Env = append(os.Environ(), "VIDGEN_TEST_HELPER_DIR="+dir)
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	pids := hangPids(t, dir, 1)
	time.Sleep(100 * time.Millisecond) // the helper's other threads come and go: ffmpeg must not care
	if _, _, nice, ok := procStat(pids[0]); !ok || nice != ffmpeg.Nice {
		t.Errorf("ffmpeg is not running at nice %d (running %v, nice %d)", ffmpeg.Nice, ok, nice)
	}
	helper.Process.Kill()
	helper.Wait()
	checkGone(t, pids)
}
