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
)

// heifEncItems is the properties and items of a HEIC heif-enc makes of img (one picture, no
// thumbnail, no alpha): a real, decodable picture to build files around.
func heifEncItems(t testing.TB, img image.Image) ([][]byte, []heifTestItem) {
	t.Helper()
	needTools(t, "heif-enc")
	props, items := heifItemsOf(t, readFile(t, heifEncode(t, t.TempDir(), "a.heic", img)))
	if len(items) != 1 {
		t.Fatalf("heif-enc wrote %d items", len(items))
	}
	return props, items
}

// heifItemsOf is the properties and items of the HEIF file b, which has no item references, the
// primary first, for buildHEIF to build it again, changed.
func heifItemsOf(t testing.TB, b []byte) ([][]byte, []heifTestItem) {
	t.Helper()
	p := &heifParser{r: bytes.NewReader(b), size: int64(len(b)), items: map[uint32]*heifItem{}, configs: map[*heifBox]heifConfig{}}
	top, err := p.children(b)
	meta := first(top, "meta")
	if err != nil || meta == nil || len(meta.body) < 4 {
		t.Fatalf("no meta box: %v", err)
	}
	if inner, err := p.children(meta.body[4:]); err != nil || first(inner, "iref") != nil {
		t.Fatalf("item references, or a damaged meta box: %v", err)
	}
	if err := p.parseMeta(meta.body); err != nil {
		t.Fatal(err)
	}
	var props [][]byte
	for _, b := range p.props {
		props = append(props, hbox(b.typ, b.body))
	}
	var items []heifTestItem
	for _, id := range p.order {
		it := p.items[id]
		d, err := p.itemData(id, it)
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, d.n)
		if err := d.read(data, 0); err != nil {
			t.Fatal(err)
		}
		ti := heifTestItem{id: int(id), typ: it.typ, data: data}
		for _, idx := range it.props {
			ti.props = append(ti.props, int(idx))
		}
		if id == p.primary {
			items = append([]heifTestItem{ti}, items...)
		} else {
			items = append(items, ti)
		}
	}
	return props, items
}

func auxCBox(urn string) []byte { return hfull("auxC", 0, 0, []byte(urn), []byte{0}) }

const (
	alphaURN = "urn:mpeg:hevc:2015:auxid:1"
	depthURN = "urn:mpeg:hevc:2015:auxid:2"
)

