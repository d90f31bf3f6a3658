package media

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestID3Len: the tag's length is its 10-byte header plus its syncsafe size, plus 10 with a footer.
func TestID3Len(t *testing.T) {
	for _, c := range []struct {
		flags byte
		size  [4]byte
		want  int
	}{
		{0, [4]byte{0, 0, 0, 2}, 12},
		{0, [4]byte{0, 0, 0, 0x7f}, 137},
		{0, [4]byte{0, 0, 1, 0}, 138},
		{0, [4]byte{1, 2, 3, 4}, 10 + 1<<21 + 2<<14 + 3<<7 + 4},
		{0x10, [4]byte{0, 0, 0, 5}, 25},
	} {
		head := append([]byte{'I', 'D', '3', 4, 0, c.flags}, c.size[:]...)
		if got := ID3Len(head); got != c.want {
			t.Errorf("flags %#x size %v: %d, want %d", c.flags, c.size, got, c.want)
		}
	}
}

// FuzzSniff feeds arbitrary bytes to the type detection: it never panics, names only supported
// types, and an image type always matches its magic number.
func FuzzSniff(f *testing.F) {
	for _, seed := range []string{"\xff\xd8\xff\xe0", "\x89PNG\r\n\x1a\n", "RIFF\x00\x00\x00\x00WEBPVP8 ", "RIFF\x00\x00\x00\x00WAVEfmt ",
		"\x00\x00\x00\x20ftypM4A ", "OggS\x00\x02" + strings.Repeat("\x00", 20) + "\x01\x1e\x01vorbis", "ID3\x04", "\xff\xfb\x90\x00", ""} {
		f.Add([]byte(seed))
	}
	images := map[string][]string{JPEG: {"\xff\xd8\xff"}, PNG: {"\x89PNG\r\n\x1a\n"}, WebP: {"RIFF"},
		GIF: {"GIF87a", "GIF89a"}, BMP: {"BM"}, TIFF: {"II*\x00", "MM\x00*"}, HEIC: {"????ftyp"}, AVIF: {"????ftyp"}}
	audio := map[string]bool{"": true, MP3: true, WAV: true, M4A: true, Ogg: true,
		FLAC: true, AIFF: true, AAC: true, Matroska: true}
	f.Fuzz(func(t *testing.T, head []byte) {
		img, aud := SniffImage(head), SniffAudio(head)
		if img != "" && !slices.ContainsFunc(images[img], func(magic string) bool { return hasMagic(head, magic) }) {
			t.Fatalf("SniffImage = %q for %q", img, head)
		}
		if !audio[aud] {
			t.Fatalf("SniffAudio = %q", aud)
		}
		if img != "" && aud != "" && aud != MP3 {
			t.Fatalf("both an image (%s) and audio (%s)", img, aud)
		}
	})
}

// hasMagic reports whether head starts with magic, where '?' in magic matches any byte.
func hasMagic(head []byte, magic string) bool {
	if len(head) < len(magic) {
		return false
	}
	for i := range len(magic) {
		if magic[i] != '?' && magic[i] != head[i] {
			return false
		}
	}
	return true
}

// TestFuzzSeedsExist keeps the checked-in corpus from going missing.
func TestFuzzSeedsExist(t *testing.T) {
	for _, name := range []string{"FuzzSniff"} {
		if entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", name)); err != nil || len(entries) == 0 {
			t.Errorf("no seed corpus for %s: %v", name, err)
		}
	}
}
