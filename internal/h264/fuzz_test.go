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

// FuzzSpliceBand feeds arbitrary picture and band streams to SpliceBand, seeded with a real pair
// (a 64x48 picture one slice per macroblock row, its band rows 16 to 48, 6 frames): it never
// panics nor runs away, refuses with ErrUnsupported only, and a clip it makes has the frames asked
// for, the first a keyframe, each frame its NAL units each after its length, none of them empty.
func FuzzSpliceBand(f *testing.F) {
	still, err := os.ReadFile("testdata/band-still.h264")
	if err != nil {
		f.Fatal(err)
	}
	band, err := os.ReadFile("testdata/band.h264")
	if err != nil {
		f.Fatal(err)
	}
	if _, err := SpliceBand(still, band, 1, 8, 25); err != nil {
		f.Fatalf("the seed pair: %v", err)
	}
	f.Add(still, band)
	f.Add(still, band[:len(band)/2])
	f.Add(band, still)
	f.Add(still, still)
	f.Fuzz(func(t *testing.T, still, band []byte) {
		const frames = 8
		c, err := SpliceBand(still, band, 1, frames, 25)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v, want ErrUnsupported", err)
			}
			return
		}
		if len(c.Frames) != frames || len(c.Keyframes) == 0 || c.Keyframes[0] != 0 {
			t.Fatalf("%d frames, keyframes %v", len(c.Frames), c.Keyframes)
		}
		for i, fr := range c.Frames {
			if len(fr) == 0 {
				t.Fatalf("frame %d is empty", i)
			}
			for len(fr) > 0 {
				if len(fr) < 5 || int(binary.BigEndian.Uint32(fr)) > len(fr)-4 || binary.BigEndian.Uint32(fr) == 0 {
					t.Fatalf("frame %d: not NAL units each after its length: % x", i, fr)
				}
				fr = fr[4+binary.BigEndian.Uint32(fr):]
			}
		}
	})
}