// TestHEIFDecodedItems: a HEIC is weighed and checked by the pictures heif-convert decodes (its
// top-level pictures and their alpha planes) and by no other: a thumbnail in JPEG, a thumbnail or a
// depth map coded over the cap, a thumbnail whose size cannot be read are all accepted, and
// heif-convert, decoding the file, shows it never reads them (their bitstreams are not real); an
// alpha plane over the cap is refused, and one whose bitstream is not real fails the conversion,
// as heif-convert decodes it with its picture.
func TestHEIFDecodedItems(t *testing.T) {
	t.Parallel()
	needTools(t, "heif-enc", "heif-convert")
	fake := lengthPrefixed([]byte{0x26, 0x01, 0xaf}) // a slice header, and no picture
	// around is a HEIC of heif-enc's 320×240 picture (item 1) with more properties (numbered from
	// n+1, n the number of heif-enc's) and more items.
	around := func(t testing.TB, more [][]byte, items func(n int) []heifTestItem) []byte {
		props, real := heifEncItems(t, quad(320, 240))
		return buildHEIF("heic", append(props, more...), append(real, items(len(props))...))
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
			return around(t, nil, func(int) []heifTestItem {
				return []heifTestItem{{id: 2, typ: "jpeg", data: encodeJPEG(t, quad(64, 48)), thmb: 1}}
			})
		}},
		{name: "thumbnail-coded-20000x20000", file: func(t testing.TB) []byte {
			return around(t, [][]byte{ispeBox(20000, 20000), hvcCBox(testSPS(20000, 20000, 0))}, func(n int) []heifTestItem {
				return []heifTestItem{{id: 2, typ: "hvc1", props: []int{n + 1, n + 2}, data: fake, thmb: 1}}
			})
		}},
		{name: "thumbnail-without-sequence-parameter-set", file: func(t testing.TB) []byte {
			return around(t, [][]byte{ispeBox(64, 48), hvcCBox([]byte{0x40, 0x01, 0x0c})}, func(n int) []heifTestItem {
				return []heifTestItem{{id: 2, typ: "hvc1", props: []int{n + 1, n + 2}, data: fake, thmb: 1}}
			})
		}},
		{name: "thumbnail-alpha-coded-12000x12000", file: func(t testing.TB) []byte {
			more := [][]byte{ispeBox(64, 48), hvcCBox(testSPS(64, 48, 0)), hvcCBox(testSPS(12000, 12000, 0)), auxCBox(alphaURN)}
			return around(t, more, func(n int) []heifTestItem {
				return []heifTestItem{
					{id: 2, typ: "hvc1", props: []int{n + 1, n + 2}, data: fake, thmb: 1},
					{id: 3, typ: "hvc1", props: []int{n + 1, n + 3, n + 4}, data: fake, auxl: 2}}
			})
		}},
		{name: "depth-map-coded-12000x12000", file: func(t testing.TB) []byte {
			return around(t, [][]byte{ispeBox(320, 240), hvcCBox(testSPS(12000, 12000, 0)), auxCBox(depthURN)}, func(n int) []heifTestItem {
				return []heifTestItem{{id: 2, typ: "hvc1", props: []int{n + 1, n + 2, n + 3}, data: fake, auxl: 1}}
			})
		}},
		{name: "hidden-jpeg-item", file: func(t testing.TB) []byte {
			return around(t, nil, func(int) []heifTestItem {
				return []heifTestItem{{id: 2, typ: "jpeg", data: encodeJPEG(t, quad(64, 48)), hidden: true}}
			})
		}},
		{name: "alpha-coded-12000x12000", status: 400, words: "12000×12000", file: func(t testing.TB) []byte {
			return around(t, [][]byte{ispeBox(320, 240), hvcCBox(testSPS(12000, 12000, 0)), auxCBox(alphaURN)}, func(n int) []heifTestItem {
				return []heifTestItem{{id: 2, typ: "hvc1", props: []int{n + 1, n + 2, n + 3}, data: fake, auxl: 1}}
			})
		}},
		{name: "alpha-in-jpeg", status: 415, words: `"jpeg"`, file: func(t testing.TB) []byte {
			return around(t, [][]byte{ispeBox(320, 240), auxCBox(alphaURN)}, func(n int) []heifTestItem {
				return []heifTestItem{{id: 2, typ: "jpeg", props: []int{n + 1, n + 2}, data: encodeJPEG(t, quad(320, 240)), auxl: 1}}
			})
		}},
		{name: "alpha-not-decodable", status: 400, words: "could not be decoded", file: func(t testing.TB) []byte {
			return around(t, [][]byte{ispeBox(320, 240), hvcCBox(testSPS(320, 240, 0)), auxCBox(alphaURN)}, func(n int) []heifTestItem {
				return []heifTestItem{{id: 2, typ: "hvc1", props: []int{n + 1, n + 2, n + 3}, data: fake, auxl: 1}}
			})
		}},
		{name: "primary-is-a-thumbnail", status: 400, words: "primary item 1 is not a picture of its own", file: func(t testing.TB) []byte {
			props, real := heifEncItems(t, quad(320, 240))
			second := real[0]
			second.id, real[0].thmb = 2, 2
			return buildHEIF("heic", props, append(real, second))
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
			props, items := heifItemsOf(t, withPrimary(t, two, 2)) // the primary (item 2) first
			return buildHEIF("heic", props, items)
		}(), p2, 2, 1},
		{"thumbnails-between", withPrimary(t, thumbs, 4), p2, 2, 1},
	}
	e := newTestEnv(t, nil, func(s *server) { s.tools.HeifConvert = "heif-convert" })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := writeFixture(t, "in.heic", c.file)
			pics, err := heifWalk(bytes.NewReader(c.file), int64(len(c.file)))
			if err != nil || pics.count != c.count || pics.primary != c.primary {
				t.Fatalf("heifWalk: %+v %v, want %d pictures, the primary at %d", pics, err, c.count, c.primary)
			}
			// heif-convert's own files: the primary's is the one heifWalk places.
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
	slice := lengthPrefixed([]byte{0x26, 0x01})
	file := buildHEIF("heic", [][]byte{ispeBox(64, 48), hvcCBox(testSPS(64, 48, 0))}, []heifTestItem{
		{id: 1, typ: "hvc1", props: []int{1, 2}, data: slice},
		{id: 2, typ: "hvc1", props: []int{1, 2}, data: slice}})
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

// sharingItems is the item it under each of ids, the first holding its data and the others pointing
// at that data (iloc): many pictures for the bytes of one.
func sharingItems(it heifTestItem, ids ...int) []heifTestItem {
	var out []heifTestItem
	for i, id := range ids {
		c := it
		c.id = id
		if i > 0 {
			c.shares, c.data = ids[0], nil
		}
		out = append(out, c)
	}
	return out
}

