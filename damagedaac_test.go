package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
)

// audioPacket is where one audio packet's bytes lie in a file, as ffprobe reports it.
type audioPacket struct{ pos, size int }

// audioPackets are the packets of the first audio stream of the file at path, in file order.
func audioPackets(t testing.TB, path string) []audioPacket {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "packet=pos,size", "-of", "compact=p=0:nk=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var ps []audioPacket
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var p audioPacket
		for _, kv := range strings.Split(l, "|") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("ffprobe %s: %q", path, l)
			}
			switch k {
			case "pos":
				p.pos = n
			case "size":
				p.size = n
			}
		}
		if p.size > 0 { // not a blank line
			ps = append(ps, p)
		}
	}
	if len(ps) < 10 {
		t.Fatalf("ffprobe %s: %d audio packets", path, len(ps))
	}
	return ps
}

// audioHash is a hash of the bytes of every packet of the first audio stream of the file at path:
// a copy of the stream into another container has the same, an encode another.
func audioHash(t testing.TB, path string) string {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "quiet", "-i", path, "-map", "0:a:0", "-c", "copy", "-f", "hash", "-").Output()
	if err != nil || len(out) == 0 {
		t.Fatalf("hash of %s: %v", path, err)
	}
	return string(out)
}

// probedSeconds is how long the audio file at path sounds, as the upload's probe counts it: what
// decodes of it (ffmpeg alone gives up on a file most of whose frames fail).
func probedSeconds(t testing.TB, path string) float64 {
	t.Helper()
	b := readFile(t, path)
	info, err := probeAudio(t.Context(), ffmpeg.Tools{FFmpeg: "ffmpeg", FFprobe: "ffprobe"}, path, media.SniffAudio(b[:min(len(b), 512)]))
	if err != nil {
		t.Fatalf("probeAudio: %v", err)
	}
	return info.Duration
}

// lastBox is the type and offset of the last top-level box of the ISO-BMFF file b.
func lastBox(t testing.TB, b []byte) (typ string, at int) {
	t.Helper()
	for next := 0; next+8 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[next:]))
		if n < 8 {
			t.Fatalf("box of %d bytes at %d", n, next)
		}
		typ, at = string(b[next+4:next+8]), next
		next += n
	}
	return typ, at
}

// damagedAAC makes a 3 s tone as AAC-LC in container ("m4a", with its index first as phones and
// editors write it; "mp4-with-video", a phone's video sent as the audio; "fragmented-m4a", in fragments as a recorder writes it; "mka"; "live-mka",
// written as a live stream's recorder writes it, with neither length nor index) in dir, and
// damages it as how says, each a class of real file whose damage lies in the frames, never in the
// index:
//
//   - "clean": as made;
//   - "flip": the middle frame's bytes inverted (ffmpeg: "Number of bands … exceeds limit");
//   - "flip-most": three frames of every four inverted, more than the 2/3 that make ffmpeg give up
//     on a file (exit 69) unless told otherwise;
//   - "cut": the file ends halfway through its last frame, as a recording stopped there or a copy
//     that broke off (ffmpeg: "Input buffer exhausted before END element", "partial file", "File
//     ended prematurely"), within the 0.5 s a header's length may be off by;
//   - "cut-2s": the file ends 2 s before the length its index states.
//
// The frames are found by their bytes: those of an M4A with its index first, where ffprobe reports
// where each lies in the mdat, copied as they are into the container.
func damagedAAC(t testing.TB, dir, container, how string) string {
	t.Helper()
	return damagedAACOf(t, dir, "sine=f=440:d=3", container, how)
}

