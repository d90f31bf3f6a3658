package h264

import (
	"bytes"
	"testing"
)

// TestRBSP checks the Exp-Golomb fields and emulation prevention that the skipped frames are
// written with against their reader, across the values the frames use and past them.
func TestRBSP(t *testing.T) {
	t.Parallel()
	var w rbspWriter
	values := []int{0, 1, -1, 2, 25, -26, 255, 8160, 1 << 20}
	for _, v := range values {
		w.ue(uint(max(v, -v)))
		w.se(v)
		w.u(uint(max(v, -v))&0x1f, 5)
	}
	r := rbspReader{b: unescapeRBSP(escapeRBSP(w.b))}
	for _, v := range values {
		if got := r.ue(); got != uint(max(v, -v)) {
			t.Errorf("ue %d read as %d", max(v, -v), got)
		}
		if got := r.se(); got != v {
			t.Errorf("se %d read as %d", v, got)
		}
		if got := r.u(5); got != uint(max(v, -v))&0x1f {
			t.Errorf("u(5) %d read as %d", max(v, -v)&0x1f, got)
		}
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.u(64)
	if r.err == nil {
		t.Error("reading past the end set no error")
	}
	for _, b := range [][]byte{{0, 0, 0}, {0, 0, 1}, {0, 0, 2, 0, 0, 3}, {1, 0, 0, 0, 0, 0}} {
		e := escapeRBSP(b)
		if bytes.Contains(e, []byte{0, 0, 0}) || bytes.Contains(e, []byte{0, 0, 1}) || bytes.Contains(e, []byte{0, 0, 2}) {
			t.Errorf("%x escaped to %x: a start code can be read in it", b, e)
		}
		if got := unescapeRBSP(e); !bytes.Equal(got, b) {
			t.Errorf("%x escaped and unescaped to %x", b, got)
		}
	}
}
