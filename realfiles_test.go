package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"os/exec"
	"testing"
)

// Real files from public test suites that browsers and players accept and vidgen once did not: a
// JPEG whose EXIF block is malformed. The fixtures are made here, each of exactly its class;
// TestCorpus renders them through the API as well.

// brokenEXIF is jpg (a JPEG with no APP1) with an EXIF block after its start of image whose IFD0
// holds Orientation 6, broken as kind says. Each is a class of real files that libjpeg (checked
// with libjpeg-turbo 2.1.5), browsers and Pillow show, ignoring what they cannot read of the EXIF:
//
//   - "tiff-header-ffff": its TIFF header overwritten with FF FF FF FF, as Pillow's
//     Tests/images/invalid-exif.jpg (ffmpeg: "invalid TIFF header in EXIF data");
//   - "ifd-count-past": IFD0 claims 32767 entries, all but its first two past the segment, as
//     writers that cut a block short leave it (ffmpeg: "error decoding EXIF data"); its
//     Orientation lies within, and counts;
//   - "ifd-offset-past": IFD0's offset points past the segment (ffmpeg says nothing);
//   - "app1-length-0": the APP1's length word is 0, below its own two bytes, as a writer that never
//     filled it in leaves it; libjpeg reads the segment as empty and skips the EXIF data after it as
//     stray bytes (ffmpeg: "unable to decode APP fields"; Go's decoder refuses it).
func brokenEXIF(t testing.TB, jpg []byte, kind string) []byte {
	t.Helper()
	b := withOrientation(jpg, 6, binary.LittleEndian)
	const tiff = 2 + 4 + 6 // after SOI, the APP1's marker and length, and "Exif\0\0"
	if string(b[tiff:tiff+2]) != "II" || binary.LittleEndian.Uint16(b[tiff+10:]) != 0x0128 || binary.LittleEndian.Uint16(b[tiff+22:]) != 0x0112 {
		t.Fatal("withOrientation's EXIF block is not laid out as brokenEXIF expects")
	}
	switch kind {
	case "tiff-header-ffff":
		copy(b[tiff:], []byte{0xff, 0xff, 0xff, 0xff})
	case "ifd-count-past":
		binary.LittleEndian.PutUint16(b[tiff+8:], 0x7fff)
	case "ifd-offset-past":
		binary.LittleEndian.PutUint32(b[tiff+4:], 0xfff0)
	case "app1-length-0":
		binary.BigEndian.PutUint16(b[4:], 0)
		if bytes.IndexByte(b[6:tiff+38], 0xff) >= 0 {
			t.Fatal("the EXIF data holds an FF byte, which a decoder would read as a marker")
		}
	default:
		t.Fatalf("no EXIF breakage %q", kind)
	}
	return b
}

// brokenEXIFFile is brokenEXIF of corpusPicture as a corpus case's image.
func brokenEXIFFile(kind string) func(testing.TB, string) string {
	return func(t testing.TB, dir string) string {
		return corpusFile(t, dir, kind+".jpg", brokenEXIF(t, encodeJPEG(t, corpusPicture), kind))
	}
}

// ffmpegErrors is what ffmpeg reports decoding every stream of the file at path to its end, as
// `ffmpeg -v error -i path -f null -` does: nothing for a file that decodes cleanly.
func ffmpegErrors(t testing.TB, path string) string {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil && len(out) == 0 {
		t.Fatalf("ffmpeg: %v", err)
	}
	return string(out)
}

