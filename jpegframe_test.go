package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"testing"

	"vidgen/internal/media"
)

// jpegConfigWithoutMetadata is jpeg.DecodeConfig of the JPEG in f read without its metadata
// (copyWithoutMetadata): Go's decoder refuses a metadata segment whose length is below 2, which
// libjpeg reads as empty.
func jpegConfigWithoutMetadata(f io.ReadSeeker) (image.Config, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return image.Config{}, err
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := copyWithoutMetadata(pw, bufio.NewReader(f))
		pw.CloseWithError(err)
	}()
	cfg, err := jpeg.DecodeConfig(pr)
	pr.Close() // the copy stops at its next write
	<-done
	return cfg, err
}

// goJPEGSize is how the upload read a JPEG's size before one walk of its markers did: Go's
// DecodeConfig, and when it fails, DecodeConfig of the file without its metadata; the error is the
// first one's. The walk (media.ReadJPEGHeader's FrameErr) must say what it said.
func goJPEGSize(b []byte) (w, h int, err error) {
	cfg, err := jpeg.DecodeConfig(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		if c, err2 := jpegConfigWithoutMetadata(bytes.NewReader(b)); err2 == nil {
			cfg, err = c, nil
		}
	}
	return cfg.Width, cfg.Height, err
}

// jpegSegment is the offset of the first segment of marker m in the JPEG b (Go's encoder writes
// its segments back to back), for a test to break.
func jpegSegment(t testing.TB, b []byte, m byte) int {
	t.Helper()
	for p := 2; p+4 <= len(b) && b[p] == 0xff; p += 2 + int(binary.BigEndian.Uint16(b[p+2:])) {
		if b[p+1] == m {
			return p
		}
		if b[p+1] == 0xda {
			break
		}
	}
	t.Fatalf("no marker %02X", m)
	return 0
}

// TestJPEGFrameAsGoReadsIt: a JPEG's frame header is read in the upload's one walk of its markers
// as Go's DecodeConfig read it before, followed when it failed by a second DecodeConfig without the
// metadata: the same size, or the same refusal word for word ("could not be read (…)"), for each
// class of broken header. Each case also names what it must give, so the test cannot pass by
// agreeing with a broken oracle.
func TestJPEGFrameAsGoReadsIt(t *testing.T) {
	t.Parallel()
	jpg := encodeJPEG(t, quad(16, 8))
	sof := jpegSegment(t, jpg, 0xc0)
	sos := jpegSegment(t, jpg, 0xda)
	const jfif = "\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
	insert := func(at int, seg string) []byte {
		return append(append(append([]byte{}, jpg[:at]...), seg...), jpg[at:]...)
	}
	withSOF := func(f func(d []byte)) []byte { // jpg with its frame header's data changed
		b := bytes.Clone(jpg)
		f(b[sof+4:])
		return b
	}
	withMarker := func(at int, m byte) []byte {
		b := bytes.Clone(jpg)
		b[at+1] = m
		return b
	}
	for _, c := range []struct {
		name string
		file []byte
		want string // the reason in the refusal; "" for a header that reads
	}{
		{"clean", jpg, ""},
		{"JFIF", insert(2, jfif), ""},
		{"EXIF with an APP1 length of 0", brokenEXIF(t, jpg, "app1-length-0"), ""},
		{"APP0 of a bogus length", insert(2, "\xff\xe0\x00\x01"), ""},
		{"comment of a bogus length", insert(2, "\xff\xfe\x00\x00"), ""},
		{"stray FF 01", insert(2, "\xff\x01"), ""},
		{"stray bytes and fill bytes", insert(sof, "abc\xff\xff"), ""},
		{"progressive", withMarker(sof, 0xc2), ""},
		{"JFIF, cut after the frame header", insert(2, jfif)[:len(jfif)+sof+19], ""},
		{"cut in the tables", jpg[:20], "unexpected EOF"},
		{"cut after the frame header", jpg[:sof+19], "unexpected EOF"},
		{"12-bit precision", withSOF(func(d []byte) { d[0] = 12 }), "unsupported JPEG feature: precision"},
		{"lossless", withMarker(sof, 0xc3), "unsupported JPEG feature: unknown marker"},
		{"arithmetic coding", withMarker(sof, 0xc9), "unsupported JPEG feature: unknown marker"},
		{"component count unlike its length", withSOF(func(d []byte) { d[5] = 1 }), "invalid JPEG format: SOF has wrong length"},
		{"quantisation table 4", withSOF(func(d []byte) { d[8] = 4 }), "invalid JPEG format: bad Tq value"},
		{"repeated component", withSOF(func(d []byte) { d[9] = d[6] }), "invalid JPEG format: repeated component identifier"},
		{"sampling 3×1", withSOF(func(d []byte) { d[7] = 0x31 }), "unsupported JPEG feature: luma/chroma subsampling ratio"},
		{"sampling 5×1", withSOF(func(d []byte) { d[7] = 0x51 }), "invalid JPEG format: luma/chroma subsampling ratio"},
		{"chroma sampled finer than luma", withSOF(func(d []byte) { d[7], d[10] = 0x11, 0x22 }), "unsupported JPEG feature: luma/chroma subsampling ratio"},
		{"second frame header", insert(sos, string(jpg[sof:sof+19])), "invalid JPEG format: multiple SOF markers"},
		{"no frame header", append(bytes.Clone(jpg[:sof]), jpg[sof+19:]...), "invalid JPEG format: missing SOF marker"},
		{"end of image before a scan", append(bytes.Clone(jpg[:sos]), 0xff, 0xd9), "invalid JPEG format: missing SOS marker"},
		{"marker 02", insert(2, "\xff\x02\x00\x04ab"), "invalid JPEG format: unknown marker"},
		{"second start of image", insert(2, "\xff\xd8\x00\x02"), "unsupported JPEG feature: unknown marker"},
		{"tables of a bogus length", insert(2, "\xff\xc4\x00\x01"), "invalid JPEG format: short segment length"},
		{"JPG0 of a bogus length", insert(2, "\xff\xf0\x00\x00"), "invalid JPEG format: short segment length"},
		{"APP1 of a bogus length, then a lossless frame", insert(2, "\xff\xe1\x00\x00\xff\xc3\x00\x02"), "invalid JPEG format: short segment length"},
	} {
		_, _, goErr := goJPEGSize(c.file)
		if (goErr == nil) != (c.want == "") || goErr != nil && goErr.Error() != c.want {
			t.Fatalf("%s: Go's DecodeConfig says %v, the case wants %q: the fixture is not of its class", c.name, goErr, c.want)
		}
		path := writeFixture(t, "frame.jpg", c.file)
		w, h, _, err := imageSize(path, media.JPEG)
		_, inspectErr := inspectImage(path, media.JPEG)
		if c.want == "" {
			if err != nil || w != 16 || h != 8 {
				t.Errorf("%s: %d×%d, %v; want 16×8", c.name, w, h, err)
			}
			var e *Error
			if inspectErr != nil && (!errors.As(inspectErr, &e) || !bytes.Contains([]byte(e.Msg), []byte("truncated or damaged"))) {
				t.Errorf("%s: inspectImage: %v", c.name, inspectErr)
			}
			continue
		}
		want := unreadableImage(media.JPEG, goErr).Error()
		for _, err := range []error{err, inspectErr} {
			if err == nil || err.Error() != want || kindOf(err) != kindInvalid {
				t.Errorf("%s: %v; want %q (400)", c.name, err, want)
			}
		}
	}
}

