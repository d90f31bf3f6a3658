package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
)

// TestGoToPNGOrientations: a JPEG decoded in Go (stored as RGB) comes out as a PNG of the picture
// a viewer shows, under each of the eight EXIF orientations (the same expectations the render
// meets through ffmpeg in TestPictureFidelity).
func TestGoToPNGOrientations(t *testing.T) {
	t.Parallel()
	base := quad(64, 32)
	for o := 1; o <= 8; o++ {
		path := writeFixture(t, "o.jpg", withOrientation(rgbJPEG(64, 32, base, "after-sof"), uint16(o), binary.BigEndian))
		if err := goToPNG(path, media.JPEG, 0); err != nil {
			t.Fatalf("orientation %d: %v", o, err)
		}
		got, err := png.Decode(bytes.NewReader(readFile(t, path)))
		if err != nil {
			t.Fatalf("orientation %d: the output is not a PNG: %v", o, err)
		}
		want := oriented(base, o)
		if got.Bounds() != want.Bounds() {
			t.Errorf("orientation %d: %v, want %v", o, got.Bounds(), want.Bounds())
			continue
		}
		if d := maxDiff(got, want); d > 8 {
			t.Errorf("orientation %d: a pixel is off by %d", o, d)
		}
		if _, ok := got.(*image.RGBA); !ok { // opaque: written as RGB, which png decodes to RGBA
			t.Errorf("orientation %d: an opaque picture decoded as %T", o, got)
		}
	}
}

// TestImageRewriteFailures: when vidgen cannot decode an upload it rewrites (a GIF, a damaged
// PNG), the user's file is at fault (400); when it cannot write the PNG it makes, the server is
// (an internal error, or 507 for a full disk), and the file is not blamed.
func TestImageRewriteFailures(t *testing.T) {
	t.Parallel()
	tl := ffmpeg.Tools{FFmpeg: "ffmpeg", FFprobe: "ffprobe"}
	for _, c := range []struct {
		name, typ string
		file      []byte
	}{
		{"gif", media.GIF, readFile(t, fixture(t, "img.gif"))},
		{"png", media.PNG, pngChunks(t, badAdler)}, // decodes only through salvagePNG
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "upload")
		if err := os.WriteFile(path, c.file, 0o600); err != nil {
			t.Fatal(err)
		}
		// The PNG's temporary name is taken by a directory: its creation fails, as on a broken disk.
		if err := os.Mkdir(path+".new.png", 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := prepareImage(t.Context(), tl, newDecodeGate(), path, c.typ); err == nil || kindOf(err) != kindInternal {
			t.Errorf("%s, unwritable: %v (kind %d), want an internal error", c.name, err, kindOf(err))
		}
		if err := os.Remove(path + ".new.png"); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, c.file[:len(c.file)/3], 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := prepareImage(t.Context(), tl, newDecodeGate(), path, c.typ); kindOf(err) != kindInvalid {
			t.Errorf("%s, cut to a third: %v, want a 400", c.name, err)
		}
	}
	full := fmt.Errorf("write: %w", syscall.ENOSPC)
	if kindOf(rewriteFailed(full, badMedia("x"))) != kindNoSpace {
		t.Error("a full disk during a rewrite is not a 507")
	}
}

