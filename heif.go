package main

// A reader of HEIF structure (HEIC, AVIF: ISO/IEC 23008-12 on ISO-BMFF boxes) that finds, without
// decoding anything, the largest picture a file can make its decoder allocate. A file's 'ispe'
// properties only claim sizes: the decoder allocates what the coded bitstream says (an HEVC
// sequence parameter set, an AV1 sequence header) and what a grid or overlay canvas says, so those
// are read, and the largest of every claim and every coded size is the file's size.
//
// It imports nothing of the service: it is a codec library in waiting.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Bounds on what heifLargest reads, keeps and walks, whatever a file claims. A real meta box is a
// few KB (an iPhone's 48-tile photo: ~3 KB); a real picture is at most a few thousand items (a
// 100-megapixel grid of 256×256 tiles: ~1,600) with a NAL unit or two each.
const (
	heifMaxMeta       = 4 << 20 // bytes of the meta box, read into memory
	heifMaxTopBoxes   = 1024    // top-level boxes passed over on the way to the meta box
	heifMaxBoxes      = 1 << 17 // boxes inside the meta box
	heifMaxEntries    = 1 << 18 // items, extents, references and property associations, in all
	heifMaxUnits      = 1 << 16 // NAL units and OBUs walked in items' data, in all
	heifMaxUnitRead   = 1 << 10 // bytes of one parameter set or sequence header read: its sizes come early
	heifMaxReads      = 1 << 18 // pieces of items' data read, in all
	heifMaxDim        = 1 << 30 // a larger width or height counts as this
	heifMaxDerivation = 8       // grids of grids (or of identity items), deep
)

// errHEIFDamaged is a HEIF file whose structure cannot be walked, or that leaves the size of a
// picture in it unknown: the decoder would fail on it or could not be bounded.
var errHEIFDamaged = errors.New("the HEIF structure is damaged")

// errHEIFCodec is a HEIF file holding a picture in a codec other than HEVC or AV1, whose coded
// size heifLargest cannot read (JPEG, JPEG 2000, uncompressed, H.264, VVC items).
var errHEIFCodec = errors.New("a picture in a format other than HEVC or AV1")

// heifUnsizedCodecs are the item types of coded pictures that heifLargest cannot size.
var heifUnsizedCodecs = map[string]bool{"jpeg": true, "j2k1": true, "unci": true, "avc1": true, "vvc1": true, "evc1": true, "hvt1": true}

func heifDamaged(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errHEIFDamaged, fmt.Sprintf(format, args...))
}

// heifLargest returns the largest picture the HEIF file r (size bytes) can make a decoder allocate:
// the largest of every 'ispe' property, every coded size (the sequence parameter sets of HEVC items,
// in their 'hvcC' and in their data; the sequence headers of AV1 items, in their 'av1C' and in their
// data), every grid's and overlay's canvas, and every grid's tile size times its rows and columns.
// Every picture item counts, not the primary alone: heif-convert decodes every top-level picture
// with its alpha. A HEVC or AV1 item whose coded size cannot be found is refused (errHEIFDamaged):
// its 'ispe' alone is never trusted. It reads at most heifMaxMeta bytes at once and a bounded
// number of small pieces of the items' data, whatever r holds.
func heifLargest(r io.ReaderAt, size int64) (w, h int, err error) {
	var off int64
	for n := 0; ; n++ {
		if n == heifMaxTopBoxes || off >= size {
			return 0, 0, heifDamaged("it has no meta box")
		}
		var hdr [16]byte
		got, _ := r.ReadAt(hdr[:min(16, size-off)], off)
		if got < 8 {
			return 0, 0, heifDamaged("a box at byte %d is cut short", off)
		}
		bsize, hl := int64(binary.BigEndian.Uint32(hdr[:])), int64(8)
		switch bsize {
		case 0: // to the end of the file
			bsize = size - off
		case 1:
			if got < 16 || binary.BigEndian.Uint64(hdr[8:]) > uint64(size-off) {
				return 0, 0, heifDamaged("a box at byte %d runs past the end of the file", off)
			}
			bsize, hl = int64(binary.BigEndian.Uint64(hdr[8:])), 16
		}
		if bsize < hl || bsize > size-off {
			return 0, 0, heifDamaged("a box at byte %d claims %d bytes, of %d left", off, bsize, size-off)
		}
		if string(hdr[4:8]) != "meta" {
			off += bsize
			continue
		}
		if bsize > heifMaxMeta {
			return 0, 0, heifDamaged("its meta box is %d bytes, where a picture's is a few KB", bsize)
		}
		meta := make([]byte, bsize-hl)
		if _, err := r.ReadAt(meta, off+hl); err != nil {
			return 0, 0, heifDamaged("its meta box cannot be read: %v", err)
		}
		p := &heifParser{r: r, size: size, items: map[uint32]*heifItem{}, configs: map[*heifBox]heifConfig{}}
		if err := p.parseMeta(meta); err != nil {
			return 0, 0, err
		}
		d, err := p.largest()
		return int(d.w), int(d.h), err
	}
}

