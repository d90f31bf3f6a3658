package media

// Tests of the HEIF walker alone: the sizes it finds in files built box by box, and its bounds
// on any input. The tests through the service (checkImage, heif-convert, uploads) are at the
// repository's root.

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"vidgen/internal/media/heiftest"
)

// heifLargest returns the largest picture the HEIF file r (size bytes) can make heif-convert
// allocate (WalkHEIF).
func heifLargest(r io.ReaderAt, size int64) (w, h int, err error) {
	pics, err := WalkHEIF(r, size)
	return pics.Width, pics.Height, err
}

// TestWalkHEIFCodedSizes: the largest picture is the coded one (the sequence parameter set or
// sequence header, a grid's tiles times its rows and columns, a canvas), whatever the ispe claims.
func TestWalkHEIFCodedSizes(t *testing.T) {
	t.Parallel()
	slice := heiftest.LengthPrefixed([]byte{0x26, 0x01})
	for _, c := range []struct {
		name string
		file []byte
		w, h int
	}{
		{"hevc-grid-4x4-of-4096-claims-64", heiftest.HEVCGrid(4, 4, 4096, 64), 16384, 16384},
		{"av1-grid-4x4-of-4096-claims-64", heiftest.AV1Grid(4, 4, 4096, 64), 16384, 16384},
		{"hevc-sps-with-sub-layers", heiftest.Build("heic", [][]byte{heiftest.ISPE(64, 64), heiftest.HvcC(heiftest.SPS(10000, 10001, 3))},
			[]heiftest.Item{{ID: 1, Type: "hvc1", Props: []int{1, 2}, Data: slice}}), 10000, 10001},
		{"av1-timing-and-operating-points", heiftest.Build("avif", [][]byte{heiftest.ISPE(64, 64), heiftest.Av1C(heiftest.SeqHeader(3000, 2000, false))},
			[]heiftest.Item{{ID: 1, Type: "av01", Props: []int{1, 2}, Data: []byte{0x32, 0x00}}}), 3000, 2000},
		{"overlay-canvas-30000x9000", heiftest.Build("heic", [][]byte{heiftest.ISPE(64, 64), heiftest.HvcC(heiftest.SPS(64, 64, 0))}, []heiftest.Item{
			{ID: 1, Type: "iovl", Props: []int{1}, Data: heiftest.Overlay(30000, 9000, 1), Dimg: []int{2}},
			{ID: 2, Type: "hvc1", Props: []int{1, 2}, Data: slice}}), 30000, 9000},
	} {
		w, h, err := heifLargest(bytes.NewReader(c.file), int64(len(c.file)))
		if err != nil || w != c.w || h != c.h {
			t.Errorf("%s: %d×%d (%v), want %d×%d", c.name, w, h, err, c.w, c.h)
		}
	}
}

// TestHEIFHostileBounded: each damaged structure is refused with an error of the walker's own
// kinds (ErrHEIFCodec for a codec it cannot size), read and allocated within bounds.
func TestHEIFHostileBounded(t *testing.T) {
	t.Parallel()
	for _, c := range heiftest.Hostile() {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			heifBounded(t, c.File)
			_, err := WalkHEIF(bytes.NewReader(c.File), int64(len(c.File)))
			if want := map[bool]error{true: ErrHEIFCodec, false: ErrHEIFDamaged}[c.Status == 415]; !errors.Is(err, want) {
				t.Errorf("%v, want %v", err, want)
			}
		})
	}
}

