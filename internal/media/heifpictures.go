package media

// Which pictures of a HEIF file heif-convert decodes, and how large each is. heif-convert (libheif
// 1.15) decodes the file's top-level pictures one after the other, each with the pictures it is
// derived from and its alpha plane, and writes one file for each; it never decodes a thumbnail, a
// depth map or any other auxiliary picture (without --with-aux, which vidgen never passes).

import (
	"bytes"
	"fmt"
	"slices"
)

// heifCodedTypes are the item types of the pictures WalkHEIF can size: coded in HEVC or AV1, or
// derived from other pictures (a grid of tiles, an identity transform, an overlay).
var heifCodedTypes = map[string]bool{"hvc1": true, "av01": true, "grid": true, "iden": true, "iovl": true}

// heifAlphaTypes are the auxiliary types ('auxC') of the alpha planes libheif decodes with their
// picture.
var heifAlphaTypes = map[string]bool{
	"urn:mpeg:avc:2015:auxid:1":                   true,
	"urn:mpeg:hevc:2015:auxid:1":                  true,
	"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha": true,
}

// isPicture reports whether an item of type typ is a picture. libheif 1.15 takes hvc1, av01, grid,
// iden, iovl and vvc1 items for pictures; the other coded pictures count too, as later versions
// decode JPEG and uncompressed items: a top-level one is refused (ErrHEIFCodec), never ignored.
func isPicture(typ string) bool { return heifCodedTypes[typ] || heifUnsizedCodecs[typ] }

// attachAlphas gives each picture its alpha planes: the auxiliary pictures of it whose (last)
// 'auxC' property names an alpha plane. libheif attaches one only when its 'ispe' size equals the
// picture's; every one counts here, so that no decoded plane goes unweighed.
func (p *heifParser) attachAlphas() {
	for _, id := range p.order {
		it := p.items[id]
		if len(it.auxOf) == 0 || !isPicture(it.typ) || !heifAlphaTypes[p.auxType(it)] {
			continue
		}
		for _, master := range it.auxOf {
			if m := p.items[master]; m != nil {
				m.alphas = append(m.alphas, id)
			}
		}
	}
}

// auxType is the type its last 'auxC' property gives the auxiliary picture it, as libheif reads it.
func (p *heifParser) auxType(it *heifItem) string {
	var typ string
	for _, idx := range it.props {
		if prop := p.props[idx-1]; prop.typ == "auxC" && len(prop.body) > 4 {
			b, _, _ := bytes.Cut(prop.body[4:], []byte{0}) // after its version and flags
			typ = string(b)
		}
	}
	return typ
}

// topLevel lists the pictures heif-convert decodes and writes a file for, in its order: by item
// ID (libheif keeps its items in a map), whatever order iinf lists them in.
func (p *heifParser) topLevel() []uint32 {
	var ids []uint32
	for _, id := range p.order {
		if it := p.items[id]; isPicture(it.typ) && !it.hidden && !it.thumb && len(it.auxOf) == 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// pictures weighs every top-level picture, counts the pixels decoding them all makes and finds
// the primary among them.
func (p *heifParser) pictures() (HEIFPictures, error) {
	top := p.topLevel()
	var d heifDims
	var pixels int64
	primary := -1
	for i, id := range top {
		if id == p.primary {
			primary = i
		}
		_, w, err := p.itemDims(id, 0)
		if err != nil {
			return HEIFPictures{}, err
		}
		d, pixels = d.or(w), addPixels(pixels, p.items[id].pixels)
	}
	if primary < 0 {
		return HEIFPictures{}, heifDamaged("its primary item %d is not a picture of its own (it is hidden, a thumbnail or an auxiliary picture)", p.primary)
	}
	return HEIFPictures{Width: int(d.w), Height: int(d.h), Count: len(top), Primary: primary, Pixels: pixels}, nil
}

// addPixels is a+b, at most heifMaxPixels: a file can name one picture from any number of places.
func addPixels(a, b int64) int64 {
	return min(a+b, heifMaxPixels)
}

// ispeDims is the largest size its 'ispe' properties claim (libheif takes the last of them).
func (p *heifParser) ispeDims(it *heifItem) (heifDims, error) {
	var d heifDims
	for _, idx := range it.props {
		if p.props[idx-1].typ != "ispe" {
			continue
		}
		_, _, c, err := heifFullBox(p.props[idx-1])
		if err != nil {
			return heifDims{}, err
		}
		d = d.or(dims(c.u(4), c.u(4)))
		if c.bad {
			return heifDims{}, heifDamaged("an ispe box is cut short")
		}
	}
	return d, nil
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

// itemDims is the size of the picture item id makes (what a grid places as a tile), and its
// weight: the largest picture decoding it allocates, its own or one it is made of or an alpha plane.
func (p *heifParser) itemDims(id uint32, depth int) (size, weight heifDims, err error) {
	it := p.items[id]
	switch {
	case it == nil:
		return heifDims{}, heifDims{}, heifDamaged("a picture is made of item %d, which the file does not list", id)
	case it.state == 2:
		return it.dims, it.weight, nil
	case it.state == 1 || depth > heifMaxDerivation:
		return heifDims{}, heifDims{}, heifDamaged("item %d is derived from itself, or too deeply", id)
	case heifUnsizedCodecs[it.typ]:
		return heifDims{}, heifDims{}, fmt.Errorf("%w (item %d is %q)", ErrHEIFCodec, id, it.typ)
	}
	it.state = 1
	d, err := p.ispeDims(it)
	if err != nil {
		return heifDims{}, heifDims{}, err
	}
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
		return heifDims{}, heifDims{}, err
	}
	d = d.or(s)
	var inputs heifDims // the largest weight of what it is made of, and of its alpha planes
	var made int64      // the pixels decoding what it is made of makes: each reference decodes again
	if it.typ == "grid" || it.typ == "iden" || it.typ == "iovl" {
		var tile heifDims // the largest width and the largest height of its inputs
		for _, in := range it.dimg {
			s, w, err := p.itemDims(in, depth+1)
			if err != nil {
				return heifDims{}, heifDims{}, err
			}
			tile, inputs, made = heifDims{max(tile.w, s.w), max(tile.h, s.h)}, inputs.or(w), addPixels(made, p.items[in].pixels)
		}
		d = d.or(tile)
		if it.typ == "grid" {
			d = d.or(dims(uint64(tile.w)*it.cols, uint64(tile.h)*it.rows))
		}
	}
	// A grid's canvas is its tiles' pixels again, so they count once; an overlay's canvas is drawn
	// over by its layers, so the larger of the two is at least half of what it takes.
	pixels := max(d.w*d.h, made)
	for _, a := range it.alphas {
		_, w, err := p.itemDims(a, depth+1)
		if err != nil {
			return heifDims{}, heifDims{}, err
		}
		inputs, pixels = inputs.or(w), addPixels(pixels, p.items[a].pixels)
	}
	it.state, it.dims, it.weight, it.pixels = 2, d, d.or(inputs), pixels
	return it.dims, it.weight, nil
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
