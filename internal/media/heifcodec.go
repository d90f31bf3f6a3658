package media

// What WalkHEIF reads inside a HEIF file's items: their data, end to end across extents, and
// the coded sizes in their HEVC parameter sets and AV1 sequence headers.

import (
	"io"
	"sort"
)

// heifData is an item's data: its extents, end to end.
type heifData struct {
	p    *heifParser // for its budget of reads
	segs []heifSeg
	n    int64
}

type heifSeg struct {
	start int64  // where it starts in the item's data
	off   int64  // where it lies in the file
	n     int64  // its length
	mem   []byte // its bytes, when in the idat box
}

// itemData locates item id's data, every extent within the file (or the idat box).
func (p *heifParser) itemData(id uint32, it *heifItem) (*heifData, error) {
	if !it.located || it.dref != 0 {
		return nil, heifDamaged("item %d's data is not in the file", id)
	}
	limit := uint64(p.size)
	switch it.method {
	case 0:
	case 1:
		limit = uint64(len(p.idat))
	default:
		return nil, heifDamaged("item %d's data is built in a way (method %d) this reader does not follow", id, it.method)
	}
	d := &heifData{p: p}
	for _, e := range it.extents {
		if e.off > limit || e.n > limit-e.off {
			return nil, heifDamaged("item %d's data runs past the end of the file", id)
		}
		n := e.n
		if n == 0 { // to the end
			n = limit - e.off
		}
		if n == 0 {
			continue
		}
		s := heifSeg{start: d.n, off: int64(e.off), n: int64(n)}
		if it.method == 1 {
			s.mem = p.idat[e.off : e.off+n]
		}
		d.segs = append(d.segs, s)
		if d.n += s.n; d.n < 0 {
			return nil, heifDamaged("item %d's data is larger than any file", id)
		}
	}
	return d, nil
}

