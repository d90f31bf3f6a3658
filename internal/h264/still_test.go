package h264

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"vidgen/internal/mediatest"
)

// x264 encodes three frames of ffmpeg's test picture at size (WxH) with libx264 and the extra
// options, and returns its Annex B stream.
func x264(t testing.TB, size string, extra ...string) []byte {
	t.Helper()
	return x264Frames(t, size, 3, extra...)
}

// x264Frames is x264 of n frames, each a different picture (ffmpeg's test picture moves).
func x264Frames(t testing.TB, size string, n int, extra ...string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "stream.h264")
	args := append([]string{"-v", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc2=s=" + size + ":r=10",
		"-frames:v", strconv.Itoa(n), "-c:v", "libx264"}, extra...)
	if b, err := exec.Command("ffmpeg", append(args, "-f", "h264", out)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodedFrames decodes the Annex B stream with ffmpeg, which stops at the first error it finds
// (-err_detect explode), and returns each frame's MD5; output are ffmpeg's output options.
func decodedFrames(t testing.TB, stream []byte, output ...string) []string {
	t.Helper()
	return mediatest.FrameHashes(t, stream, append([]string{"-err_detect", "explode", "-f", "h264", "-i", "pipe:"}, output...)...)
}

// TestStillClip checks that the clip NewStillClip makes from x264's stream decodes without an
// error to the frames asked for, each exactly the keyframe, across the streams x264 writes:
// CABAC with weighted prediction on a picture cropped from whole macroblocks (the clip step's
// kind), CAVLC, picture order count type 0 (B-frames), 4:4:4, and 10-bit 4:2:2 (other crop
// units); and that its parameter set gives the picture's size and chroma format.
func TestStillClip(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name          string
		size          string
		args          []string
		width, height uint
		chroma        uint
	}{
		{"CABAC, weighted prediction, cropped", "642x362", []string{"-preset", "veryfast", "-tune", "stillimage", "-bf", "0"}, 642, 362, 1},
		{"CAVLC", "200x120", []string{"-preset", "ultrafast", "-bf", "0"}, 200, 120, 1},
		{"picture order count type 0", "200x120", []string{"-preset", "veryfast", "-bf", "2"}, 200, 120, 1},
		{"4:4:4", "100x70", []string{"-preset", "veryfast", "-pix_fmt", "yuv444p"}, 100, 70, 3},
		{"10-bit 4:2:2", "102x70", []string{"-preset", "veryfast", "-pix_fmt", "yuv422p10le"}, 102, 70, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			const frames = 25
			stream := x264(t, c.size, c.args...)
			clip, err := NewStillClip(stream, frames, 10)
			if err != nil {
				t.Fatal(err)
			}
			if s := clip.SPS; s.Width != c.width || s.Height != c.height || s.ChromaFormat != c.chroma {
				t.Errorf("SPS: %dx%d, chroma format %d; want %dx%d, %d", s.Width, s.Height, s.ChromaFormat, c.width, c.height, c.chroma)
			}
			keyframe := decodedFrames(t, stream, "-frames:v", "1")
			hashes := decodedFrames(t, clip.AnnexB())
			if len(hashes) != frames || len(clip.Frames) != frames {
				t.Fatalf("%d frames decoded of %d, want %d", len(hashes), len(clip.Frames), frames)
			}
			for i, h := range hashes {
				if h != keyframe[0] {
					t.Fatalf("frame %d is not the keyframe", i)
				}
			}
			// Each repeating frame costs a few dozen bytes, whatever the picture.
			if extra := clip.Size() - int64(len(clip.Frames[0])); extra > frames*100 {
				t.Errorf("the %d skipped frames take %d bytes", frames-1, extra)
			}
		})
	}
}

// TestParseSPS reads the parameter set of the clip step's stream for a 96x64 PNG (testdata/clip.h264,
// x264's output): a High profile, 4:2:0, 8 bits, samples of aspect 2:3 (an Extended_SAR, kept
// because it exercises that branch of the parser: the service made such streams before its picture
// step set square pixels) and a colour description of BT.709, limited range, which an MP4 sample
// entry repeats.
func TestParseSPS(t *testing.T) {
	t.Parallel()
	sps, err := ParseSPS(unescapeRBSP(testdataNALs(t)[NALSPS][1:]))
	if err != nil {
		t.Fatal(err)
	}
	got := *sps
	got.Colour, got.layout = nil, ""
	want := SPS{High: true, ChromaFormat: 1, BitDepthLuma: 8, BitDepthChroma: 8, Width: 96, Height: 64, SARWidth: 2, SARHeight: 3,
		chromaArrayType: 1, log2MaxFrameNum: got.log2MaxFrameNum, pocType: 2, maxNumRefFrames: 1, widthMbs: 6, picSizeInMbs: 6 * 4}
	if got != want {
		t.Errorf("SPS %+v, want %+v", got, want)
	}
	if c := sps.Colour; c == nil || *c != (Colour{Primaries: 1, Transfer: 1, Matrix: 1}) {
		t.Errorf("colour %+v, want BT.709 limited range", c)
	}
}

// testdataNALs are the NAL units of testdata/clip.h264 (x264's output of the clip step) by type.
func testdataNALs(t testing.TB) map[byte][]byte {
	t.Helper()
	b, err := os.ReadFile("testdata/clip.h264")
	if err != nil {
		t.Fatal(err)
	}
	nals := map[byte][]byte{}
	for _, nal := range SplitAnnexB(b) {
		nals[nal[0]&0x1f] = nal
	}
	return nals
}

