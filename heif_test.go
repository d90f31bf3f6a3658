package main

// Tests of the HEIF box walker (media.WalkHEIF) through the service, and of what it keeps out: a HEIC or AVIF whose 'ispe'
// properties claim a small picture while its coded bitstream, grid or canvas makes the decoder
// allocate a huge one. Real files come from heif-enc (and ffmpeg's encoders); hostile ones are
// built box by box here, as no encoder writes them.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
	"vidgen/internal/media/heiftest"
)

// needTools skips t without the programs named (Debian's libheif-examples), as TestCorpus does.
func needTools(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			t.Skipf("needs %s (Debian: libheif-examples)", name)
		}
	}
}

// heifEncode writes img as a HEIC (or, with -A, an AVIF) named name in dir, with heif-enc.
func heifEncode(t testing.TB, dir, name string, img image.Image, args ...string) string {
	t.Helper()
	in := filepath.Join(dir, name+".src.png")
	if err := os.WriteFile(in, encodePNG(t, img), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("heif-enc", append(append([]string{"-q", "50", "-o", out}, args...), in)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("heif-enc: %v: %s", err, msg)
	}
	return out
}

// lieISPE rewrites the one ispe property of the HEIF file b to claim w×h. The file is one heif-enc
// made in the test, so its one "ispe" is the box's type (checked: exactly one).
func lieISPE(t testing.TB, b []byte, w, h uint32) []byte {
	t.Helper()
	if n := bytes.Count(b, []byte("ispe")); n != 1 {
		t.Fatalf("%d ispe boxes", n)
	}
	b = bytes.Clone(b)
	i := bytes.Index(b, []byte("ispe"))
	binary.BigEndian.PutUint32(b[i+8:], w)
	binary.BigEndian.PutUint32(b[i+12:], h)
	return b
}

// TestHEIFLyingISPE: a HEIC or AVIF whose ispe understates its coded size (the sequence parameter
// set or sequence header, a grid's tiles times its rows and columns, a canvas) is measured at the
// coded size, and refused with a 400 that gives it when it is over the pixel cap.
func TestHEIFLyingISPE(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		typ    string
		file   func(testing.TB) []byte
		w, h   int
		refuse bool
	}{
		{name: "heic-512-claims-16", typ: media.HEIC, w: 512, h: 512, file: func(t testing.TB) []byte {
			needTools(t, "heif-enc")
			return lieISPE(t, readFile(t, heifEncode(t, t.TempDir(), "a.heic", quad(512, 512))), 16, 16)
		}},
		{name: "avif-512-claims-16", typ: media.AVIF, w: 512, h: 512, file: func(t testing.TB) []byte {
			needTools(t, "heif-enc")
			return lieISPE(t, readFile(t, heifEncode(t, t.TempDir(), "a.avif", quad(512, 512), "-A")), 16, 16)
		}},
		{name: "hevc-grid-4x4-of-4096-claims-64", typ: media.HEIC, w: 16384, h: 16384, refuse: true,
			file: func(testing.TB) []byte { return heiftest.HEVCGrid(4, 4, 4096, 64) }},
		{name: "av1-grid-4x4-of-4096-claims-64", typ: media.AVIF, w: 16384, h: 16384, refuse: true,
			file: func(testing.TB) []byte { return heiftest.AV1Grid(4, 4, 4096, 64) }},
		{name: "hevc-sps-in-data-outgrows-hvcC", typ: media.HEIC, w: 12000, h: 12000, refuse: true, file: func(testing.TB) []byte {
			return heiftest.Build("heic", [][]byte{heiftest.ISPE(64, 64), heiftest.HvcC(heiftest.SPS(64, 64, 0))},
				[]heiftest.Item{{ID: 1, Type: "hvc1", Props: []int{1, 2}, Data: heiftest.LengthPrefixed(heiftest.SPS(12000, 12000, 0), []byte{0x26, 0x01})}})
		}},
		{name: "hevc-sps-with-sub-layers", typ: media.HEIC, w: 10000, h: 10001, refuse: true, file: func(testing.TB) []byte {
			return heiftest.Build("heic", [][]byte{heiftest.ISPE(64, 64), heiftest.HvcC(heiftest.SPS(10000, 10001, 3))},
				[]heiftest.Item{{ID: 1, Type: "hvc1", Props: []int{1, 2}, Data: heiftest.LengthPrefixed([]byte{0x26, 0x01})}})
		}},
		{name: "av1-sequence-header-in-data-only", typ: media.AVIF, w: 10240, h: 10240, refuse: true, file: func(testing.TB) []byte {
			return heiftest.Build("avif", [][]byte{heiftest.ISPE(64, 64), heiftest.Av1C()},
				[]heiftest.Item{{ID: 1, Type: "av01", Props: []int{1, 2}, Data: append(heiftest.SeqHeader(10240, 10240, false), 0x32, 0x00)}})
		}},
		{name: "av1-timing-and-operating-points", typ: media.AVIF, w: 3000, h: 2000, file: func(testing.TB) []byte {
			return heiftest.Build("avif", [][]byte{heiftest.ISPE(64, 64), heiftest.Av1C(heiftest.SeqHeader(3000, 2000, false))},
				[]heiftest.Item{{ID: 1, Type: "av01", Props: []int{1, 2}, Data: []byte{0x32, 0x00}}})
		}},
		{name: "grid-canvas-20000-of-one-64-tile", typ: media.HEIC, w: 20000, h: 20000, refuse: true, file: func(testing.TB) []byte {
			return heiftest.Build("heic", [][]byte{heiftest.ISPE(64, 64), heiftest.HvcC(heiftest.SPS(64, 64, 0))}, []heiftest.Item{
				{ID: 1, Type: "grid", Props: []int{1}, Data: heiftest.Grid(1, 1, 20000, 20000, true), Dimg: []int{2}},
				{ID: 2, Type: "hvc1", Props: []int{1, 2}, Data: heiftest.LengthPrefixed([]byte{0x26, 0x01})}})
		}},
		{name: "overlay-canvas-30000x9000", typ: media.HEIC, w: 30000, h: 9000, refuse: true, file: func(testing.TB) []byte {
			return heiftest.Build("heic", [][]byte{heiftest.ISPE(64, 64), heiftest.HvcC(heiftest.SPS(64, 64, 0))}, []heiftest.Item{
				{ID: 1, Type: "iovl", Props: []int{1}, Data: heiftest.Overlay(30000, 9000, 1), Dimg: []int{2}},
				{ID: 2, Type: "hvc1", Props: []int{1, 2}, Data: heiftest.LengthPrefixed([]byte{0x26, 0x01})}})
		}},
		{name: "large-second-picture", typ: media.HEIC, w: 11000, h: 11000, refuse: true, file: func(testing.TB) []byte {
			return heiftest.Build("heic", [][]byte{heiftest.ISPE(64, 64), heiftest.HvcC(heiftest.SPS(64, 64, 0)), heiftest.HvcC(heiftest.SPS(11000, 11000, 1))}, []heiftest.Item{
				{ID: 1, Type: "hvc1", Props: []int{1, 2}, Data: heiftest.LengthPrefixed([]byte{0x26, 0x01})},
				{ID: 2, Type: "hvc1", Props: []int{1, 3}, Data: heiftest.LengthPrefixed([]byte{0x26, 0x01})}})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := writeFixture(t, c.name+"."+c.typ, c.file(t))
			if typ := media.SniffImage(readFile(t, path)[:64]); typ != c.typ {
				t.Fatalf("sniffed as %q", typ)
			}
			w, h, _, err := imageSize(path, c.typ)
			if err != nil || w != c.w || h != c.h {
				t.Errorf("imageSize: %d×%d (%v), want %d×%d", w, h, err, c.w, c.h)
			}
			err = checkImage(path, c.typ)
			var e *Error
			switch {
			case !c.refuse && err != nil:
				t.Errorf("checkImage: %v", err)
			case c.refuse && (!errors.As(err, &e) || e.Kind != kindInvalid || !strings.Contains(e.Msg, fmt.Sprintf("%d×%d", c.w, c.h))):
				t.Errorf("checkImage: %v, want a 400 naming %d×%d", err, c.w, c.h)
			}
		})
	}
}

