// Package heiftest builds HEIF files box by box for tests: hostile ones no encoder writes, and
// real ones rebuilt with changes. Only tests import it.
package heiftest

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// Box is an ISO-BMFF box of type typ holding parts, end to end.
func Box(typ string, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	return append(append(binary.BigEndian.AppendUint32(nil, uint32(8+len(body))), typ...), body...)
}

// FullBox is a full box: Box with a version and flags first.
func FullBox(typ string, version byte, flags uint32, parts ...[]byte) []byte {
	return Box(typ, append([]byte{version, byte(flags >> 16), byte(flags >> 8), byte(flags)}, bytes.Join(parts, nil)...))
}

func U16(v int) []byte    { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func U32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// Item is one item of a hand-built HEIF file.
type Item struct {
	ID     int
	Type   string
	Props  []int  // 1-based indices into the file's properties
	Data   []byte // in the mdat box
	Dimg   []int  // the items it is derived from (a grid's tiles)
	Hidden bool   // not a picture of its own (a grid's tile)
	Thmb   int    // the item it is a thumbnail of, if any
	Auxl   int    // the item it is an auxiliary picture of, if any
	Shares int    // an earlier item whose data (one extent) this one points at, its own data unwritten
}

// Build is a HEIF file of major brand brand holding props (ipco's children) and items, the
// first item primary: the boxes libheif needs, each item's data in one extent of the mdat box.
func Build(brand string, props [][]byte, items []Item) []byte {
	ftyp := Box("ftyp", []byte(brand), U32(0), []byte("mif1"+brand))
	meta := func(dataStart int) []byte {
		var infes, locs, assocs, refs [][]byte
		off := dataStart
		at := map[int][]byte{} // an item's extent: its offset and length
		for _, it := range items {
			var flags uint32
			if it.Hidden {
				flags = 1
			}
			infes = append(infes, FullBox("infe", 2, flags, U16(it.ID), U16(0), []byte(it.Type), []byte{0}))
			if at[it.ID] = at[it.Shares]; it.Shares == 0 {
				at[it.ID] = append(U32(uint32(off)), U32(uint32(len(it.Data)))...)
				off += len(it.Data)
			}
			locs = append(locs, U16(it.ID), U16(0), U16(0), U16(1), at[it.ID])
			assocs = append(assocs, U16(it.ID), []byte{byte(len(it.Props))})
			for _, p := range it.Props {
				assocs = append(assocs, []byte{0x80 | byte(p)})
			}
			if len(it.Dimg) > 0 {
				ref := [][]byte{U16(it.ID), U16(len(it.Dimg))}
				for _, d := range it.Dimg {
					ref = append(ref, U16(d))
				}
				refs = append(refs, Box("dimg", ref...))
			}
			if it.Thmb != 0 {
				refs = append(refs, Box("thmb", U16(it.ID), U16(1), U16(it.Thmb)))
			}
			if it.Auxl != 0 {
				refs = append(refs, Box("auxl", U16(it.ID), U16(1), U16(it.Auxl)))
			}
		}
		boxes := [][]byte{
			FullBox("hdlr", 0, 0, U32(0), []byte("pict"), make([]byte, 12), []byte{0}),
			FullBox("pitm", 0, 0, U16(items[0].ID)),
			FullBox("iinf", 0, 0, append([][]byte{U16(len(items))}, infes...)...),
			Box("iprp", Box("ipco", props...), FullBox("ipma", 0, 0, append([][]byte{U32(uint32(len(items)))}, assocs...)...)),
			FullBox("iloc", 1, 0, append([][]byte{{0x44, 0x00}, U16(len(items))}, locs...)...),
		}
		if len(refs) > 0 {
			boxes = append(boxes, FullBox("iref", 0, 0, refs...))
		}
		return FullBox("meta", 0, 0, boxes...)
	}
	start := len(ftyp) + len(meta(0)) + 8 // the mdat box's header
	var mdat [][]byte
	for _, it := range items {
		if it.Shares == 0 {
			mdat = append(mdat, it.Data)
		}
	}
	return bytes.Join([][]byte{ftyp, meta(start), Box("mdat", mdat...)}, nil)
}

func ISPE(w, h uint32) []byte { return FullBox("ispe", 0, 0, U32(w), U32(h)) }

// HvcC is an HEVC decoder configuration holding nals (VPS, SPS, PPS), with 4-byte NAL lengths.
func HvcC(nals ...[]byte) []byte {
	b := make([]byte, 23)
	b[0], b[21], b[22] = 1, 0x0f, byte(len(nals))
	for _, nal := range nals {
		b = append(append(append(append(b, 0x80|nal[0]>>1&0x3f), U16(1)...), U16(len(nal))...), nal...)
	}
	return Box("hvcC", b)
}

// Av1C is an AV1 decoder configuration with configOBUs obus.
func Av1C(obus ...[]byte) []byte {
	return Box("av1C", append([]byte{0x81, 0x00, 0x0c, 0x00}, bytes.Join(obus, nil)...))
}

// LengthPrefixed is nals as an HEVC item's data holds them: each after its 4-byte length.
func LengthPrefixed(nals ...[]byte) []byte {
	var b []byte
	for _, nal := range nals {
		b = append(append(b, U32(uint32(len(nal)))...), nal...)
	}
	return b
}

// Grid is a grid item's descriptor: rows×cols tiles on a w×h canvas (32-bit sizes when wide).
func Grid(rows, cols int, w, h uint32, wide bool) []byte {
	if wide {
		return append([]byte{0, 1, byte(rows - 1), byte(cols - 1)}, append(U32(w), U32(h)...)...)
	}
	return append([]byte{0, 0, byte(rows - 1), byte(cols - 1)}, append(U16(int(w)), U16(int(h))...)...)
}

// Overlay is an overlay item's descriptor: a w×h canvas (32-bit sizes) of layers layers, all at
// its top left corner.
func Overlay(w, h uint32, layers int) []byte {
	b := append([]byte{0, 1}, make([]byte, 8)...) // version, flags, the fill colour
	return append(append(append(b, U32(w)...), U32(h)...), make([]byte, 8*layers)...)
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

// SPS is an HEVC sequence parameter set NAL unit for a w×h picture with subLayers temporal
// sub-layers beyond the first (each with its profile and level, filled with ones so that a reader
// that skips them wrongly reads another size), escaped as in a stream.
func SPS(w, h uint64, subLayers int) []byte {
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

// SeqHeader is an AV1 sequence header OBU (with its size) for a w×h picture, reduced to a
// still picture's header or with timing information and two operating points.
func SeqHeader(w, h uint64, reduced bool) []byte {
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

// HEVCGrid is a HEIC whose primary item is a rows×cols grid of tiles of the coded size tile, every
// ispe (and the grid's descriptor) claiming claim×claim: no real bitstream, which the size check
// never needs.
func HEVCGrid(rows, cols int, tile uint64, claim uint32) []byte {
	props := [][]byte{ISPE(claim, claim), HvcC(SPS(tile, tile, 0))}
	items := []Item{{ID: 1, Type: "grid", Props: []int{1}, Data: Grid(rows, cols, claim, claim, false)}}
	for i := range rows * cols {
		items = append(items, Item{ID: 2 + i, Type: "hvc1", Props: []int{2, 1}, Data: LengthPrefixed([]byte{0x26, 0x01, 0xaf}), Hidden: true})
		items[0].Dimg = append(items[0].Dimg, 2+i)
	}
	return Build("heic", props, items)
}

// AV1Grid is HEVCGrid's AVIF.
func AV1Grid(rows, cols int, tile uint64, claim uint32) []byte {
	props := [][]byte{ISPE(claim, claim), Av1C(SeqHeader(tile, tile, true))}
	items := []Item{{ID: 1, Type: "grid", Props: []int{1}, Data: Grid(rows, cols, claim, claim, false)}}
	for i := range rows * cols {
		items = append(items, Item{ID: 2 + i, Type: "av01", Props: []int{2, 1}, Data: []byte{0x32, 0x01, 0x10}, Hidden: true})
		items[0].Dimg = append(items[0].Dimg, 2+i)
	}
	return Build("avif", props, items)
}

// HostileFile is a damaged HEIF file, the status of its refusal and words the refusal holds.
type HostileFile struct {
	Name   string
	File   []byte
	Status int
	Words  string
}

// Hostile are HEIF files damaged in the ways the walker must refuse cleanly, each with the
// status (400, or 415 for a codec it cannot size) and the words of its refusal.
func Hostile() []HostileFile {
	sps := SPS(64, 64, 0)
	props := [][]byte{ISPE(64, 64), HvcC(sps)}
	hevc := func(id int, props ...int) Item {
		return Item{ID: id, Type: "hvc1", Props: props, Data: LengthPrefixed([]byte{0x26, 0x01})}
	}
	good := Build("heic", props, []Item{hevc(1, 1, 2)})
	ftyp := Box("ftyp", []byte("heic"), U32(0), []byte("mif1heic"))
	bigMeta := append(append(bytes.Clone(ftyp), U32(5<<20)...), "meta"...)
	return []HostileFile{
		{"no-meta", append(bytes.Clone(ftyp), Box("mdat", make([]byte, 100))...), 400, "no meta box"},
		{"meta-over-4-MB", append(bigMeta, make([]byte, 5<<20-8)...), 400, "meta box is 5242880 bytes"},
		{"meta-cut-short", good[:len(ftyp)+60], 400, "claims"},
		{"child-overruns-meta", append(bytes.Clone(ftyp), FullBox("meta", 0, 0, []byte{0, 0, 0x10, 0, 'i', 'i', 'n', 'f'})...), 400, "claims 4096 bytes"},
		{"largesize-past-end", append(bytes.Clone(ftyp), 0, 0, 0, 1, 'm', 'e', 't', 'a', 0xff, 0, 0, 0, 0, 0, 0, 0), 400, "past the end"},
		{"grid-of-itself", Build("heic", props, []Item{{ID: 1, Type: "grid", Props: []int{1}, Data: Grid(1, 1, 64, 64, false), Dimg: []int{1}}}), 400, "derived from itself"},
		{"grids-of-each-other", Build("heic", props, []Item{
			{ID: 1, Type: "grid", Props: []int{1}, Data: Grid(1, 1, 64, 64, false), Dimg: []int{2}},
			{ID: 2, Type: "grid", Props: []int{1}, Data: Grid(1, 1, 64, 64, false), Dimg: []int{1}}}), 400, "derived from itself"},
		{"grid-of-missing-tile", Build("heic", props, []Item{{ID: 1, Type: "grid", Props: []int{1}, Data: Grid(1, 1, 64, 64, false), Dimg: []int{9}}}), 400, "item 9"},
		{"grid-descriptor-cut", Build("heic", props, []Item{{ID: 1, Type: "grid", Props: []int{1}, Data: []byte{0, 0, 1}, Dimg: []int{2}}, hevc(2, 1, 2)}), 400, "descriptor"},
		{"hevc-without-hvcC", Build("heic", props, []Item{hevc(1, 1)}), 400, "no hvcC"},
		{"hevc-without-sps", Build("heic", [][]byte{ISPE(64, 64), HvcC([]byte{0x40, 0x01, 0x0c})}, []Item{hevc(1, 1, 2)}), 400, "no sequence parameter set"},
		{"hevc-sps-cut", Build("heic", [][]byte{ISPE(64, 64), HvcC(sps[:12])}, []Item{hevc(1, 1, 2)}), 400, "cut short"},
		{"hevc-nal-past-item", Build("heic", props, []Item{{ID: 1, Type: "hvc1", Props: []int{1, 2}, Data: []byte{0, 0, 1, 0, 0x26}}}), 400, "inside a NAL unit"},
		{"hevc-70000-empty-nals", Build("heic", props, []Item{{ID: 1, Type: "hvc1", Props: []int{1, 2}, Data: make([]byte, 4*70000)}}), 400, "coded units"},
		{"av1-without-sequence-header", Build("avif", [][]byte{ISPE(64, 64), Av1C()}, []Item{{ID: 1, Type: "av01", Props: []int{1, 2}, Data: []byte{0x32, 0x00}}}), 400, "no sequence header"},
		{"av1-obu-past-item", Build("avif", [][]byte{ISPE(64, 64), Av1C()}, []Item{{ID: 1, Type: "av01", Props: []int{1, 2}, Data: []byte{0x32, 0x7f, 0}}}), 400, "runs past"},
		{"data-past-end", good[:len(good)-3], 400, "past the end of the file"},
		{"property-out-of-range", Build("heic", props, []Item{hevc(1, 1, 9)}), 400, "property 9 of 2"},
		{"jpeg-item", Build("heic", props, []Item{hevc(1, 1, 2), {ID: 2, Type: "jpeg", Props: []int{1}, Data: []byte{0xff, 0xd8}}}), 415, "other than HEVC or AV1"},
	}
}

// AuxC is an auxiliary type property naming urn (an alpha plane, a depth map).
func AuxC(urn string) []byte { return FullBox("auxC", 0, 0, []byte(urn), []byte{0}) }

// AlphaURN and DepthURN are the auxiliary types of an HEVC alpha plane and depth map.
const (
	AlphaURN = "urn:mpeg:hevc:2015:auxid:1"
	DepthURN = "urn:mpeg:hevc:2015:auxid:2"
)

// SharingItems is the item it under each of ids, the first holding its data and the others pointing
// at that data (iloc): many pictures for the bytes of one.
func SharingItems(it Item, ids ...int) []Item {
	var out []Item
	for i, id := range ids {
		c := it
		c.ID = id
		if i > 0 {
			c.Shares, c.Data = ids[0], nil
		}
		out = append(out, c)
	}
	return out
}

// IDRange is the item IDs from first to last, but skip.
func IDRange(first, last, skip int) []int {
	var ids []int
	for id := first; id <= last; id++ {
		if id != skip {
			ids = append(ids, id)
		}
	}
	return ids
}
