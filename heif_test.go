package main

// Tests of heifLargest, the HEIF box walker, and of what it keeps out: a HEIC or AVIF whose 'ispe'
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
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
)

// hbox is an ISO-BMFF box of type typ holding parts, end to end.
func hbox(typ string, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	return append(append(binary.BigEndian.AppendUint32(nil, uint32(8+len(body))), typ...), body...)
}

// hfull is a full box: hbox with a version and flags first.
func hfull(typ string, version byte, flags uint32, parts ...[]byte) []byte {
	return hbox(typ, append([]byte{version, byte(flags >> 16), byte(flags >> 8), byte(flags)}, bytes.Join(parts, nil)...))
}

func h16(v int) []byte    { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func h32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// heifTestItem is one item of a hand-built HEIF file.
type heifTestItem struct {
	id     int
	typ    string
	props  []int  // 1-based indices into the file's properties
	data   []byte // in the mdat box
	dimg   []int  // the items it is derived from (a grid's tiles)
	hidden bool   // not a picture of its own (a grid's tile)
	thmb   int    // the item it is a thumbnail of, if any
	auxl   int    // the item it is an auxiliary picture of, if any
	shares int    // an earlier item whose data (one extent) this one points at, its own data unwritten
}

// buildHEIF is a HEIF file of major brand brand holding props (ipco's children) and items, the
// first item primary: the boxes libheif needs, each item's data in one extent of the mdat box.
func buildHEIF(brand string, props [][]byte, items []heifTestItem) []byte {
	ftyp := hbox("ftyp", []byte(brand), h32(0), []byte("mif1"+brand))
	meta := func(dataStart int) []byte {
		var infes, locs, assocs, refs [][]byte
		off := dataStart
		at := map[int][]byte{} // an item's extent: its offset and length
		for _, it := range items {
			var flags uint32
			if it.hidden {
				flags = 1
			}
			infes = append(infes, hfull("infe", 2, flags, h16(it.id), h16(0), []byte(it.typ), []byte{0}))
			if at[it.id] = at[it.shares]; it.shares == 0 {
				at[it.id] = append(h32(uint32(off)), h32(uint32(len(it.data)))...)
				off += len(it.data)
			}
			locs = append(locs, h16(it.id), h16(0), h16(0), h16(1), at[it.id])
			assocs = append(assocs, h16(it.id), []byte{byte(len(it.props))})
			for _, p := range it.props {
				assocs = append(assocs, []byte{0x80 | byte(p)})
			}
			if len(it.dimg) > 0 {
				ref := [][]byte{h16(it.id), h16(len(it.dimg))}
				for _, d := range it.dimg {
					ref = append(ref, h16(d))
				}
				refs = append(refs, hbox("dimg", ref...))
			}
			if it.thmb != 0 {
				refs = append(refs, hbox("thmb", h16(it.id), h16(1), h16(it.thmb)))
			}
			if it.auxl != 0 {
				refs = append(refs, hbox("auxl", h16(it.id), h16(1), h16(it.auxl)))
			}
		}
		boxes := [][]byte{
			hfull("hdlr", 0, 0, h32(0), []byte("pict"), make([]byte, 12), []byte{0}),
			hfull("pitm", 0, 0, h16(items[0].id)),
			hfull("iinf", 0, 0, append([][]byte{h16(len(items))}, infes...)...),
			hbox("iprp", hbox("ipco", props...), hfull("ipma", 0, 0, append([][]byte{h32(uint32(len(items)))}, assocs...)...)),
			hfull("iloc", 1, 0, append([][]byte{{0x44, 0x00}, h16(len(items))}, locs...)...),
		}
		if len(refs) > 0 {
			boxes = append(boxes, hfull("iref", 0, 0, refs...))
		}
		return hfull("meta", 0, 0, boxes...)
	}
	start := len(ftyp) + len(meta(0)) + 8 // the mdat box's header
	var mdat [][]byte
	for _, it := range items {
		if it.shares == 0 {
			mdat = append(mdat, it.data)
		}
	}
	return bytes.Join([][]byte{ftyp, meta(start), hbox("mdat", mdat...)}, nil)
}

func ispeBox(w, h uint32) []byte { return hfull("ispe", 0, 0, h32(w), h32(h)) }

// hvcCBox is an HEVC decoder configuration holding nals (VPS, SPS, PPS), with 4-byte NAL lengths.
func hvcCBox(nals ...[]byte) []byte {
	b := make([]byte, 23)
	b[0], b[21], b[22] = 1, 0x0f, byte(len(nals))
	for _, nal := range nals {
		b = append(append(append(append(b, 0x80|nal[0]>>1&0x3f), h16(1)...), h16(len(nal))...), nal...)
	}
	return hbox("hvcC", b)
}

// av1CBox is an AV1 decoder configuration with configOBUs obus.
func av1CBox(obus ...[]byte) []byte {
	return hbox("av1C", append([]byte{0x81, 0x00, 0x0c, 0x00}, bytes.Join(obus, nil)...))
}

// lengthPrefixed is nals as an HEVC item's data holds them: each after its 4-byte length.
func lengthPrefixed(nals ...[]byte) []byte {
	var b []byte
	for _, nal := range nals {
		b = append(append(b, h32(uint32(len(nal)))...), nal...)
	}
	return b
}

// gridData is a grid item's descriptor: rows×cols tiles on a w×h canvas (32-bit sizes when wide).
func gridData(rows, cols int, w, h uint32, wide bool) []byte {
	if wide {
		return append([]byte{0, 1, byte(rows - 1), byte(cols - 1)}, append(h32(w), h32(h)...)...)
	}
	return append([]byte{0, 0, byte(rows - 1), byte(cols - 1)}, append(h16(int(w)), h16(int(h))...)...)
}

// overlayData is an overlay item's descriptor: a w×h canvas (32-bit sizes) of layers layers, all at
// its top left corner.
func overlayData(w, h uint32, layers int) []byte {
	b := append([]byte{0, 1}, make([]byte, 8)...) // version, flags, the fill colour
	return append(append(append(b, h32(w)...), h32(h)...), make([]byte, 8*layers)...)
}

// msbBits writes a bitstream most significant bit first, as HEVC and AV1 read them.
type msbBits struct {
	b []byte
	n int
}

func (w *msbBits) u(v uint64, n int) {
	for i := n - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte(v>>i&1) << (7 - w.n%8)
		w.n++
	}
}