// annexB splits an HEVC Annex B stream into its NAL units.
func annexB(b []byte) [][]byte {
	var nals [][]byte
	for _, part := range bytes.Split(b, []byte{0, 0, 1}) {
		if part = bytes.TrimRight(part, "\x00"); len(part) > 0 {
			nals = append(nals, part)
		}
	}
	return nals
}

// obus splits an AV1 low-overhead stream into its OBUs, without temporal delimiters.
func obus(t testing.TB, b []byte) (seq []byte, rest [][]byte) {
	t.Helper()
	for len(b) > 0 {
		n, l := uleb128(b[1+b[0]>>2&1:])
		end := 1 + int(b[0]>>2&1) + l + int(n)
		if l == 0 || end > len(b) {
			t.Fatalf("damaged OBU stream")
		}
		switch b[0] >> 3 & 15 {
		case 1: // a sequence header
			seq = b[:end]
			rest = append(rest, b[:end])
		case 2: // temporal delimiter
		default:
			rest = append(rest, b[:end])
		}
		b = b[end:]
	}
	return seq, rest
}

// uleb128 reads an AV1 leb128 number from the front of b, and its length (0 when it is cut short).
func uleb128(b []byte) (v uint64, n int) {
	for n < 8 && n < len(b) {
		v |= uint64(b[n]&0x7f) << (7 * n)
		if n++; b[n-1]&0x80 == 0 {
			return v, n
		}
	}
	return 0, 0
}