// TestMalformedEXIF: a JPEG whose only fault is its EXIF block is accepted and stays a JPEG that
// ffmpeg decodes without an error (no detour through a decode in Go, which holds the whole picture
// in the service's memory), its orientation the one browsers read; a JPEG whose picture is damaged
// as well is not passed off as mended.
func TestMalformedEXIF(t *testing.T) {
	t.Parallel()
	tl := tools{ffmpeg: "ffmpeg", ffprobe: "ffprobe"}
	jpg := encodeJPEG(t, corpusPicture)
	cases := []struct {
		kind        string
		orientation int // what the accepted file holds, as browsers read the original
	}{
		{"tiff-header-ffff", 1},
		{"ifd-count-past", 6},
		{"ifd-offset-past", 1},
		{"app1-length-0", 1},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			t.Parallel()
			path := writeFixture(t, c.kind+".jpg", brokenEXIF(t, jpg, c.kind))
			if err := checkImage(path, typeJPEG); err != nil {
				t.Fatalf("checkImage: %v", err)
			}
			typ, err := prepareImage(t.Context(), tl, newDecodeGate(), path, typeJPEG)
			if err != nil || typ != typeJPEG {
				t.Fatalf("prepareImage: %q, %v; want it kept as a JPEG", typ, err)
			}
			got := readFile(t, path)
			if err := ffDecodeCheck(t.Context(), tl, path, typeJPEG); err != nil {
				t.Errorf("the accepted file does not decode cleanly: %v", err)
			}
			if o := jpegOrientation(got); o != c.orientation {
				t.Errorf("orientation %d, want %d", o, c.orientation)
			}
			// The picture's own segments and scan are kept byte for byte.
			if !bytes.HasSuffix(got, jpg[2:]) {
				t.Error("the picture's segments or scan changed")
			}
		})
	}
	t.Run("picture-damaged-too", func(t *testing.T) {
		t.Parallel()
		// A scan that misses a restart marker: ffmpeg draws black blocks and says so, with or without
		// the EXIF block. Keeping it as a bare JPEG would render the black blocks.
		orig := brokenEXIF(t, rgbJPEG(64, 32, corpusPicture, "rst-missing"), "tiff-header-ffff")
		path := writeFixture(t, "both.jpg", orig)
		bare, err := withoutMetadata(t.Context(), tl, path)
		if err != nil || bare {
			t.Errorf("withoutMetadata: %v, %v; want false, nil", bare, err)
		}
		if !bytes.Equal(readFile(t, path), orig) {
			t.Error("the file changed")
		}
		if _, err := prepareImage(t.Context(), tl, newDecodeGate(), path, typeJPEG); kindOf(err) != kindInvalid {
			t.Errorf("prepareImage: %v, want a 400", err)
		}
	})
	t.Run("picture-segment-bogus-length", func(t *testing.T) {
		t.Parallel()
		// libjpeg reads only a metadata segment's bogus length as empty; the picture's are errors.
		b := append([]byte{}, jpg...)
		dqt := bytes.Index(b, []byte{0xff, 0xdb})
		binary.BigEndian.PutUint16(b[dqt+2:], 0)
		_, err := copyWithoutMetadata(&bytes.Buffer{}, bufio.NewReader(bytes.NewReader(b)))
		if !errors.Is(err, errJPEGHeader) {
			t.Errorf("copyWithoutMetadata: %v, want errJPEGHeader", err)
		}
	})
}

// FuzzJPEGMetadata feeds arbitrary bytes to the readers of a JPEG's header and metadata: they never
// panic or hang, an orientation is always 1-8, and a copy without metadata is a fixed point (its
// own copy is itself: the clean orientation block it may hold survives, nothing else is dropped).
func FuzzJPEGMetadata(f *testing.F) {
	jpg := encodeJPEG(f, quad(16, 8))
	for _, kind := range []string{"tiff-header-ffff", "ifd-count-past", "ifd-offset-past", "app1-length-0"} {
		f.Add(brokenEXIF(f, jpg, kind))
	}
	f.Add(withOrientation(jpg, 8, binary.BigEndian))
	f.Add([]byte("\xff\xd8\xff\xe1\x00\x01Exif\xff\xdb\x00\x02\xff\xda\x00\x02\xff\xd9"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if o := jpegOrientation(b); o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
		jpegConfigWithoutMetadata(bytes.NewReader(b))
		var once bytes.Buffer
		if _, err := copyWithoutMetadata(&once, bufio.NewReader(bytes.NewReader(b))); err != nil {
			return
		}
		if !bytes.HasPrefix(once.Bytes(), []byte{0xff, 0xd8}) {
			t.Fatalf("the copy starts with % x", once.Bytes()[:min(4, once.Len())])
		}
		var twice bytes.Buffer
		if _, err := copyWithoutMetadata(&twice, bufio.NewReader(bytes.NewReader(once.Bytes()))); err != nil || !bytes.Equal(once.Bytes(), twice.Bytes()) {
			t.Fatalf("the copy of the copy differs (%v)", err)
		}
	})
}