func (w *msbBits) ue(v uint64) {
	n := bits.Len64(v + 1)
	w.u(0, n-1)
	w.u(v+1, n)
}

// testSPS is an HEVC sequence parameter set NAL unit for a w×h picture with subLayers temporal
// sub-layers beyond the first (each with its profile and level, filled with ones so that a reader
// that skips them wrongly reads another size), escaped as in a stream.
func testSPS(w, h uint64, subLayers int) []byte {
	var b msbBits
	b.u(0x4201, 16) // nal_unit_type 33
	b.u(0, 4)
	b.u(uint64(subLayers), 3)
	b.u(1, 1)
	b.u(0x01, 8)            // profile space, tier, profile 1 (Main)
	b.u(0x60000000, 32)     // compatibility flags
	b.u(0x900000000000, 48) // progressive, frame only; then zeros: runs an escape must break
	b.u(93, 8)              // level 3.1
	for range subLayers {
		b.u(3, 2) // profile and level present
	}
	if subLayers > 0 {
		b.u(0, 2*(8-subLayers))
	}
	for range subLayers {
		b.u(1<<44-1, 44)
		b.u(1<<44-1, 44)
		b.u(0xff, 8)
	}
	b.ue(0) // sps_seq_parameter_set_id
	b.ue(1) // 4:2:0
	b.ue(w)
	b.ue(h)
	b.u(1, 1) // the stop bit
	var out []byte
	zeros := 0
	for _, c := range b.b {
		if zeros >= 2 && c <= 3 {
			out, zeros = append(out, 3), 0
		}
		out = append(out, c)
		if zeros = 0; c == 0 {
			zeros = bytes.Count(out[max(0, len(out)-2):], []byte{0})
		}
	}
	return out
}

