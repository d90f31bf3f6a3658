package media

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

// wavFile is a WAV of format tag tag whose header says it holds size bytes of data at byteRate
// bytes a second; it holds have bytes of them.
func wavFile(tag uint16, byteRate, size uint32, have int) []byte {
	b := []byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00")
	b = binary.LittleEndian.AppendUint16(b, tag)
	b = binary.LittleEndian.AppendUint16(b, 1) // mono
	b = binary.LittleEndian.AppendUint32(b, byteRate/2)
	b = binary.LittleEndian.AppendUint32(b, byteRate)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 16)
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, size)
	return append(b, make([]byte, have)...)
}

// flacFile is a FLAC's signature and STREAMINFO stating total samples at rate, and no frames.
func flacFile(rate uint32, total uint64) []byte {
	si := make([]byte, 34)
	si[10], si[11], si[12] = byte(rate>>12), byte(rate>>4), byte(rate<<4)|0x02 // 2 channels
	si[13] = 0xf0 | byte(total>>32)                                            // 16 bits a sample
	binary.BigEndian.PutUint32(si[14:], uint32(total))
	return append([]byte("fLaC\x80\x00\x00\x22"), si...)
}

// mp3File is three MPEG Layer III frames of header hdr; the first holds tag (a Xing, Info or VBRI
// header, or nothing) where its side information ends (at offset 36 for VBRI).
func mp3File(hdr string, tag []byte, at int) []byte {
	n := MP3FrameLen([]byte(hdr))
	var b []byte
	for i := range 3 {
		f := make([]byte, n)
		copy(f, hdr)
		if i == 0 {
			copy(f[at:], tag)
		}
		b = append(b, f...)
	}
	return b
}

// frameCount is a Xing-style header (kind "Xing" or "Info") that states frames.
func frameCount(kind string, frames uint32) []byte {
	return binary.BigEndian.AppendUint32(append([]byte(kind), 0, 0, 0, 1), frames)
}

// id3Tag is an ID3v2.4 tag of size bytes in all, its frames zeros (read as padding).
func id3Tag(size int) []byte {
	n := size - 10
	return append([]byte{'I', 'D', '3', 4, 0, 0, byte(n >> 21 & 0x7f), byte(n >> 14 & 0x7f), byte(n >> 7 & 0x7f), byte(n & 0x7f)}, make([]byte, n)...)
}

