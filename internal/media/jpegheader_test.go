package media

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"io"
	"testing"
)

// encodeJPEG is the JPEG Go's encoder makes of img.
func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestReadJPEGHeaderSize: the walk reads the size image/jpeg reads, of a YCbCr and a grey picture.
func TestReadJPEGHeaderSize(t *testing.T) {
	t.Parallel()
	for name, img := range map[string]image.Image{
		"YCbCr": image.NewRGBA(image.Rect(0, 0, 37, 21)),
		"grey":  image.NewGray(image.Rect(0, 0, 5, 300)),
	} {
		b := encodeJPEG(t, img)
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		hdr := ReadJPEGHeader(bytes.NewReader(b))
		if hdr.Width != cfg.Width || hdr.Height != cfg.Height || !hdr.Complete || hdr.End != int64(len(b)) || hdr.RGB {
			t.Errorf("%s: %+v, want %d×%d, complete at %d, not RGB", name, hdr, cfg.Width, cfg.Height, len(b))
		}
	}
}

// TestReadJPEGHeaderRGB: three components are RGB when an Adobe marker says transform 0 or their
// IDs are R, G, B, unless a JFIF marker says YCbCr or a second start of image breaks the header.
func TestReadJPEGHeaderRGB(t *testing.T) {
	t.Parallel()
	const (
		jfif   = "\xff\xe0\x00\x07JFIF\x00"
		adobe0 = "\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"
		adobe1 = "\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x01"
		scan   = "\xff\xda\x00\x02\x01\x02\xff\xd9"
	)
	sof := func(ids string) string {
		s := "\xff\xc0\x00" + string(rune(8+3*len(ids))) + "\x08\x00\x02\x00\x03" + string(rune(len(ids)))
		for _, id := range []byte(ids) {
			s += string([]byte{id, 0x11, 0})
		}
		return s
	}
	for _, c := range []struct {
		name string
		file string
		rgb  bool
	}{
		{"Adobe transform 0", adobe0 + sof("\x01\x02\x03"), true},
		{"components R, G, B", sof("RGB"), true},
		{"components 1, 2, 3", sof("\x01\x02\x03"), false},
		{"Adobe transform 1", adobe1 + sof("\x01\x02\x03"), false},
		{"Adobe transform 1, components R, G, B", adobe1 + sof("RGB"), true},
		{"Adobe transform 0 and JFIF", jfif + adobe0 + sof("RGB"), false},
		{"grey", adobe0 + sof("\x01"), false},
		{"four components", adobe0 + sof("CMYK"), false},
		{"second start of image", "\xff\xd8\x00\x02" + sof("RGB"), false},
	} {
		hdr := ReadJPEGHeader(bytes.NewReader([]byte("\xff\xd8" + c.file + scan)))
		if hdr.RGB != c.rgb || !hdr.Complete {
			t.Errorf("%s: %+v, want RGB %v, complete", c.name, hdr, c.rgb)
		}
		if c.rgb && (hdr.Width != 3 || hdr.Height != 2) {
			t.Errorf("%s: %d×%d, want 3×2", c.name, hdr.Width, hdr.Height)
		}
	}
}