// testSeqHeader is an AV1 sequence header OBU (with its size) for a w×h picture, reduced to a
// still picture's header or with timing information and two operating points.
func testSeqHeader(w, h uint64, reduced bool) []byte {
	var b msbBits
	b.u(0, 3) // seq_profile
	if reduced {
		b.u(3, 2)  // still_picture, reduced_still_picture_header
		b.u(31, 5) // seq_level_idx
	} else {
		b.u(0, 2)
		b.u(1, 1)   // timing_info_present_flag
		b.u(1, 32)  // num_units_in_display_tick
		b.u(25, 32) // time_scale
		b.u(1, 1)   // equal_picture_interval
		b.ue(0)     // num_ticks_per_picture_minus_1
		b.u(1, 1)   // decoder_model_info_present_flag
		b.u(9, 5)   // buffer_delay_length_minus_1: 10-bit delays
		b.u(1, 32)  // num_units_in_decoding_tick
		b.u(0, 10)  // two lengths
		b.u(1, 1)   // initial_display_delay_present_flag
		b.u(1, 5)   // two operating points
		for _, level := range []uint64{8, 3} {
			b.u(0x101, 12) // operating_point_idc
			b.u(level, 5)
			if level > 7 {
				b.u(1, 1) // seq_tier
			}
			b.u(1, 1)        // decoder_model_present_for_this_op
			b.u(1<<21-1, 21) // two 10-bit delays, low_delay_mode_flag
			b.u(1, 1)        // initial_display_delay_present_for_this_op
			b.u(15, 4)
		}
	}
	b.u(15, 4) // frame_width_bits_minus_1
	b.u(15, 4)
	b.u(w-1, 16)
	b.u(h-1, 16)
	b.u(0x80, 8) // the rest, and trailing bits
	return append([]byte{1<<3 | 2, byte(len(b.b))}, b.b...)
}

// hevcGrid is a HEIC whose primary item is a rows×cols grid of tiles of the coded size tile, every
// ispe (and the grid's descriptor) claiming claim×claim: no real bitstream, which the size check
// never needs.
func hevcGrid(rows, cols int, tile uint64, claim uint32) []byte {
	props := [][]byte{ispeBox(claim, claim), hvcCBox(testSPS(tile, tile, 0))}
	items := []heifTestItem{{id: 1, typ: "grid", props: []int{1}, data: gridData(rows, cols, claim, claim, false)}}
	for i := range rows * cols {
		items = append(items, heifTestItem{id: 2 + i, typ: "hvc1", props: []int{2, 1}, data: lengthPrefixed([]byte{0x26, 0x01, 0xaf}), hidden: true})
		items[0].dimg = append(items[0].dimg, 2+i)
	}
	return buildHEIF("heic", props, items)
}

