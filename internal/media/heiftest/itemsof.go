package heiftest

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// ItemsOf is the properties and items of the HEIF file b (as heif-enc writes it: no item
// references, each item's data in the file's mdat), the primary first and the others in the
// order iinf lists them, for Build to build it again, changed. It reads b on its own, not with the
// walker under test, and fails t on any structure it does not expect.
func ItemsOf(t testing.TB, b []byte) ([][]byte, []Item) {
	t.Helper()
	r := reader{t: t}
	meta := r.child(b, "meta")
	boxes := r.boxes(meta[4:])
	if boxes["iref"] != nil {
		t.Fatal("item references")
	}
	primary := int(binary.BigEndian.Uint16(r.need(boxes["pitm"], 6)[4:]))
	var items []Item
	byID := map[int]*Item{}
	iinf := r.need(boxes["iinf"], 6)
	for _, infe := range r.list(iinf[6:]) {
		if infe.typ != "infe" || len(infe.body) < 12 || infe.body[0] != 2 {
			t.Fatalf("an item entry of version %d", infe.body[0])
		}
		items = append(items, Item{ID: int(binary.BigEndian.Uint16(infe.body[4:])), Type: string(infe.body[8:12])})
	}
	for i := range items {
		byID[items[i].ID] = &items[i]
	}
	iloc := r.need(boxes["iloc"], 8)
	if v := iloc[0]; v != 0 && v != 1 {
		t.Fatalf("an iloc box of version %d", v)
	}
	sizes := [4]int{int(iloc[4] >> 4), int(iloc[4] & 15), int(iloc[5] >> 4), int(iloc[5] & 15)} // offset, length, base offset, index
	c := iloc[8:]
	for range binary.BigEndian.Uint16(iloc[6:]) {
		id := int(r.uint(&c, 2))
		if iloc[0] == 1 && r.uint(&c, 2)&15 != 0 {
			t.Fatal("an item whose data is not in the file")
		}
		r.uint(&c, 2) // the data reference
		base := r.uint(&c, sizes[2])
		for range r.uint(&c, 2) {
			if iloc[0] == 1 {
				r.uint(&c, sizes[3])
			}
			off, n := base+r.uint(&c, sizes[0]), r.uint(&c, sizes[1])
			if off+n > uint64(len(b)) {
				t.Fatalf("item %d's data runs past the end of the file", id)
			}
			if it := byID[id]; it != nil {
				it.Data = append(it.Data, b[off:off+n]...)
			}
		}
	}
	iprp := r.boxes(r.need(boxes["iprp"], 0))
	var props [][]byte
	for _, p := range r.list(r.need(iprp["ipco"], 0)) {
		props = append(props, Box(p.typ, p.body))
	}
	ipma := r.need(iprp["ipma"], 8)
	c = ipma[8:]
	for range binary.BigEndian.Uint32(ipma[4:]) {
		id := int(r.uint(&c, 2+2*int(ipma[0]&1)))
		for range r.uint(&c, 1) {
			idx := r.uint(&c, 1+int(ipma[3]&1))
			if it := byID[id]; it != nil {
				it.Props = append(it.Props, int(idx&^(1<<(8*(1+ipma[3]&1)-1))))
			}
		}
	}
	for i, it := range items {
		if it.ID == primary {
			return props, append([]Item{it}, append(items[:i:i], items[i+1:]...)...)
		}
	}
	t.Fatalf("the primary item %d is not in the item list", primary)
	return nil, nil
}

// reader reads the boxes of a HEIF file for ItemsOf, failing t on a structure cut short.
type reader struct{ t testing.TB }

type box struct {
	typ  string
	body []byte
}

// list is the boxes b holds, end to end.
func (r reader) list(b []byte) []box {
	var out []box
	for len(b) > 0 {
		if len(b) < 8 || int(binary.BigEndian.Uint32(b)) < 8 || int(binary.BigEndian.Uint32(b)) > len(b) {
			r.t.Fatalf("a box cut short: % x", b[:min(len(b), 8)])
		}
		n := int(binary.BigEndian.Uint32(b))
		out = append(out, box{string(b[4:8]), b[8:n]})
		b = b[n:]
	}
	return out
}

// boxes is the boxes b holds, by type (the last of a type).
func (r reader) boxes(b []byte) map[string][]byte {
	m := map[string][]byte{}
	for _, x := range r.list(b) {
		m[x.typ] = x.body
	}
	return m
}

// child is the body of the box of type typ among those b holds.
func (r reader) child(b []byte, typ string) []byte {
	return r.need(r.boxes(b)[typ], 4)
}

// need is b, failing t when it is shorter than n bytes (or missing).
func (r reader) need(b []byte, n int) []byte {
	if b == nil || len(b) < n {
		r.t.Fatalf("a box missing or cut short (%d bytes of %d)", len(b), n)
	}
	return bytes.Clone(b)
}

// uint reads an n-byte big-endian number from the front of *c.
func (r reader) uint(c *[]byte, n int) uint64 {
	if len(*c) < n {
		r.t.Fatal("a box cut short")
	}
	var v uint64
	for _, x := range (*c)[:n] {
		v = v<<8 | uint64(x)
	}
	*c = (*c)[n:]
	return v
}