// heifDims is a picture size, each side at most heifMaxDim so that areas never overflow.
type heifDims struct{ w, h int64 }

func dims(w, h uint64) heifDims {
	return heifDims{int64(min(w, heifMaxDim)), int64(min(h, heifMaxDim))}
}

// or is the larger of d and o by area.
func (d heifDims) or(o heifDims) heifDims {
	if o.w*o.h > d.w*d.h {
		return o
	}
	return d
}

// heifItem is one item of the file, as its iinf, iloc, iref and ipma boxes describe it.
type heifItem struct {
	typ     string
	props   []uint16  // 1-based indices into ipco
	dimg    []uint32  // the items it is derived from (a grid's tiles)
	extents []heifExt // where its data is
	method  uint64    // iloc's construction method: 0 file offsets, 1 idat offsets
	rows    uint64    // a grid's, from its descriptor
	cols    uint64
	dref    uint64 // iloc's data reference: 0 is this file
	located bool
	state   byte // 0 not sized, 1 being sized (a loop, if met again), 2 sized
	dims    heifDims
}

type heifExt struct{ off, n uint64 }

// heifParser holds what the meta box says, and the budgets that bound the walk.
type heifParser struct {
	r       io.ReaderAt
	size    int64
	boxes   int // boxes split so far
	units   int // NAL units and OBUs walked so far
	reads   int // pieces of items' data read so far
	entries int // table entries kept so far
	items   map[uint32]*heifItem
	order   []uint32  // item IDs as iinf lists them
	props   []heifBox // ipco's children
	idat    []byte
	primary uint32
	configs map[*heifBox]heifConfig // hvcC and av1C, read once each
}

type heifBox struct {
	typ  string
	body []byte
}

// children splits b into the boxes it holds, each length checked against b.
func (p *heifParser) children(b []byte) ([]heifBox, error) {
	var out []heifBox
	for len(b) > 0 {
		if p.boxes++; p.boxes > heifMaxBoxes {
			return nil, heifDamaged("its meta box holds more than %d boxes", heifMaxBoxes)
		}
		if len(b) < 8 {
			return nil, heifDamaged("a box header is cut short")
		}
		size, hl := uint64(binary.BigEndian.Uint32(b)), uint64(8)
		typ := string(b[4:8])
		switch size {
		case 0:
			size = uint64(len(b))
		case 1:
			if len(b) < 16 {
				return nil, heifDamaged("the %q box's header is cut short", typ)
			}
			size, hl = binary.BigEndian.Uint64(b[8:]), 16
		}
		if typ == "uuid" {
			hl += 16
		}
		if size < hl || size > uint64(len(b)) {
			return nil, heifDamaged("the %q box claims %d bytes, of %d left", typ, size, len(b))
		}
		out = append(out, heifBox{typ, b[hl:size]})
		b = b[size:]
	}
	return out, nil
}

// first is the first box of type typ in boxes (as libheif takes it), or nil.
func first(boxes []heifBox, typ string) *heifBox {
	for i := range boxes {
		if boxes[i].typ == typ {
			return &boxes[i]
		}
	}
	return nil
}

// heifCursor reads big-endian fields; reading past the end sets bad and yields zeros.
type heifCursor struct {
	b   []byte
	bad bool
}

