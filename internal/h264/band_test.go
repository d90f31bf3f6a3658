package h264

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// spliceInputs encodes, as the waveform render does, a waveform of a few seconds of sound (mode
// "line" or "cline") drawn over picture (a lavfi source) at size w×h: the picture's first frame
// as one I slice per macroblock row, and the band (rows top to top+rows) alone, keyframes every
// keyint frames, both with x264's settings params (":name=value…") and ffmpeg's output options
// extra on top of the render's. It returns the two Annex B streams.
func spliceInputs(t testing.TB, picture, mode string, w, h, top, rows, keyint int, params string, extra ...string) (still, band []byte) {
	t.Helper()
	const margin = 4 // the waveform is drawn this far inside the band's rows, as in a render
	dir := t.TempDir()
	graph := "[0:v]format=yuv420p,loop=loop=-1:size=1[p];" +
		"[1:a]showwaves=s=" + strconv.Itoa(w/2) + "x" + strconv.Itoa((rows-2*margin)/2) + ":mode=" + mode + ":rate=25:draw=full," +
		"scale=" + strconv.Itoa(w) + ":" + strconv.Itoa(rows-2*margin) + ",format=yuva420p[wf];" +
		"[p][wf]overlay=x=0:y=" + strconv.Itoa(top+margin) + ":shortest=1:format=yuv420,split[a][b];[b]crop=" +
		strconv.Itoa(w) + ":" + strconv.Itoa(rows) + ":0:" + strconv.Itoa(top) + "[band]"
	x := "me=dia:subme=1:ref=1:weightp=0" + params
	args := []string{"-v", "error", "-nostdin", "-f", "lavfi", "-i", picture + ":s=" + strconv.Itoa(w) + "x" + strconv.Itoa(h),
		"-f", "lavfi", "-i", "aevalsrc=sin(2*PI*(200+300*t)*t)*abs(sin(3*t)):d=4", "-filter_complex", graph,
		"-map", "[a]", "-frames:v", "1", "-c:v", "libx264", "-preset", "veryfast", "-crf", "19", "-bf", "0",
		"-x264-params", x + ":slice-max-mbs=" + strconv.Itoa((w+15)/16)}
	args = append(append(args, extra...), "-f", "h264", filepath.Join(dir, "still.264"),
		"-map", "[band]", "-c:v", "libx264", "-preset", "veryfast", "-crf", "19", "-bf", "0", "-g", strconv.Itoa(keyint),
		"-x264-params", x)
	args = append(append(args, extra...), "-f", "h264", filepath.Join(dir, "band.264"))
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	still, err := os.ReadFile(filepath.Join(dir, "still.264"))
	if err != nil {
		t.Fatal(err)
	}
	band, err = os.ReadFile(filepath.Join(dir, "band.264"))
	if err != nil {
		t.Fatal(err)
	}
	return still, band
}

