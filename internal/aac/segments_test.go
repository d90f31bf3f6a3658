package aac

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

// checkPlan fails t unless segs is a plan of audio lasting seconds at rate in one segment a weight:
// each starts and ends at a frame boundary; the segments' kept frames follow each other without a
// gap or an overlap from the first frame of the sound to its end; share k holds within a frame of
// weights[k]/sum(weights) of the frames; and each segment encodes Overlap frames on each side of
// its share (fewer before it only where the sound starts).
func checkPlan(t testing.TB, seconds float64, rate int, weights []float64, segs []Segment) {
	t.Helper()
	frames := int64(seconds * float64(rate) / FrameSamples)
	n := len(weights)
	var sum float64
	for _, w := range weights {
		sum += w
	}
	if len(segs) != n {
		t.Fatalf("%d segments, want %d", len(segs), n)
	}
	next := int64(0) // the first frame of sound the next segment must start with
	for k, s := range segs {
		if s.Start < 0 || s.Start%FrameSamples != 0 || s.End%FrameSamples != 0 {
			t.Fatalf("segment %d: encodes samples %d to %d, not at frame boundaries", k, s.Start, s.End)
		}
		first := s.Start / FrameSamples
		from := first + int64(s.Keep)
		if k > 0 {
			from -= Lag
		}
		if from != next {
			t.Fatalf("segment %d keeps sound from frame %d, want %d", k, from, next)
		}
		if before := from - first; before != min(Overlap, from) {
			t.Fatalf("segment %d encodes %d frames before its share at frame %d", k, before, from)
		}
		to := frames
		if k == n-1 {
			if s.End != 0 || s.Stop != 0 {
				t.Fatalf("the last segment ends at %d/%d, want the end", s.End, s.Stop)
			}
		} else {
			if s.End == 0 || s.Stop == 0 || s.Stop < s.Keep {
				t.Fatalf("segment %d encodes to %d and keeps frames %d to %d", k, s.End, s.Keep, s.Stop)
			}
			to = first + int64(s.Stop-Lag)
			if after := s.End/FrameSamples - to; after != Overlap {
				t.Fatalf("segment %d encodes %d frames after its share", k, after)
			}
		}
		if size, want := to-from, float64(frames)*weights[k]/sum; math.Abs(float64(size)-want) > 1+1e-6 {
			t.Fatalf("segment %d: a share of %d frames of %d, want %.2f (weights %v)", k, size, frames, want, weights)
		}
		next = to
	}
}

// TestPlan checks plans of long and short audio at the usual rates, in as many segments as a big
// machine makes and more than the audio has frames.
func TestPlan(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		seconds float64
		rate, n int
	}{
		{600, 44100, 2}, {600, 48000, 8}, {61, 22050, 3}, {0.2, 48000, 4}, {3600, 8000, 1},
		{0.05, 44100, 5}, {0, 48000, 3},
	} {
		segs := Plan(c.seconds, c.rate, c.n)
		t.Logf("%+v: %+v", c, segs)
		checkPlan(t, c.seconds, c.rate, equal(c.n), segs)
	}
	// Ten minutes at 48 kHz in two: the cut falls at frame 14062 of 28125, each side encodes 4
	// frames across it, and the encoder's frame for the cut's sound is 3 frames after the frame of
	// its first input.
	want := []Segment{{End: 14066 * FrameSamples, Stop: 14065}, {Start: 14058 * FrameSamples, Keep: 7}}
	if got := Plan(600, 48000, 2); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("600 s at 48 kHz in 2: %+v, want %+v", got, want)
	}
}

// FuzzPlan checks checkPlan's invariants over any length (up to some eleven days), rate and count
// of segments.
func FuzzPlan(f *testing.F) {
	f.Add(600.0, 44100, 2)
	f.Add(0.2, 48000, 4)
	f.Add(61.5, 22050, 7)
	f.Add(1e6, 384000, 64)
	f.Fuzz(func(t *testing.T, seconds float64, rate, n int) {
		if math.IsNaN(seconds) || seconds < 0 || seconds > 1e6 || rate < 1 || rate > 384000 || n < 1 || n > 64 {
			t.Skip("outside Plan's contract or the product's range")
		}
		checkPlan(t, seconds, rate, equal(n), Plan(seconds, rate, n))
	})
}

