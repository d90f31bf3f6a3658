package h264

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// pictures encodes n different pictures (frames of ffmpeg's moving test picture) with libx264 at
// size, a keyframe at each index of keys and nowhere else, with the extra options, and returns its
// Annex B stream.
func pictures(t testing.TB, size string, n int, keys []int, extra ...string) []byte {
	t.Helper()
	times := make([]string, len(keys))
	for i, k := range keys {
		times[i] = fmt.Sprintf("%.6f", float64(k)/10)
	}
	return x264Frames(t, size, n, append([]string{"-preset", "veryfast", "-bf", "0", "-x264-params", "ref=1:scenecut=0:keyint=infinite",
		"-force_key_frames", strings.Join(times, ","), "-forced-idr", "1"}, extra...)...)
}

// TestSplice checks that the clip Splice makes from x264's pictures decodes without an error
// (ffmpeg stops at the first, and checks frame numbers and reference lists) to each picture shown
// for its run of frames, exactly as the encoder's own stream decodes it; keyframes where the
// stream has IDR pictures, runs of one frame (two IDR pictures in a row), runs longer than the
// frame number's range (it wraps), CABAC and CAVLC. ffprobe sees each frame: a keyframe at each
// IDR picture, a P-frame elsewhere.
func TestSplice(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		keys []int
		runs []int
		args []string
	}{
		{"CABAC, keyframes", []int{0, 3}, []int{5, 1, 40, 7, 1, 30}, []string{"-tune", "stillimage"}},
		{"CAVLC, IDR pictures in a row", []int{0, 1, 2, 4}, []int{1, 1, 3, 2, 70}, []string{"-preset", "ultrafast"}},
		{"one picture", []int{0}, []int{50}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			stream := pictures(t, "96x64", len(c.runs), c.keys, c.args...)
			clip, err := Splice(stream, c.runs, 10)
			if err != nil {
				t.Fatal(err)
			}
			want := decodedFrames(t, stream)
			if len(want) != len(c.runs) {
				t.Fatalf("the encoder's stream has %d pictures, want %d", len(want), len(c.runs))
			}
			got := decodedFrames(t, clip.AnnexB())
			var keys []int
			at := 0
			for i, run := range c.runs {
				if at+run > len(got) {
					t.Fatalf("%d frames decoded, want %d", len(got), at+run)
				}
				for k := at; k < at+run; k++ {
					if got[k] != want[i] {
						t.Fatalf("frame %d is not picture %d", k, i)
					}
				}
				for _, k := range c.keys {
					if k == i {
						keys = append(keys, at)
					}
				}
				at += run
			}
			if len(got) != at || len(clip.Frames) != at {
				t.Fatalf("%d frames decoded, %d in the clip; want %d", len(got), len(clip.Frames), at)
			}
			if fmt.Sprint(clip.Keyframes) != fmt.Sprint(keys) {
				t.Errorf("keyframes %v, want %v", clip.Keyframes, keys)
			}
			if probed := probedKeyframes(t, clip.AnnexB()); fmt.Sprint(probed) != fmt.Sprint(keys) {
				t.Errorf("ffprobe's keyframes %v, want %v", probed, keys)
			}
		})
	}
}

// probedKeyframes are the frames of the Annex B stream that ffprobe reports as keyframes.
func probedKeyframes(t testing.TB, stream []byte) []int {
	t.Helper()
	cmd := exec.Command("ffprobe", "-v", "error", "-f", "h264", "-i", "pipe:", "-show_frames", "-show_entries",
		"frame=key_frame,pict_type", "-of", "csv=p=0")
	cmd.Stdin = bytes.NewReader(stream)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var keys []int
	i := 0
	for line := range strings.Lines(string(out)) {
		if !strings.HasPrefix(line, "0,") && !strings.HasPrefix(line, "1,") {
			continue // x264's SEI, reported after the first frame
		}
		switch line[:3] {
		case "1,I":
			keys = append(keys, i)
		case "0,P":
		default:
			t.Fatalf("frame %d: %q, want a keyframe (I) or a P-frame", i, line)
		}
		i++
	}
	return keys
}

// TestSpliceRefuses checks that a stream Splice cannot splice is an error wrapping ErrUnsupported:
// more pictures than runs or fewer, a run of no frames, B-frames, several reference frames (a P
// picture could refer past its skipped copies), a first picture that is no keyframe, a parameter
// set that changes.
func TestSpliceRefuses(t *testing.T) {
	t.Parallel()
	three := pictures(t, "64x64", 3, []int{0})
	if _, err := Splice(three, []int{1, 2, 3}, 10); err != nil {
		t.Fatalf("the stream the others are made from: %v", err)
	}
	nals := SplitAnnexB(three)
	var sps, pps []byte
	var slices [][]byte
	for _, n := range nals {
		switch n[0] & 0x1f {
		case NALSPS:
			sps = n
		case NALPPS:
			pps = n
		case NALSlice, NALIDR:
			slices = append(slices, n)
		}
	}
	otherSPS := bytes.Clone(sps)
	otherSPS[len(otherSPS)-1] ^= 0x10
	for name, c := range map[string]struct {
		b    []byte
		runs []int
	}{
		"more pictures than runs":  {three, []int{1, 2}},
		"fewer pictures than runs": {three, []int{1, 2, 3, 4}},
		"a run of no frames":       {three, []int{1, 0, 3}},
		"B-frames":                 {x264(t, "64x64", "-preset", "veryfast", "-bf", "2", "-x264-params", "ref=1"), []int{1, 1, 1}},
		"several reference frames": {x264(t, "64x64", "-preset", "veryfast", "-bf", "0", "-x264-params", "ref=3"), []int{1, 1, 1}},
		"no keyframe first":        {stream(sps, pps, slices[1], slices[2]), []int{1, 1}},
		"a parameter set changes":  {stream(sps, pps, slices[0], otherSPS, slices[1], slices[2]), []int{1, 1, 1}},
	} {
		if _, err := Splice(c.b, c.runs, 10); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}

// FuzzSplice feeds arbitrary streams and runs to Splice: it never panics nor runs away, refuses
// with ErrUnsupported only, and a clip it makes has one frame a run's frame, each its NAL units
// after their lengths, the first a keyframe.
func FuzzSplice(f *testing.F) {
	clip, err := os.ReadFile("testdata/clip.h264")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(clip, []byte{1, 3, 2})
	f.Add(clip[:len(clip)/2], []byte{4})
	f.Fuzz(func(t *testing.T, stream []byte, runBytes []byte) {
		runBytes = runBytes[:min(len(runBytes), 16)] // a frame of the largest size takes ~1 ms to write
		runs := make([]int, len(runBytes))
		total := 0
		for i, b := range runBytes {
			runs[i] = int(b % 8)
			total += runs[i]
		}
		c, err := Splice(stream, runs, 10)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v, want ErrUnsupported", err)
			}
			return
		}
		if len(c.Frames) != total || len(c.Keyframes) == 0 || c.Keyframes[0] != 0 {
			t.Fatalf("%d frames for runs %v, keyframes %v", len(c.Frames), runs, c.Keyframes)
		}
		for i, fr := range c.Frames {
			for len(fr) > 0 {
				if len(fr) < 5 || binary.BigEndian.Uint32(fr) > uint32(len(fr)-4) || binary.BigEndian.Uint32(fr) == 0 {
					t.Fatalf("frame %d: not NAL units after their lengths", i)
				}
				fr = fr[4+binary.BigEndian.Uint32(fr):]
			}
		}
	})
}
