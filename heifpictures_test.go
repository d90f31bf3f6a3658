package main

// Tests of which pictures of a HEIF file are weighed: those heif-convert decodes (its top-level
// pictures, what they are made of, their alpha planes) and no other (thumbnails, depth maps,
// hidden items nothing is made of). Files are built around a real picture heif-enc made, so that
// heif-convert itself shows what it decodes: an item with a bitstream that cannot be decoded is
// one it never decodes when the conversion succeeds.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
	"vidgen/internal/media/heiftest"
)

// heifEncItems is the properties and items of a HEIC heif-enc makes of img (one picture, no
// thumbnail, no alpha): a real, decodable picture to build files around.
func heifEncItems(t testing.TB, img image.Image) ([][]byte, []heiftest.Item) {
	t.Helper()
	needTools(t, "heif-enc")
	props, items := heiftest.ItemsOf(t, readFile(t, heifEncode(t, t.TempDir(), "a.heic", img)))
	if len(items) != 1 {
		t.Fatalf("heif-enc wrote %d items", len(items))
	}
	return props, items
}

// TestHEIFDecodedItems: a HEIC is weighed and checked by the pictures heif-convert decodes (its
// top-level pictures and their alpha planes) and by no other: a thumbnail in JPEG, a thumbnail or a
// depth map coded over the cap, a thumbnail whose size cannot be read are all accepted, and
// heif-convert, decoding the file, shows it never reads them (their bitstreams are not real); an
// alpha plane over the cap is refused, and one whose bitstream is not real fails the conversion,
// as heif-convert decodes it with its picture.
func TestHEIFDecodedItems(t *testing.T) {
	t.Parallel()
	needTools(t, "heif-enc", "heif-convert")
	fake := heiftest.LengthPrefixed([]byte{0x26, 0x01, 0xaf}) // a slice header, and no picture
	// around is a HEIC of heif-enc's 320×240 picture (item 1) with more properties (numbered from
	// n+1, n the number of heif-enc's) and more items.
	around := func(t testing.TB, more [][]byte, items func(n int) []heiftest.Item) []byte {
		props, real := heifEncItems(t, quad(320, 240))
		return heiftest.Build("heic", append(props, more...), append(real, items(len(props))...))
	}
	cases := []struct {
		name   string
		file   func(t testing.TB) []byte
		status int    // of checkImage, then of the conversion: 0 when accepted
		words  string // in the refusal
		alpha  bool   // the converted picture has an alpha channel
	}{
		{name: "heif-enc-thumbnail", file: func(t testing.TB) []byte {
			return readFile(t, heifEncode(t, t.TempDir(), "a.heic", quad(320, 240), "-t", "64"))
		}},
		{name: "heif-enc-alpha-and-thumbnail", alpha: true, file: func(t testing.TB) []byte {
			img := quad(320, 240)
			for i := 3; i < len(img.Pix); i += 8 {
				img.Pix[i] = 0x80
			}
			return readFile(t, heifEncode(t, t.TempDir(), "a.heic", img, "-t", "64"))
		}},
		{name: "jpeg-thumbnail", file: func(t testing.TB) []byte {
			return around(t, nil, func(int) []heiftest.Item {
				return []heiftest.Item{{ID: 2, Type: "jpeg", Data: encodeJPEG(t, quad(64, 48)), Thmb: 1}}
			})
		}},
		{name: "thumbnail-coded-20000x20000", file: func(t testing.TB) []byte {
			return around(t, [][]byte{heiftest.ISPE(20000, 20000), heiftest.HvcC(heiftest.SPS(20000, 20000, 0))}, func(n int) []heiftest.Item {
				return []heiftest.Item{{ID: 2, Type: "hvc1", Props: []int{n + 1, n + 2}, Data: fake, Thmb: 1}}
			})
		}},
		{name: "thumbnail-without-sequence-parameter-set", file: func(t testing.TB) []byte {
			return around(t, [][]byte{heiftest.ISPE(64, 48), heiftest.HvcC([]byte{0x40, 0x01, 0x0c})}, func(n int) []heiftest.Item {
				return []heiftest.Item{{ID: 2, Type: "hvc1", Props: []int{n + 1, n + 2}, Data: fake, Thmb: 1}}
			})
		}},
		{name: "thumbnail-alpha-coded-12000x12000", file: func(t testing.TB) []byte {
			more := [][]byte{heiftest.ISPE(64, 48), heiftest.HvcC(heiftest.SPS(64, 48, 0)), heiftest.HvcC(heiftest.SPS(12000, 12000, 0)), heiftest.AuxC(heiftest.AlphaURN)}
			return around(t, more, func(n int) []heiftest.Item {
				return []heiftest.Item{
					{ID: 2, Type: "hvc1", Props: []int{n + 1, n + 2}, Data: fake, Thmb: 1},
					{ID: 3, Type: "hvc1", Props: []int{n + 1, n + 3, n + 4}, Data: fake, Auxl: 2}}
			})
		}},
		{name: "depth-map-coded-12000x12000", file: func(t testing.TB) []byte {
			return around(t, [][]byte{heiftest.ISPE(320, 240), heiftest.HvcC(heiftest.SPS(12000, 12000, 0)), heiftest.AuxC(heiftest.DepthURN)}, func(n int) []heiftest.Item {
				return []heiftest.Item{{ID: 2, Type: "hvc1", Props: []int{n + 1, n + 2, n + 3}, Data: fake, Auxl: 1}}
			})
		}},
		{name: "hidden-jpeg-item", file: func(t testing.TB) []byte {
			return around(t, nil, func(int) []heiftest.Item {
				return []heiftest.Item{{ID: 2, Type: "jpeg", Data: encodeJPEG(t, quad(64, 48)), Hidden: true}}
			})
		}},
		{name: "alpha-coded-12000x12000", status: 400, words: "12000×12000", file: func(t testing.TB) []byte {
			return around(t, [][]byte{heiftest.ISPE(320, 240), heiftest.HvcC(heiftest.SPS(12000, 12000, 0)), heiftest.AuxC(heiftest.AlphaURN)}, func(n int) []heiftest.Item {
				return []heiftest.Item{{ID: 2, Type: "hvc1", Props: []int{n + 1, n + 2, n + 3}, Data: fake, Auxl: 1}}
			})
		}},
		{name: "alpha-in-jpeg", status: 415, words: `"jpeg"`, file: func(t testing.TB) []byte {
			return around(t, [][]byte{heiftest.ISPE(320, 240), heiftest.AuxC(heiftest.AlphaURN)}, func(n int) []heiftest.Item {
				return []heiftest.Item{{ID: 2, Type: "jpeg", Props: []int{n + 1, n + 2}, Data: encodeJPEG(t, quad(320, 240)), Auxl: 1}}
			})
		}},
		{name: "alpha-not-decodable", status: 400, words: "could not be decoded", file: func(t testing.TB) []byte {
			return around(t, [][]byte{heiftest.ISPE(320, 240), heiftest.HvcC(heiftest.SPS(320, 240, 0)), heiftest.AuxC(heiftest.AlphaURN)}, func(n int) []heiftest.Item {
				return []heiftest.Item{{ID: 2, Type: "hvc1", Props: []int{n + 1, n + 2, n + 3}, Data: fake, Auxl: 1}}
			})
		}},
		{name: "primary-is-a-thumbnail", status: 400, words: "primary item 1 is not a picture of its own", file: func(t testing.TB) []byte {
			props, real := heifEncItems(t, quad(320, 240))
			second := real[0]
			second.ID, real[0].Thmb = 2, 2
			return heiftest.Build("heic", props, append(real, second))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := writeFixture(t, "a.heic", c.file(t))
			err := checkImage(path, media.HEIC)
			if err == nil {
				w, h, _, _ := imageSize(path, media.HEIC)
				if w != 320 || h != 240 {
					t.Errorf("weighed %d×%d, want the picture's 320×240", w, h)
				}
				err = heifToPNG(t.Context(), ffmpeg.Tools{HeifConvert: "heif-convert"}, path, media.HEIC)
			}
			var e *Error
			switch {
			case c.status == 0 && err != nil:
				t.Fatalf("%v, want it accepted", err)
			case c.status != 0 && (!errors.As(err, &e) || e.Kind.statusCode() != c.status || !strings.Contains(e.Msg, c.words)):
				t.Fatalf("%v, want a %d naming %s", err, c.status, c.words)
			case c.status != 0:
				return
			}
			cfg, err := decodePNGConfig(t, path)
			if err != nil {
				t.Fatal(err)
			}
			alpha := cfg.ColorModel == color.NRGBAModel || cfg.ColorModel == color.NRGBA64Model
			if cfg.Width != 320 || cfg.Height != 240 || alpha != c.alpha {
				t.Errorf("converted to %d×%d (alpha %v), want 320×240 (alpha %v)", cfg.Width, cfg.Height, alpha, c.alpha)
			}
			if left, _ := filepath.Glob(path + "?*"); len(left) > 0 {
				t.Errorf("left %v", left)
			}
		})
	}
}