// TestPixelReader: the reader goToPNG uses gives, for every image type Go's decoders return, the
// colour the image's own At gives, within one step of 8 bits.
func TestPixelReader(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	rect := image.Rect(3, 5, 20, 17) // not at the origin, as a sub-image or GIF frame may be
	fill := func(img interface {
		image.Image
		Set(x, y int, c color.Color)
	}) image.Image {
		for y := rect.Min.Y; y < rect.Max.Y; y++ {
			for x := rect.Min.X; x < rect.Max.X; x++ {
				a := uint8(r.IntN(256))
				if r.IntN(3) == 0 {
					a = 255
				}
				img.Set(x, y, color.NRGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), a})
			}
		}
		return img
	}
	ycc := func(ratio image.YCbCrSubsampleRatio) image.Image {
		m := image.NewYCbCr(rect, ratio)
		for i := range m.Y {
			m.Y[i] = uint8(r.IntN(256))
		}
		for i := range m.Cb {
			m.Cb[i], m.Cr[i] = uint8(r.IntN(256)), uint8(r.IntN(256))
		}
		return m
	}
	nycca := image.NewNYCbCrA(rect, image.YCbCrSubsampleRatio420)
	for i := range nycca.Y {
		nycca.Y[i], nycca.A[i] = uint8(r.IntN(256)), uint8(r.IntN(256))
	}
	for i := range nycca.Cb {
		nycca.Cb[i], nycca.Cr[i] = uint8(r.IntN(256)), uint8(r.IntN(256))
	}
	pal := color.Palette{color.NRGBA{255, 0, 0, 255}, color.NRGBA{0, 0, 255, 128}, color.Transparent, color.White}
	// An index past its palette is opaque black, whatever else the palette holds.
	short := image.NewPaletted(image.Rect(0, 0, 2, 1), pal[:2])
	short.Pix[1] = 7
	if r, g, b, a := pixelReader(short)(1, 0); r != 0 || g != 0 || b != 0 || a != 0xff {
		t.Errorf("an index past the palette: %v, want opaque black", color.NRGBA{r, g, b, a})
	}
	images := []image.Image{
		fill(image.NewNRGBA(rect)), fill(image.NewRGBA(rect)), fill(image.NewNRGBA64(rect)), fill(image.NewRGBA64(rect)),
		fill(image.NewGray(rect)), fill(image.NewGray16(rect)), fill(image.NewCMYK(rect)), fill(image.NewPaletted(rect, pal)),
		ycc(image.YCbCrSubsampleRatio420), ycc(image.YCbCrSubsampleRatio444), nycca,
		fill(image.NewAlpha(rect)), // no fast path: read through At
	}
	for _, img := range images {
		px := pixelReader(img)
		for y := rect.Min.Y; y < rect.Max.Y; y++ {
			for x := rect.Min.X; x < rect.Max.X; x++ {
				// Compared premultiplied: a colour under alpha 0 is no colour.
				r, g, b, a := px(x, y)
				got := color.RGBA64Model.Convert(color.NRGBA{r, g, b, a}).(color.RGBA64)
				want := color.RGBA64Model.Convert(img.At(x, y)).(color.RGBA64)
				if d := max(diff16(got.R, want.R), diff16(got.G, want.G), diff16(got.B, want.B), diff16(got.A, want.A)); d > 0x101 {
					t.Fatalf("%T at (%d,%d): %v, want %v", img, x, y, got, want)
				}
			}
		}
	}
}

func diff8(a, b uint8) int { return absDiff(uint32(a), b) }

func diff16(a, b uint16) int { return max(int(a)-int(b), int(b)-int(a)) }

// maxDiff is the largest difference of any channel of any pixel of two pictures of one size.
func maxDiff(a, b image.Image) int {
	d := 0
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y++ {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x++ {
			p, q := color.NRGBAModel.Convert(a.At(x, y)).(color.NRGBA), color.NRGBAModel.Convert(b.At(x, y)).(color.NRGBA)
			d = max(d, diff8(p.R, q.R), diff8(p.G, q.G), diff8(p.B, q.B), diff8(p.A, q.A))
		}
	}
	return d
}

