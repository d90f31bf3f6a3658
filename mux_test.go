package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"vidgen/internal/aac"
)

// TestWriteStillVideo checks the video vidgen writes itself against the one ffmpeg's muxer made
// from the same clip and encoder output, the way renders did before: every packet (stream, times,
// duration, size, flags, bytes) and every stream property ffprobe reports must be the same, the
// last audio frame's duration included, and the index must come before the data; writing to a full
// disk must fail with ENOSPC, which the render turns into a requeue. The cases cover
// mono and stereo, 44.1 and 48 kHz, 10 and 30 frames a second, and sound shorter than a frame.
func TestWriteStillVideo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	photo := filepath.Join(dir, "photo.jpg")
	ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=320x240:r=1", "-frames:v", "1", "-q:v", "2", photo)
	for _, c := range []struct {
		name     string
		seconds  float64
		channels int
		rate     int
		options  Options
	}{
		{"mono 44.1 kHz", 7.3, 1, 44100, Options{}},
		{"stereo 48 kHz, platform size", 3.21, 2, 48000, Options{Size: "square"}},
		{"shorter than a frame", 0.04, 1, 44100, Options{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sub := t.TempDir()
			path := func(name string) string { return filepath.Join(sub, name) }
			ffmpegMake(t, "-f", "lavfi", "-i", fmt.Sprintf("anoisesrc=c=pink:r=%d:a=0.3:d=%g", c.rate, c.seconds),
				"-ac", fmt.Sprint(c.channels), "-c:a", "pcm_s16le", path("sound.wav"))
			job := Job{ImageType: typeJPEG, AudioType: typeWAV, AudioDuration: c.seconds, Options: c.options,
				AudioCodec: fmt.Sprintf("pcm_s16le//%d/%d", c.channels, c.rate)}

			ffmpegMake(t, clipArgs(job, photo, path("clip.h264"), path("poster.jpg"))...)
			stream, err := os.ReadFile(path("clip.h264"))
			if err != nil {
				t.Fatal(err)
			}
			clip, err := newStillClip(stream, clipFrameCount(job), job.Options.fps())
			if err != nil {
				t.Fatal(err)
			}
			ffmpegMake(t, audioEncodeArgs(job, path("sound.wav"), path("audio.aac"))...)
			if err := writeStillVideo(path("video.mp4"), clip, path("audio.aac"), c.seconds); err != nil {
				t.Fatal(err)
			}

			// ffmpeg's way: the audio encoded into MP4 (which records the last frame's length), the
			// clip repeated by -stream_loop, both copied.
			encode := append([]string{"-i", path("sound.wav"), "-map", "0:a:0"}, audioArgs(job.AudioCodec, job.Options)...)
			ffmpegMake(t, append(encode, "-f", "mp4", path("audio.m4a"))...)
			if err := writeClipFile(path("clip.mp4"), clip); err != nil {
				t.Fatal(err)
			}
			ffmpegMake(t, "-stream_loop", "-1", "-t", clipLength(c.seconds, job.Options.fps()), "-i", path("clip.mp4"),
				"-i", path("audio.m4a"), "-map", "0:v:0", "-map", "1:a:0", "-c", "copy",
				"-map_metadata", "-1", "-movflags", "+faststart", path("ffmpeg.mp4"))

			got, want := describeMedia(t, path("video.mp4")), describeMedia(t, path("ffmpeg.mp4"))
			if len(got) != len(want) {
				t.Fatalf("%d lines of ffprobe output, ffmpeg's video %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("ffprobe says %q, of ffmpeg's video %q", got[i], want[i])
				}
			}
			if top := topBoxes(t, readFile(t, path("video.mp4"))); !slices.Equal(top, []string{"ftyp", "moov", "mdat"}) {
				t.Errorf("top-level boxes %v, want ftyp moov mdat", top)
			}
			// A full disk must reach the render as ENOSPC, which requeues the job without a retry.
			if err := writeStillVideo("/dev/full", clip, path("audio.aac"), c.seconds); !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("writing to a full disk: %v, want ENOSPC", err)
			}
		})
	}
}