// u reads an n-byte unsigned field, n one of 0, 1, 2, 3, 4 or 8.
func (c *heifCursor) u(n int) uint64 {
	if c.bad || n > len(c.b) {
		c.bad = true
		return 0
	}
	var v uint64
	for _, x := range c.b[:n] {
		v = v<<8 | uint64(x)
	}
	c.b = c.b[n:]
	return v
}

// idSize is the size of an item ID field: 2 bytes in a box's older versions (short), else 4.
func idSize(short bool) int {
	if short {
		return 2
	}
	return 4
}

// skip passes over n bytes.
func (c *heifCursor) skip(n int) { c.next(n) }

// next returns the next n bytes.
func (c *heifCursor) next(n int) []byte {
	if c.bad || n > len(c.b) {
		c.bad = true
		return nil
	}
	b := c.b[:n]
	c.b = c.b[n:]
	return b
}

// heifFullBox reads a full box's version and flags.
func heifFullBox(b heifBox) (version byte, flags uint32, c *heifCursor, err error) {
	if len(b.body) < 4 {
		return 0, 0, nil, heifDamaged("the %q box is cut short", b.typ)
	}
	return b.body[0], binary.BigEndian.Uint32(b.body) & 0xffffff, &heifCursor{b: b.body[4:]}, nil
}

// entry counts one more table entry against heifMaxEntries.
func (p *heifParser) entry(what string) error {
	if p.entries++; p.entries > heifMaxEntries {
		return heifDamaged("it lists more than %d %s", heifMaxEntries, what)
	}
	return nil
}

// parseMeta reads the meta box's body: the boxes libheif needs (pitm, iinf, iloc, iprp with ipco
// and ipma) must be there, as libheif refuses a file without them.
func (p *heifParser) parseMeta(meta []byte) error {
	if len(meta) < 4 {
		return heifDamaged("its meta box is cut short")
	}
	boxes, err := p.children(meta[4:])
	if err != nil {
		return err
	}
	need := map[string]*heifBox{}
	for _, typ := range []string{"pitm", "iinf", "iloc", "iprp"} {
		if need[typ] = first(boxes, typ); need[typ] == nil {
			return heifDamaged("its meta box has no %q box", typ)
		}
	}
	if idat := first(boxes, "idat"); idat != nil {
		p.idat = idat.body
	}
	v, _, c, err := heifFullBox(*need["pitm"])
	if err != nil {
		return err
	}
	p.primary = uint32(c.u(idSize(v == 0)))
	steps := []func(heifBox) error{p.parseIinf, p.parseIloc, p.parseIprp}
	for i, typ := range []string{"iinf", "iloc", "iprp"} {
		if err := steps[i](*need[typ]); err != nil {
			return err
		}
	}
	if iref := first(boxes, "iref"); iref != nil {
		if err := p.parseIref(*iref); err != nil {
			return err
		}
	}
	if c.bad || p.items[p.primary] == nil {
		return heifDamaged("its primary item %d is not in its item list", p.primary)
	}
	return nil
}

// parseIinf reads the items' types from their infe boxes (versions 2 and 3 carry a type; older
// ones describe files, not pictures).
func (p *heifParser) parseIinf(b heifBox) error {
	v, _, c, err := heifFullBox(b)
	if err != nil {
		return err
	}
	c.u(idSize(v == 0)) // the entry count: the boxes themselves say it
	if c.bad {
		return heifDamaged("the iinf box is cut short")
	}
	infes, err := p.children(c.b)
	if err != nil {
		return err
	}
	for _, infe := range infes {
		if infe.typ != "infe" {
			continue
		}
		v, _, c, err := heifFullBox(infe)
		if err != nil {
			return err
		}
		if v < 2 {
			continue
		}
		id := uint32(c.u(idSize(v == 2)))
		c.u(2) // protection index
		typ := string(c.b[:min(4, len(c.b))])
		if c.bad || len(typ) < 4 {
			return heifDamaged("an infe box is cut short")
		}
		if p.items[id] != nil {
			return heifDamaged("item %d is listed twice", id)
		}
		if err := p.entry("items"); err != nil {
			return err
		}
		p.items[id] = &heifItem{typ: typ}
		p.order = append(p.order, id)
	}
	return nil
}