// TestSpliceBand checks that a spliced clip decodes without an error (ffmpeg -xerror, -err_detect
// explode) to the frames asked for; that in every frame the band's rows are exactly the band's own
// decoded frame (no drift from the splice, across keyframes), and the rows outside it exactly the
// same in every frame; and that the frames past the band's end repeat its last. The cases are the
// waveform renders': bars over a clean picture, a jagged line over a noisy one (the hardest for
// motion vectors that must stay inside the band), the band at the bottom edge of a picture cropped
// from whole macroblocks, and CAVLC.
func TestSpliceBand(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, picture, mode string
		w, h, top, rows     int
		extra               []string
	}{
		{"bars", "testsrc2=r=25", "cline", 320, 240, 160, 48, nil},
		{"line over noise", "cellauto=rule=18:r=25", "line", 320, 240, 128, 64, nil},
		{"band at the bottom", "testsrc2=r=25", "line", 320, 232, 192, 40, nil},
		{"CAVLC", "testsrc2=r=25", "cline", 320, 240, 160, 48, []string{"-coder", "0"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			still, band := spliceInputs(t, c.picture, c.mode, c.w, c.h, c.top, c.rows, 40, "", c.extra...)
			bandFrames := decodedFrames(t, band)
			const extraFrames = 5
			clip, err := SpliceBand(still, band, uint(c.top/16), len(bandFrames)+extraFrames, 25)
			if err != nil {
				t.Fatal(err)
			}
			if len(clip.Frames) != len(bandFrames)+extraFrames || clip.SPS.Width != uint(c.w) || clip.SPS.Height != uint(c.h) {
				t.Fatalf("%d frames of %dx%d, want %d of %dx%d", len(clip.Frames), clip.SPS.Width, clip.SPS.Height,
					len(bandFrames)+extraFrames, c.w, c.h)
			}
			keyframes := len(clip.Keyframes)
			want := 0
			for _, nal := range SplitAnnexB(band) {
				if nal[0]&0x1f == NALIDR {
					want++
				}
			}
			if keyframes != want {
				t.Errorf("%d keyframes, want the band's %d", keyframes, want)
			}
			s := clip.AnnexB()
			rows := min(c.rows, c.h-c.top)
			got := decodedFrames(t, s, "-vf", "crop="+strconv.Itoa(c.w)+":"+strconv.Itoa(rows)+":0:"+strconv.Itoa(c.top))
			wantRows := decodedFrames(t, band, "-vf", "crop="+strconv.Itoa(c.w)+":"+strconv.Itoa(rows)+":0:0")
			if len(got) != len(wantRows)+extraFrames {
				t.Fatalf("%d frames decoded, want %d", len(got), len(wantRows)+extraFrames)
			}
			// A keyframe's band rows are exactly the band's; the frames between may drift where a
			// motion vector points outside the band (the service checks for that and falls back),
			// but the frames after the band's end repeat the last one exactly.
			key := make(map[int]bool)
			for _, k := range clip.Keyframes {
				key[k] = true
			}
			for i := range got {
				j := min(i, len(wantRows)-1)
				if i >= len(wantRows) && got[i] != got[j] || key[j] && got[j] != wantRows[j] {
					t.Fatalf("frame %d: the band's rows differ from the band's own frame %d", i, j)
				}
			}
			above := decodedFrames(t, s, "-vf", "crop="+strconv.Itoa(c.w)+":"+strconv.Itoa(c.top)+":0:0")
			for i, h := range above {
				if h != above[0] {
					t.Fatalf("frame %d: the picture above the band changed", i)
				}
			}
		})
	}
}

// TestSpliceBandRefuses checks that SpliceBand refuses, with ErrUnsupported, a picture that is not one
// slice per macroblock row, a band of another width, and a band that does not fit the picture.
func TestSpliceBandRefuses(t *testing.T) {
	t.Parallel()
	still, band := spliceInputs(t, "testsrc2=r=25", "cline", 320, 240, 160, 48, 40, "")
	whole := x264(t, "320x240", "-preset", "veryfast")
	narrow := x264(t, "160x48", "-preset", "veryfast", "-bf", "0")
	for name, f := range map[string]func() error{
		"one slice":       func() error { _, err := SpliceBand(whole, band, 10, 10, 25); return err },
		"narrower band":   func() error { _, err := SpliceBand(still, narrow, 10, 10, 25); return err },
		"band below":      func() error { _, err := SpliceBand(still, band, 13, 10, 25); return err },
		"not h264 at all": func() error { _, err := SpliceBand([]byte("RIFF"), band, 10, 10, 25); return err },
	} {
		if err := f(); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}

// TestSpliceBandRefusesOtherParameterSets checks that SpliceBand refuses, with ErrUnsupported,
// a picture and a band whose parameter sets differ in a field that shapes how a slice decodes,
// since the clip is written with the picture's: each case encodes one of the two with another
// x264 setting or ffmpeg option, and the two encoded alike are spliced (but with weighted
// prediction, which the band may not use). Without the check each pair was spliced into a wrong
// stream. The picture's level differs from the band's in every pair (x264 sets it by frame size),
// and does not count.
func TestSpliceBandRefusesOtherParameterSets(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, params string
		extra        []string
		picture      bool // the picture is the one encoded otherwise, not the band
	}{
		{"no 8x8 transform", ":8x8dct=0", nil, false},
		{"JVT scaling lists", ":cqm=jvt", nil, false},
		{"chroma QP offset", ":chroma-qp-offset=2", nil, false},
		{"constrained intra prediction", ":constrained-intra=1", nil, false},
		{"weighted prediction in the picture's", ":weightp=2", nil, true},
		{"two reference frames", ":ref=2", nil, false},
		{"Main profile", "", []string{"-profile:v", "main"}, false},
		{"4:4:4", "", []string{"-pix_fmt", "yuv444p"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			still, band := spliceInputs(t, "testsrc2=r=25", "cline", 320, 240, 160, 48, 40, "")
			otherStill, otherBand := spliceInputs(t, "testsrc2=r=25", "cline", 320, 240, 160, 48, 40, c.params, c.extra...)
			if _, err := SpliceBand(otherStill, otherBand, 10, 10, 25); err != nil && !c.picture {
				t.Fatalf("the pair encoded alike: %v", err)
			}
			if c.picture {
				still = otherStill
			} else {
				band = otherBand
			}
			if _, err := SpliceBand(still, band, 10, 10, 25); !errors.Is(err, ErrUnsupported) {
				t.Errorf("%v, want ErrUnsupported", err)
			}
		})
	}
}

