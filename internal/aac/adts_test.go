package aac

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
)

// adtsFrame is an ADTS frame of payload: a header (9 bytes with a CRC, whose value is not
// checked; 7 without) of an AAC-LC, 44.1 kHz, stereo stream, then the payload.
func adtsFrame(payload []byte, crc bool) []byte {
	head := 7
	if crc {
		head = 9
	}
	n := head + len(payload)
	h := []byte{0xFF, 0xF1, 0x50, 0x80 | byte(n>>11)&3, byte(n >> 3), byte(n<<5) | 0x1F, 0xFC}
	if crc {
		h[1] &^= 1
		h = append(h, 0xAB, 0xCD)
	}
	return append(h, payload...)
}

// TestReader checks that Next returns each frame whole, header included, with and without a CRC
// and of every length the header allows (empty to 8191 bytes), then io.EOF; and that a stream that
// is not ADTS there is an error wrapping ErrADTS, after the frames before it.
func TestReader(t *testing.T) {
	t.Parallel()
	frames := [][]byte{adtsFrame([]byte("one"), false), adtsFrame(nil, true), adtsFrame(bytes.Repeat([]byte{7}, maxFrame-1-7), false),
		adtsFrame(bytes.Repeat([]byte{0xFF}, 20), true), adtsFrame(nil, false)}
	stream := bytes.Join(frames, nil)
	a := NewReader(bytes.NewReader(stream))
	for i, want := range frames {
		got, err := a.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: %d bytes, want %d", i, len(got), len(want))
		}
		if h, wantH := HeaderLen(got), 7+2*int(want[1]&1^1); h != wantH {
			t.Errorf("frame %d: header %d bytes, want %d", i, h, wantH)
		}
	}
	if _, err := a.Next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}

	shorter := adtsFrame(nil, true)
	shorter[3], shorter[4], shorter[5] = shorter[3]&^3, 1, 0x1F // a length of 8: less than its 9-byte header
	for name, tail := range map[string][]byte{
		"garbage":                 []byte("RIFF....WAVEfmt "),
		"cut last frame":          adtsFrame([]byte("payload"), false)[:10],
		"cut header":              adtsFrame(nil, false)[:5],
		"shorter than its header": shorter,
		"MPEG layer 3 sync":       {0xFF, 0xFB, 0x90, 0x00, 0, 0, 0, 0},
	} {
		a := NewReader(bytes.NewReader(append(bytes.Clone(frames[0]), tail...)))
		if _, err := a.Next(); err != nil {
			t.Fatalf("%s: the frame before: %v", name, err)
		}
		if _, err := a.Next(); !errors.Is(err, ErrADTS) {
			t.Errorf("%s: %v, want ErrADTS", name, err)
		}
	}
}

// TestReaderEncoderOutput reads ffmpeg's AAC encoder's ADTS output (testdata/audio.aac: 2.5 s of
// a 44.1 kHz tone): the frames are the encoder's, one of them the priming, the rest each
// FrameSamples of the sound, and they cover the file, each of the same Format (which a header that
// says another channel count, rate or frame count has not).
func TestReaderEncoderOutput(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/audio.aac")
	if err != nil {
		t.Fatal(err)
	}
	a := NewReader(bytes.NewReader(b))
	frames, total := 0, 0
	var first []byte
	for {
		f, err := a.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if frames == 0 {
			first = bytes.Clone(f[:7])
		}
		if Format(f) != Format(first) {
			t.Fatalf("frame %d: format %08x, the first frame's %08x", frames, Format(f), Format(first))
		}
		frames++
		total += len(f)
	}
	for name, change := range map[string][2]byte{"channels": {3, 0x40}, "rate": {2, 0x04}, "frames": {6, 0x01}} {
		h := bytes.Clone(first)
		h[change[0]] ^= change[1]
		if Format(h) == Format(first) {
			t.Errorf("%s changed: the same format", name)
		}
	}
	// ffmpeg's encoder writes a priming frame, then ceil(2.5 s × 44100 / 1024) frames of sound.
	if want := 1 + (110250+FrameSamples-1)/FrameSamples; frames != want || total != len(b) {
		t.Errorf("%d frames of %d bytes in all, want %d frames covering the %d bytes", frames, total, int(want), len(b))
	}
}

// FuzzReader feeds arbitrary bytes to the Reader: it never panics; the frames it returns are, one
// after the other, the start of the input, each at least its header and starting with the sync
// word; and its only errors are ErrADTS (the input is in memory: there is no read error).
func FuzzReader(f *testing.F) {
	f.Add(adtsFrame([]byte("x"), false))
	f.Add(append(adtsFrame(nil, true), adtsFrame([]byte{1, 2}, false)...))
	f.Add([]byte{0xFF, 0xF1, 0x50, 0x80, 0, 0x1F, 0xFC})
	if b, err := os.ReadFile("testdata/audio.aac"); err == nil {
		f.Add(b[:min(len(b), 1000)])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a := NewReader(bytes.NewReader(b))
		at := 0
		for {
			frame, err := a.Next()
			if err == io.EOF {
				if at != len(b) {
					t.Fatalf("io.EOF at %d of %d bytes", at, len(b))
				}
				return
			}
			if err != nil {
				if !errors.Is(err, ErrADTS) {
					t.Fatalf("error %v, want ErrADTS", err)
				}
				return
			}
			if len(frame) < HeaderLen(frame) || frame[0] != 0xFF || frame[1]&0xF6 != 0xF0 {
				t.Fatalf("frame at %d: % x", at, frame[:min(len(frame), 9)])
			}
			if !bytes.Equal(frame, b[at:at+len(frame)]) {
				t.Fatalf("frame at %d is not the input's bytes there", at)
			}
			at += len(frame)
		}
	})
}