// encoderHEIF is a HEIC or AVIF built around the first frame ffmpeg's encoder codec makes of a w×h
// picture, its ispe claiming 16×16: real bitstreams with the headers heif-enc never writes
// (temporal sub-layers, timing information).
func encoderHEIF(t testing.TB, dir string, w, h int, codec string, args ...string) []byte {
	t.Helper()
	out := filepath.Join(dir, codec+".bit")
	format := "hevc"
	if codec != "libx265" {
		format = "obu"
	}
	ffmpegMake(t, append(append([]string{"-f", "lavfi", "-i", fmt.Sprintf("testsrc=s=%dx%d", w, h), "-frames:v", "1", "-pix_fmt", "yuv420p", "-c:v", codec}, args...), "-f", format, out)...)
	b := readFile(t, out)
	if codec == "libx265" {
		var params, slices [][]byte
		for _, nal := range annexB(b) {
			if typ := nal[0] >> 1 & 0x3f; typ >= 32 && typ <= 34 {
				params = append(params, nal)
			} else {
				slices = append(slices, nal)
			}
		}
		return heiftest.Build("heic", [][]byte{heiftest.HvcC(params...), heiftest.ISPE(16, 16)},
			[]heiftest.Item{{ID: 1, Type: "hvc1", Props: []int{1, 2}, Data: heiftest.LengthPrefixed(slices...)}})
	}
	seq, rest := obus(t, b)
	return heiftest.Build("avif", [][]byte{heiftest.Av1C(seq), heiftest.ISPE(16, 16)},
		[]heiftest.Item{{ID: 1, Type: "av01", Props: []int{1, 2}, Data: bytes.Join(rest, nil)}})
}

// TestHEIFDecoderAgrees checks media.WalkHEIF against libheif on real files: what heif-convert makes
// is never larger than the size found, and that size is the decoder's coded size, at most padded
// to whole coding blocks. heif-info is no judge: it repeats the ispe (16×16 for the files built
// here around encoders' bitstreams, which heif-convert decodes at their full size).
func TestHEIFDecoderAgrees(t *testing.T) {
	t.Parallel()
	needTools(t, "heif-enc", "heif-convert", "heif-info")
	cases := []struct {
		name string
		file func(t testing.TB, dir string) []byte
	}{
		{"heif-enc-heic-333x201", func(t testing.TB, dir string) []byte {
			return readFile(t, heifEncode(t, dir, "a.heic", quad(333, 201)))
		}},
		{"heif-enc-avif-333x201", func(t testing.TB, dir string) []byte {
			return readFile(t, heifEncode(t, dir, "a.avif", quad(333, 201), "-A"))
		}},
		{"x265-temporal-sub-layers", func(t testing.TB, dir string) []byte {
			return encoderHEIF(t, dir, 200, 120, "libx265", "-x265-params", "temporal-layers=1:log-level=error")
		}},
		{"aom-timing-info", func(t testing.TB, dir string) []byte {
			return encoderHEIF(t, dir, 200, 120, "libaom-av1", "-cpu-used", "8", "-aom-params", "timing-info=constant")
		}},
		{"svt-av1", func(t testing.TB, dir string) []byte {
			return encoderHEIF(t, dir, 200, 120, "libsvtav1", "-svtav1-params", "preset=12")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "in.heif")
			if err := os.WriteFile(path, c.file(t, dir), 0o644); err != nil {
				t.Fatal(err)
			}
			b := readFile(t, path)
			pics, err := media.WalkHEIF(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			w, h := pics.Width, pics.Height
			png := filepath.Join(dir, "out.png")
			if out, err := exec.Command("heif-convert", path, png).CombinedOutput(); err != nil {
				t.Fatalf("heif-convert: %v: %s", err, out)
			}
			cfg, err := decodePNGConfig(t, png)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Width > w || cfg.Height > h || w > (cfg.Width+63)/64*64 || h > (cfg.Height+63)/64*64 {
				t.Errorf("found %d×%d; heif-convert made %d×%d", w, h, cfg.Width, cfg.Height)
			}
			info, err := exec.Command("heif-info", path).Output()
			var iw, ih int
			if i := bytes.Index(info, []byte("image: ")); err != nil || i < 0 {
				t.Fatalf("heif-info: %v: %s", err, info)
			} else if _, err := fmt.Sscanf(string(info[i:]), "image: %dx%d", &iw, &ih); err != nil || iw > w || ih > h {
				t.Errorf("heif-info reports %d×%d (%v), more than the %d×%d found", iw, ih, err, w, h)
			}
			t.Logf("found %d×%d, heif-convert made %d×%d, heif-info says %d×%d", w, h, cfg.Width, cfg.Height, iw, ih)
		})
	}
}