// equal is n weights of 1.
func equal(n int) []float64 {
	w := make([]float64, n)
	for i := range w {
		w[i] = 1
	}
	return w
}

// TestPlanWeighted checks plans whose shares are in proportion to weights: shares falling by a
// ratio (as the segments of an encode that decodes the audio up to each cut get), equal ones,
// zeros, and more segments than frames.
func TestPlanWeighted(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		seconds float64
		rate    int
		weights []float64
	}{
		{60, 44100, []float64{1, 0.9}}, {600, 48000, []float64{1, 0.9, 0.81, 0.73, 0.66, 0.59, 0.53, 0.48}},
		{61, 22050, equal(3)}, {0.2, 48000, []float64{5, 1, 1, 1}}, {3600, 8000, []float64{2}},
		{10, 48000, []float64{1, 0, 1}}, {0.05, 44100, []float64{1, 2, 3, 4, 5}}, {0, 48000, []float64{1, 1}},
	} {
		segs := PlanWeighted(c.seconds, c.rate, c.weights)
		t.Logf("%+v: %+v", c, segs)
		checkPlan(t, c.seconds, c.rate, c.weights, segs)
	}
	// A minute at 44.1 kHz (2583 frames) in shares of 1 and 0.9: the cut at frame 1359 of 2583,
	// where an even plan cuts at 1291.
	segs := PlanWeighted(60, 44100, []float64{1, 0.9})
	if cut := segs[1].Start/FrameSamples + int64(segs[1].Keep-Lag); cut != 1359 {
		t.Errorf("cut at frame %d, want 1359: %+v", cut, segs)
	}
	// Equal weights cut within a frame of Plan's cuts.
	for _, n := range []int{2, 3, 7} {
		even, weighted := Plan(600, 48000, n), PlanWeighted(600, 48000, equal(n))
		for k := range even {
			if d := even[k].Start - weighted[k].Start; d < -FrameSamples || d > FrameSamples {
				t.Errorf("%d equal weights: segment %d starts at %d, Plan's at %d", n, k, weighted[k].Start, even[k].Start)
			}
		}
	}
}

// FuzzPlanWeighted checks checkPlan's invariants over any length, rate and count of segments whose
// weights fall by any ratio from 1 to 0.01 a segment.
func FuzzPlanWeighted(f *testing.F) {
	f.Add(60.0, 44100, 2, 0.9)
	f.Add(600.0, 48000, 8, 0.5)
	f.Add(0.2, 48000, 4, 1.0)
	f.Fuzz(func(t *testing.T, seconds float64, rate, n int, ratio float64) {
		if math.IsNaN(seconds) || seconds < 0 || seconds > 1e6 || rate < 1 || rate > 384000 || n < 1 || n > 64 ||
			!(ratio >= 0.01 && ratio <= 1) {
			t.Skip("outside PlanWeighted's contract or the product's range")
		}
		weights := make([]float64, n)
		for k := range weights {
			weights[k] = math.Pow(ratio, float64(k))
		}
		checkPlan(t, seconds, rate, weights, PlanWeighted(seconds, rate, weights))
	})
}

// framesOf is the frames the Reader reads from b, and its error (nil at io.EOF).
func framesOf(b []byte) ([][]byte, error) {
	a := NewReader(bytes.NewReader(b))
	var frames [][]byte
	for {
		f, err := a.Next()
		if err == io.EOF {
			return frames, nil
		}
		if err != nil {
			return frames, err
		}
		frames = append(frames, bytes.Clone(f))
	}
}

// stream is an ADTS stream of n frames whose payloads name the stream (tag) and the frame.
func stream(tag byte, n int) []byte {
	var b []byte
	for i := range n {
		b = append(b, adtsFrame([]byte{tag, byte(i)}, i%2 == 1)...)
	}
	return b
}