// withPrimary is the HEIF file b (made by heif-enc: one pitm box, of version 0) with its primary
// item set to id.
func withPrimary(t testing.TB, b []byte, id uint16) []byte {
	t.Helper()
	i := bytes.Index(b, []byte("pitm"))
	if bytes.Count(b, []byte("pitm")) != 1 || b[i+4] != 0 {
		t.Fatal("not one pitm box of version 0")
	}
	b = bytes.Clone(b)
	binary.BigEndian.PutUint16(b[i+8:], id)
	return b
}

// TestHEIFSeveralPictures: a HEIC holding several top-level pictures, for which heif-convert writes
// OUT-1.png, OUT-2.png… in the order of their item IDs (checked here against the real heif-convert),
// is accepted over HTTP (201) and renders its primary picture, whatever its place among the others;
// nothing heif-convert wrote is left behind.
func TestHEIFSeveralPictures(t *testing.T) {
	t.Parallel()
	needTools(t, "heif-enc", "heif-convert")
	dir := t.TempDir()
	p1, p2 := quadrants(200, 400, yellow, blue, green, red), quad(320, 240)
	p1png := filepath.Join(dir, "p1.png")
	if err := os.WriteFile(p1png, encodePNG(t, p1), 0o644); err != nil {
		t.Fatal(err)
	}
	two := readFile(t, heifEncode(t, dir, "two.heic", p2, p1png))                   // p1 is item 1, the primary; p2 item 2
	thumbs := readFile(t, heifEncode(t, dir, "thumbs.heic", p2, "-t", "64", p1png)) // p1 is item 1, p2 item 4
	cases := []struct {
		name    string
		file    []byte
		want    image.Image
		count   int
		primary int
	}{
		{"primary-first", two, p1, 2, 0},
		{"primary-second", withPrimary(t, two, 2), p2, 2, 1},
		{"primary-listed-first-with-the-higher-id", func() []byte {
			props, items := heiftest.ItemsOf(t, withPrimary(t, two, 2)) // the primary (item 2) first
			return heiftest.Build("heic", props, items)
		}(), p2, 2, 1},
		{"thumbnails-between", withPrimary(t, thumbs, 4), p2, 2, 1},
	}
	e := newTestEnv(t, nil, func(s *server) { s.tools.HeifConvert = "heif-convert" })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := writeFixture(t, "in.heic", c.file)
			pics, err := media.WalkHEIF(bytes.NewReader(c.file), int64(len(c.file)))
			if err != nil || pics.Count != c.count || pics.Primary != c.primary {
				t.Fatalf("media.WalkHEIF: %+v %v, want %d pictures, the primary at %d", pics, err, c.count, c.primary)
			}
			// heif-convert's own files: the primary's is the one media.WalkHEIF places.
			out := filepath.Join(t.TempDir(), "out.png")
			if msg, err := exec.Command("heif-convert", path, out).CombinedOutput(); err != nil {
				t.Fatalf("heif-convert: %v: %s", err, msg)
			}
			written, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*"))
			cfg, err := decodePNGConfig(t, filepath.Join(filepath.Dir(out), fmt.Sprintf("out-%d.png", c.primary+1)))
			if want := c.want.Bounds(); err != nil || len(written) != c.count || cfg.Width != want.Dx() || cfg.Height != want.Dy() {
				t.Fatalf("heif-convert wrote %v, the primary's %d×%d (%v), want %d files, the primary's %v", written, cfg.Width, cfg.Height, err, c.count, want.Size())
			}

			rendersAs(t, e, e.newKey(t, c.name), path, c.want) // a job at a time for each key
		})
	}
	t.Cleanup(func() {
		if left, _ := filepath.Glob(filepath.Join(e.srv.dirs.tmp(), "*")); len(left) > 0 {
			t.Errorf("left in tmp/: %v", left)
		}
	})
}

