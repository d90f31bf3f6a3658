package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestWriteClip checks that the clip newStillClip makes from x264's keyframe decodes without an error
// to frames frames, each the keyframe exactly, with the picture's size and the job's frame rate.
// It covers the clip step's own settings (CABAC, weighted prediction, a picture cropped from whole
// macroblocks; High 4.0 with a VBV at a platform size) and the other x264 streams newStillClip
// accepts: CAVLC and picture order count type 0. writeClipFile writes it as ffmpeg repeats it.
func TestWriteClip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	photo := filepath.Join(dir, "photo.jpg")
	// 642x362 is no whole number of macroblocks either way: the SPS crops it.
	ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=642x362:r=1", "-vf", "noise=alls=30:allf=u", "-frames:v", "1", "-q:v", "2", photo)
	x264 := func(extra ...string) []string {
		return append([]string{"-f", "lavfi", "-i", "testsrc2=s=200x120:r=10", "-frames:v", "11", "-c:v", "libx264"}, extra...)
	}
	for _, c := range []struct {
		name          string
		args          []string // ffmpeg's arguments up to the output, the stream
		frames, fps   int      // of the clip; the platform size's is cut to 1 s, as it decodes slowly
		width, height int
	}{
		{"clip step", clipArgs(Job{ImageType: typeJPEG}, photo, "", filepath.Join(dir, "p1.jpg")), 100, 10, 642, 362},
		{"clip step, platform size", clipArgs(Job{ImageType: typeJPEG, Options: Options{Size: "portrait"}}, photo, "", filepath.Join(dir, "p2.jpg")), 30, 30, 1080, 1920},
		{"CAVLC", x264("-preset", "ultrafast", "-bf", "0"), 25, 10, 200, 120},
		{"picture order count type 0", x264("-preset", "veryfast", "-bf", "2"), 25, 10, 200, 120},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sub := t.TempDir()
			stream, clip := filepath.Join(sub, "clip.h264"), filepath.Join(sub, "clip.mp4")
			args := c.args
			if i := slices.Index(args, "file:"); i >= 0 { // the clip step: its stream goes to stream
				args = append(append(append([]string{}, args[:i]...), "file:"+stream), args[i+1:]...)
			} else {
				args = append(append([]string{}, args...), "-f", "h264", stream)
			}
			ffmpegMake(t, args...)
			b, err := os.ReadFile(stream)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := newStillClip(b, c.frames, c.fps)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeClipFile(clip, sc); err != nil {
				t.Fatal(err)
			}

			keyframe := frameHashes(t, "-f", "h264", "-i", stream, "-frames:v", "1")
			hashes := frameHashes(t, "-err_detect", "explode", "-i", clip)
			if len(hashes) != c.frames {
				t.Fatalf("%d frames decoded, want %d", len(hashes), c.frames)
			}
			for i, h := range hashes {
				if h != keyframe[0] {
					t.Fatalf("frame %d is not the keyframe", i)
				}
			}
			out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
				"stream=width,height,r_frame_rate,nb_frames,duration", "-of", "csv=p=0", clip).Output()
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Join([]string{strconv.Itoa(c.width), strconv.Itoa(c.height), strconv.Itoa(c.fps) + "/1",
				strconv.FormatFloat(float64(c.frames)/float64(c.fps), 'f', 6, 64), strconv.Itoa(c.frames)}, ",")
			if got := strings.TrimSpace(string(out)); got != want {
				t.Errorf("clip is %s, want %s (width,height,rate,duration,frames)", got, want)
			}
			// Each repeating frame costs a few dozen bytes, whatever the picture.
			fi, err := os.Stat(clip)
			if err != nil {
				t.Fatal(err)
			}
			if extra := fi.Size() - int64(len(b)); extra > int64(c.frames)*100 {
				t.Errorf("clip is %d bytes, x264's stream %d", fi.Size(), len(b))
			}
		})
	}
}

// frameHashes decodes the video ffmpeg's input args name (with -xerror, so any decoding error
// fails the test) and returns each frame's MD5.
func frameHashes(t testing.TB, input ...string) []string {
	t.Helper()
	args := append([]string{"-v", "error", "-xerror"}, input...)
	cmd := exec.Command("ffmpeg", append(args, "-map", "0:v:0", "-f", "framemd5", "-")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("decode: %v\n%s", err, stderr.Bytes())
	}
	var hashes []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(line, "#") {
			hashes = append(hashes, f[len(f)-1])
		}
	}
	return hashes
}

