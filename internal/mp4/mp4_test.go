package mp4

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"testing"

	"vidgen/internal/aac"
	"vidgen/internal/h264"
)

// TestStillMovieUnchanged pins the bytes of the two files the service writes with this package,
// made of the clip step's x264 stream (../h264/testdata/clip.h264, 96x64) and ffmpeg's AAC
// encoder's (../aac/testdata/audio.aac, 2.5 s): the clip alone (its 10 frames) and the clip
// repeated for 25 frames under the sound. The hashes are those of the files the service wrote
// before the muxer became this package; the service's TestWriteStillVideo checks such files
// against what ffmpeg's muxer makes of the same streams. A change here that is meant must pass
// that test, then update the hashes.
func TestStillMovieUnchanged(t *testing.T) {
	t.Parallel()
	clip, err := h264.NewStillClip(readTestdata(t, "../h264/testdata/clip.h264"), 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	sound, err := AACTrack(bytes.NewReader(readTestdata(t, "../aac/testdata/audio.aac")), 2.5)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		tracks []*Track
		size   int
		sha256 string
	}{
		{"clip", []*Track{StillTrack(clip, 10)}, 3600, "d19dcdf425c47f7aeb8b04a16b1530f99bc1e1e625a6e6f5ecb784a362ec031b"},
		{"video", []*Track{StillTrack(clip, 25), sound}, 18075, "a74546af7fdbe99961406274a5e2c97b1f985077ec8bce5510b1edc766daa026"},
	} {
		var b bytes.Buffer
		if err := WriteMovie(&b, c.tracks...); err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b.Bytes()); b.Len() != c.size || hex.EncodeToString(sum[:]) != c.sha256 {
			t.Errorf("%s: %d bytes, sha256 %x; want %d bytes, %s", c.name, b.Len(), sum, c.size, c.sha256)
		}
	}
}

// TestWriteMovieOver4GiB checks the layout of a file whose samples end past 4 GiB, too large to
// write in a test: its index must use 64-bit chunk offsets (co64) and a 64-bit mdat size, and
// each offset must be where the writer put that chunk's sample. Picture and sound alternate, a
// chunk each.
func TestWriteMovieOver4GiB(t *testing.T) {
	t.Parallel()
	const frames = 520 // of 8 MiB: 4.06 GiB
	var w countingWriter
	written := make([][]uint64, 2) // where each track's samples began
	track := func(k int, handler string, size uint32) *Track {
		blank := make([]byte, size)
		tr := &Track{Handler: handler, Timescale: 1000, Delta: 100, Sizes: make([]uint32, frames), Entry: box("test")}
		for i := range tr.Sizes {
			tr.Sizes[i] = size
		}
		tr.Write = func(bw io.Writer) error {
			written[k] = append(written[k], w.n+uint64(bw.(*bufio.Writer).Buffered()))
			_, err := bw.Write(blank)
			return err
		}
		return tr
	}
	if err := WriteMovie(&w, track(0, "vide", 8<<20), track(1, "soun", 100)); err != nil {
		t.Fatal(err)
	}
	if w.n < 1<<32 {
		t.Fatalf("wrote %d bytes, want over 4 GiB", w.n)
	}
	head := w.head.Bytes()
	mdat := bytes.Index(head, []byte("mdat"))
	if mdat < 0 || bytes.Contains(head, []byte("stco")) {
		t.Fatalf("mdat at %d, stco found: %v; want an mdat and no stco", mdat, bytes.Contains(head, []byte("stco")))
	}
	if size := binary.BigEndian.Uint32(head[mdat-4:]); size != 1 {
		t.Fatalf("mdat's 32-bit size is %d, want 1 (a 64-bit size follows)", size)
	}
	if size := binary.BigEndian.Uint64(head[mdat+4:]); uint64(mdat-4)+size != w.n {
		t.Errorf("mdat ends at %d, the file at %d", uint64(mdat-4)+size, w.n)
	}
	rest := head
	for k := range 2 {
		at := bytes.Index(rest, []byte("co64"))
		if at < 0 {
			t.Fatalf("track %d has no co64", k)
		}
		rest = rest[at+8:]
		n := int(binary.BigEndian.Uint32(rest))
		if n != frames {
			t.Fatalf("track %d has %d chunks, want %d", k, n, frames)
		}
		for i := range n {
			if off := binary.BigEndian.Uint64(rest[4+8*i:]); off != written[k][i] {
				t.Fatalf("track %d, chunk %d: offset %d, its sample was written at %d", k, i, off, written[k][i])
			}
		}
	}
}