// describeMedia is what ffprobe reports of the file at path that two muxers of the same streams
// must agree on: each stream's properties but its codec's private data (an AAC encoder gives
// ffmpeg's MP4 muxer a longer configuration than an ADTS header holds), the duration, and every
// packet with a hash of its bytes.
func describeMedia(t testing.TB, path string) []string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_data_hash", "md5", "-show_entries",
		"stream=index,codec_name,profile,width,height,sample_aspect_ratio,pix_fmt,level,color_range,color_space,"+
			"color_transfer,color_primaries,r_frame_rate,time_base,start_pts,duration_ts,bit_rate,nb_frames,"+
			"sample_rate,channels:format=duration:packet=stream_index,pts,dts,duration,size,flags,data_hash",
		"-of", "compact", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// topBoxes is the types of the top-level boxes of the MP4 file b.
func topBoxes(t testing.TB, b []byte) []string {
	t.Helper()
	var types []string
	for off := uint64(0); off+8 <= uint64(len(b)); {
		size := uint64(binary.BigEndian.Uint32(b[off:]))
		if size == 1 {
			size = binary.BigEndian.Uint64(b[off+8:])
		}
		if size < 8 {
			t.Fatalf("box at %d has size %d", off, size)
		}
		types = append(types, string(b[off+4:off+8]))
		off += size
	}
	return types
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
	track := func(k int, handler string, size uint32) *mp4Track {
		blank := make([]byte, size)
		tr := &mp4Track{handler: handler, timescale: 1000, delta: 100, sizes: make([]uint32, frames), entry: mp4Box("test")}
		for i := range tr.sizes {
			tr.sizes[i] = size
		}
		tr.write = func(bw io.Writer) error {
			written[k] = append(written[k], w.n+uint64(bw.(*bufio.Writer).Buffered()))
			_, err := bw.Write(blank)
			return err
		}
		return tr
	}
	if err := writeMovie(&w, track(0, "vide", 8<<20), track(1, "soun", 100)); err != nil {
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
// format mid-stream.
func TestAACTrackRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mono, stereo := filepath.Join(dir, "mono.aac"), filepath.Join(dir, "stereo.aac")
	ffmpegMake(t, "-f", "lavfi", "-i", "sine=d=0.5:r=44100", "-c:a", "aac", "-f", "adts", mono)
	ffmpegMake(t, "-f", "lavfi", "-i", "sine=d=0.5:r=48000", "-ac", "2", "-c:a", "aac", "-f", "adts", stereo)
	m, s := readFile(t, mono), readFile(t, stereo)
	if _, err := aacTrack(bytes.NewReader(m), 0.5); err != nil {
		t.Fatalf("a whole stream: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":             nil,
		"not ADTS":          []byte("RIFF....WAVEfmt "),
		"cut last frame":    m[:len(m)-10],
		"format mid-stream": append(append([]byte{}, m...), s...),
	} {
		if _, err := aacTrack(bytes.NewReader(b), 0.5); !errors.Is(err, aac.ErrADTS) {
			t.Errorf("%s: error %v, want aac.ErrADTS", name, err)
		}
	}
}

// TestMediaHeaderPast32Bits checks that a track longer than 2³² units of its time scale (a day of
// 48 kHz sound) gets a version 1 mdhd, whose 64-bit duration holds it, and a shorter one version 0.
func TestMediaHeaderPast32Bits(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		delta   uint32
		version byte
	}{{1 << 31, 1}, {1 << 30, 0}} {
		tr := &mp4Track{handler: "soun", timescale: 48000, delta: c.delta, sizes: []uint32{1, 1, 1}}
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

// TestWriteFailed checks how a full disk while vidgen writes a render's file ends the attempt:
// under -min-free the job waits for room (errDiskFilling, no retry counted); without a floor it is
// an ordinary failure, so a disk that stays full cannot requeue it forever.
func TestWriteFailed(t *testing.T) {
	t.Parallel()
	full := fmt.Errorf("mux: %w", &os.PathError{Op: "write", Path: "video.mp4", Err: syscall.ENOSPC})
	other := errors.New("mux: audio: not an ADTS stream")
	for _, c := range []struct {
		minFree int64
		err     error
		want    error
	}{
		{1 << 30, full, errDiskFilling},
		{0, full, full},
		{1 << 30, other, other},
		{1 << 30, nil, nil},
	} {
		rd := &renderer{minFree: c.minFree}
		if got := rd.writeFailed(c.err); got != c.want {
			t.Errorf("minFree %d, %v: got %v, want %v", c.minFree, c.err, got, c.want)
		}
	}
}