// av1Grid is hevcGrid's AVIF.
func av1Grid(rows, cols int, tile uint64, claim uint32) []byte {
	props := [][]byte{ispeBox(claim, claim), av1CBox(testSeqHeader(tile, tile, true))}
	items := []heifTestItem{{id: 1, typ: "grid", props: []int{1}, data: gridData(rows, cols, claim, claim, false)}}
	for i := range rows * cols {
		items = append(items, heifTestItem{id: 2 + i, typ: "av01", props: []int{2, 1}, data: []byte{0x32, 0x01, 0x10}, hidden: true})
		items[0].dimg = append(items[0].dimg, 2+i)
	}
	return buildHEIF("avif", props, items)
}

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
			file: func(testing.TB) []byte { return hevcGrid(4, 4, 4096, 64) }},
		{name: "av1-grid-4x4-of-4096-claims-64", typ: media.AVIF, w: 16384, h: 16384, refuse: true,
			file: func(testing.TB) []byte { return av1Grid(4, 4, 4096, 64) }},
		{name: "hevc-sps-in-data-outgrows-hvcC", typ: media.HEIC, w: 12000, h: 12000, refuse: true, file: func(testing.TB) []byte {
			return buildHEIF("heic", [][]byte{ispeBox(64, 64), hvcCBox(testSPS(64, 64, 0))},
				[]heifTestItem{{id: 1, typ: "hvc1", props: []int{1, 2}, data: lengthPrefixed(testSPS(12000, 12000, 0), []byte{0x26, 0x01})}})
		}},
		{name: "hevc-sps-with-sub-layers", typ: media.HEIC, w: 10000, h: 10001, refuse: true, file: func(testing.TB) []byte {
			return buildHEIF("heic", [][]byte{ispeBox(64, 64), hvcCBox(testSPS(10000, 10001, 3))},
				[]heifTestItem{{id: 1, typ: "hvc1", props: []int{1, 2}, data: lengthPrefixed([]byte{0x26, 0x01})}})
		}},
		{name: "av1-sequence-header-in-data-only", typ: media.AVIF, w: 10240, h: 10240, refuse: true, file: func(testing.TB) []byte {
			return buildHEIF("avif", [][]byte{ispeBox(64, 64), av1CBox()},
				[]heifTestItem{{id: 1, typ: "av01", props: []int{1, 2}, data: append(testSeqHeader(10240, 10240, false), 0x32, 0x00)}})
		}},
		{name: "av1-timing-and-operating-points", typ: media.AVIF, w: 3000, h: 2000, file: func(testing.TB) []byte {
			return buildHEIF("avif", [][]byte{ispeBox(64, 64), av1CBox(testSeqHeader(3000, 2000, false))},
				[]heifTestItem{{id: 1, typ: "av01", props: []int{1, 2}, data: []byte{0x32, 0x00}}})
		}},
		{name: "grid-canvas-20000-of-one-64-tile", typ: media.HEIC, w: 20000, h: 20000, refuse: true, file: func(testing.TB) []byte {
			return buildHEIF("heic", [][]byte{ispeBox(64, 64), hvcCBox(testSPS(64, 64, 0))}, []heifTestItem{
				{id: 1, typ: "grid", props: []int{1}, data: gridData(1, 1, 20000, 20000, true), dimg: []int{2}},
				{id: 2, typ: "hvc1", props: []int{1, 2}, data: lengthPrefixed([]byte{0x26, 0x01})}})
		}},
		{name: "overlay-canvas-30000x9000", typ: media.HEIC, w: 30000, h: 9000, refuse: true, file: func(testing.TB) []byte {
			return buildHEIF("heic", [][]byte{ispeBox(64, 64), hvcCBox(testSPS(64, 64, 0))}, []heifTestItem{
				{id: 1, typ: "iovl", props: []int{1}, data: overlayData(30000, 9000, 1), dimg: []int{2}},
				{id: 2, typ: "hvc1", props: []int{1, 2}, data: lengthPrefixed([]byte{0x26, 0x01})}})
		}},
		{name: "large-second-picture", typ: media.HEIC, w: 11000, h: 11000, refuse: true, file: func(testing.TB) []byte {
			return buildHEIF("heic", [][]byte{ispeBox(64, 64), hvcCBox(testSPS(64, 64, 0)), hvcCBox(testSPS(11000, 11000, 1))}, []heifTestItem{
				{id: 1, typ: "hvc1", props: []int{1, 2}, data: lengthPrefixed([]byte{0x26, 0x01})},
				{id: 2, typ: "hvc1", props: []int{1, 3}, data: lengthPrefixed([]byte{0x26, 0x01})}})
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
		n, l := leb128(b[1+b[0]>>2&1:])
		end := 1 + int(b[0]>>2&1) + l + int(n)
		if l == 0 || end > len(b) {
			t.Fatalf("damaged OBU stream")
		}
		switch b[0] >> 3 & 15 {
		case av1SequenceHeader:
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
		return buildHEIF("heic", [][]byte{hvcCBox(params...), ispeBox(16, 16)},
			[]heifTestItem{{id: 1, typ: "hvc1", props: []int{1, 2}, data: lengthPrefixed(slices...)}})
	}
	seq, rest := obus(t, b)
	return buildHEIF("avif", [][]byte{av1CBox(seq), ispeBox(16, 16)},
		[]heifTestItem{{id: 1, typ: "av01", props: []int{1, 2}, data: bytes.Join(rest, nil)}})
}

// TestHEIFDecoderAgrees checks heifLargest against libheif on real files: what heif-convert makes
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
			w, h, err := heifLargest(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
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

// heifHostile are HEIF files damaged in the ways the walker must refuse cleanly, each with the
// status (400, or 415 for a codec it cannot size) and the words of its refusal.
func heifHostile() []struct {
	name   string
	file   []byte
	status int
	words  string
} {
	sps := testSPS(64, 64, 0)
	props := [][]byte{ispeBox(64, 64), hvcCBox(sps)}
	hevc := func(id int, props ...int) heifTestItem {
		return heifTestItem{id: id, typ: "hvc1", props: props, data: lengthPrefixed([]byte{0x26, 0x01})}
	}
	good := buildHEIF("heic", props, []heifTestItem{hevc(1, 1, 2)})
	ftyp := hbox("ftyp", []byte("heic"), h32(0), []byte("mif1heic"))
	bigMeta := append(append(bytes.Clone(ftyp), h32(5<<20)...), "meta"...)
	return []struct {
		name   string
		file   []byte
		status int
		words  string
	}{
		{"no-meta", append(bytes.Clone(ftyp), hbox("mdat", make([]byte, 100))...), 400, "no meta box"},
		{"meta-over-4-MB", append(bigMeta, make([]byte, 5<<20-8)...), 400, "meta box is 5242880 bytes"},
		{"meta-cut-short", good[:len(ftyp)+60], 400, "claims"},
		{"child-overruns-meta", append(bytes.Clone(ftyp), hfull("meta", 0, 0, []byte{0, 0, 0x10, 0, 'i', 'i', 'n', 'f'})...), 400, "claims 4096 bytes"},
		{"largesize-past-end", append(bytes.Clone(ftyp), 0, 0, 0, 1, 'm', 'e', 't', 'a', 0xff, 0, 0, 0, 0, 0, 0, 0), 400, "past the end"},
		{"grid-of-itself", buildHEIF("heic", props, []heifTestItem{{id: 1, typ: "grid", props: []int{1}, data: gridData(1, 1, 64, 64, false), dimg: []int{1}}}), 400, "derived from itself"},
		{"grids-of-each-other", buildHEIF("heic", props, []heifTestItem{
			{id: 1, typ: "grid", props: []int{1}, data: gridData(1, 1, 64, 64, false), dimg: []int{2}},
			{id: 2, typ: "grid", props: []int{1}, data: gridData(1, 1, 64, 64, false), dimg: []int{1}}}), 400, "derived from itself"},
		{"grid-of-missing-tile", buildHEIF("heic", props, []heifTestItem{{id: 1, typ: "grid", props: []int{1}, data: gridData(1, 1, 64, 64, false), dimg: []int{9}}}), 400, "item 9"},
		{"grid-descriptor-cut", buildHEIF("heic", props, []heifTestItem{{id: 1, typ: "grid", props: []int{1}, data: []byte{0, 0, 1}, dimg: []int{2}}, hevc(2, 1, 2)}), 400, "descriptor"},
		{"hevc-without-hvcC", buildHEIF("heic", props, []heifTestItem{hevc(1, 1)}), 400, "no hvcC"},
		{"hevc-without-sps", buildHEIF("heic", [][]byte{ispeBox(64, 64), hvcCBox([]byte{0x40, 0x01, 0x0c})}, []heifTestItem{hevc(1, 1, 2)}), 400, "no sequence parameter set"},
		{"hevc-sps-cut", buildHEIF("heic", [][]byte{ispeBox(64, 64), hvcCBox(sps[:12])}, []heifTestItem{hevc(1, 1, 2)}), 400, "cut short"},
		{"hevc-nal-past-item", buildHEIF("heic", props, []heifTestItem{{id: 1, typ: "hvc1", props: []int{1, 2}, data: []byte{0, 0, 1, 0, 0x26}}}), 400, "inside a NAL unit"},
		{"hevc-70000-empty-nals", buildHEIF("heic", props, []heifTestItem{{id: 1, typ: "hvc1", props: []int{1, 2}, data: make([]byte, 4*70000)}}), 400, "coded units"},
		{"av1-without-sequence-header", buildHEIF("avif", [][]byte{ispeBox(64, 64), av1CBox()}, []heifTestItem{{id: 1, typ: "av01", props: []int{1, 2}, data: []byte{0x32, 0x00}}}), 400, "no sequence header"},
		{"av1-obu-past-item", buildHEIF("avif", [][]byte{ispeBox(64, 64), av1CBox()}, []heifTestItem{{id: 1, typ: "av01", props: []int{1, 2}, data: []byte{0x32, 0x7f, 0}}}), 400, "runs past"},
		{"data-past-end", good[:len(good)-3], 400, "past the end of the file"},
		{"property-out-of-range", buildHEIF("heic", props, []heifTestItem{hevc(1, 1, 9)}), 400, "property 9 of 2"},
		{"jpeg-item", buildHEIF("heic", props, []heifTestItem{hevc(1, 1, 2), {id: 2, typ: "jpeg", props: []int{1}, data: []byte{0xff, 0xd8}}}), 415, "other than HEVC or AV1"},
	}
}

// TestHEIFDamaged: each hostile structure is a clear 400 (415 for a codec without a size check)
// that names the file's type, read within bounds.
func TestHEIFDamaged(t *testing.T) {
	t.Parallel()
	for _, c := range heifHostile() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			heifBounded(t, c.file)
			path := writeFixture(t, c.name+".heic", c.file)
			err := checkImage(path, media.HEIC)
			var e *Error
			if !errors.As(err, &e) || e.Kind.statusCode() != c.status || !strings.Contains(e.Msg, "HEIC") || !strings.Contains(e.Msg, c.words) {
				t.Errorf("%v, want a %d naming the HEIC and %q", err, c.status, c.words)
			}
		})
	}
}