// TestRBSP checks the Exp-Golomb fields and emulation prevention that the skipped frames are
// written with against their reader, across the values the frames use and past them.
func TestRBSP(t *testing.T) {
	t.Parallel()
	var w rbspWriter
	values := []int{0, 1, -1, 2, 25, -26, 255, 8160, 1 << 20}
	for _, v := range values {
		w.ue(uint(max(v, -v)))
		w.se(v)
		w.u(uint(max(v, -v))&0x1f, 5)
	}
	r := rbspReader{b: unescapeRBSP(escapeRBSP(w.b))}
	for _, v := range values {
		if got := r.ue(); got != uint(max(v, -v)) {
			t.Errorf("ue %d read as %d", max(v, -v), got)
		}
		if got := r.se(); got != v {
			t.Errorf("se %d read as %d", v, got)
		}
		if got := r.u(5); got != uint(max(v, -v))&0x1f {
			t.Errorf("u(5) %d read as %d", max(v, -v)&0x1f, got)
		}
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.u(64)
	if r.err == nil {
		t.Error("reading past the end set no error")
	}
	for _, b := range [][]byte{{0, 0, 0}, {0, 0, 1}, {0, 0, 2, 0, 0, 3}, {1, 0, 0, 0, 0, 0}} {
		e := escapeRBSP(b)
		if bytes.Contains(e, []byte{0, 0, 0}) || bytes.Contains(e, []byte{0, 0, 1}) || bytes.Contains(e, []byte{0, 0, 2}) {
			t.Errorf("%x escaped to %x: a start code can be read in it", b, e)
		}
		if got := unescapeRBSP(e); !bytes.Equal(got, b) {
			t.Errorf("%x escaped and unescaped to %x", b, got)
		}
	}
}

// TestWriteClipRefuses checks that a stream newStillClip cannot extend is an error, not a clip.
func TestWriteClipRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	interlaced := filepath.Join(dir, "i.h264")
	ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=64x64:r=10", "-frames:v", "2", "-c:v", "libx264", "-flags", "+ildct+ilme", "-f", "h264", interlaced)
	b, err := os.ReadFile(interlaced)
	if err != nil {
		t.Fatal(err)
	}
	for name, stream := range map[string][]byte{"interlaced": b, "empty": nil, "cut in its SPS": b[:8]} {
		if _, err := newStillClip(stream, 10, 10); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestClipKeyframeUnchanged checks what the clip step's x264 frame count rests on: x264's keyframe
// from the clipLookahead+1 frames clipArgs asks for is byte for byte the keyframe of a clip x264
// encodes whole, so writing the other frames in vidgen costs no quality.
func TestClipKeyframeUnchanged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	photo := filepath.Join(dir, "photo.jpg")
	ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=480x270:r=1", "-vf", "noise=alls=30:allf=u", "-frames:v", "1", "-q:v", "2", photo)
	job := Job{ImageType: typeJPEG}
	keyframe := func(frames int) []byte {
		t.Helper()
		stream := filepath.Join(dir, strconv.Itoa(frames)+".h264")
		args := clipArgs(job, photo, stream, filepath.Join(dir, "poster.jpg"))
		for i, a := range args {
			if strings.Contains(a, "loop=loop=") {
				args[i] = strings.Replace(a, "loop=loop="+strconv.Itoa(clipLookahead), "loop=loop="+strconv.Itoa(frames-1), 1)
			}
			if a == "-frames:v" && args[i+1] == strconv.Itoa(clipLookahead+1) {
				args[i+1] = strconv.Itoa(frames)
			}
		}
		ffmpegMake(t, args...)
		b, err := os.ReadFile(stream)
		if err != nil {
			t.Fatal(err)
		}
		for _, nal := range splitAnnexB(b) {
			if len(nal) > 0 && nal[0]&0x1f == nalIDR {
				return nal
			}
		}
		t.Fatalf("no keyframe in the %d-frame encode", frames)
		return nil
	}
	short, whole := keyframe(clipLookahead+1), keyframe(clipFrameCount(job))
	if !bytes.Equal(short, whole) {
		t.Errorf("the keyframe of %d frames (%d bytes) differs from a whole clip's (%d bytes)", clipLookahead+1, len(short), len(whole))
	}
	if fewer := keyframe(2); bytes.Equal(fewer, whole) {
		t.Error("a 2-frame encode gives the same keyframe too: the test cannot tell a lookahead change")
	}
}