// parseIloc reads where each item's data lies.
func (p *heifParser) parseIloc(b heifBox) error {
	v, _, c, err := heifFullBox(b)
	if err != nil {
		return err
	}
	if v > 2 {
		return heifDamaged("its iloc box is of unknown version %d", v)
	}
	sizes := c.u(2)
	offSize, lenSize, baseSize, idxSize := int(sizes>>12), int(sizes>>8&15), int(sizes>>4&15), int(sizes&15)
	if v == 0 {
		idxSize = 0
	}
	for _, n := range []int{offSize, lenSize, baseSize, idxSize} {
		if n != 0 && n != 4 && n != 8 {
			return heifDamaged("its iloc box has fields of %d bytes", n)
		}
	}
	idSize := idSize(v < 2)
	for count := c.u(idSize); count > 0 && !c.bad; count-- {
		id := uint32(c.u(idSize))
		var method uint64
		if v > 0 {
			method = c.u(2) & 15
		}
		dref, base, n := c.u(2), c.u(baseSize), c.u(2)
		it := p.items[id]
		if it != nil {
			it.method, it.dref, it.located, it.extents = method, dref, true, nil
		}
		for ; n > 0 && !c.bad; n-- {
			c.u(idxSize)
			off, ln := c.u(offSize), c.u(lenSize)
			if err := p.entry("extents"); err != nil {
				return err
			}
			if base+off < base {
				return heifDamaged("item %d's data offset overflows", id)
			}
			if it != nil {
				it.extents = append(it.extents, heifExt{base + off, ln})
			}
		}
	}
	if c.bad {
		return heifDamaged("its iloc box is cut short")
	}
	return nil
}

// parseIref reads which items each derived item ('dimg') is made of.
func (p *heifParser) parseIref(b heifBox) error {
	v, _, c, err := heifFullBox(b)
	if err != nil {
		return err
	}
	idSize := idSize(v == 0)
	refs, err := p.children(c.b)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		if ref.typ != "dimg" {
			continue
		}
		c := &heifCursor{b: ref.body}
		from := p.items[uint32(c.u(idSize))]
		for n := c.u(2); n > 0 && !c.bad; n-- {
			to := uint32(c.u(idSize))
			if err := p.entry("references"); err != nil {
				return err
			}
			if from != nil && !c.bad {
				from.dimg = append(from.dimg, to)
			}
		}
		if c.bad {
			return heifDamaged("a dimg reference is cut short")
		}
	}
	return nil
}

// parseIprp reads the item properties (ipco) and which items they belong to (every ipma).
func (p *heifParser) parseIprp(b heifBox) error {
	boxes, err := p.children(b.body)
	if err != nil {
		return err
	}
	ipco := first(boxes, "ipco")
	if ipco == nil || first(boxes, "ipma") == nil {
		return heifDamaged("its iprp box lacks ipco or ipma")
	}
	if p.props, err = p.children(ipco.body); err != nil {
		return err
	}
	for _, ipma := range boxes {
		if ipma.typ != "ipma" {
			continue
		}
		v, flags, c, err := heifFullBox(ipma)
		if err != nil {
			return err
		}
		for count := c.u(4); count > 0 && !c.bad; count-- {
			it := p.items[uint32(c.u(idSize(v < 1)))]
			for n := c.u(1); n > 0 && !c.bad; n-- {
				idx := uint16(c.u(1) & 0x7f)
				if flags&1 != 0 {
					idx = uint16(c.u(1)) | idx<<8
				}
				if err := p.entry("property associations"); err != nil {
					return err
				}
				if int(idx) > len(p.props) {
					return heifDamaged("an item has property %d of %d", idx, len(p.props))
				}
				if it != nil && idx > 0 {
					it.props = append(it.props, idx)
				}
			}
		}
		if c.bad {
			return heifDamaged("its ipma box is cut short")
		}
	}
	return nil
}