// decodePNGConfig reads the size of the PNG at path.
func decodePNGConfig(t testing.TB, path string) (image.Config, error) {
	t.Helper()
	return png.DecodeConfig(bytes.NewReader(readFile(t, path)))
}

// TestHEIFDamaged: each hostile structure is a clear 400 (415 for a codec without a size check)
// that names the file's type (media's TestHEIFHostileBounded checks each is read within bounds).
func TestHEIFDamaged(t *testing.T) {
	t.Parallel()
	for _, c := range heiftest.Hostile() {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			path := writeFixture(t, c.Name+".heic", c.File)
			err := checkImage(path, media.HEIC)
			var e *Error
			if !errors.As(err, &e) || e.Kind.statusCode() != c.Status || !strings.Contains(e.Msg, "HEIC") || !strings.Contains(e.Msg, c.Words) {
				t.Errorf("%v, want a %d naming the HEIC and %q", err, c.Status, c.Words)
			}
		})
	}
}

// markingScript is a stand-in for heif-convert at dir/name that leaves dir/name.ran behind and
// then runs then, a shell command given the arguments.
func markingScript(t testing.TB, dir, name, then string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\ntouch \"$0.ran\"\n"+then+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHEIFOversizeUpload: over HTTP, a HEIC whose ispe claims 64×64 for a grid of 4×4 tiles coded
// at 4096×4096, and an AVIF alike, are a 400 that gives the coded size, and heif-convert (which
// would decode 16384×16384, 805 MB) never starts; a damaged structure is a 400 too, never a 500.
func TestHEIFOversizeUpload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := testConfig(t.TempDir())
	cfg.HeifConvert = markingScript(t, dir, "heif-convert", `exec heif-convert "$@"`)
	e := newTestEnv(t, &cfg)
	var loop []byte
	for _, c := range heiftest.Hostile() {
		if c.Name == "grid-of-itself" {
			loop = c.File
		}
	}
	for _, c := range []struct {
		name  string
		file  []byte
		words []string
	}{
		{"grid.heic", heiftest.HEVCGrid(4, 4, 4096, 64), []string{"image:", "16384×16384", "100 megapixels"}},
		{"grid.avif", heiftest.AV1Grid(4, 4, 4096, 64), []string{"image:", "16384×16384", "100 megapixels"}},
		{"loop.heic", loop, []string{"image:", "HEIC", "could not be read", "derived from itself"}},
	} {
		code, body := e.submit(t, e.key, writeFixture(t, c.name, c.file), fixture(t, "tone.wav"), nil)
		msg, _ := body["error"].(string)
		if code != 400 {
			t.Errorf("%s: %d %q, want a 400", c.name, code, msg)
		}
		for _, w := range c.words {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q lacks %q", c.name, msg, w)
			}
		}
	}
	if _, err := os.Stat(cfg.HeifConvert + ".ran"); err == nil {
		t.Error("heif-convert was started for a picture over the cap")
	}
}

// TestHEIFDecodedSizeChecked: should heif-convert ever make a picture over the cap from a file
// that passed the check, the conversion is refused with its size before anything reads it.
func TestHEIFDecodedSizeChecked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := filepath.Join(dir, "big.png")
	if err := os.WriteFile(big, pngHeader(20000, 20000), 0o644); err != nil {
		t.Fatal(err)
	}
	script := markingScript(t, dir, "heif-convert", `cp "`+big+`" "$2"`)
	path := writeFixture(t, "small.heic", heiftest.HEVCGrid(1, 1, 64, 64))
	err := heifToPNG(t.Context(), ffmpeg.Tools{HeifConvert: script}, path, media.HEIC)
	var e *Error
	if !errors.As(err, &e) || e.Kind != kindInvalid || !strings.Contains(e.Msg, "20000×20000") {
		t.Errorf("%v, want a 400 naming 20000×20000", err)
	}
	if _, err := os.Stat(script + ".ran"); err != nil {
		t.Fatal("the stand-in did not run")
	}
	if files, _ := filepath.Glob(path + "?*"); len(files) > 0 || media.SniffImage(readFile(t, path)) != media.HEIC {
		t.Errorf("left %v, or replaced the upload", files)
	}
}