// countingReaderAt is a file in memory that records how it is read.
type countingReaderAt struct {
	b              []byte
	calls, largest int
	total          int64
}

func (r *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	r.calls++
	r.largest = max(r.largest, len(p))
	r.total += int64(len(p))
	return bytes.NewReader(r.b).ReadAt(p, off)
}

// heifBounded runs heifWalk on b and fails t unless it answers within a minute (it never loops
// for ever), with a size in bounds and pixels in all no fewer than the largest picture's and at
// most heifMaxPixels, or an error of its own kinds, having read at most one piece
// larger than a parameter set (the meta box, at most heifMaxMeta), at most heifMaxReads pieces of
// items' data, and allocated at most 64 MiB.
func heifBounded(t testing.TB, b []byte) {
	t.Helper()
	r := &countingReaderAt{b: b}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	var pics heifPictures
	var err error
	go func() {
		defer close(done)
		pics, err = heifWalk(r, int64(len(b)))
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("heifWalk gave no answer within a minute")
	}
	runtime.ReadMemStats(&after)
	w, h := pics.w, pics.h
	switch {
	case err == nil && (w < 0 || h < 0 || w > heifMaxDim || h > heifMaxDim):
		t.Fatalf("size %d×%d", w, h)
	case err == nil && (pics.pixels < int64(w)*int64(h) || pics.pixels > heifMaxPixels):
		t.Fatalf("%d pixels in all, where the largest picture is %d×%d", pics.pixels, w, h)
	case err != nil && !errors.Is(err, errHEIFDamaged) && !errors.Is(err, errHEIFCodec):
		t.Fatalf("error of no known kind: %v", err)
	case r.largest > heifMaxMeta:
		t.Fatalf("read %d bytes at once", r.largest)
	case r.calls > heifMaxTopBoxes+1+heifMaxReads:
		t.Fatalf("%d reads", r.calls)
	case r.total > int64(heifMaxMeta+16*heifMaxTopBoxes+heifMaxReads*heifMaxUnitRead):
		t.Fatalf("read %d bytes in all", r.total)
	case after.TotalAlloc-before.TotalAlloc > 64<<20:
		t.Fatalf("allocated %d MB", (after.TotalAlloc-before.TotalAlloc)>>20)
	}
}