// largest is the largest size of every property and every item.
func (p *heifParser) largest() (heifDims, error) {
	var d heifDims
	for i := range p.props { // every one, whichever item it belongs to, if any
		s, err := p.propDims(&p.props[i])
		if err != nil {
			return heifDims{}, err
		}
		d = d.or(s)
	}
	for _, id := range p.order {
		s, err := p.itemDims(id, 0)
		if err != nil {
			return heifDims{}, err
		}
		d = d.or(s)
	}
	return d, nil
}

// propDims is the size a property claims ('ispe') or codes ('hvcC', 'av1C').
func (p *heifParser) propDims(prop *heifBox) (heifDims, error) {
	switch prop.typ {
	case "ispe":
		_, _, c, err := heifFullBox(*prop)
		if err != nil {
			return heifDims{}, err
		}
		s := dims(c.u(4), c.u(4))
		if c.bad {
			return heifDims{}, heifDamaged("an ispe box is cut short")
		}
		return s, nil
	case "hvcC", "av1C":
		c, err := p.config(prop)
		return c.dims, err
	}
	return heifDims{}, nil
}

// prop is the first property of type typ that belongs to it, or nil.
func (p *heifParser) prop(it *heifItem, typ string) *heifBox {
	for _, idx := range it.props {
		if p.props[idx-1].typ == typ {
			return &p.props[idx-1]
		}
	}
	return nil
}

// itemDims is the largest picture item id makes its decoder allocate.
func (p *heifParser) itemDims(id uint32, depth int) (heifDims, error) {
	it := p.items[id]
	switch {
	case it == nil:
		return heifDims{}, heifDamaged("a picture is made of item %d, which the file does not list", id)
	case it.state == 2:
		return it.dims, nil
	case it.state == 1 || depth > heifMaxDerivation:
		return heifDims{}, heifDamaged("item %d is derived from itself, or too deeply", id)
	case heifUnsizedCodecs[it.typ]:
		return heifDims{}, fmt.Errorf("%w (item %d is %q)", errHEIFCodec, id, it.typ)
	}
	it.state = 1
	var d heifDims
	if ispe := p.prop(it, "ispe"); ispe != nil {
		d, _ = p.propDims(ispe) // read already by largest
	}
	var err error
	var s heifDims
	switch it.typ {
	case "hvc1":
		s, err = p.hevcDims(id, it)
	case "av01":
		s, err = p.av1Dims(id, it)
	case "grid", "iovl":
		s, err = p.canvasDims(id, it)
	}
	if err != nil {
		return heifDims{}, err
	}
	d = d.or(s)
	if it.typ == "grid" || it.typ == "iden" || it.typ == "iovl" {
		var tile heifDims // the largest width and the largest height of its inputs
		for _, in := range it.dimg {
			s, err := p.itemDims(in, depth+1)
			if err != nil {
				return heifDims{}, err
			}
			tile = heifDims{max(tile.w, s.w), max(tile.h, s.h)}
		}
		d = d.or(tile)
		if it.typ == "grid" {
			d = d.or(dims(uint64(tile.w)*it.cols, uint64(tile.h)*it.rows))
		}
	}
	it.state, it.dims = 2, d
	return d, nil
}

// canvasDims is the output size a grid's or an overlay's descriptor (its data) gives its canvas,
// which the decoder allocates whole; a grid's rows and columns are kept for itemDims.
func (p *heifParser) canvasDims(id uint32, it *heifItem) (heifDims, error) {
	data, err := p.itemData(id, it)
	if err != nil {
		return heifDims{}, err
	}
	b := make([]byte, min(20, data.n))
	if err := data.read(b, 0); err != nil {
		return heifDims{}, heifDamaged("item %d's %s descriptor cannot be read: %v", id, it.typ, err)
	}
	c := &heifCursor{b: b}
	version, flags := c.u(1), c.u(1)
	if it.typ == "grid" {
		it.rows, it.cols = c.u(1)+1, c.u(1)+1
	} else {
		c.skip(8) // the fill colour
	}
	fs := 2
	if flags&1 != 0 {
		fs = 4
	}
	d := dims(c.u(fs), c.u(fs))
	if c.bad || version != 0 {
		return heifDims{}, heifDamaged("item %d's %s descriptor is cut short or of unknown version", id, it.typ)
	}
	return d, nil
}
