package media

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// SniffLen is how much of a file the type detection reads.
const SniffLen = 64 << 10

// Media types, as sniffed from a file's bytes.
const (
	JPEG     = "jpeg"
	PNG      = "png"
	WebP     = "webp"
	GIF      = "gif"
	BMP      = "bmp"
	TIFF     = "tiff"
	HEIC     = "heic"
	AVIF     = "avif"
	MP3      = "mp3"
	WAV      = "wav"
	M4A      = "m4a"
	Ogg      = "ogg"
	FLAC     = "flac"
	AIFF     = "aiff"
	AAC      = "aac" // ADTS: raw AAC frames, as radios and some recorders write them
	Matroska = "webm/matroska"
)

// SniffImage returns the image type of a file that starts with head, or "".
func SniffImage(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("\xff\xd8\xff")):
		return JPEG
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return PNG
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WEBP":
		return WebP
	case bytes.HasPrefix(head, []byte("GIF87a")), bytes.HasPrefix(head, []byte("GIF89a")):
		return GIF
	case bmpHeader(head):
		return BMP
	case bytes.HasPrefix(head, []byte("II*\x00")), bytes.HasPrefix(head, []byte("MM\x00*")):
		return TIFF
	}
	return heifBrand(head)
}

// bmpHeader reports whether head starts a Windows bitmap: "BM" and a DIB header of a known size
// ("BM" alone is too common a start for text).
func bmpHeader(head []byte) bool {
	if len(head) < 26 || string(head[:2]) != "BM" {
		return false
	}
	switch binary.LittleEndian.Uint32(head[14:18]) {
	case 12, 40, 52, 56, 64, 108, 124:
		return true
	}
	return false
}

// heifBrand returns HEIC or AVIF for an ISO-BMFF file whose brands say it is a HEIF still
// image (an iPhone photo, an AVIF), else "". Such files share their container with M4A audio.
func heifBrand(head []byte) string {
	if len(head) < 16 || string(head[4:8]) != "ftyp" {
		return ""
	}
	n := min(int(binary.BigEndian.Uint32(head[:4])), len(head))
	brands := []string{string(head[8:12])} // the major brand, then the compatible ones
	for i := 16; i+4 <= n; i += 4 {
		brands = append(brands, string(head[i:i+4]))
	}
	for _, b := range brands {
		switch b {
		case "avif", "avis":
			return AVIF
		case "heic", "heix", "heim", "heis", "hevc", "hevx":
			return HEIC
		}
	}
	if brands[0] == "mif1" || brands[0] == "msf1" {
		return HEIC // a HEIF of another codec: named as HEIF in messages, refused by heif-convert if need be
	}
	return ""
}

// SniffAudio returns the audio type of a file that starts with head, or "". An MP3 without an ID3
// tag has no magic number, so it is recognised by a chain of valid MPEG audio frame headers. An ID3
// tag may also stand before FLAC or ADTS AAC, so what follows it decides.
func SniffAudio(head []byte) string {
	switch {
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WAVE":
		return WAV
	case len(head) >= 12 && string(head[:4]) == "FORM" && (string(head[8:12]) == "AIFF" || string(head[8:12]) == "AIFC"):
		return AIFF
	case len(head) >= 12 && string(head[4:8]) == "ftyp":
		if heifBrand(head) != "" {
			return ""
		}
		return M4A // the codec (AAC) is checked by the service's probe
	case bytes.HasPrefix(head, []byte("OggS")) && len(head) >= 27:
		// The first page holds the codec's identification header.
		start := 27 + int(head[26])
		if start < len(head) {
			p := head[start:]
			if bytes.HasPrefix(p, []byte("\x01vorbis")) || bytes.HasPrefix(p, []byte("OpusHead")) {
				return Ogg
			}
		}
		return ""
	case bytes.HasPrefix(head, []byte("fLaC")):
		return FLAC
	case bytes.HasPrefix(head, []byte("\x1a\x45\xdf\xa3")):
		return Matroska // the codec is checked by the service's probe
	case bytes.HasPrefix(head, []byte("ID3")) && len(head) >= 10:
		n := ID3Len(head)
		if n >= len(head) {
			return MP3 // a tag larger than what was read (cover art): the probe decides
		}
		rest := head[n:]
		for len(rest) > 0 && rest[0] == 0 { // padding some taggers leave after the tag
			rest = rest[1:]
		}
		if t := SniffAudio(rest); t == FLAC || t == AAC {
			return t
		}
		return MP3
	case mp3FrameChain(head):
		return MP3
	case adtsChain(head):
		return AAC
	}
	return ""
}