// FuzzReadJPEGHeader: the walk never panics, an end it finds is an end-of-image marker within the
// file, and the size of a file image/jpeg reads is image/jpeg's.
func FuzzReadJPEGHeader(f *testing.F) {
	f.Add(encodeJPEG(f, image.NewRGBA(image.Rect(0, 0, 16, 9))))
	f.Add(encodeJPEG(f, image.NewGray(image.Rect(0, 0, 3, 40))))
	f.Add(encodeJPEG(f, image.NewCMYK(image.Rect(0, 0, 8, 8))))
	f.Add([]byte("\xff\xd8\xff\xe0\x00\x01\xff\xc0\x00\x0b\x08\x00\x02\x00\x03\x01\x01\x11\x00\xff\xda\x00\x02\x01\xff\xd9"))
	f.Fuzz(func(t *testing.T, b []byte) {
		hdr := ReadJPEGHeader(bytes.NewReader(b))
		if hdr.Complete && (hdr.End < 4 || hdr.End > int64(len(b)) || !bytes.Equal(b[hdr.End-2:hdr.End], []byte{0xff, 0xd9})) {
			t.Fatalf("end %d of %d bytes is no end-of-image marker", hdr.End, len(b))
		}
		if !hdr.Complete && hdr.End != 0 {
			t.Fatalf("an incomplete JPEG ends at %d", hdr.End)
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
		switch {
		case err == nil && (hdr.FrameErr != nil || cfg.Width != hdr.Width || cfg.Height != hdr.Height):
			t.Fatalf("%d×%d (%v), image/jpeg reads %d×%d", hdr.Width, hdr.Height, hdr.FrameErr, cfg.Width, cfg.Height)
		case err != nil && hdr.FrameErr != nil && err.Error() != hdr.FrameErr.Error():
			// nil is a header read once its metadata is left out, which image/jpeg does not do
			t.Fatalf("frame: %q, image/jpeg: %q", hdr.FrameErr, err)
		}
		w, h, ferr := ReadJPEGFrame(bytes.NewReader(b))
		if w != hdr.Width || h != hdr.Height || (ferr == nil) != (hdr.FrameErr == nil) {
			t.Fatalf("ReadJPEGFrame: %d×%d %v; ReadJPEGHeader: %+v", w, h, ferr, hdr)
		}
	})
}

// TestJPEGFrameErr: the frame header's refusal is a *HeaderError that tells a broken structure
// from a feature decoders lack, or the file's end; a metadata segment of a bogus length is read
// as empty, as libjpeg reads it, and does not refuse the header.
func TestJPEGFrameErr(t *testing.T) {
	t.Parallel()
	const (
		sof  = "\xff\xc0\x00\x0b\x08\x00\x02\x00\x03\x01\x01\x11\x00"
		scan = "\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\xff\xd9"
	)
	for _, c := range []struct {
		name        string
		file        string
		unsupported bool
		reason      string // "": no *HeaderError
		eof         bool
	}{
		{"clean", sof + scan, false, "", false},
		{"EXIF of a bogus length", "\xff\xe1\x00\x00" + sof + scan, false, "", false},
		{"12-bit", "\xff\xc0\x00\x0b\x0c\x00\x02\x00\x03\x01\x01\x11\x00" + scan, true, "precision", false},
		{"lossless", "\xff\xc3\x00\x0b\x08\x00\x02\x00\x03\x01\x01\x11\x00" + scan, true, "unknown marker", false},
		{"tables of a bogus length", "\xff\xdb\x00\x01" + sof + scan, false, "short segment length", false},
		{"no frame header", scan, false, "missing SOF marker", false},
		{"cut in the frame header", sof[:9], false, "", true},
	} {
		hdr := ReadJPEGHeader(bytes.NewReader([]byte("\xff\xd8" + c.file)))
		var e *HeaderError
		switch {
		case c.eof:
			if !errors.Is(hdr.FrameErr, io.ErrUnexpectedEOF) {
				t.Errorf("%s: %v, want io.ErrUnexpectedEOF", c.name, hdr.FrameErr)
			}
		case c.reason == "":
			if hdr.FrameErr != nil || hdr.Width != 3 || hdr.Height != 2 {
				t.Errorf("%s: %d×%d, %v; want 3×2", c.name, hdr.Width, hdr.Height, hdr.FrameErr)
			}
		case !errors.As(hdr.FrameErr, &e) || e.Unsupported != c.unsupported || e.Reason != c.reason:
			t.Errorf("%s: %#v, want unsupported %v, %q", c.name, hdr.FrameErr, c.unsupported, c.reason)
		}
	}
}

// TestReadJPEGHeaderOrientation: the orientation is the first EXIF block's that holds one, read
// from segments back to back; a stray byte ends that reading, and fill bytes or a stray restart
// marker, which such a reader parts differently, make it unknown (0).
func TestReadJPEGHeaderOrientation(t *testing.T) {
	t.Parallel()
	exif := func(o byte) string {
		tiff := "MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00" + string([]byte{o}) + "\x00\x00\x00\x00\x00\x00"
		return "\xff\xe1\x00" + string([]byte{byte(2 + 6 + len(tiff))}) + "Exif\x00\x00" + tiff
	}
	const rest = "\xff\xc0\x00\x0b\x08\x00\x02\x00\x03\x01\x01\x11\x00\xff\xda\x00\x02\x01\xff\xd9"
	for _, c := range []struct {
		name string
		file string
		want int
	}{
		{"none", rest, 1},
		{"6", exif(6), 6},
		{"first that holds one", exif(0) + exif(8) + exif(3), 8},
		{"after a stray byte", "\x00" + exif(6), 1},
		{"after an APP1 of a bogus length", "\xff\xe1\x00\x01" + exif(6), 1},
		{"after fill bytes", "\xff" + exif(6), 0},
		{"after a restart marker", "\xff\xd0" + exif(6), 0},
		{"before fill bytes", exif(5) + "\xff" + exif(6), 5},
	} {
		hdr := ReadJPEGHeader(bytes.NewReader([]byte("\xff\xd8" + c.file + rest)))
		if hdr.Orientation != c.want || !hdr.Complete {
			t.Errorf("%s: %+v, want orientation %d, complete", c.name, hdr, c.want)
		}
	}
}
