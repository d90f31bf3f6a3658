package media

// A reader of HEIF structure (HEIC, AVIF: ISO/IEC 23008-12 on ISO-BMFF boxes) that finds, without
// decoding anything, the largest picture a file can make its decoder allocate. A file's 'ispe'
// properties only claim sizes: the decoder allocates what the coded bitstream says (an HEVC
// sequence parameter set, an AV1 sequence header) and what a grid or overlay canvas says, so those
// are read, and the largest of every claim and every coded size is the file's size.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Bounds on what WalkHEIF reads, keeps and walks, whatever a file claims. A real meta box is a
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
	heifMaxPixels     = 1 << 61 // a larger sum of pixels counts as this (two of them add up without overflow)
)

// ErrHEIFDamaged is a HEIF file whose structure cannot be walked, or that leaves the size of a
// picture in it unknown: the decoder would fail on it or could not be bounded.
var ErrHEIFDamaged = errors.New("the HEIF structure is damaged")

// ErrHEIFCodec is a HEIF file holding a picture in a codec other than HEVC or AV1, whose coded
// size WalkHEIF cannot read (JPEG, JPEG 2000, uncompressed, H.264, VVC items).
var ErrHEIFCodec = errors.New("a picture in a format other than HEVC or AV1")

// heifUnsizedCodecs are the item types of coded pictures that WalkHEIF cannot size.
var heifUnsizedCodecs = map[string]bool{"jpeg": true, "j2k1": true, "unci": true, "avc1": true, "vvc1": true, "evc1": true, "hvt1": true}

func heifDamaged(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrHEIFDamaged, fmt.Sprintf(format, args...))
}

// HEIFPictures is what WalkHEIF finds in a HEIF file.
type HEIFPictures struct {
	Width, Height int   // the largest picture heif-convert allocates to decode the file
	Count         int   // its top-level pictures: heif-convert decodes each and writes one file for each
	Primary       int   // the primary picture's place among them (from 0), in heif-convert's order
	Pixels        int64 // of every picture heif-convert decodes, summed (heifItem.pixels), at most 2^61
}

// WalkHEIF reads the HEIF file r (size bytes) as heif-convert (libheif 1.15) will decode it: its
// top-level pictures (every picture item not hidden, not a thumbnail, not an auxiliary picture),
// in the order of their item IDs, the pixels decoding them all makes (each reference to a picture
// decodes it again), and the largest picture decoding them allocates: for each
// top-level picture, the pictures it is derived from (a grid's tiles, an overlay's layers) and its
// alpha planes, and for each of those the largest of its 'ispe' claim, its coded size (the sequence
// parameter sets of HEVC items, in their 'hvcC' and in their data; the sequence headers of AV1
// items, in their 'av1C' and in their data), a grid's or overlay's canvas, and a grid's tile size
// times its rows and columns. Thumbnails, depth maps and items no picture is made of are never
// decoded, so neither their codec nor their size matters. A decoded HEVC or AV1 item whose coded
// size cannot be found is refused (ErrHEIFDamaged): its 'ispe' alone is never trusted; one in
// another codec is ErrHEIFCodec. It reads at most heifMaxMeta bytes at once and a bounded number of
// small pieces of the items' data, whatever r holds.
func WalkHEIF(r io.ReaderAt, size int64) (HEIFPictures, error) {
	var off int64
	for n := 0; ; n++ {
		if n == heifMaxTopBoxes || off >= size {
			return HEIFPictures{}, heifDamaged("it has no meta box")
		}
		var hdr [16]byte
		got, _ := r.ReadAt(hdr[:min(16, size-off)], off)
		if got < 8 {
			return HEIFPictures{}, heifDamaged("a box at byte %d is cut short", off)
		}
		bsize, hl := int64(binary.BigEndian.Uint32(hdr[:])), int64(8)
		switch bsize {
		case 0: // to the end of the file
			bsize = size - off
		case 1:
			if got < 16 || binary.BigEndian.Uint64(hdr[8:]) > uint64(size-off) {
				return HEIFPictures{}, heifDamaged("a box at byte %d runs past the end of the file", off)
			}
			bsize, hl = int64(binary.BigEndian.Uint64(hdr[8:])), 16
		}
		if bsize < hl || bsize > size-off {
			return HEIFPictures{}, heifDamaged("a box at byte %d claims %d bytes, of %d left", off, bsize, size-off)
		}
		if string(hdr[4:8]) != "meta" {
			off += bsize
			continue
		}
		if bsize > heifMaxMeta {
			return HEIFPictures{}, heifDamaged("its meta box is %d bytes, where a picture's is a few KB", bsize)
		}
		meta := make([]byte, bsize-hl)
		if _, err := r.ReadAt(meta, off+hl); err != nil {
			return HEIFPictures{}, heifDamaged("its meta box cannot be read: %v", err)
		}
		p := &heifParser{r: r, size: size, items: map[uint32]*heifItem{}, configs: map[*heifBox]heifConfig{}}
		if err := p.parseMeta(meta); err != nil {
			return HEIFPictures{}, err
		}
		return p.pictures()
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
	hidden  bool      // not a picture of its own (a grid's tile): infe's flag
	thumb   bool      // a thumbnail of another picture ('thmb' from it): never decoded
	auxOf   []uint32  // the pictures it is an auxiliary picture of ('auxl' from it)
	alphas  []uint32  // its alpha planes: auxiliary pictures decoded with it
	props   []uint16  // 1-based indices into ipco
	dimg    []uint32  // the items it is derived from (a grid's tiles)
	extents []heifExt // where its data is
	method  uint64    // iloc's construction method: 0 file offsets, 1 idat offsets
	rows    uint64    // a grid's, from its descriptor
	cols    uint64
	dref    uint64 // iloc's data reference: 0 is this file
	located bool
	state   byte     // 0 not sized, 1 being sized (a loop, if met again), 2 sized
	dims    heifDims // the picture it makes
	weight  heifDims // the largest picture decoding it allocates: its own, its inputs', its alpha planes'
	pixels  int64    // the pixels decoding it makes: the larger of its own and its inputs' summed, and its alpha planes'
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
	p.attachAlphas()
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
		v, flags, c, err := heifFullBox(infe)
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
		p.items[id] = &heifItem{typ: typ, hidden: flags&1 != 0}
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

// parseIref reads the references that decide what is decoded: which items each derived item
// ('dimg') is made of, which items are thumbnails ('thmb') and which are auxiliary pictures
// ('auxl') of which.
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
		if ref.typ != "dimg" && ref.typ != "thmb" && ref.typ != "auxl" {
			continue
		}
		c := &heifCursor{b: ref.body}
		from := p.items[uint32(c.u(idSize))]
		if from != nil && !c.bad && ref.typ == "thmb" {
			from.thumb = true
		}
		for n := c.u(2); n > 0 && !c.bad; n-- {
			to := uint32(c.u(idSize))
			if err := p.entry("references"); err != nil {
				return err
			}
			switch {
			case from == nil || c.bad:
			case ref.typ == "dimg":
				from.dimg = append(from.dimg, to)
			case ref.typ == "auxl":
				from.auxOf = append(from.auxOf, to)
			}
		}
		if c.bad {
			return heifDamaged("a %s reference is cut short", ref.typ)
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
