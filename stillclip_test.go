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

	"vidgen/internal/h264"
	"vidgen/internal/media"
	"vidgen/internal/mediatest"
)

// TestWriteClip checks that the clip the clip step makes (x264's keyframe from clipArgs, the
// frames after it from newStillClip) decodes without an error to frames frames, each the keyframe
// exactly, with the picture's size and the job's frame rate, written by writeClipFile as ffmpeg
// repeats it. It covers the clip step's own settings (CABAC, weighted prediction, a picture cropped
// from whole macroblocks; High 4.0 with a VBV at a platform size). The other streams h264 accepts
// are internal/h264's tests.
func TestWriteClip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	photo := filepath.Join(dir, "photo.jpg")
	// 642x362 is no whole number of macroblocks either way: the SPS crops it.
	ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=642x362:r=1", "-vf", "noise=alls=30:allf=u", "-frames:v", "1", "-q:v", "2", photo)
	for _, c := range []struct {
		name          string
		args          []string // the clip step's ffmpeg arguments, the stream to "file:"
		frames, fps   int      // of the clip; the platform size's is cut to 1 s, as it decodes slowly
		width, height int
	}{
		{"clip step", clipArgs(Job{ImageType: media.JPEG}, photo, "", filepath.Join(dir, "p1.jpg")), 100, 10, 642, 362},
		{"clip step, platform size", clipArgs(Job{ImageType: media.JPEG, Options: Options{Size: "portrait"}}, photo, "", filepath.Join(dir, "p2.jpg")), 30, 30, 1080, 1920},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sub := t.TempDir()
			stream, clip := filepath.Join(sub, "clip.h264"), filepath.Join(sub, "clip.mp4")
			args := c.args
			i := slices.Index(args, "file:") // the clip step's stream goes to stream
			ffmpegMake(t, append(append(append([]string{}, args[:i]...), "file:"+stream), args[i+1:]...)...)
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

			keyframe := mediatest.FrameHashes(t, nil, "-f", "h264", "-i", stream, "-frames:v", "1")
			hashes := mediatest.FrameHashes(t, nil, "-err_detect", "explode", "-i", clip)
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

// TestClipKeyframeUnchanged checks what the clip step's x264 frame count rests on: x264's keyframe
// from the clipLookahead+1 frames clipArgs asks for is byte for byte the keyframe of a clip x264
// encodes whole, so writing the other frames in vidgen costs no quality.
func TestClipKeyframeUnchanged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	photo := filepath.Join(dir, "photo.jpg")
	ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=480x270:r=1", "-vf", "noise=alls=30:allf=u", "-frames:v", "1", "-q:v", "2", photo)
	job := Job{ImageType: media.JPEG}
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
		for _, nal := range h264.SplitAnnexB(b) {
			if len(nal) > 0 && nal[0]&0x1f == h264.NALIDR {
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