// ID3Len is the length of the ID3v2 tag that starts head (at least 10 bytes), footer included.
func ID3Len(head []byte) int {
	// The tag's size is syncsafe (7 bits a byte); a footer adds 10 bytes.
	n := 10 + (int(head[6]&0x7f)<<21 | int(head[7]&0x7f)<<14 | int(head[8]&0x7f)<<7 | int(head[9]&0x7f))
	if head[5]&0x10 != 0 {
		n += 10
	}
	return n
}

// adtsChain reports whether head starts with three chained ADTS (AAC) frame headers.
func adtsChain(head []byte) bool {
	p := 0
	for range 3 {
		if p+7 > len(head) {
			return p > 0 && p >= len(head) // a short file whose frames fill it exactly
		}
		b := head[p:]
		if b[0] != 0xff || b[1]&0xf6 != 0xf0 || (b[2]>>2)&0xf > 12 {
			return false
		}
		l := int(b[3]&3)<<11 | int(b[4])<<3 | int(b[5]>>5)
		if l < 7 {
			return false
		}
		p += l
	}
	return true
}

// IsText says whether head, the start of a file (cut short of the file when cut), reads as text:
// UTF-8 without control characters (C0 other than tabs and line ends, DEL, C1); a character the cut
// splits at its end is allowed.
func IsText(head []byte, cut bool) bool {
	for len(head) > 0 {
		r, n := utf8.DecodeRune(head)
		if r == utf8.RuneError && n <= 1 {
			return cut && !utf8.FullRune(head)
		}
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r >= 0x7f && r <= 0x9f {
			return false
		}
		head = head[n:]
	}
	return true
}

var (
	mp3BitratesV1 = [16]int{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, -1}
	mp3BitratesV2 = [16]int{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, -1}
	mp3Rates      = [4][3]int{{11025, 12000, 8000}, {}, {22050, 24000, 16000}, {44100, 48000, 32000}}
)

// MP3FrameLen returns the length of the MPEG-1/2/2.5 Layer III frame whose header starts b, or 0.
func MP3FrameLen(b []byte) int {
	if len(b) < 4 || b[0] != 0xff || b[1]&0xe0 != 0xe0 {
		return 0
	}
	version := (b[1] >> 3) & 3
	layer := (b[1] >> 1) & 3
	bri := b[2] >> 4
	sri := (b[2] >> 2) & 3
	if version == 1 || layer != 1 || sri == 3 {
		return 0
	}
	kbps := mp3BitratesV2[bri]
	coef := 72000
	if version == 3 {
		kbps, coef = mp3BitratesV1[bri], 144000
	}
	if kbps <= 0 {
		return 0
	}
	return coef*kbps/mp3Rates[version][sri] + int((b[2]>>1)&1)
}

// MP3SampleRate returns the sample rate of the MPEG Layer III frame whose header starts b, or 0
// when b does not start one (MP3FrameLen).
func MP3SampleRate(b []byte) int {
	if MP3FrameLen(b) == 0 {
		return 0
	}
	return mp3Rates[(b[1]>>3)&3][(b[2]>>2)&3]
}

// mp3FrameChain reports whether head holds three MPEG Layer III frames in a row, the first within its
// first 8 KB. Random bytes almost never do.
func mp3FrameChain(head []byte) bool {
	for i := 0; i < len(head) && i < 8192; i++ {
		if head[i] != 0xff {
			continue
		}
		p, ok := i, true
		for n := 0; n < 3 && ok; n++ {
			l := 0
			if p < len(head) { // a frame may claim to run past the end of a short file
				l = MP3FrameLen(head[p:])
			}
			ok = l > 0
			p += l
		}
		if ok {
			return true
		}
	}
	return false
}