// rendersAs submits the image at path as key to e's server and fails t unless it is accepted (201)
// and the video it renders shows want.
func rendersAs(t testing.TB, e *testEnv, key, path string, want image.Image) {
	t.Helper()
	code, body := e.submit(t, key, path, fixture(t, "short.wav"), nil)
	if code != 201 {
		t.Fatalf("submit: %d %v, want a 201", code, body)
	}
	st := e.wait(t, key, body["jobId"].(string), StatusCompleted)
	video, _ := download(t, st["outputVideo"].(string))
	w, h, rgb := decodeFrame(t, writeFixture(t, "out.mp4", video))
	comparePicture(t, want, want.Bounds().Dx(), want.Bounds().Dy(), w, h, rgb, 60)
}

// TestHEIFConvertLeavesNothing: whatever heif-convert does with a file of two pictures (fails after
// writing the first, or writes more files than the file has pictures, as another libheif might),
// the upload is a 400, never a guess at the primary's file, and none of heif-convert's files is left.
func TestHEIFConvertLeavesNothing(t *testing.T) {
	t.Parallel()
	small := writeFixture(t, "small.png", encodePNG(t, quad(64, 48)))
	slice := heiftest.LengthPrefixed([]byte{0x26, 0x01})
	file := heiftest.Build("heic", [][]byte{heiftest.ISPE(64, 48), heiftest.HvcC(heiftest.SPS(64, 48, 0))}, []heiftest.Item{
		{ID: 1, Type: "hvc1", Props: []int{1, 2}, Data: slice},
		{ID: 2, Type: "hvc1", Props: []int{1, 2}, Data: slice}})
	for _, c := range []struct{ name, script, words string }{
		{"fails-after-the-first", `cp "` + small + `" "${2%.png}-1.png"; echo "Could not decode image: 1: broken" >&2; exit 1`, "could not be decoded (Could not decode image: 1: broken)"},
		{"three-files-for-two", `for i in 1 2 3; do cp "` + small + `" "${2%.png}-$i.png"; done`, "made 3 files, where 2 were expected"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "upload")
			if err := os.WriteFile(path, file, 0o644); err != nil {
				t.Fatal(err)
			}
			script := markingScript(t, t.TempDir(), "heif-convert", c.script)
			err := heifToPNG(t.Context(), ffmpeg.Tools{HeifConvert: script}, path, media.HEIC)
			var e *Error
			if !errors.As(err, &e) || e.Kind != kindInvalid || !strings.Contains(e.Msg, c.words) {
				t.Errorf("%v, want a 400 naming %q", err, c.words)
			}
			if _, err := os.Stat(script + ".ran"); err != nil {
				t.Fatal("the stand-in did not run")
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 1 || !bytes.Equal(readFile(t, path), file) {
				t.Errorf("left %v, or changed the upload", left)
			}
		})
	}
}

