package h264

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"
)

// FuzzStillClip feeds arbitrary streams to NewStillClip: it never panics nor runs away, refuses
// with ErrUnsupported only, and a clip it makes has the frames asked for, the keyframe first and
// then each one P slice NAL unit (a reference, no start code within) whose header starts as
// skipFrame writes it, on a picture of a positive size.
func FuzzStillClip(f *testing.F) {
	clip, err := os.ReadFile("testdata/clip.h264")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(clip)
	f.Add(clip[:len(clip)/2])
	f.Add([]byte{0, 0, 1, 0x67, 0x42, 0, 0x1e, 0xf4, 0, 0, 1, 0x68, 0xce, 0x38, 0x80, 0, 0, 1, 0x65, 0x88})
	f.Fuzz(func(t *testing.T, stream []byte) {
		const frames = 3
		c, err := NewStillClip(stream, frames, 10)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v, want ErrUnsupported", err)
			}
			return
		}
		if len(c.Frames) != frames || c.SPS.Width == 0 || c.SPS.Height == 0 {
			t.Fatalf("%d frames of %dx%d", len(c.Frames), c.SPS.Width, c.SPS.Height)
		}
		for i, fr := range c.Frames[1:] {
			if len(fr) < 6 || binary.BigEndian.Uint32(fr) != uint32(len(fr)-4) {
				t.Fatalf("frame %d: not one NAL unit after its length: % x", i+1, fr)
			}
			nal := fr[4:]
			if nal[0] != 2<<5|NALSlice {
				t.Fatalf("frame %d: NAL header %#x", i+1, nal[0])
			}
			for _, sc := range [][]byte{{0, 0, 0}, {0, 0, 1}, {0, 0, 2}} {
				if bytes.Contains(nal, sc) {
					t.Fatalf("frame %d holds % x", i+1, sc)
				}
			}
			r := rbspReader{b: unescapeRBSP(nal[1:])}
			if first, typ := r.ue(), r.ue(); first != 0 || typ != 5 || r.err != nil {
				t.Fatalf("frame %d: first_mb_in_slice %d, slice_type %d, %v", i+1, first, typ, r.err)
			}
		}
	})
}
