package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os/exec"
	"slices"
	"testing"

	"vidgen/internal/aac"
	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
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

// damagedADTS makes a 2 s tone as an ADTS AAC file in dir and damages it as how says, each a class
// of real file:
//
//   - "flip": the last frame's payload bits inverted, its header intact (ffmpeg: "channel element
//     … is not allocated"); "middle-flip", the middle frame's;
//   - "cut": the file ends halfway through its last frame's payload, as a recorder or copy that
//     stopped there (ffmpeg: "Input buffer exhausted before END element");
//   - "insert": 500 zero bytes inside the middle frame's payload, as a copy that wrote a block
//     twice or a sector of zeros; ffmpeg's parser then reports the frames after it 500 bytes
//     before where they are;
//   - "delete": 100 bytes of the middle frame's payload gone, as a lost block;
//   - "flip-40": 40 bytes inverted across the middle frame's end and the next one's header;
//   - "garbage": 300 bytes that are no frame between two frames (no FF byte: no sync word);
//   - "false-sync": the same, holding a frame header whose length reaches into the next frame.
func damagedADTS(t testing.TB, dir, how string) string {
	t.Helper()
	b := readFile(t, makeAudio(t, dir, "tone.aac", "sine=f=440:d=2", "-c:a", "aac", "-f", "adts"))
	frames := adtsFrameOffsets(t, b)
	i := len(frames) / 2
	if how == "flip" || how == "cut" {
		i = len(frames) - 1
	}
	start, end := frames[i], len(b)
	if i+1 < len(frames) {
		end = frames[i+1]
	}
	payload := start + aac.HeaderLen(b[start:])
	mid := payload + (end-payload)/2
	garbage := make([]byte, 300)
	for k := range garbage {
		garbage[k] = byte(k*37%251) &^ 0x80 // never FF
	}
	switch how {
	case "flip", "middle-flip":
		flipBytes(b[payload:end])
	case "cut":
		b = b[:mid]
	case "insert":
		b = slices.Concat(b[:mid], make([]byte, 500), b[mid:])
	case "delete":
		b = slices.Concat(b[:mid-50], b[mid+50:])
	case "flip-40":
		flipBytes(b[end-20 : end+20])
	case "false-sync":
		// A header of the stream's own format, 100 bytes into the garbage, whose frame ends 40
		// bytes into the real frame after the garbage.
		h := slices.Clone(b[:7])
		n := len(garbage) - 100 + 40
		h[3], h[4], h[5] = h[3]&^3|byte(n>>11), byte(n>>3), byte(n<<5)|h[5]&0x1F
		copy(garbage[100:], h)
		fallthrough
	case "garbage":
		b = slices.Concat(b[:end], garbage, b[end:])
	default:
		t.Fatalf("no ADTS damage %q", how)
	}
	return corpusFile(t, dir, "damaged-"+how+".aac", b)
}

