package mp4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"testing"

	"vidgen/internal/aac"
)

// FuzzAACTrack feeds arbitrary streams and durations to AACTrack and writes what it accepts:
// it never panics, refuses with aac.ErrADTS only, and a track it makes has a sample a frame,
// the time scale of a rate MP4 names, and writes a file whose top-level boxes (ftyp, moov, mdat)
// tile it, the mdat holding exactly the samples.
func FuzzAACTrack(f *testing.F) {
	if b, err := os.ReadFile("../aac/testdata/audio.aac"); err == nil {
		f.Add(b[:min(len(b), 2000)], 0.1)
	}
	f.Add([]byte{0xFF, 0xF1, 0x50, 0x80, 0x01, 0x1F, 0xFC, 0x21}, 0.02)
	f.Add([]byte{0xFF, 0xF0, 0x4C, 0x80, 0x01, 0x3F, 0xFC, 0, 0, 0x21}, 1e9)
	f.Fuzz(func(t *testing.T, b []byte, seconds float64) {
		if math.IsNaN(seconds) || math.IsInf(seconds, 0) {
			return // a job's duration is a probed, finite number
		}
		tr, err := AACTrack(bytes.NewReader(b), seconds)
		if err != nil {
			if !errors.Is(err, aac.ErrADTS) {
				t.Fatalf("error %v, want aac.ErrADTS", err)
			}
			return
		}
		var samples uint64
		for _, s := range tr.Sizes {
			samples += uint64(s)
		}
		if len(tr.Sizes) == 0 || tr.Timescale < 7350 || tr.Timescale > 96000 || tr.LastDelta > aac.FrameSamples {
			t.Fatalf("%d samples at %d Hz, last %d", len(tr.Sizes), tr.Timescale, tr.LastDelta)
		}
		var out bytes.Buffer
		if err := WriteMovie(&out, tr); err != nil {
			t.Fatal(err)
		}
		file := out.Bytes()
		var types []string
		for at := 0; at < len(file); {
			if at+8 > len(file) {
				t.Fatalf("a box header cut at %d of %d", at, len(file))
			}
			size := int(binary.BigEndian.Uint32(file[at:]))
			typ := string(file[at+4 : at+8])
			if typ == "mdat" && uint64(size-8) != samples {
				t.Fatalf("mdat of %d bytes, samples %d", size-8, samples)
			}
			if size < 8 || at+size > len(file) {
				t.Fatalf("%s of %d bytes at %d of %d", typ, size, at, len(file))
			}
			types = append(types, typ)
			at += size
		}
		if len(types) != 3 || types[0] != "ftyp" || types[1] != "moov" || types[2] != "mdat" {
			t.Fatalf("top-level boxes %v", types)
		}
	})
}