// countingWriter counts what is written to it and keeps the first 64 KB.
type countingWriter struct {
	n    uint64
	head bytes.Buffer
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if keep := 64<<10 - c.head.Len(); keep > 0 {
		c.head.Write(p[:min(keep, len(p))])
	}
	c.n += uint64(len(p))
	return len(p), nil
}

// TestAACTrackRefuses checks that an encoder output the video cannot be written from is an error
// (aac.ErrADTS), not a video with broken sound: no frames, not ADTS, a cut last frame, a change of
// format mid-stream, a sampling rate or channel configuration an MP4 cannot describe.
func TestAACTrackRefuses(t *testing.T) {
	t.Parallel()
	m := readTestdata(t, "../aac/testdata/audio.aac") // ffmpeg's encoder, 44.1 kHz mono
	if _, err := AACTrack(bytes.NewReader(m), 2.5); err != nil {
		t.Fatalf("a whole stream: %v", err)
	}
	at48k := func(h []byte) { h[2] = h[2]&^0x3C | 3<<2 }
	for name, b := range map[string][]byte{
		"empty":             nil,
		"not ADTS":          []byte("RIFF....WAVEfmt "),
		"cut last frame":    m[:len(m)-10],
		"format mid-stream": append(bytes.Clone(m), editHeaders(t, m, at48k)...),
		"rate index 13":     editHeaders(t, m, func(h []byte) { h[2] = h[2]&^0x3C | 13<<2 }),
		"no channels":       editHeaders(t, m, func(h []byte) { h[2] &^= 1; h[3] &^= 0xC0 }),
	} {
		if _, err := AACTrack(bytes.NewReader(b), 2.5); !errors.Is(err, aac.ErrADTS) {
			t.Errorf("%s: error %v, want aac.ErrADTS", name, err)
		}
	}
	if _, err := AACTrack(bytes.NewReader(editHeaders(t, m, at48k)), 2.5); err != nil {
		t.Errorf("the stream at 48 kHz throughout: %v", err)
	}
}

// editHeaders is a copy of the ADTS stream b with edit applied to each frame's header.
func editHeaders(t testing.TB, b []byte, edit func(header []byte)) []byte {
	t.Helper()
	out := bytes.Clone(b)
	a := aac.NewReader(bytes.NewReader(b))
	for at := 0; ; {
		frame, err := a.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		edit(out[at : at+aac.HeaderLen(frame)])
		at += len(frame)
	}
}

// readTestdata is the file at path, a test fixture.
func readTestdata(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMediaHeaderPast32Bits checks that a track longer than 2³² units of its time scale (a day of
// 48 kHz sound) gets a version 1 mdhd, whose 64-bit duration holds it, and a shorter one version 0.
func TestMediaHeaderPast32Bits(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		delta   uint32
		version byte
	}{{1 << 31, 1}, {1 << 30, 0}} {
		tr := &Track{Handler: "soun", Timescale: 48000, Delta: c.delta, Sizes: []uint32{1, 1, 1}}
		b := trackBox(1, tr, nil)
		at := bytes.Index(b, []byte("mdhd")) + 4
		if at < 4 || b[at] != c.version {
			t.Fatalf("delta %d: mdhd version %d, want %d", c.delta, b[at], c.version)
		}
		var got uint64
		if c.version == 1 {
			got = binary.BigEndian.Uint64(b[at+24:])
		} else {
			got = uint64(binary.BigEndian.Uint32(b[at+16:]))
		}
		if want := 3 * uint64(c.delta); got != want {
			t.Errorf("delta %d: mdhd duration %d, want %d", c.delta, got, want)
		}
	}
}