// read fills b from the item's data at off.
func (d *heifData) read(b []byte, off int64) error {
	i := sort.Search(len(d.segs), func(i int) bool { return d.segs[i].start+d.segs[i].n > off })
	for ; len(b) > 0 && i < len(d.segs); i++ {
		if d.p.reads++; d.p.reads > heifMaxReads {
			return heifDamaged("its items' data is scattered in more than %d pieces", heifMaxReads)
		}
		s := d.segs[i]
		at := off - s.start
		k := min(int64(len(b)), s.n-at)
		if s.mem != nil {
			copy(b, s.mem[at:at+k])
		} else if _, err := d.p.r.ReadAt(b[:k], s.off+at); err != nil {
			return err
		}
		b, off = b[k:], off+k
	}
	if len(b) > 0 {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// heifConfig is what a decoder configuration (hvcC, av1C) says: the size of the length fields of
// its NAL units (HEVC), and the largest size of its parameter sets or sequence headers (found:
// it has one).
type heifConfig struct {
	lengthSize int
	dims       heifDims
	found      bool
}

// config reads the decoder configuration prop, once however many items share it.
func (p *heifParser) config(prop *heifBox) (heifConfig, error) {
	if c, ok := p.configs[prop]; ok {
		return c, nil
	}
	var c heifConfig
	var err error
	switch {
	case prop.typ == "hvcC":
		c.lengthSize, c.dims, c.found, err = p.hvcC(prop.body)
	case len(prop.body) < 4:
		err = heifDamaged("an av1C box is cut short")
	default: // av1C: its configOBUs follow four bytes
		b := prop.body[4:]
		c.dims, c.found, err = p.av1Units(&heifData{p: p, segs: []heifSeg{{n: int64(len(b)), mem: b}}, n: int64(len(b))})
	}
	if err != nil {
		return heifConfig{}, err
	}
	p.configs[prop] = c
	return c, nil
}

// unit counts one more NAL unit or OBU against heifMaxUnits.
func (p *heifParser) unit() error {
	if p.units++; p.units > heifMaxUnits {
		return heifDamaged("its pictures hold more than %d coded units", heifMaxUnits)
	}
	return nil
}

// hvcC reads an HEVC decoder configuration: the size of its NAL units' length fields, and the
// largest size of its sequence parameter sets (found: it has one).
func (p *heifParser) hvcC(b []byte) (lengthSize int, d heifDims, found bool, err error) {
	c := &heifCursor{b: b}
	c.skip(21)
	lengthSize = int(c.u(1)&3) + 1
	for arrays := c.u(1); arrays > 0 && !c.bad; arrays-- {
		typ := c.u(1) & 0x3f
		for n := c.u(2); n > 0 && !c.bad; n-- {
			if err := p.unit(); err != nil {
				return 0, heifDims{}, false, err
			}
			nal := c.next(int(c.u(2)))
			if typ == hevcSPS && !c.bad {
				nal = nal[:min(len(nal), heifMaxUnitRead)]
				s, err := hevcSPSDims(nal)
				if err != nil {
					return 0, heifDims{}, false, err
				}
				d, found = d.or(s), true
			}
		}
	}
	if c.bad {
		return 0, heifDims{}, false, heifDamaged("an hvcC box is cut short")
	}
	return lengthSize, d, found, nil
}

// hevcDims is the largest coded size of an HEVC item: its hvcC's parameter sets, and any in its
// data (which the decoder reads after them, so one there would win).
func (p *heifParser) hevcDims(id uint32, it *heifItem) (heifDims, error) {
	prop := p.prop(it, "hvcC")
	if prop == nil {
		return heifDims{}, heifDamaged("item %d (HEVC) has no hvcC decoder configuration", id)
	}
	cfg, err := p.config(prop)
	if err != nil {
		return heifDims{}, err
	}
	ls, d, found := cfg.lengthSize, cfg.dims, cfg.found
	data, err := p.itemData(id, it)
	if err != nil {
		return heifDims{}, err
	}
	for off := int64(0); off < data.n; {
		if err := p.unit(); err != nil {
			return heifDims{}, err
		}
		hdr := make([]byte, min(int64(ls+2), data.n-off))
		if len(hdr) < ls || data.read(hdr, off) != nil {
			return heifDims{}, heifDamaged("item %d's data ends inside a NAL unit", id)
		}
		c := &heifCursor{b: hdr}
		n := int64(c.u(ls))
		if n > data.n-off-int64(ls) {
			return heifDims{}, heifDamaged("item %d's data ends inside a NAL unit", id)
		}
		if n >= 2 && hdr[ls]>>1&0x3f == hevcSPS {
			nal := make([]byte, min(n, heifMaxUnitRead))
			if err := data.read(nal, off+int64(ls)); err != nil {
				return heifDims{}, heifDamaged("item %d's data cannot be read: %v", id, err)
			}
			s, err := hevcSPSDims(nal)
			if err != nil {
				return heifDims{}, err
			}
			d, found = d.or(s), true
		}
		off += int64(ls) + n
	}
	if !found {
		return heifDims{}, heifDamaged("item %d (HEVC) has no sequence parameter set to give its size", id)
	}
	return d, nil
}

// av1Dims is the largest coded size of an AV1 item: the sequence headers in its av1C and in its data.
func (p *heifParser) av1Dims(id uint32, it *heifItem) (heifDims, error) {
	var cfg heifConfig
	if prop := p.prop(it, "av1C"); prop != nil {
		var err error
		if cfg, err = p.config(prop); err != nil {
			return heifDims{}, err
		}
	}
	d, found := cfg.dims, cfg.found
	data, err := p.itemData(id, it)
	if err != nil {
		return heifDims{}, err
	}
	s, ok, err := p.av1Units(data)
	if err != nil {
		return heifDims{}, err
	}
	if !ok && !found {
		return heifDims{}, heifDamaged("item %d (AV1) has no sequence header to give its size", id)
	}
	return d.or(s), nil
}

// av1Units walks AV1 OBUs and returns the largest size of their sequence headers (found: one).
func (p *heifParser) av1Units(data *heifData) (d heifDims, found bool, err error) {
	for off := int64(0); off < data.n; {
		if err := p.unit(); err != nil {
			return heifDims{}, false, err
		}
		hdr := make([]byte, min(10, data.n-off))
		if err := data.read(hdr, off); err != nil || hdr[0]&0x80 != 0 {
			return heifDims{}, false, heifDamaged("an AV1 OBU header is damaged")
		}
		typ, pos := hdr[0]>>3&15, int64(1+hdr[0]>>2&1)
		n := data.n - off - pos // without a size field: the rest
		if hdr[0]&2 != 0 {
			v, l := leb128(hdr[min(pos, int64(len(hdr))):])
			n, pos = int64(v), pos+int64(l)
			if l == 0 {
				return heifDims{}, false, heifDamaged("an AV1 OBU's size is damaged")
			}
		}
		if pos > int64(len(hdr)) || n < 0 || n > data.n-off-pos {
			return heifDims{}, false, heifDamaged("an AV1 OBU runs past its data")
		}
		if typ == av1SequenceHeader {
			b := make([]byte, min(n, heifMaxUnitRead))
			if err := data.read(b, off+pos); err != nil {
				return heifDims{}, false, heifDamaged("an AV1 sequence header cannot be read: %v", err)
			}
			s, err := av1SeqDims(b)
			if err != nil {
				return heifDims{}, false, err
			}
			d, found = d.or(s), true
		}
		off += pos + n
	}
	return d, found, nil
}

// leb128 decodes AV1's leb128() from b: the value and its length in bytes, 0 when damaged.
func leb128(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < 8 && i < len(b); i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}

const (
	hevcSPS           = 33 // nal_unit_type of a sequence parameter set
	av1SequenceHeader = 1  // obu_type of a sequence header
)

// hevcSPSDims reads pic_width_in_luma_samples and pic_height_in_luma_samples from an HEVC
// sequence parameter set NAL unit (with its two-byte header): the size the decoder allocates,
// before the conformance window crops it (H.265 7.3.2.2).
func hevcSPSDims(nal []byte) (heifDims, error) {
	r := &heifBits{b: unescapeNAL(nal)}
	r.skip(16) // the NAL unit header
	r.skip(4)  // sps_video_parameter_set_id
	subLayers := int(r.u(3))
	r.skip(1) // sps_temporal_id_nesting_flag
	// profile_tier_level(1, sps_max_sub_layers_minus1)
	r.skip(96) // the general profile, tier and level
	var profile, level [8]bool
	for i := range subLayers {
		profile[i], level[i] = r.u(1) == 1, r.u(1) == 1
	}
	if subLayers > 0 {
		r.skip(2 * (8 - subLayers)) // reserved_zero_2bits
	}
	for i := range subLayers {
		if profile[i] {
			r.skip(88)
		}
		if level[i] {
			r.skip(8)
		}
	}
	r.ue() // sps_seq_parameter_set_id
	if r.ue() == 3 {
		r.skip(1) // separate_colour_plane_flag
	}
	w, h := r.ue(), r.ue()
	if r.bad {
		return heifDims{}, heifDamaged("an HEVC sequence parameter set is cut short")
	}
	return dims(w, h), nil
}

// unescapeNAL removes the emulation prevention bytes (0x03 after two zeros) from a NAL unit.
func unescapeNAL(b []byte) []byte {
	out := make([]byte, 0, len(b))
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		out = append(out, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// av1SeqDims reads max_frame_width_minus_1 and max_frame_height_minus_1 from an AV1 sequence
// header OBU's payload (AV1 5.5): no frame of the stream may be larger.
func av1SeqDims(b []byte) (heifDims, error) {
	r := &heifBits{b: b}
	r.skip(4) // seq_profile, still_picture
	if r.u(1) == 1 {
		r.skip(5) // reduced_still_picture_header: seq_level_idx[0] alone
	} else {
		var decoderModel bool
		if r.u(1) == 1 { // timing_info_present_flag
			r.skip(64) // num_units_in_display_tick, time_scale
			if r.u(1) == 1 {
				r.ue() // num_ticks_per_picture_minus_1, uvlc()
			}
			decoderModel = r.u(1) == 1
		}
		delayBits := 0
		if decoderModel {
			delayBits = int(r.u(5)) + 1
			r.skip(32 + 5 + 5) // num_units_in_decoding_tick, two lengths
		}
		initialDisplayDelay := r.u(1) == 1
		for n := r.u(5) + 1; n > 0 && !r.bad; n-- { // operating points
			r.skip(12) // operating_point_idc
			if r.u(5) > 7 {
				r.skip(1) // seq_tier
			}
			if decoderModel && r.u(1) == 1 {
				r.skip(2*delayBits + 1)
			}
			if initialDisplayDelay && r.u(1) == 1 {
				r.skip(4)
			}
		}
	}
	wBits, hBits := int(r.u(4))+1, int(r.u(4))+1
	w, h := r.u(wBits)+1, r.u(hBits)+1
	if r.bad {
		return heifDims{}, heifDamaged("an AV1 sequence header is cut short")
	}
	return dims(w, h), nil
}

// heifBits reads a bitstream, most significant bit first; reading past the end sets bad.
type heifBits struct {
	b   []byte
	pos int
	bad bool
}

// u reads n bits, n at most 64.
func (r *heifBits) u(n int) uint64 {
	var v uint64
	for range n {
		if r.pos >= 8*len(r.b) {
			r.bad = true
			return 0
		}
		v = v<<1 | uint64(r.b[r.pos>>3]>>(7-r.pos&7)&1)
		r.pos++
	}
	return v
}

func (r *heifBits) skip(n int) {
	if r.pos += n; r.pos > 8*len(r.b) {
		r.bad = true
	}
}

// ue reads an Exp-Golomb code: HEVC's ue(v), AV1's uvlc() (which no encoder writes past 32 bits).
func (r *heifBits) ue() uint64 {
	zeros := 0
	for r.u(1) == 0 {
		if r.bad || zeros == 32 {
			r.bad = true
			return 0
		}
		zeros++
	}
	return 1<<zeros - 1 + r.u(zeros)
}
