package h264

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
)

// unescapeRBSP removes the emulation prevention bytes (the 03 of each 00 00 03) from a NAL unit's
// payload.
func unescapeRBSP(b []byte) []byte { return bytes.ReplaceAll(b, []byte{0, 0, 3}, []byte{0, 0}) }

// escapeRBSP inserts the emulation prevention bytes a NAL unit's payload needs.
func escapeRBSP(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/64)
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c <= 3 {
			out = append(out, 3)
			zeros = 0
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

// rbspReader reads the fixed-width and Exp-Golomb fields of an RBSP; past the end it reads zeros
// and sets err.
type rbspReader struct {
	b   []byte
	pos uint
	err error
}

func (r *rbspReader) u(n uint) uint {
	var v uint
	for range n {
		v <<= 1
		if r.pos/8 >= uint(len(r.b)) {
			r.err = errors.New("truncated")
			continue
		}
		v |= uint(r.b[r.pos/8]>>(7-r.pos%8)) & 1
		r.pos++
	}
	return v
}

func (r *rbspReader) ue() uint {
	zeros := uint(0)
	for r.u(1) == 0 {
		if r.err != nil || zeros > 31 {
			r.err = cmp.Or(r.err, errors.New("bad Exp-Golomb code"))
			return 0
		}
		zeros++
	}
	return 1<<zeros - 1 + r.u(zeros)
}

func (r *rbspReader) se() int {
	k := r.ue()
	if k%2 == 1 {
		return int(k+1) / 2
	}
	return -int(k / 2)
}

func (r *rbspReader) skipScalingList(size int) {
	last, next := 8, 8
	for range size {
		if next != 0 {
			next = (last + r.se() + 256) % 256
		}
		if next != 0 {
			last = next
		}
	}
}

// rbspWriter writes the fields of an RBSP.
type rbspWriter struct {
	b []byte
	n uint // bits written
}

func (w *rbspWriter) u(v, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte((v>>uint(i))&1) << (7 - w.n%8)
		w.n++
	}
}

func (w *rbspWriter) ue(v uint) {
	v++
	bits := uint(0)
	for x := v; x > 1; x >>= 1 {
		bits++
	}
	w.u(0, bits)
	w.u(v, bits+1)
}

func (w *rbspWriter) se(v int) {
	if v > 0 {
		w.ue(uint(2*v - 1))
	} else {
		w.ue(uint(-2 * v))
	}
}

// bitRanges is the bits of b from ranges[0] to ranges[1], from ranges[2] to ranges[3] and so on
// (bit offsets, the last end at most len(b)*8), packed, then their count: two RBSPs parsed alike
// have equal bitRanges exactly when those fields are equal.
func bitRanges(b []byte, ranges ...uint) string {
	var w rbspWriter
	for i := 0; i+1 < len(ranges); i += 2 {
		for pos := ranges[i]; pos < min(ranges[i+1], uint(len(b))*8); pos++ {
			w.u(uint(b[pos/8]>>(7-pos%8))&1, 1)
		}
	}
	return string(binary.AppendUvarint(w.b, uint64(w.n)))
}