// TestHEIFPictureBudget: heif-convert decodes and writes every top-level picture of a HEIC, so a
// file is refused (400, naming its pictures and megapixels and what to send) before heif-convert
// starts when it holds more than 16 top-level pictures, or pictures of more than 100 megapixels in
// all: every reference to a picture counts (many pictures, or an overlay's layers, may point at one
// bitstream), and so do alpha planes; a grid's tiles count once, not again as its canvas. A file
// within both is converted, and its primary picture rendered.
func TestHEIFPictureBudget(t *testing.T) {
	t.Parallel()
	needTools(t, "heif-enc", "heif-convert")
	dir := t.TempDir()
	p1, p2, p3 := quadrants(200, 400, yellow, blue, green, red), quad(320, 240), quadrants(240, 160, blue, red, yellow, green)
	var pngs []string
	for i, img := range []image.Image{p1, p3} {
		pngs = append(pngs, filepath.Join(dir, fmt.Sprintf("p%d.png", 2*i+1)))
		if err := os.WriteFile(pngs[i], encodePNG(t, img), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// props and real: the properties and items (p1, the primary, and p2) of a heif-enc file of two
	// pictures, to build real files of many pictures around.
	props, real := heiftest.ItemsOf(t, readFile(t, heifEncode(t, dir, "two.heic", p2, pngs[0])))
	grid := image.NewNRGBA(image.Rect(0, 0, 960, 720))
	for i := range 9 {
		draw.Draw(grid, p2.Bounds().Add(image.Pt(i%3*320, i/3*240)), p2, image.Point{}, draw.Src)
	}
	// fake: pictures coded at w×h by their parameter sets (their properties numbered from 1), with
	// no picture in their Data: heif-convert, should it start, fails on them.
	fake := func(w, h uint32, more ...[]byte) [][]byte {
		return append([][]byte{heiftest.ISPE(w, h), heiftest.HvcC(heiftest.SPS(uint64(w), uint64(h), 0))}, more...)
	}
	slice := heiftest.LengthPrefixed([]byte{0x26, 0x01, 0xaf})
	big := heiftest.Item{ID: 1, Type: "hvc1", Props: []int{1, 2}, Data: slice}
	primaryAt9 := func(last int) []heiftest.Item {
		p := real[0]
		p.ID = 9
		return append([]heiftest.Item{p}, heiftest.SharingItems(real[1], heiftest.IDRange(1, last, 9)...)...)
	}
	cases := []struct {
		name   string
		file   []byte
		count  int
		pixels int64
		want   image.Image // the primary picture, rendered; nil when refused
		words  []string    // in the refusal
	}{
		{name: "one-picture", file: readFile(t, heifEncode(t, dir, "one.heic", p2)), count: 1, pixels: 320 * 240, want: p2},
		{name: "three-pictures-primary-second", file: withPrimary(t, readFile(t, heifEncode(t, dir, "three.heic", p2, pngs[0], pngs[1])), 2),
			count: 3, pixels: 200*400 + 240*160 + 320*240, want: p3},
		{name: "16-pictures-sharing-one-bitstream", file: heiftest.Build("heic", props, primaryAt9(16)), count: 16, pixels: 200*400 + 15*320*240, want: p1},
		{name: "3x3-grid-of-one-tile", file: heiftest.Build("heic", append(props, heiftest.ISPE(960, 720)), []heiftest.Item{
			{ID: 1, Type: "grid", Props: []int{len(props) + 1}, Data: heiftest.Grid(3, 3, 960, 720, false), Dimg: []int{2, 2, 2, 2, 2, 2, 2, 2, 2}},
			{ID: 2, Type: real[1].Type, Props: real[1].Props, Data: real[1].Data, Hidden: true}}),
			count: 1, pixels: 960 * 720, want: grid},
		{name: "17-pictures-sharing-one-bitstream", file: heiftest.Build("heic", props, primaryAt9(17)), count: 17, pixels: 200*400 + 16*320*240,
			words: []string{"HEIC holds 17 pictures of 1.3 megapixels in all (1308800 pixels", "at most 16 pictures of 100 megapixels", "JPEG or PNG"}},
		{name: "9-pictures-of-4000x3000-sharing-one-bitstream", file: heiftest.Build("heic", fake(4000, 3000), heiftest.SharingItems(big, heiftest.IDRange(1, 9, 0)...)),
			count: 9, pixels: 9 * 4000 * 3000, words: []string{"holds 9 pictures of 108.0 megapixels in all (108000000 pixels"}},
		{name: "30-pictures-of-4000x3000-sharing-one-bitstream", file: heiftest.Build("heic", fake(4000, 3000), heiftest.SharingItems(big, heiftest.IDRange(1, 30, 0)...)),
			count: 30, pixels: 30 * 4000 * 3000, words: []string{"holds 30 pictures of 360.0 megapixels in all"}},
		{name: "8000x7000-with-alpha", file: heiftest.Build("heic", fake(8000, 7000, heiftest.AuxC(heiftest.AlphaURN)), []heiftest.Item{
			big, {ID: 2, Type: "hvc1", Props: []int{1, 2, 3}, Data: slice, Auxl: 1}}),
			count: 1, pixels: 2 * 8000 * 7000, words: []string{"holds 1 picture of 112.0 megapixels in all"}},
		{name: "overlay-of-one-layer-thrice", file: heiftest.Build("heic", fake(6000, 6000), []heiftest.Item{
			{ID: 1, Type: "iovl", Props: []int{1}, Data: heiftest.Overlay(6000, 6000, 3), Dimg: []int{2, 2, 2}},
			{ID: 2, Type: "hvc1", Props: []int{1, 2}, Data: slice, Hidden: true}}),
			count: 1, pixels: 3 * 6000 * 6000, words: []string{"holds 1 picture of 108.0 megapixels in all"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pics, err := media.WalkHEIF(bytes.NewReader(c.file), int64(len(c.file)))
			if err != nil || pics.Count != c.count || pics.Pixels != c.pixels {
				t.Errorf("media.WalkHEIF: %d pictures of %d pixels (%v), want %d of %d", pics.Count, pics.Pixels, err, c.count, c.pixels)
			}
			cfg := testConfig(t.TempDir())
			cfg.HeifConvert = markingScript(t, t.TempDir(), "heif-convert", `exec heif-convert "$@"`)
			e := newTestEnv(t, &cfg)
			path := writeFixture(t, "in.heic", c.file)
			if c.want != nil {
				rendersAs(t, e, e.key, path, c.want)
				if _, err := os.Stat(cfg.HeifConvert + ".ran"); err != nil {
					t.Error("heif-convert did not run")
				}
				return
			}
			code, body := e.submit(t, e.key, path, fixture(t, "short.wav"), nil)
			msg, _ := body["error"].(string)
			if code != 400 {
				t.Errorf("%d %q, want a 400", code, msg)
			}
			for _, w := range c.words {
				if !strings.Contains(msg, w) {
					t.Errorf("%q lacks %q", msg, w)
				}
			}
			// The conversion, should a file come to it unchecked, refuses it before heif-convert too.
			err = heifToPNG(t.Context(), ffmpeg.Tools{HeifConvert: cfg.HeifConvert}, writeFixture(t, "again.heic", c.file), media.HEIC)
			if e := (*Error)(nil); !errors.As(err, &e) || e.Kind != kindInvalid || !strings.Contains(e.Msg, c.words[0]) {
				t.Errorf("heifToPNG: %v, want a 400 naming %q", err, c.words[0])
			}
			if _, err := os.Stat(cfg.HeifConvert + ".ran"); err == nil {
				t.Error("heif-convert was started")
			}
		})
	}
}