// FuzzJPEGFrame: for any bytes after a start of image, the walk of the markers reads the frame
// header as Go's DecodeConfig with its retry without metadata read it: the same size, or the same
// error text; the header-only read agrees with the full walk.
func FuzzJPEGFrame(f *testing.F) {
	jpg := encodeJPEG(f, quad(16, 8))
	f.Add(jpg[2:])
	f.Add(brokenEXIF(f, jpg, "app1-length-0")[2:])
	f.Add([]byte("\xff\xe0\x00\x01\xff\x01\xff\xc0\x00\x0b\x08\x00\x02\x00\x03\x01\x01\x11\x00\xff\xda\x00\x02\xff\xd9"))
	f.Add([]byte("\xff\xe1\x00\x00\xff\xc2\x00\x11\x08\x00\x02\x00\x03\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01\xff\xda"))
	f.Fuzz(func(t *testing.T, rest []byte) {
		b := append([]byte{0xff, 0xd8}, rest...)
		w, h, goErr := goJPEGSize(b)
		hdr := media.ReadJPEGHeader(bytes.NewReader(b))
		switch {
		case (goErr == nil) != (hdr.FrameErr == nil):
			t.Fatalf("walk: %v; Go: %v", hdr.FrameErr, goErr)
		case goErr != nil && goErr.Error() != hdr.FrameErr.Error():
			t.Fatalf("walk: %q; Go: %q", hdr.FrameErr, goErr)
		case goErr == nil && (w != hdr.Width || h != hdr.Height):
			t.Fatalf("walk: %d×%d; Go: %d×%d", hdr.Width, hdr.Height, w, h)
		}
		fw, fh, ferr := media.ReadJPEGFrame(bytes.NewReader(b))
		if fw != hdr.Width && ferr == nil || fh != hdr.Height && ferr == nil || (ferr == nil) != (hdr.FrameErr == nil) {
			t.Fatalf("ReadJPEGFrame: %d×%d %v; ReadJPEGHeader: %d×%d %v", fw, fh, ferr, hdr.Width, hdr.Height, hdr.FrameErr)
		}
	})
}

// BenchmarkInspectJPEG measures the upload's read of a camera-sized JPEG's header (inspectImage):
// its size, its structure to the end of image, its orientation and colour storage.
func BenchmarkInspectJPEG(b *testing.B) {
	img := image.NewYCbCr(image.Rect(0, 0, 2000, 1500), image.YCbCrSubsampleRatio420)
	rng := rand.New(rand.NewPCG(1, 2)) // noise: a file as large as a photo's
	for i := range img.Y {
		img.Y[i] = uint8(rng.UintN(256))
	}
	var jpg bytes.Buffer
	if err := jpeg.Encode(&jpg, img, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	path := writeFixture(b, "photo.jpg", withOrientation(jpg.Bytes(), 6, binary.LittleEndian))
	b.SetBytes(int64(jpg.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inspectImage(path, media.JPEG); err != nil {
			b.Fatal(err)
		}
	}
}