// TestReadAudioHeader reads the format and the length each type's header declares, exactly or
// not at all, and keeps reading it after the file is cut: that is what shows the cut.
func TestReadAudioHeader(t *testing.T) {
	const mpeg1, mpeg2 = "\xff\xfb\x90\x00", "\xff\xf3\x80\x00" // 128 kb/s at 44.1 kHz; 64 kb/s at 22.05 kHz
	vbri := append([]byte("VBRI"), make([]byte, 14)...)
	binary.BigEndian.PutUint32(vbri[14:], 50)
	wav := wavFile(1, 16000, 40000, 40000)
	for _, c := range []struct {
		name   string
		file   []byte
		format string
		want   float64 // 0: not declared
	}{
		{"PCM WAV", wav, WAV, 2.5},
		{"PCM WAV cut after its header", wav[:100], WAV, 2.5},
		{"float WAV", wavFile(3, 32000, 64000, 64), WAV, 2},
		{"extensible WAV", wavFile(0xfffe, 32000, 16000, 64), WAV, 0.5},
		{"ADPCM WAV: an average byte rate", wavFile(2, 16000, 40000, 64), WAV, 0},
		{"WAV of a recorder that never wrote its size", wavFile(1, 16000, 0xffffffff, 64), WAV, 0},
		{"WAV with an empty data chunk", wavFile(1, 16000, 0, 0), WAV, 0},
		{"FLAC", flacFile(44100, 44100*3), FLAC, 3},
		{"FLAC of a streaming encoder", flacFile(44100, 0), FLAC, 0},
		{"FLAC behind an ID3 tag and padding", append(append(id3Tag(64), 0, 0), flacFile(48000, 24000)...), FLAC, 0.5},
		// Cover art: what follows the tag is read from past it. SniffAudio names a file whose tag
		// runs past the head an MP3 (the probe decides), so a FLAC there declares nothing.
		{"MP3 behind an ID3 tag longer than the head", append(id3Tag(SniffLen+100), mp3File("\xff\xfb\x90\x00", frameCount("Info", 100), 36)...), MP3, 100 * 1152 / 44100.0},
		{"FLAC behind an ID3 tag longer than the head", append(id3Tag(SniffLen+100), flacFile(8000, 8000)...), MP3, 0},
		{"MPEG-1 MP3 with LAME's Info frame", mp3File(mpeg1, frameCount("Info", 100), 36), MP3, 100 * 1152 / 44100.0},
		{"MPEG-1 MP3 with a Xing frame", mp3File(mpeg1, frameCount("Xing", 10), 36), MP3, 10 * 1152 / 44100.0},
		{"MPEG-2 MP3 with the Info frame", mp3File(mpeg2, frameCount("Info", 100), 21), MP3, 100 * 576 / 22050.0},
		{"MP3 with a VBRI frame", mp3File(mpeg1, vbri, 36), MP3, 50 * 1152 / 44100.0},
		{"MP3 with an ID3 tag and the Info frame", append(id3Tag(200), mp3File(mpeg1, frameCount("Info", 100), 36)...), MP3, 100 * 1152 / 44100.0},
		{"MP3 whose Xing frame has no frame count", mp3File(mpeg1, []byte("Xing\x00\x00\x00\x00\x00\x00\x00\x09"), 36), MP3, 0},
		{"MP3 without a Xing frame", mp3File(mpeg1, nil, 36), MP3, 0},
		{"Ogg", append([]byte("OggS\x00\x02"), append(make([]byte, 20), "\x01\x1e\x01vorbis"...)...), Ogg, 0},
		{"M4A", []byte("\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A isom"), M4A, 0},
		{"not audio", []byte("%PDF-1.7"), "", 0},
		{"empty", nil, "", 0},
	} {
		h := ReadAudioHeader(bytes.NewReader(c.file))
		if h.Format != c.format || h.Declared != (c.want > 0) || math.Abs(h.Seconds-c.want) > 1e-9 {
			t.Errorf("%s: %+v, want %q declaring %.3f s", c.name, h, c.format, c.want)
		}
	}
}

// readCounter is a ReaderAt that counts the bytes it gives.
type readCounter struct {
	r *bytes.Reader
	n int
}

func (c *readCounter) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += n
	return n, err
}

// FuzzReadAudioHeader feeds arbitrary bytes to the audio header read: it never panics, reads at
// most two heads' worth, names the format SniffAudio names, and declares only a positive, finite
// length.
func FuzzReadAudioHeader(f *testing.F) {
	f.Add(wavFile(1, 16000, 40000, 40))
	f.Add(flacFile(44100, 44100))
	f.Add(append(id3Tag(64), mp3File("\xff\xfb\x90\x00", frameCount("Info", 100), 36)...))
	f.Add(mp3File("\xff\xf3\x80\x00", frameCount("Xing", 7), 21))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &readCounter{r: bytes.NewReader(b)}
		h := ReadAudioHeader(r)
		if r.n > 2*SniffLen {
			t.Fatalf("read %d bytes", r.n)
		}
		if want := SniffAudio(b[:min(len(b), SniffLen)]); h.Format != want {
			t.Fatalf("format %q, SniffAudio says %q", h.Format, want)
		}
		if h.Declared != (h.Seconds > 0) || math.IsInf(h.Seconds, 0) || math.IsNaN(h.Seconds) {
			t.Fatalf("%+v", h)
		}
	})
}