// FuzzHEIFLargest feeds the HEIF box walker real files (made by heif-enc, when it is installed),
// the hand-built oversize ones and the damaged ones, mutated: whatever the input, it never panics,
// answers within a minute, reads and allocates within its bounds (heifBounded).
func FuzzHEIFLargest(f *testing.F) {
	if _, err := exec.LookPath("heif-enc"); err == nil {
		dir := f.TempDir()
		f.Add(readFile(f, heifEncode(f, dir, "a.heic", quad(64, 48))))
		f.Add(readFile(f, heifEncode(f, dir, "a.avif", quad(64, 48), "-A")))
	}
	f.Add(hevcGrid(2, 2, 4096, 64))
	f.Add(av1Grid(2, 2, 4096, 64))
	slice := lengthPrefixed([]byte{0x26, 0x01})
	f.Add(buildHEIF("heic", [][]byte{ispeBox(64, 48), hvcCBox(testSPS(64, 48, 0)), auxCBox(alphaURN)}, []heifTestItem{
		{id: 1, typ: "hvc1", props: []int{1, 2}, data: slice},
		{id: 2, typ: "hvc1", props: []int{1, 2, 3}, data: slice, auxl: 1},
		{id: 3, typ: "jpeg", data: []byte{0xff, 0xd8}, thmb: 1},
		{id: 4, typ: "hvc1", props: []int{1, 2}, data: slice, hidden: true}}))
	f.Add(buildHEIF("heic", [][]byte{ispeBox(64, 48), hvcCBox(testSPS(64, 48, 0))}, append(
		[]heifTestItem{{id: 1, typ: "iovl", props: []int{1}, data: overlayData(64, 48, 3), dimg: []int{2, 3, 3}}},
		sharingItems(heifTestItem{typ: "hvc1", props: []int{1, 2}, data: slice}, 2, 3, 4, 5)...)))
	for _, c := range heifHostile() {
		if len(c.file) < 64<<10 { // the fuzzer's mutations of megabytes are slow
			f.Add(c.file)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { heifBounded(t, b) })
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
	for _, c := range heifHostile() {
		if c.name == "grid-of-itself" {
			loop = c.file
		}
	}
	for _, c := range []struct {
		name  string
		file  []byte
		words []string
	}{
		{"grid.heic", hevcGrid(4, 4, 4096, 64), []string{"image:", "16384×16384", "100 megapixels"}},
		{"grid.avif", av1Grid(4, 4, 4096, 64), []string{"image:", "16384×16384", "100 megapixels"}},
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
	path := writeFixture(t, "small.heic", hevcGrid(1, 1, 64, 64))
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
