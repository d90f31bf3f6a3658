package media

// The length an audio file's header states, read without decoding a sample.

import (
	"encoding/binary"
	"io"
)

// AudioHeader is what one read of an audio file's header yields (ReadAudioHeader).
type AudioHeader struct {
	// Format is the file's type, as SniffAudio names it from the same first bytes ("": none).
	Format string
	// Seconds is how long the header says the audio lasts, when Declared: a WAV's data chunk
	// (PCM or float) over its byte rate, a FLAC's total samples over its sample rate, an MP3's
	// Xing, Info or VBRI frame count times the samples a frame. Other formats, and a header that
	// states no exact length (an MP3 without such a frame, a WAV whose size a recorder left as a
	// placeholder, 0 or 0xFFFFFFFF, "until the end of the file"), are not Declared: their lengths
	// are guesses or absent, and only a decode tells.
	Seconds  float64
	Declared bool
}

// ReadAudioHeader reads the header of the audio file r: its first SniffLen bytes, and as many
// again past an ID3 tag (cover art can make the tag longer than that). It reads no more, whatever
// the header claims. A file that holds less than its header declares was cut short, whether or
// not its decoder says so: PCM cut between two samples decodes without an error.
func ReadAudioHeader(r io.ReaderAt) AudioHeader {
	head := make([]byte, SniffLen)
	n, _ := r.ReadAt(head, 0)
	head = head[:n]
	h := AudioHeader{Format: SniffAudio(head)}
	switch h.Format {
	case WAV:
		h.Seconds, h.Declared = wavSeconds(head)
		return h
	case FLAC, MP3:
	default:
		return h
	}
	if len(head) >= 10 && string(head[:3]) == "ID3" {
		n, _ := r.ReadAt(head[:cap(head)], int64(ID3Len(head)))
		head = head[:n]
		for len(head) > 0 && head[0] == 0 { // padding some taggers leave after the tag
			head = head[1:]
		}
	}
	if h.Format == FLAC {
		h.Seconds, h.Declared = flacSeconds(head)
	} else {
		h.Seconds, h.Declared = mp3Seconds(head)
	}
	return h
}

// wavSeconds reads the length a PCM WAV's header states: its data chunk's size over its byte rate.
func wavSeconds(b []byte) (float64, bool) {
	var byteRate uint32
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), binary.LittleEndian.Uint32(b[p+4:])
		switch id {
		case "fmt ":
			if p+20 > len(b) {
				return 0, false
			}
			// PCM, IEEE float, or WAVE_FORMAT_EXTENSIBLE (whose subformat is one of the two in
			// nearly every file): their byte rate is exact; a compressed format's is an average.
			if tag := binary.LittleEndian.Uint16(b[p+8:]); tag != 1 && tag != 3 && tag != 0xfffe {
				return 0, false
			}
			byteRate = binary.LittleEndian.Uint32(b[p+16:])
		case "data":
			if byteRate == 0 || size == 0 || size == 0xffffffff {
				return 0, false
			}
			return float64(size) / float64(byteRate), true
		}
		p += 8 + int(size) + int(size&1) // chunks are padded to an even length
		if size > uint32(len(b)) {
			return 0, false // a chunk before the data that runs past the head: no length to read
		}
	}
	return 0, false
}

// flacSeconds reads the length a FLAC's STREAMINFO states: its total samples over its sample rate
// (0 samples: unknown, as an encoder that streams writes it).
func flacSeconds(b []byte) (float64, bool) {
	// "fLaC", a metadata block header (4 bytes), then STREAMINFO, which must come first.
	if len(b) < 8+18 || string(b[:4]) != "fLaC" || b[4]&0x7f != 0 {
		return 0, false
	}
	si := b[8:]
	rate := uint32(si[10])<<12 | uint32(si[11])<<4 | uint32(si[12])>>4
	total := uint64(si[13]&0x0f)<<32 | uint64(binary.BigEndian.Uint32(si[14:]))
	if rate == 0 || total == 0 {
		return 0, false
	}
	return float64(total) / float64(rate), true
}

// mp3Seconds reads the length an MP3 states in its first frame: the frame count of a Xing or Info
// header (LAME writes one in every file) or of a VBRI header (Fraunhofer's), times the samples a frame.
func mp3Seconds(b []byte) (float64, bool) {
	rate := MP3SampleRate(b)
	if rate == 0 {
		return 0, false
	}
	version, mono := (b[1]>>3)&3, b[3]>>6 == 3
	perFrame, side := 576, 17 // MPEG-2 and 2.5
	if mono {
		side = 9
	}
	if version == 3 { // MPEG-1
		perFrame, side = 1152, 32
		if mono {
			side = 17
		}
	}
	var frames uint32
	switch x := b[min(len(b), 4+side):]; {
	case len(x) >= 12 && (string(x[:4]) == "Xing" || string(x[:4]) == "Info") && x[7]&1 != 0:
		frames = binary.BigEndian.Uint32(x[8:])
	case len(b) >= 36+18 && string(b[36:40]) == "VBRI":
		frames = binary.BigEndian.Uint32(b[36+14:])
	}
	if frames == 0 {
		return 0, false
	}
	return float64(frames) * float64(perFrame) / float64(rate), true
}
