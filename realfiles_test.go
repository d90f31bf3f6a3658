package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os/exec"
	"strings"
	"testing"

	"vidgen/internal/aac"
)

// Real files from public test suites that browsers and players accept and vidgen once did not: a
// JPEG whose EXIF block is malformed, an ADTS AAC stream whose last frame is damaged. The fixtures
// are made here, each of exactly its class; TestCorpus renders them through the API as well.

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

// damagedADTSFile is damagedADTS as a corpus case's audio.
func damagedADTSFile(how string) func(testing.TB, string) string {
	return func(t testing.TB, dir string) string { return damagedADTS(t, dir, how) }
}

// damagedADTS makes a 2 s tone as an ADTS AAC file in dir and damages its last frame (with
// "middle-", the middle one), whose header stays as it was: "flip" inverts its payload's bits
// (ffmpeg: "channel element … is not allocated"), "cut" ends the file halfway through its payload,
// as a recorder or copy that stopped there (ffmpeg: "Input buffer exhausted before END element").
func damagedADTS(t testing.TB, dir, how string) string {
	t.Helper()
	b := readFile(t, makeAudio(t, dir, "tone.aac", "sine=f=440:d=2", "-c:a", "aac", "-f", "adts"))
	frames := adtsFrameOffsets(t, b)
	i := len(frames) - 1
	if strings.HasPrefix(how, "middle-") {
		i, how = len(frames)/2, strings.TrimPrefix(how, "middle-")
	}
	start, end := frames[i], len(b)
	if i+1 < len(frames) {
		end = frames[i+1]
	}
	payload := start + aac.HeaderLen(b[start:])
	switch how {
	case "flip":
		for p := payload; p < end; p++ {
			b[p] ^= 0xff
		}
	case "cut":
		b = b[:payload+(end-payload)/2]
	default:
		t.Fatalf("no ADTS damage %q", how)
	}
	return corpusFile(t, dir, "damaged-"+how+".aac", b)
}

// adtsFrameOffsets is where each frame of the ADTS stream b starts.
func adtsFrameOffsets(t testing.TB, b []byte) []int {
	t.Helper()
	var at []int
	for p := 0; p < len(b); {
		if p+7 > len(b) || b[p] != 0xff || b[p+1]&0xf6 != 0xf0 {
			t.Fatalf("no ADTS frame at %d", p)
		}
		at = append(at, p)
		p += int(b[p+3]&3)<<11 | int(b[p+4])<<3 | int(b[p+5])>>5
	}
	return at
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

// TestDamagedADTS: an ADTS AAC upload whose frames do not all decode is kept as the frames that do,
// so the render's copy of it decodes cleanly to its end and lasts what the probe counted; a clean
// one is not touched.
func TestDamagedADTS(t *testing.T) {
	t.Parallel()
	tl := tools{ffmpeg: "ffmpeg", ffprobe: "ffprobe"}
	for _, how := range []string{"flip", "cut", "middle-flip", "id3-flip", "clean"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var path string
			switch how {
			case "clean":
				path = makeAudio(t, dir, "tone.aac", "sine=f=440:d=2", "-c:a", "aac", "-f", "adts")
			case "id3-flip":
				path = corpusFile(t, dir, "id3.aac", append(id3Tag(), readFile(t, damagedADTS(t, dir, "flip"))...))
			default:
				path = damagedADTS(t, dir, how)
			}
			before := readFile(t, path)
			if how != "clean" && ffmpegErrors(t, path) == "" {
				t.Fatal("the damaged fixture decodes cleanly; the case proves nothing")
			}
			info, err := probeAudio(t.Context(), tl, path, typeAAC)
			if err != nil {
				t.Fatalf("probeAudio: %v", err)
			}
			if msg := ffmpegErrors(t, path); msg != "" {
				t.Errorf("the accepted file does not decode cleanly:\n%s", msg)
			}
			if how == "clean" && !bytes.Equal(readFile(t, path), before) {
				t.Error("a clean file was rewritten")
			}
			// What the file holds now is what decoded: its frames, 1024 samples each, are the duration.
			frames := len(adtsFrameOffsets(t, readFile(t, path)))
			if want := float64(frames*aacFrame) / float64(info.SampleRate); info.Duration != want {
				t.Errorf("probe says %.4f s; the file holds %d frames, %.4f s", info.Duration, frames, want)
			}
			if got := decodedSeconds(t, path); math.Abs(got-info.Duration) > 1e-3 {
				t.Errorf("the file decodes to %.4f s, the probe said %.4f s", got, info.Duration)
			}
		})
	}
	t.Run("damaged-in-too-many-places", func(t *testing.T) {
		t.Parallel()
		d := &decodedPackets{}
		for i := range int64(maxDecodedRuns + 1) {
			d.add(i*10, 5) // a gap after every frame
		}
		path := writeFixture(t, "many.aac", make([]byte, (maxDecodedRuns+1)*10))
		if err := keepDecoded(path, d); kindOf(err) != kindInvalid {
			t.Errorf("keepDecoded: %v, want a 400", err)
		}
	})
}

// TestKeepDecoded: runs move down in order and the file ends after the last; a position ffprobe
// could not give leaves the file alone.
func TestKeepDecoded(t *testing.T) {
	t.Parallel()
	src := []byte("hhAAAAxxBBByyyCzz")
	for _, c := range []struct {
		name string
		add  [][2]int64
		want string
	}{
		{"runs", [][2]int64{{2, 2}, {4, 2}, {8, 3}, {14, 1}}, "AAAABBBC"},
		{"tail", [][2]int64{{0, 6}}, "hhAAAA"},
		{"whole", [][2]int64{{0, 10}, {10, 7}}, string(src)},
		{"no-position", [][2]int64{{2, 4}, {-1, 3}}, string(src)},
	} {
		path := writeFixture(t, c.name, src)
		d := &decodedPackets{}
		for _, a := range c.add {
			d.add(a[0], a[1])
		}
		if err := keepDecoded(path, d); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := string(readFile(t, path)); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
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