// heifEnc is a 64×48 HEIC (or, with -A, an AVIF) made by heif-enc in dir.
func heifEnc(t testing.TB, dir, name string, args ...string) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 64, 48))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	in, out := filepath.Join(dir, name+".png"), filepath.Join(dir, name)
	if err := os.WriteFile(in, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command("heif-enc", append(append([]string{"-q", "50", "-o", out}, args...), in)...).CombinedOutput(); err != nil {
		t.Fatalf("heif-enc: %v: %s", err, msg)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// countingReaderAt is a file in memory that records how it is read.
type countingReaderAt struct {
	b              []byte
	calls, largest int
	total          int64
}

func (r *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	r.calls++
	r.largest = max(r.largest, len(p))
	r.total += int64(len(p))
	return bytes.NewReader(r.b).ReadAt(p, off)
}

// heifBounded runs WalkHEIF on b and fails t unless it answers within a minute (it never loops
// for ever), with a size in bounds and pixels in all no fewer than the largest picture's and at
// most heifMaxPixels, or an error of its own kinds, having read at most one piece
// larger than a parameter set (the meta box, at most heifMaxMeta), at most heifMaxReads pieces of
// items' data, and allocated at most 64 MiB.
func heifBounded(t testing.TB, b []byte) {
	t.Helper()
	r := &countingReaderAt{b: b}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	var pics HEIFPictures
	var err error
	go func() {
		defer close(done)
		pics, err = WalkHEIF(r, int64(len(b)))
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("WalkHEIF gave no answer within a minute")
	}
	runtime.ReadMemStats(&after)
	w, h := pics.Width, pics.Height
	switch {
	case err == nil && (w < 0 || h < 0 || w > heifMaxDim || h > heifMaxDim):
		t.Fatalf("size %d×%d", w, h)
	case err == nil && (pics.Pixels < int64(w)*int64(h) || pics.Pixels > heifMaxPixels):
		t.Fatalf("%d pixels in all, where the largest picture is %d×%d", pics.Pixels, w, h)
	case err != nil && !errors.Is(err, ErrHEIFDamaged) && !errors.Is(err, ErrHEIFCodec):
		t.Fatalf("error of no known kind: %v", err)
	case r.largest > heifMaxMeta:
		t.Fatalf("read %d bytes at once", r.largest)
	case r.calls > heifMaxTopBoxes+1+heifMaxReads:
		t.Fatalf("%d reads", r.calls)
	case r.total > int64(heifMaxMeta+16*heifMaxTopBoxes+heifMaxReads*heifMaxUnitRead):
		t.Fatalf("read %d bytes in all", r.total)
	case after.TotalAlloc-before.TotalAlloc > 64<<20:
		t.Fatalf("allocated %d MB", (after.TotalAlloc-before.TotalAlloc)>>20)
	}
}

// FuzzHEIFLargest feeds the HEIF box walker real files (made by heif-enc, when it is installed),
// the hand-built oversize ones and the damaged ones, mutated: whatever the input, it never panics,
// answers within a minute, reads and allocates within its bounds (heifBounded).
func FuzzHEIFLargest(f *testing.F) {
	if _, err := exec.LookPath("heif-enc"); err == nil {
		dir := f.TempDir()
		f.Add(heifEnc(f, dir, "a.heic"))
		f.Add(heifEnc(f, dir, "a.avif", "-A"))
	}
	f.Add(heiftest.HEVCGrid(2, 2, 4096, 64))
	f.Add(heiftest.AV1Grid(2, 2, 4096, 64))
	slice := heiftest.LengthPrefixed([]byte{0x26, 0x01})
	f.Add(heiftest.Build("heic", [][]byte{heiftest.ISPE(64, 48), heiftest.HvcC(heiftest.SPS(64, 48, 0)), heiftest.AuxC(heiftest.AlphaURN)}, []heiftest.Item{
		{ID: 1, Type: "hvc1", Props: []int{1, 2}, Data: slice},
		{ID: 2, Type: "hvc1", Props: []int{1, 2, 3}, Data: slice, Auxl: 1},
		{ID: 3, Type: "jpeg", Data: []byte{0xff, 0xd8}, Thmb: 1},
		{ID: 4, Type: "hvc1", Props: []int{1, 2}, Data: slice, Hidden: true}}))
	f.Add(heiftest.Build("heic", [][]byte{heiftest.ISPE(64, 48), heiftest.HvcC(heiftest.SPS(64, 48, 0))}, append(
		[]heiftest.Item{{ID: 1, Type: "iovl", Props: []int{1}, Data: heiftest.Overlay(64, 48, 3), Dimg: []int{2, 3, 3}}},
		heiftest.SharingItems(heiftest.Item{Type: "hvc1", Props: []int{1, 2}, Data: slice}, 2, 3, 4, 5)...)))
	for _, c := range heiftest.Hostile() {
		if len(c.File) < 64<<10 { // the fuzzer's mutations of megabytes are slow
			f.Add(c.File)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { heifBounded(t, b) })
}