// damagedAACOf is damagedAAC of the sound the lavfi source src makes, whose frames must all differ.
// Its damage "flip-early" is flip-most's in the first two thirds of the frames alone.
func damagedAACOf(t testing.TB, dir, src, container, how string) string {
	t.Helper()
	m4a := makeAudio(t, dir, "tone.m4a", src, "-c:a", "aac", "-movflags", "+faststart")
	b := readFile(t, m4a)
	packets := audioPackets(t, m4a)
	if typ, at := lastBox(t, b); typ != "mdat" || packets[0].pos < at+8 {
		t.Fatalf("the M4A ends with a %q box at %d, its first frame at %d: the frames (mdat) do not come last", typ, at, packets[0].pos)
	}
	orig := slices.Clone(b)
	frame := func(i int) []byte { return orig[packets[i].pos : packets[i].pos+packets[i].size] }
	middle, last, third := frame(len(packets)/2), frame(len(packets)-1), frame(len(packets)/3)
	// What follows the M4A as ffmpeg's first input: the other inputs and the output's options.
	remux := map[string][]string{
		"m4a":            nil,
		"mp4-with-video": {"-f", "lavfi", "-i", "testsrc2=s=64x32:r=5:d=3", "-map", "0:a", "-map", "1:v", "-c:a", "copy", "-c:v", "libx264", "-movflags", "+faststart", "-f", "mp4"},
		"fragmented-m4a": {"-c", "copy", "-movflags", "frag_keyframe+empty_moov", "-frag_duration", "500000", "-f", "mp4"},
		"mka":            {"-c", "copy", "-f", "matroska"},
		"live-mka":       {"-c", "copy", "-f", "matroska", "-live", "1"},
	}
	args, ok := remux[container]
	if !ok {
		t.Fatalf("no container %q", container)
	}
	if args != nil {
		out := filepath.Join(dir, "remuxed")
		ffmpegMake(t, slices.Concat([]string{"-i", m4a}, args, []string{out})...)
		b = readFile(t, out)
	}
	at := func(frame []byte) int {
		i := bytes.Index(b, frame)
		if i < 0 || bytes.Index(b[i+1:], frame) >= 0 {
			t.Fatalf("the %s holds a frame of the M4A %d times, want once", container, bytes.Count(b, frame))
		}
		return i
	}
	switch how {
	case "clean":
	case "flip":
		i := at(middle)
		flipBytes(b[i : i+len(middle)])
	case "cut":
		b = b[:at(last)+len(last)/2]
	case "flip-most", "flip-early":
		for k := range packets {
			if k%4 != 0 && (how == "flip-most" || k < len(packets)*2/3) {
				i := at(frame(k))
				flipBytes(b[i : i+packets[k].size])
			}
		}
	case "cut-2s":
		b = b[:at(third)+len(third)/2]
	default:
		t.Fatalf("no AAC damage %q", how)
	}
	ext := ".m4a"
	if strings.HasSuffix(container, "mka") {
		ext = ".mka"
	}
	return corpusFile(t, dir, "damaged-"+how+"-"+container+ext, b)
}

// damagedAACFile is damagedAAC as a corpus case's audio.
func damagedAACFile(container, how string) func(testing.TB, string) string {
	return func(t testing.TB, dir string) string { return damagedAAC(t, dir, container, how) }
}

// TestDamagedAAC: AAC-LC in an M4A or a Matroska file, which the render copies when it is whole,
// is encoded instead when its frames do not all decode at upload (a flipped frame, a recording
// cut off in its last frame), so the video's sound decodes cleanly to its end and lasts what
// decoded; the job completes either way. A clean file is still copied, packet for packet. A file
// cut seconds short of the length its index states is refused, as any such cut is.
func TestDamagedAAC(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	// A server that encodes audio in 3 segments at once, as it does long audio on 3 cores.
	inSegments := newTestEnv(t, nil, func(s *server) { splitAudio(s, 3) })
	img := writeFixture(t, "picture.png", encodePNG(t, corpusPicture))
	// make test renders every other row; make e2e all of them.
	for _, c := range sampled([]struct {
		container, how string
		errors         bool // ffmpeg reports errors decoding it
		copied         bool // the video holds the upload's own packets; else its audio is encoded
		refused        bool // a 400 at upload
		segments       bool // encoded in segments (segments.go)
		waveform       bool // with a waveform, drawn from the decoded sound (compose.go)
	}{
		{container: "m4a", how: "clean", copied: true},
		{container: "m4a", how: "flip", errors: true},
		{container: "m4a", how: "cut", errors: true},
		{container: "m4a", how: "cut-2s", errors: true, refused: true},
		{container: "m4a", how: "flip", errors: true, segments: true},
		{container: "mp4-with-video", how: "clean", copied: true},
		{container: "mp4-with-video", how: "flip", errors: true},
		{container: "fragmented-m4a", how: "clean", copied: true},
		{container: "fragmented-m4a", how: "cut", errors: true},
		{container: "mka", how: "clean", copied: true},
		{container: "mka", how: "flip", errors: true},
		{container: "mka", how: "cut", errors: true},
		{container: "live-mka", how: "flip-most", errors: true},
		{container: "live-mka", how: "flip-most", errors: true, segments: true},
		{container: "live-mka", how: "flip-most", errors: true, waveform: true},
	}, 2) {
		name, env := c.container+"-"+c.how, e
		if c.segments {
			name, env = name+"-in-segments", inSegments
		}
		var fields map[string]string
		if c.waveform {
			name, fields = name+"-with-waveform", map[string]string{"waveform": "bars"}
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := damagedAAC(t, t.TempDir(), c.container, c.how)
			if msg := ffmpegErrors(t, path); (msg != "") != c.errors {
				t.Fatalf("decoding the fixture reports %q; want errors: %v", msg, c.errors)
			}
			key := env.newKey(t, name)
			if c.refused {
				code, body := env.submit(t, key, img, path, nil)
				if msg, _ := body["error"].(string); code != 400 || !strings.Contains(msg, "truncated or damaged") || !strings.Contains(msg, "export it again") {
					t.Errorf("submit: %d %v, want a 400 saying the audio is truncated or damaged, to upload it whole or export it again", code, body)
				}
				return
			}
			code, body := env.submit(t, key, img, path, fields)
			if code != 201 {
				t.Fatalf("submit: %d %v", code, body)
			}
			st := env.wait(t, key, body["jobId"].(string), StatusCompleted)
			video, _ := download(t, st["outputVideo"].(string))
			out := writeFixture(t, "out.mp4", video)
			if copied := audioHash(t, out) == audioHash(t, path); copied != c.copied {
				t.Errorf("the audio was copied: %v, want %v", copied, c.copied)
			}
			checkCorpusOutput(t, out, path, corpusCase{seconds: probedSeconds(t, path)})
		})
	}
}

