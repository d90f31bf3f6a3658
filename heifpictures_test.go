package main

// Tests of which pictures of a HEIF file are weighed: those heif-convert decodes (its top-level
// pictures, what they are made of, their alpha planes) and no other (thumbnails, depth maps,
// hidden items nothing is made of). Files are built around a real picture heif-enc made, so that
// heif-convert itself shows what it decodes: an item with a bitstream that cannot be decoded is
// one it never decodes when the conversion succeeds.

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"path/filepath"
	"strings"
	"testing"
)

// heifEncItems is the properties and items of a HEIC heif-enc makes of img (one picture, no
// thumbnail, no alpha), the primary first: a real, decodable picture to build files around.
func heifEncItems(t testing.TB, img image.Image) ([][]byte, []heifTestItem) {
	t.Helper()
	needTools(t, "heif-enc")
	b := readFile(t, heifEncode(t, t.TempDir(), "a.heic", img))
	p := &heifParser{r: bytes.NewReader(b), size: int64(len(b)), items: map[uint32]*heifItem{}, configs: map[*heifBox]heifConfig{}}
	top, err := p.children(b)
	meta := first(top, "meta")
	if err != nil || meta == nil {
		t.Fatalf("heif-enc's file: %v", err)
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
		items = append(items, ti)
	}
	if len(items) != 1 || items[0].id != int(p.primary) {
		t.Fatalf("heif-enc wrote %d items, primary %d", len(items), p.primary)
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
			err := checkImage(path, typeHEIC)
			if err == nil {
				w, h, _, _ := imageSize(path, typeHEIC)
				if w != 320 || h != 240 {
					t.Errorf("weighed %d×%d, want the picture's 320×240", w, h)
				}
				err = heifToPNG(t.Context(), tools{heifConvert: "heif-convert"}, path, typeHEIC)
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