// flipBytes inverts every bit of b.
func flipBytes(b []byte) {
	for k := range b {
		b[k] ^= 0xff
	}
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
	tl := ffmpeg.Tools{FFmpeg: "ffmpeg", FFprobe: "ffprobe"}
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
			broken := brokenEXIF(t, jpg, c.kind)
			// The upload's walk of the header reads the orientation the Go rewrite applies.
			if o, want := media.ReadJPEGHeader(bytes.NewReader(broken)).Orientation, jpegOrientation(broken); o != want {
				t.Errorf("the header's walk reads orientation %d, jpegOrientation %d", o, want)
			}
			path := writeFixture(t, c.kind+".jpg", broken)
			if err := checkImage(path, media.JPEG); err != nil {
				t.Fatalf("checkImage: %v", err)
			}
			typ, err := prepareImage(t.Context(), tl, newDecodeGate(), path, media.JPEG)
			if err != nil || typ != media.JPEG {
				t.Fatalf("prepareImage: %q, %v; want it kept as a JPEG", typ, err)
			}
			got := readFile(t, path)
			if err := ffDecodeCheck(t.Context(), tl, path, media.JPEG); err != nil {
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
		if _, err := prepareImage(t.Context(), tl, newDecodeGate(), path, media.JPEG); kindOf(err) != kindInvalid {
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

// TestDamagedADTS: an ADTS AAC upload whose frames do not all decode renders to a video whose
// sound decodes cleanly to its end and lasts what the probe counted, whatever the damage. When the
// decoded frames are whole frames of a stream whose frames follow one another, the file is cut
// down to them and copied; when bytes that are no frame broke the stream (inserted, deleted,
// garbage), ffprobe's packet positions are not the file's, and the file is kept as it was and
// encoded. A clean file is copied untouched.
func TestDamagedADTS(t *testing.T) {
	t.Parallel()
	tl := ffmpeg.Tools{FFmpeg: "ffmpeg", FFprobe: "ffprobe"}
	e := newTestEnv(t, nil)
	// A server that encodes audio in 3 segments at once, as it does long audio on 3 cores.
	inSegments := newTestEnv(t, nil, func(s *server) { splitAudio(s, 3) })
	img := writeFixture(t, "picture.png", encodePNG(t, corpusPicture))
	for _, c := range []struct {
		how    string
		errors bool // ffmpeg reports errors decoding it
		copied bool // copied (cut down to the frames that decode, if any did not); else kept whole and encoded
		// segments: encoded in segments (segments.go), which are cut by the count of decoded samples
		segments bool
	}{
		{"clean", false, true, false},
		{"flip", true, true, false},
		{"cut", true, true, false},
		{"middle-flip", true, true, false},
		{"id3-flip", true, true, false},
		{"insert", true, false, false},
		{"delete", true, false, false},
		{"flip-40", true, false, false},
		{"false-sync", true, false, false},
		// ffmpeg's ADTS demuxer skips bytes with no sync word, and says nothing: as a clean file.
		{"garbage", false, true, false},
		{"insert", true, false, true},
	} {
		name, env := c.how, e
		if c.segments {
			name, env = c.how+"-in-segments", inSegments
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var path string
			switch c.how {
			case "clean":
				path = makeAudio(t, dir, "tone.aac", "sine=f=440:d=2", "-c:a", "aac", "-f", "adts")
			case "id3-flip":
				path = corpusFile(t, dir, "id3.aac", append(id3Tag(), readFile(t, damagedADTS(t, dir, "flip"))...))
			default:
				path = damagedADTS(t, dir, c.how)
			}
			upload := readFile(t, path)
			if msg := ffmpegErrors(t, path); (msg != "") != c.errors {
				t.Fatalf("decoding the fixture reports %q; want errors: %v", msg, c.errors)
			}

			// The probe, on a copy: the upload itself goes through the API below.
			probed := corpusFile(t, dir, "probed.aac", upload)
			info, err := probeAudio(t.Context(), tl, probed, media.AAC)
			if err != nil {
				t.Fatalf("probeAudio: %v", err)
			}
			after := readFile(t, probed)
			if copied := audioArgs(audioCodecTag(info), Options{})[1] == "copy"; copied != c.copied {
				t.Errorf("codec tag %q: copied %v, want %v", audioCodecTag(info), copied, c.copied)
			}
			switch {
			case !c.errors || !c.copied:
				if !bytes.Equal(after, upload) {
					t.Error("the file was rewritten")
				}
			default:
				if msg := ffmpegErrors(t, probed); msg != "" {
					t.Errorf("the file cut to its decoded frames does not decode cleanly:\n%s", msg)
				}
				// What the file holds now is what decoded: its frames, 1024 samples each, are the duration.
				frames := len(adtsFrameOffsets(t, after))
				if want := float64(frames*aac.FrameSamples) / float64(info.SampleRate); info.Duration != want {
					t.Errorf("probe says %.4f s; the file holds %d frames, %.4f s", info.Duration, frames, want)
				}
			}

			// The render: its audio decodes cleanly to its end and lasts what the probe counted.
			key := env.newKey(t, name)
			st := env.wait(t, key, env.mustSubmit(t, key, img, path), StatusCompleted)
			video, _ := download(t, st["outputVideo"].(string))
			out := writeFixture(t, "out.mp4", video)
			if p := ffprobe(t, out); p.VideoCodec != "h264" || p.AudioCodec != "aac" {
				t.Errorf("streams: %+v, want h264 + aac", p)
			}
			if msg := ffmpegErrors(t, out); msg != "" {
				t.Errorf("the video does not decode cleanly:\n%s", msg)
			}
			if got := decodedSeconds(t, out); math.Abs(got-info.Duration) > 0.05 {
				t.Errorf("the video's sound lasts %.3f s, the probe counted %.3f s", got, info.Duration)
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
		if _, err := mendADTS(path, d); kindOf(err) != kindInvalid {
			t.Errorf("mendADTS: %v, want a 400", err)
		}
	})
}

// TestDecodedFrames: decoded packets are taken for the file's frames only when each run of them is
// that many whole frames, of one format, of a stream whose frames follow one another from the
// file's start (or its ID3 tag's end) to the last run's end.
func TestDecodedFrames(t *testing.T) {
	t.Parallel()
	// Five frames of 10, 20, 30, 40 and 50 bytes, at 0, 10, 30, 60 and 100.
	frame := func(n int) []byte {
		return []byte{0xFF, 0xF1, 0x50, 0x80 | byte(n>>11)&3, byte(n >> 3), byte(n<<5) | 0x1F, 0xFC}
	}
	var stream []byte
	for _, n := range []int{10, 20, 30, 40, 50} {
		stream = append(stream, append(frame(n), make([]byte, n-7)...)...)
	}
	mono := slices.Clone(stream)
	mono[60+3] ^= 0xC0 // frame 3 says one channel: another stream's, or damaged
	tagged := append(append(id3Tag(), 0, 0, 0), stream...)
	tag := int64(len(tagged) - len(stream))
	inserted := slices.Concat(stream[:35], make([]byte, 10), stream[35:])
	for _, c := range []struct {
		name string
		file []byte
		add  [][2]int64 // each decoded packet's position and size
		want bool
	}{
		{"all", stream, [][2]int64{{0, 10}, {10, 20}, {30, 30}, {60, 40}, {100, 50}}, true},
		{"gaps", stream, [][2]int64{{10, 20}, {60, 40}}, true},
		{"after-tag", tagged, [][2]int64{{tag + 10, 20}, {tag + 30, 30}}, true},
		{"in-tag", tagged, [][2]int64{{0, 10}}, false},
		{"mid-frame", stream, [][2]int64{{15, 15}}, false},
		{"two-as-one", stream, [][2]int64{{10, 50}}, false},
		{"one-as-two", stream, [][2]int64{{30, 10}, {40, 20}}, false},
		{"past-the-end", stream, [][2]int64{{100, 60}}, false},
		{"other-format", mono, [][2]int64{{30, 30}, {60, 40}}, false},
		{"other-format-skipped", mono, [][2]int64{{30, 30}, {100, 50}}, true},
		{"bytes-before", inserted, [][2]int64{{0, 10}, {10, 20}, {50, 30}}, false},
		{"bytes-after-last", inserted, [][2]int64{{0, 10}, {10, 20}}, true},
	} {
		path := writeFixture(t, c.name, c.file)
		d := &decodedPackets{}
		for _, a := range c.add {
			d.add(a[0], a[1])
		}
		if got, err := decodedFrames(path, d); err != nil || got != c.want {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

// TestKeepDecoded: runs move down in order and the file ends after the last.
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
	// A packet without a position, or before the one decoded before it, leaves nothing to cut by.
	for name, add := range map[string][][2]int64{"no-position": {{2, 4}, {-1, 3}}, "out-of-order": {{8, 3}, {2, 4}}} {
		d := &decodedPackets{}
		for _, a := range add {
			d.add(a[0], a[1])
		}
		path := writeFixture(t, name, src)
		if copyable, err := mendADTS(path, d); copyable || err != nil || !bytes.Equal(readFile(t, path), src) {
			t.Errorf("%s: mendADTS %v, %v, the file %q; want false, nil, untouched", name, copyable, err, readFile(t, path))
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
		// The upload's walk of the header reads the same orientation, or says it cannot (0).
		if o := media.ReadJPEGHeader(bytes.NewReader(b)).Orientation; bytes.HasPrefix(b, []byte{0xff, 0xd8}) && o != 0 && o != jpegOrientation(b) {
			t.Fatalf("the header's walk reads orientation %d, jpegOrientation %d", o, jpegOrientation(b))
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

// FuzzDecodedFrames feeds arbitrary bytes, and decoded packets at arbitrary places in them, to
// decodedFrames: it never panics, and when it takes the packets for frames, the file keepDecoded
// cuts down to them is ADTS frames of one format and nothing else.
func FuzzDecodedFrames(f *testing.F) {
	frame := []byte{0xFF, 0xF1, 0x50, 0x80, 0x01, 0x1F, 0xFC, 0, 0, 0, 0, 0} // 12 bytes
	f.Add(slices.Concat(frame, frame, frame), uint16(0), uint16(12), uint16(24), uint16(12))
	f.Add(slices.Concat(frame, []byte{1, 2}, frame), uint16(0), uint16(12), uint16(14), uint16(12))
	f.Fuzz(func(t *testing.T, b []byte, pos1, size1, pos2, size2 uint16) {
		path := writeFixture(t, "f.aac", b)
		d := &decodedPackets{}
		d.add(int64(pos1), int64(size1))
		d.add(int64(pos2), int64(size2))
		ok, err := decodedFrames(path, d)
		if err != nil {
			t.Fatal(err)
		}
		if !ok || d.unknown {
			return
		}
		if err := keepDecoded(path, d); err != nil {
			t.Fatal(err)
		}
		a := aac.NewReader(bytes.NewReader(readFile(t, path)))
		var format []byte
		for {
			fr, err := a.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("the kept file: %v", err)
			}
			if format == nil {
				format = slices.Clone(fr[:7])
			}
			if aac.Format(fr) != aac.Format(format) {
				t.Fatal("the kept frames differ in format")
			}
		}
	})
}