// readers reads each of parts.
func readers(parts ...[]byte) []io.Reader {
	r := make([]io.Reader, len(parts))
	for k, p := range parts {
		r[k] = bytes.NewReader(p)
	}
	return r
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestJoin checks that Join writes the frames Keep to Stop of each part, the last part's to its
// end, and nothing else: not the frames around them, not what follows a part's Stop (which it does
// not read); and that a part short of frames, one that is not ADTS where its frames must be, and a
// failing writer are errors that name the segment at fault.
func TestJoin(t *testing.T) {
	t.Parallel()
	segs := []Segment{{Stop: 5}, {Keep: 3, Stop: 8}, {Keep: 3}}
	a, b, c := stream('a', 9), stream('b', 12), stream('c', 10)
	want := func() []byte {
		var out []byte
		for _, p := range []struct {
			b        []byte
			from, to int
		}{{a, 0, 5}, {b, 3, 8}, {c, 3, 10}} {
			frames, _ := framesOf(p.b)
			out = append(out, bytes.Join(frames[p.from:p.to], nil)...)
		}
		return out
	}()
	junk := []byte("not audio at all")
	for name, parts := range map[string][3][]byte{
		"whole streams":               {a, b, c},
		"garbage after a part's Stop": {append(stream('a', 5), junk...), append(stream('b', 8), junk...), c},
	} {
		var out bytes.Buffer
		if err := Join(&out, readers(parts[:]...), segs); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Errorf("%s: %d bytes joined, want %d", name, out.Len(), len(want))
		}
	}

	for _, tc := range []struct {
		name    string
		parts   [3][]byte
		segment string
		adts    bool
	}{
		{"a part short of its Stop", [3][]byte{a, stream('b', 7), c}, "segment 1: 7 frames, 8 needed", false},
		{"garbage before a part's Stop", [3][]byte{append(stream('a', 4), junk...), b, c}, "segment 0: ", true},
		{"the last part cut short", [3][]byte{a, b, c[:len(c)-1]}, "segment 2: ", true},
	} {
		err := Join(io.Discard, readers(tc.parts[:]...), segs)
		if err == nil || !strings.HasPrefix(err.Error(), tc.segment) || errors.Is(err, ErrADTS) != tc.adts {
			t.Errorf("%s: %v, want an error starting %q (ErrADTS: %v)", tc.name, err, tc.segment, tc.adts)
		}
	}
	if err := Join(failingWriter{}, readers(a, b, c), segs); err == nil {
		t.Error("a failing writer: no error")
	}
}

// FuzzJoin joins two arbitrary byte streams, the first cut to frames keep to stop, and compares the
// result with the frames the Reader reads from them: the output is exactly the first part's frames
// keep to stop and all of the second's from its keep, and Join fails exactly when the first part
// has fewer than stop frames before its end or a damaged frame, or the second is not ADTS to its
// end.
func FuzzJoin(f *testing.F) {
	f.Add(stream('a', 6), stream('b', 6), 0, 4, 2)
	f.Add(stream('a', 3), stream('b', 2), 1, 5, 0)
	f.Add(append(stream('a', 3), 0xFF, 0xF1), []byte("x"), 0, 3, 7)
	f.Fuzz(func(t *testing.T, p0, p1 []byte, keep0, stop0, keep1 int) {
		if keep0 < 0 || keep1 < 0 || stop0 < 1 || keep0 > stop0 || stop0 > 1<<16 {
			t.Skip("not a segment Plan makes")
		}
		segs := []Segment{{Keep: keep0, Stop: stop0}, {Keep: keep1}}
		var out bytes.Buffer
		err := Join(&out, readers(p0, p1), segs)

		f0, err0 := framesOf(p0)
		f1, err1 := framesOf(p1)
		switch {
		case len(f0) < stop0:
			if err == nil || !strings.HasPrefix(err.Error(), "segment 0: ") || errors.Is(err, ErrADTS) != (err0 != nil) {
				t.Fatalf("part 0 has %d frames (error %v), %d needed: %v", len(f0), err0, stop0, err)
			}
		case err1 != nil:
			if !errors.Is(err, ErrADTS) || !strings.HasPrefix(err.Error(), "segment 1: ") {
				t.Fatalf("part 1 is not ADTS after %d frames: %v", len(f1), err)
			}
		case err != nil:
			t.Fatal(err)
		default:
			want := append(bytes.Join(f0[keep0:stop0], nil), bytes.Join(f1[min(keep1, len(f1)):], nil)...)
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("%d bytes joined, want %d", out.Len(), len(want))
			}
		}
	})
}