// firstFrame decodes the first frame of the Annex B stream with ffmpeg as raw 4:2:0 samples.
func firstFrame(t testing.TB, stream []byte) []byte {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-v", "error", "-xerror", "-err_detect", "explode", "-f", "h264", "-i", "pipe:",
		"-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-")
	cmd.Stdin = bytes.NewReader(stream)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return out
}

// differingRows is the luma rows where two w×h 4:2:0 frames differ, a chroma row counting for
// both luma rows it covers.
func differingRows(t testing.TB, a, b []byte, w, h int) []int {
	t.Helper()
	cw, ch := (w+1)/2, (h+1)/2
	if len(a) != w*h+2*cw*ch || len(b) != len(a) {
		t.Fatalf("frames of %d and %d bytes, want %d", len(a), len(b), w*h+2*cw*ch)
	}
	differs := make([]bool, h)
	for y := range h {
		differs[y] = !bytes.Equal(a[y*w:(y+1)*w], b[y*w:(y+1)*w])
	}
	for plane := range 2 {
		off := w*h + plane*cw*ch
		for y := range ch {
			if !bytes.Equal(a[off+y*cw:off+(y+1)*cw], b[off+y*cw:off+(y+1)*cw]) {
				differs[2*y] = true
				differs[min(2*y+1, h-1)] = true
			}
		}
	}
	var rows []int
	for y, d := range differs {
		if d {
			rows = append(rows, y)
		}
	}
	return rows
}

// TestSpliceBandDeblocksPicture checks that a spliced keyframe's picture rows are the picture's
// own decode, loop filter included: x264 filtered the picture across its rows' slice edges, so
// every row keeps that but the edges that now border the band, which neither encoder saw. Only
// the luma rows next to those two edges may differ: the three above the band's top edge (which
// the band, filtering nothing across its own top, leaves unfiltered) and the first few (at most
// half) of the row below the band, which must not filter across its top edge into the band.
func TestSpliceBandDeblocksPicture(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, picture string
		top, rows     int
	}{
		{"bars", "testsrc2=r=25", 96, 48},
		{"soft", "gradients=r=25:seed=1", 64, 32},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			const w, h = 320, 240
			still, band := spliceInputs(t, c.picture, "cline", w, h, c.top, c.rows, 40, "")
			clip, err := SpliceBand(still, band, uint(c.top/16), 2, 25)
			if err != nil {
				t.Fatal(err)
			}
			end := c.top + c.rows
			spliced, picture := firstFrame(t, clip.AnnexB()), firstFrame(t, still)
			var got []int
			for _, y := range differingRows(t, spliced, picture, w, h) {
				if y < c.top-3 || y >= end+8 {
					t.Errorf("luma row %d (macroblock row %d) differs from the picture's own decode", y, y/16)
				}
				if y < c.top || y >= end {
					got = append(got, y)
				}
			}
			most := 0
			for _, y := range got {
				for x := range w {
					most = max(most, abs(int(spliced[y*w+x])-int(picture[y*w+x])))
				}
			}
			t.Logf("picture rows that differ (band %d to %d): %v, luma by at most %d", c.top, end, got, most)
		})
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