// BenchmarkGoToPNG measures the Go decode path on a 2000×2000 JPEG stored as RGB, upright and
// turned (EXIF 6): B/op is the memory a decode asks for, which the largest picture multiplies by 25.
func BenchmarkGoToPNG(b *testing.B) {
	const n = 2000
	pic := image.NewNRGBA(image.Rect(0, 0, n, n))
	r := rand.New(rand.NewPCG(1, 2))
	for by := 0; by < n; by += 8 {
		for bx := 0; bx < n; bx += 8 {
			c := color.NRGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255}
			for y := by; y < by+8; y++ {
				for x := bx; x < bx+8; x++ {
					pic.SetNRGBA(x, y, c)
				}
			}
		}
	}
	upright := rgbJPEG(n, n, pic, "after-sof")
	for _, o := range []int{1, 6} {
		b.Run(fmt.Sprintf("orientation-%d", o), func(b *testing.B) {
			src := withOrientation(upright, uint16(o), binary.BigEndian)
			path := filepath.Join(b.TempDir(), "p.jpg")
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				if err := os.WriteFile(path, src, 0o644); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := goToPNG(path, media.JPEG, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDecoderPanic: a Go decoder that panics on an upload refuses the file; it does not crash the
// service.
func TestDecoderPanic(t *testing.T) {
	t.Parallel()
	err := noPanic(func() error { panic("index out of range") })
	if !errors.Is(err, errUndecodable) || kindOf(rewriteFailed(err, badMedia("x"))) != kindInvalid {
		t.Errorf("a panicking decoder: %v, want errUndecodable and a 400", err)
	}
	if err := noPanic(func() error { return nil }); err != nil {
		t.Errorf("a decoder that succeeds: %v", err)
	}
}

// TestMemoryGate: work is admitted while its costs fit the budget, in turn (a small cost does not
// pass a large one waiting), a cost above the whole budget runs alone, and a waiter that gives up
// holds nothing and lets the next one in.
func TestMemoryGate(t *testing.T) {
	t.Parallel()
	g := newMemoryGate(10)
	now := func(cost int64) func() {
		t.Helper()
		release, err := g.acquire(t.Context(), cost)
		if err != nil {
			t.Fatalf("acquire %d: %v", cost, err)
		}
		return release
	}
	type waiter struct {
		admitted chan func()
		cancel   context.CancelFunc
	}
	later := func(cost int64) waiter {
		t.Helper()
		queued := g.waiting()
		ctx, cancel := context.WithCancel(t.Context())
		w := waiter{admitted: make(chan func(), 1), cancel: cancel}
		go func() {
			if release, err := g.acquire(ctx, cost); err == nil {
				w.admitted <- release
			} else {
				close(w.admitted)
			}
		}()
		eventually(t, 10*time.Second, func() error {
			if n := g.waiting(); n != queued+1 {
				return fmt.Errorf("acquire %d did not wait: %d waiting, want %d", cost, n, queued+1)
			}
			return nil
		})
		return w
	}
	admitted := func(w waiter) func() {
		t.Helper()
		select {
		case release, ok := <-w.admitted:
			if !ok {
				t.Fatal("a waiter gave up instead of being admitted")
			}
			return release
		case <-time.After(10 * time.Second):
			t.Fatal("a waiter was not admitted")
			return nil
		}
	}
	a, b := now(4), now(6)
	c := later(1)
	a() // 6 held: c's 1 fits
	c1 := admitted(c)
	d := later(5) // 7 held: 5 does not fit
	e := later(1) // it would fit, but d is first
	if g.waiting() != 2 {
		t.Fatalf("waiting %d, want d and e", g.waiting())
	}
	b() // 1 held: d and then e fit
	d1, e1 := admitted(d), admitted(e)
	c1()
	d1()
	e1()
	e1() // a second release gives back nothing more
	if g.used != 0 {
		t.Fatalf("used %d after every release", g.used)
	}

	big := now(50) // more than the budget, with nothing held: runs alone
	f := later(1)
	big()
	admitted(f)()

	held := now(8)
	giveUp := later(5)
	next := later(2) // fits beside 8, but waits behind giveUp
	giveUp.cancel()
	if _, ok := <-giveUp.admitted; ok {
		t.Fatal("a cancelled waiter was admitted")
	}
	admitted(next)()
	held()
	if g.used != 0 || g.waiting() != 0 {
		t.Fatalf("used %d, waiting %d at the end", g.used, g.waiting())
	}
}

// TestPicturesShareMemory: an upload's decode check and a render's picture step start only when
// the picture's expected memory fits beside the pictures being decoded already.
func TestPicturesShareMemory(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil, func(s *server) { s.pictures.budget = 1 }) // every picture runs alone
	gate := e.srv.pictures
	hold, err := gate.acquire(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.jpg"), "audio": fixture(t, "tone.m4a")}, nil)
	type answer struct {
		code int
		body []byte
	}
	answered := make(chan answer, 1)
	go func() {
		resp, b, err := request(http.DefaultClient, "POST", e.hs.URL+"/api/jobs", e.key, body, "Content-Type", ctype)
		if err != nil {
			close(answered)
			return
		}
		answered <- answer{resp.StatusCode, b}
	}()
	eventually(t, 10*time.Second, func() error {
		if n := gate.waiting(); n != 1 {
			return fmt.Errorf("the submission's decode check did not wait for the picture being decoded: %d waiting", n)
		}
		return nil
	})
	select {
	case a := <-answered:
		t.Fatalf("the submission was answered (%d) before its picture could be checked", a.code)
	default:
	}
	hold()
	a := <-answered
	if a.code != http.StatusCreated {
		t.Fatalf("submission: %d %s, want 201", a.code, a.body)
	}
	// Its render takes the gate too: the render below must be the only one waiting.
	var created struct{ JobID string }
	if err := json.Unmarshal(a.body, &created); err != nil {
		t.Fatal(err)
	}
	e.wait(t, e.key, created.JobID, StatusCompleted)

	// A render's picture step waits the same way.
	id, err := newJobID(time.Now(), e.srv.rand)
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, fixture(t, "img.jpg"), e.srv.dirs.input(id, inputImage))
	copyFile(t, fixture(t, "short.wav"), e.srv.dirs.input(id, inputAudio))
	job := Job{ID: id, ImageType: media.JPEG, AudioType: media.WAV, AudioCodec: "pcm_s16le//1/16000", AudioDuration: 0.6}
	if hold, err = gate.acquire(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	rendered := make(chan error, 1)
	go func() {
		_, _, err := e.srv.renderer.renderFiles(t.Context(), job)
		rendered <- err
	}()
	eventually(t, 10*time.Second, func() error {
		if n := gate.waiting(); n != 1 {
			return fmt.Errorf("the render's picture step did not wait for the picture being decoded: %d waiting", n)
		}
		return nil
	})
	hold()
	if err := <-rendered; err != nil {
		t.Fatalf("render after the wait: %v", err)
	}
}

// TestPictureCost: a picture's expected memory follows its header's size and depth, and a PNG's
// file size; a header that cannot be read counts as the largest picture accepted.
func TestPictureCost(t *testing.T) {
	t.Parallel()
	eight := writeFixture(t, "p8.png", pngHeader(4000, 3000))
	if got, want := pictureCost(eight, media.PNG), int64(pictureBaseCost+12_000_000*pictureByteCost+pngFileCost*len(pngHeader(4000, 3000))); got != want {
		t.Errorf("8-bit 4000×3000 PNG: %d, want %d", got, want)
	}
	var deep bytes.Buffer
	if err := png.Encode(&deep, image.NewRGBA64(image.Rect(0, 0, 30, 20))); err != nil {
		t.Fatal(err)
	}
	if got, want := pictureCost(writeFixture(t, "p16.png", deep.Bytes()), media.PNG), int64(pictureBaseCost+600*pictureDeepCost+pngFileCost*deep.Len()); got != want {
		t.Errorf("16-bit 30×20 PNG: %d, want %d", got, want)
	}
	// ffmpeg holds a PNG whole, and its text chunks several times over: a picture of one pixel
	// in 8 MB weighs by its bytes.
	text := pngFile(rawPNGChunk("IHDR", pngIHDR(1, 1, 8, 2)), rawPNGChunk("tEXt", make([]byte, 8<<20)), onePixelIDAT(), rawPNGChunk("IEND", nil))
	if got, want := pictureCost(writeFixture(t, "text.png", text), media.PNG), int64(pictureBaseCost+pictureByteCost+4*len(text)); got != want {
		t.Errorf("1×1 PNG of %d bytes: %d, want %d", len(text), got, want)
	}
	if got := pictureCost(writeFixture(t, "junk.png", []byte("not a png")), media.PNG); got != largestPicture {
		t.Errorf("unreadable header: %d, want %d", got, largestPicture)
	}
}

// TestMemoryBudget: the picture budget is half of what the service may use, never more than half
// the machine's memory.
func TestMemoryBudget(t *testing.T) {
	t.Parallel()
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		t.Skip(err)
	}
	total := int64(si.Totalram) * int64(si.Unit)
	got := memoryBudget()
	if got <= 0 || got > total/2 {
		t.Fatalf("budget %d with %d of memory", got, total)
	}
	if limit, ok := cgroupMemoryLimit(); ok && got > limit/2 {
		t.Fatalf("budget %d under a cgroup limit of %d", got, limit)
	}
	t.Logf("budget %d MB (memory %d MB)", got>>20, total>>20)
}

// TestCgroupLimit: the tightest memory limit from the service's cgroup up, under cgroup v2 (a
// systemd unit's MemoryMax) and v1.
func TestCgroupLimit(t *testing.T) {
	t.Parallel()
	v2 := fstest.MapFS{
		"memory.max":                                     {Data: []byte("max\n")},
		"system.slice/memory.max":                        {Data: []byte("max\n")},
		"system.slice/vidgen.service/memory.max":         {Data: []byte("2147483648\n")},
		"system.slice/high.service/memory.max":           {Data: []byte("2147483648\n")},
		"system.slice/high.service/memory.high":          {Data: []byte("1610612736\n")},
		"user.slice/memory.max":                          {Data: []byte("1048576\n")},
		"memory/vidgen/memory.limit_in_bytes":            {Data: []byte("1073741824\n")},
		"memory/memory.limit_in_bytes":                   {Data: []byte("9223372036854771712\n")},
		"memory/other/memory.limit_in_bytes":             {Data: []byte("4096\n")},
		"system.slice/vidgen.service/memory.swap.max":    {Data: []byte("0\n")},
		"system.slice/vidgen.service/memory.limit_bytes": {Data: []byte("1\n")},
	}
	for _, c := range []struct {
		self string
		want int64
	}{
		{"0::/system.slice/vidgen.service\n", 2 << 30},
		{"0::/system.slice/high.service\n", 1536 << 20}, // MemoryHigh=1536M under MemoryMax=2G
		{"0::/\n", 0},
		{"0::/system.slice/other.service\n", 0},
		{"12:cpu,cpuacct:/vidgen\n4:memory:/vidgen\n1:name=systemd:/vidgen\n", 1 << 30},
		{"4:memory:/\n", 9223372036854771712},
		{"", 0},
	} {
		got, ok := cgroupLimit(v2, c.self)
		if got != c.want || ok != (c.want > 0) {
			t.Errorf("%q: %d %v, want %d", c.self, got, ok, c.want)
		}
	}
}