// stream is the Annex B stream of nals.
func stream(nals ...[]byte) []byte {
	var b []byte
	for _, n := range nals {
		b = append(append(b, 0, 0, 0, 1), n...)
	}
	return b
}

// TestStillClipRefuses checks that a stream NewStillClip cannot extend is an error wrapping
// ErrUnsupported, not a clip: interlaced, empty, cut in its SPS, without a PPS, a picture order
// count of type 1, slice groups.
func TestStillClipRefuses(t *testing.T) {
	t.Parallel()
	interlaced := x264(t, "64x64", "-flags", "+ildct+ilme")
	nals := testdataNALs(t)
	sps, pps, idr := nals[NALSPS], nals[NALPPS], nals[NALIDR]
	// A baseline SPS of picture order count type 1, and a PPS of two slice groups.
	var w rbspWriter
	w.u(66, 8)
	w.u(0, 16)
	w.ue(0)
	w.ue(0)
	w.ue(1)
	w.u(1, 1)
	poc1 := append([]byte{0x67}, escapeRBSP(w.b)...)
	w = rbspWriter{}
	w.ue(0)
	w.ue(0)
	w.u(1, 1)
	w.u(0, 1)
	w.ue(1)
	w.u(1, 1)
	groups := append([]byte{0x68}, escapeRBSP(w.b)...)
	if _, err := NewStillClip(stream(sps, pps, idr), 2, 10); err != nil {
		t.Fatalf("the stream the others are made from: %v", err)
	}
	for name, b := range map[string][]byte{
		"interlaced":                 interlaced,
		"empty":                      nil,
		"cut in its SPS":             interlaced[:8],
		"no PPS":                     stream(sps, idr),
		"no keyframe":                stream(sps, pps),
		"picture order count type 1": stream(poc1, pps, idr),
		"slice groups":               stream(sps, groups, idr),
	} {
		if _, err := NewStillClip(b, 10, 10); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}

// baselineSPS is the NAL unit of a Baseline profile SPS with picture order count type 2 and one
// reference frame, of the fields s gives.
type baselineSPS struct {
	log2MaxFrameNum, bitsMinus8 uint // bitsMinus8: a High profile set then, with its bit depths
	widthMbs, heightMbs         uint
	crop                        [4]uint
}

func (s baselineSPS) nal() []byte {
	var w rbspWriter
	if s.bitsMinus8 > 0 {
		w.u(100, 8)
		w.u(0, 16)
		w.ue(0)
		w.ue(1)            // chroma_format_idc
		w.ue(s.bitsMinus8) // bit_depth_luma_minus8
		w.ue(s.bitsMinus8) // bit_depth_chroma_minus8
		w.u(0, 2)          // qpprime_y_zero_transform_bypass_flag, seq_scaling_matrix_present_flag
	} else {
		w.u(66, 8)
		w.u(0, 16)
		w.ue(0)
	}
	w.ue(s.log2MaxFrameNum - 4)
	w.ue(2)   // pic_order_cnt_type
	w.ue(1)   // max_num_ref_frames
	w.u(0, 1) // gaps_in_frame_num_value_allowed_flag
	w.ue(s.widthMbs - 1)
	w.ue(s.heightMbs - 1)
	w.u(1, 1) // frame_mbs_only_flag
	w.u(1, 1) // direct_8x8_inference_flag
	w.u(1, 1) // frame_cropping_flag
	for _, c := range s.crop {
		w.ue(c)
	}
	w.u(0, 1) // vui_parameters_present_flag
	w.u(1, 1) // rbsp_stop_one_bit
	return append([]byte{0x67}, escapeRBSP(w.b)...)
}

// TestSPSRanges checks that a sequence parameter set outside the standard's ranges is refused
// with ErrUnsupported rather than written frames for: a picture too large for any level (whose
// skipped frames would take as long to write as it has macroblocks), cropped to nothing, a
// frame number field wider than 16 bits (which a frame is written with), bit depths past 14.
// The sets just inside those ranges make clips.
func TestSPSRanges(t *testing.T) {
	t.Parallel()
	nals := testdataNALs(t)
	for _, c := range []struct {
		name string
		sps  baselineSPS
		ok   bool
	}{
		{"inside every range", baselineSPS{16, 6, maxSideMbs, 132, [4]uint{0, 8*maxSideMbs - 1, 8*132 - 1, 0}}, true},
		{"too many macroblocks", baselineSPS{4, 0, 1000, 1000, [4]uint{}}, false},
		{"too wide", baselineSPS{4, 0, maxSideMbs + 1, 1, [4]uint{}}, false},
		{"cropped to nothing across", baselineSPS{4, 0, 4, 4, [4]uint{16, 16, 0, 0}}, false},
		{"cropped to nothing down", baselineSPS{4, 0, 4, 4, [4]uint{0, 0, 32, 0}}, false},
		{"frame number of 17 bits", baselineSPS{17, 0, 4, 4, [4]uint{}}, false},
		{"15 bits a sample", baselineSPS{4, 7, 4, 4, [4]uint{}}, false},
	} {
		clip, err := NewStillClip(stream(c.sps.nal(), nals[NALPPS], nals[NALIDR]), 2, 10)
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !c.ok && err == nil:
			t.Errorf("%s: a clip of %dx%d, want ErrUnsupported", c.name, clip.SPS.Width, clip.SPS.Height)
		case !c.ok && !errors.Is(err, ErrUnsupported):
			t.Errorf("%s: %v, want ErrUnsupported", c.name, err)
		}
	}
}