// TestDamagedAACWaveform: the waveform of damaged audio is drawn from the sound the video holds,
// the frames that decode one after another, not from where they lay in the damaged file, whether
// every frame is encoded or the waveform's band is spliced into the picture (waveformsplice.go).
func TestDamagedAACWaveform(t *testing.T) {
	t.Parallel()
	// 2 s of a quiet tone, then 1 s of a loud one; 3 frames of every 4 of the quiet part do not
	// decode, so the video's sound is 0.5 s of the quiet tone, then the loud one to 1.5 s.
	path := damagedAACOf(t, t.TempDir(), "sine=f=440:d=3,volume='if(lt(t,2),0.01,1)':eval=frame", "live-mka", "flip-early")
	// Dark noise: the white bars stand out, and the picture is not too smooth to splice.
	dark := image.NewGray(image.Rect(0, 0, 320, 180))
	for i := range dark.Pix {
		dark.Pix[i] = uint8(uint32(i)*2654435761>>24) % 60
	}
	img := writeFixture(t, "dark.png", encodePNG(t, dark))
	for _, splice := range []bool{false, true} {
		t.Run(fmt.Sprintf("splice=%v", splice), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, nil, func(s *server) { s.renderer.spliceWaveforms = splice })
			key := e.newKey(t, "waveform")
			code, body := e.submit(t, key, img, path, map[string]string{"waveform": "bars"})
			if code != 201 {
				t.Fatalf("submit: %d %v", code, body)
			}
			id := body["jobId"].(string)
			st := e.wait(t, key, id, StatusCompleted)
			if spliced := strings.Contains(e.logs.String(), "band was spliced"); spliced != splice {
				t.Errorf("the band was spliced: %v, want %v", spliced, splice)
			}
			video, _ := download(t, st["outputVideo"].(string))
			out := writeFixture(t, "out.mp4", video)
			// The bars are white over the dark picture, in the band at the bottom: short for the
			// quiet tone, full for the loud one.
			bright := func(at float64) int {
				w, h, rgb := decodeFrameAt(t, out, at)
				top, height := waveformBand(frameSize{W: w, H: h})
				n := 0
				for i := top * w * 3; i < (top+height)*w*3; i += 3 {
					if rgb[i] > 200 && rgb[i+1] > 200 && rgb[i+2] > 200 {
						n++
					}
				}
				return n
			}
			quiet, loud := bright(0.2), bright(1.2)
			if loud < 4*quiet || loud == 0 {
				t.Errorf("the waveform has %d white pixels at 0.2 s, in the quiet tone, and %d at 1.2 s, in the loud one: it is not drawn from the sound the video holds", quiet, loud)
			}
			checkCorpusOutput(t, out, path, corpusCase{seconds: probedSeconds(t, path), picture: dark})
		})
	}
}