// idRange is the item IDs from first to last, but skip.
func idRange(first, last, skip int) []int {
	var ids []int
	for id := first; id <= last; id++ {
		if id != skip {
			ids = append(ids, id)
		}
	}
	return ids
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
	props, real := heifItemsOf(t, readFile(t, heifEncode(t, dir, "two.heic", p2, pngs[0])))
	grid := image.NewNRGBA(image.Rect(0, 0, 960, 720))
	for i := range 9 {
		draw.Draw(grid, p2.Bounds().Add(image.Pt(i%3*320, i/3*240)), p2, image.Point{}, draw.Src)
	}
	// fake: pictures coded at w×h by their parameter sets (their properties numbered from 1), with
	// no picture in their data: heif-convert, should it start, fails on them.
	fake := func(w, h uint32, more ...[]byte) [][]byte {
		return append([][]byte{ispeBox(w, h), hvcCBox(testSPS(uint64(w), uint64(h), 0))}, more...)
	}
	slice := lengthPrefixed([]byte{0x26, 0x01, 0xaf})
	big := heifTestItem{id: 1, typ: "hvc1", props: []int{1, 2}, data: slice}
	primaryAt9 := func(last int) []heifTestItem {
		p := real[0]
		p.id = 9
		return append([]heifTestItem{p}, sharingItems(real[1], idRange(1, last, 9)...)...)
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
		{name: "16-pictures-sharing-one-bitstream", file: buildHEIF("heic", props, primaryAt9(16)), count: 16, pixels: 200*400 + 15*320*240, want: p1},
		{name: "3x3-grid-of-one-tile", file: buildHEIF("heic", append(props, ispeBox(960, 720)), []heifTestItem{
			{id: 1, typ: "grid", props: []int{len(props) + 1}, data: gridData(3, 3, 960, 720, false), dimg: []int{2, 2, 2, 2, 2, 2, 2, 2, 2}},
			{id: 2, typ: real[1].typ, props: real[1].props, data: real[1].data, hidden: true}}),
			count: 1, pixels: 960 * 720, want: grid},
		{name: "17-pictures-sharing-one-bitstream", file: buildHEIF("heic", props, primaryAt9(17)), count: 17, pixels: 200*400 + 16*320*240,
			words: []string{"HEIC holds 17 pictures of 1.3 megapixels in all (1308800 pixels", "at most 16 pictures of 100 megapixels", "JPEG or PNG"}},
		{name: "9-pictures-of-4000x3000-sharing-one-bitstream", file: buildHEIF("heic", fake(4000, 3000), sharingItems(big, idRange(1, 9, 0)...)),
			count: 9, pixels: 9 * 4000 * 3000, words: []string{"holds 9 pictures of 108.0 megapixels in all (108000000 pixels"}},
		{name: "30-pictures-of-4000x3000-sharing-one-bitstream", file: buildHEIF("heic", fake(4000, 3000), sharingItems(big, idRange(1, 30, 0)...)),
			count: 30, pixels: 30 * 4000 * 3000, words: []string{"holds 30 pictures of 360.0 megapixels in all"}},
		{name: "8000x7000-with-alpha", file: buildHEIF("heic", fake(8000, 7000, auxCBox(alphaURN)), []heifTestItem{
			big, {id: 2, typ: "hvc1", props: []int{1, 2, 3}, data: slice, auxl: 1}}),
			count: 1, pixels: 2 * 8000 * 7000, words: []string{"holds 1 picture of 112.0 megapixels in all"}},
		{name: "overlay-of-one-layer-thrice", file: buildHEIF("heic", fake(6000, 6000), []heifTestItem{
			{id: 1, typ: "iovl", props: []int{1}, data: overlayData(6000, 6000, 3), dimg: []int{2, 2, 2}},
			{id: 2, typ: "hvc1", props: []int{1, 2}, data: slice, hidden: true}}),
			count: 1, pixels: 3 * 6000 * 6000, words: []string{"holds 1 picture of 108.0 megapixels in all"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pics, err := heifWalk(bytes.NewReader(c.file), int64(len(c.file)))
			if err != nil || pics.count != c.count || pics.pixels != c.pixels {
				t.Errorf("heifWalk: %d pictures of %d pixels (%v), want %d of %d", pics.count, pics.pixels, err, c.count, c.pixels)
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
