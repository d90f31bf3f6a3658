package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"vidgen/internal/media"
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
			job := Job{ImageType: media.JPEG, AudioType: media.WAV, AudioDuration: c.seconds, Options: c.options,
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
