package main

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// The corpus: one file (or more) of every class of real upload that once rendered wrong or was
// refused with the wrong words, each made here from generated media and byte surgery, each with its
// expected outcome, all run through the real HTTP handler, renderer and ffmpeg. testdata/corpus/
// README.md lists the classes; VIDGEN_CORPUS_DIR=dir keeps a copy of every file made.

// corpusCase is one upload and what must come of it.
type corpusCase struct {
	name  string
	image func(t testing.TB, dir string) string // nil: a clean PNG of corpusPicture
	audio func(t testing.TB, dir string) string // nil: 1 s of tone as WAV
	// status 0: accepted (201) and COMPLETED. Otherwise the submission's status, and words that
	// its error message must hold (case-insensitive).
	status int
	words  []string
	// picture is what the first frame must show (nil: corpusPicture, unless the audio is the point).
	picture image.Image
	// seconds is the sound the input really holds (0: what ffmpeg decodes of it).
	seconds float64
	needs   string // a program the case needs; skipped without it
}

// corpusPicture is the picture most image cases hold: four solid colours, easy to check.
var corpusPicture = quad(64, 32)

func TestCorpus(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.HeifConvert = "heif-convert"
	e := newTestEnv(t, &cfg)
	noHeif := testConfig(t.TempDir())
	noHeif.HeifConvert = ""
	eNoHeif := newTestEnv(t, &noHeif)

	cases := []corpusCase{
		// PNG as browsers show it.
		{name: "png-bytes-after-iend", image: bytesOf("trail.png", func(t testing.TB) []byte { return append(encodePNG(t, corpusPicture), '\n') })},
		{name: "png-junk-after-iend", image: bytesOf("junk.png", func(t testing.TB) []byte {
			return append(encodePNG(t, corpusPicture), bytes.Repeat([]byte("trailer "), 100)...)
		})},
		{name: "png-no-iend", image: bytesOf("noiend.png", func(t testing.TB) []byte { return pngChunks(t, dropIEND) })},
		{name: "png-final-crc-cut", image: bytesOf("cutcrc.png", func(t testing.TB) []byte { b := pngChunks(t, dropIEND); return b[:len(b)-2] })},
		{name: "png-bad-zlib-checksum", image: bytesOf("adler.png", func(t testing.TB) []byte { return pngChunks(t, badAdler) })},
		{name: "png-broken-iccp", image: bytesOf("iccp.png", func(t testing.TB) []byte { return pngChunks(t, brokenICCP) })},
		{name: "png-broken-iccp-crc", image: bytesOf("iccpcrc.png", func(t testing.TB) []byte { return pngChunks(t, brokenICCPCRC) })},
		{name: "png-rows-missing", status: 400, words: []string{"image", "PNG", "truncated"}, image: bytesOf("rows.png", func(t testing.TB) []byte {
			return pngChunks(t, halfIDAT)
		})},
		// JPEG stored as RGB: ffmpeg reads it as YCbCr when the Adobe marker follows the frame header.
		{name: "jpeg-rgb-adobe-after-sof", image: bytesOf("rgb-late.jpg", func(t testing.TB) []byte { return rgbJPEG(64, 32, corpusPicture, "after-sof") })},
		{name: "jpeg-rgb-adobe", image: bytesOf("rgb.jpg", func(t testing.TB) []byte { return rgbJPEG(64, 32, corpusPicture, "before-sof") })},
		{name: "jpeg-rgb-component-ids", image: bytesOf("rgb-ids.jpg", func(t testing.TB) []byte { return rgbJPEG(64, 32, corpusPicture, "ids") })},
		{name: "jpeg-rgb-adobe-with-exif-6", picture: oriented(corpusPicture, 6), image: bytesOf("rgb-exif.jpg", func(t testing.TB) []byte {
			return withOrientation(rgbJPEG(64, 32, corpusPicture, "after-sof"), 6, binary.LittleEndian)
		})},
		// Restart intervals: an unusual one decodes; a scan missing a restart marker decodes with
		// errors in ffmpeg (black blocks, exit 0) and is refused rather than rendered black.
		{name: "jpeg-restart-interval-7", image: bytesOf("dri7.jpg", func(t testing.TB) []byte { return rgbJPEG(64, 32, corpusPicture, "dri7") })},
		{name: "jpeg-restart-marker-missing", status: 400, words: []string{"image", "JPEG", "could not be decoded"}, image: bytesOf("rstmissing.jpg", func(t testing.TB) []byte {
			return rgbJPEG(64, 32, corpusPicture, "rst-missing")
		})},
		// JPEG whose EXIF block is malformed (brokenEXIF): browsers show it, ignoring the EXIF.
		{name: "jpeg-exif-tiff-header-ffff", image: brokenEXIFFile("tiff-header-ffff")},
		{name: "jpeg-exif-ifd-count-past-segment", picture: oriented(corpusPicture, 6), image: brokenEXIFFile("ifd-count-past")},
		{name: "jpeg-exif-ifd-offset-past-segment", image: brokenEXIFFile("ifd-offset-past")},
		{name: "jpeg-app1-length-0", image: brokenEXIFFile("app1-length-0")},
		// More image types.
		{name: "gif-animated-first-frame", image: bytesOf("anim.gif", func(t testing.TB) []byte { return animatedGIF(t) })},
		{name: "gif-transparent", picture: overWhite(quadrants(64, 32, red, color.NRGBA{}, blue, yellow)), image: bytesOf("transparent.gif", func(t testing.TB) []byte {
			return paletteGIF(t, quadrants(64, 32, red, color.NRGBA{}, blue, yellow))
		})},
		{name: "bmp-24bit", image: bytesOf("img.bmp", func(t testing.TB) []byte { return encodeWith(t, bmp.Encode, opaqueRGBA(corpusPicture)) })},
		{name: "bmp-8bit-paletted", image: bytesOf("pal.bmp", func(t testing.TB) []byte { return encodeWith(t, bmp.Encode, paletted(corpusPicture)) })},
		{name: "tiff-rgb", image: bytesOf("img.tiff", func(t testing.TB) []byte { return encodeWith(t, tiffEncode, opaqueRGBA(corpusPicture)) })},
		{name: "tiff-alpha", picture: overWhite(quadrants(64, 32, red, color.NRGBA{0, 0, 255, 128}, color.NRGBA{}, yellow)), image: bytesOf("alpha.tiff", func(t testing.TB) []byte {
			return encodeWith(t, tiffEncode, quadrants(64, 32, red, color.NRGBA{0, 0, 255, 128}, color.NRGBA{}, yellow))
		})},
		{name: "heic", needs: "heif-enc", image: heifFile("img.heic"), picture: quad(128, 64)},
		{name: "avif", needs: "heif-enc", image: heifFile("img.avif", "-A"), picture: quad(128, 64)},
		// Types named in the 415, not mistaken for another.
		{name: "heic-in-audio-part", needs: "heif-enc", status: 415, words: []string{"audio", "HEIC image"}, audio: heifFile("img.heic")},
		{name: "avif-in-audio-part", needs: "heif-enc", status: 415, words: []string{"audio", "AVIF image"}, audio: heifFile("img.avif", "-A")},
		{name: "mp4-video-as-image", status: 415, words: []string{"image", "MP4/M4A (video or audio)"}, image: func(t testing.TB, dir string) string {
			out := filepath.Join(dir, "video.mp4")
			ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=64x32:d=0.5", "-c:v", "libx264", out)
			return out
		}},
		{name: "pdf-as-image", status: 415, words: []string{"image", "PDF document"}, image: bytesOf("doc.pdf", func(testing.TB) []byte { return []byte("%PDF-1.4\n%âãÏÓ\n1 0 obj\n") })},

		// Audio: truncated and lying files.
		{name: "m4a-cut-in-half", status: 400, words: []string{"audio", "M4A", "truncated"}, audio: func(t testing.TB, dir string) string {
			b := readFile(t, makeAudio(t, dir, "whole.m4a", "sine=f=440:d=6", "-c:a", "aac", "-movflags", "+faststart"))
			return corpusFile(t, dir, "half.m4a", b[:len(b)/2])
		}},
		{name: "m4a-cut-in-half-index-last", status: 400, words: []string{"audio", "M4A"}, audio: func(t testing.TB, dir string) string {
			b := readFile(t, makeAudio(t, dir, "whole.m4a", "sine=f=440:d=6", "-c:a", "aac"))
			return corpusFile(t, dir, "half-moov-last.m4a", b[:len(b)/2])
		}},
		// Cut files whose header states their length exactly: no decoder error needed to show it.
		{name: "wav-cut-between-samples", status: 400, words: []string{"audio", "WAV", "truncated"}, audio: func(t testing.TB, dir string) string {
			b := readFile(t, makeAudio(t, dir, "whole.wav", "sine=f=440:d=4", "-ac", "2"))
			return corpusFile(t, dir, "half.wav", b[:bytes.Index(b, []byte("data"))+8+4*44100])
		}},
		{name: "wav-size-left-unknown", audio: func(t testing.TB, dir string) string {
			// A recorder that streams writes 0xFFFFFFFF, "until the end of the file".
			b := readFile(t, makeAudio(t, dir, "whole.wav", "sine=f=440:d=2", "-ac", "2"))
			binary.LittleEndian.PutUint32(b[bytes.Index(b, []byte("data"))+4:], 0xffffffff)
			return corpusFile(t, dir, "stream.wav", b)
		}},
		{name: "aiff-cut-between-samples", status: 400, words: []string{"audio", "AIFF", "truncated"}, audio: func(t testing.TB, dir string) string {
			b := readFile(t, makeAudio(t, dir, "whole.aiff", "sine=f=440:d=4", "-ac", "2"))
			return corpusFile(t, dir, "half.aiff", b[:bytes.Index(b, []byte("SSND"))+16+4*44100])
		}},
		{name: "flac-cut-in-half", status: 400, words: []string{"audio", "FLAC", "truncated"}, audio: func(t testing.TB, dir string) string {
			b := readFile(t, makeAudio(t, dir, "whole.flac", "sine=f=440:d=4"))
			return corpusFile(t, dir, "half.flac", b[:len(b)/2])
		}},
		{name: "mp3-cut-in-half", status: 400, words: []string{"audio", "MP3", "truncated"}, audio: func(t testing.TB, dir string) string {
			b := readFile(t, makeAudio(t, dir, "whole.mp3", "sine=f=440:d=4", "-c:a", "libmp3lame"))
			return corpusFile(t, dir, "half.mp3", b[:len(b)/2])
		}},
		// Without LAME's Info frame nothing states an MP3's length: what it holds is the sound.
		{name: "mp3-without-info-cut-in-half", audio: func(t testing.TB, dir string) string {
			b := readFile(t, makeAudio(t, dir, "whole.mp3", "sine=f=440:d=4", "-c:a", "libmp3lame", "-write_xing", "0"))
			return corpusFile(t, dir, "half-noinfo.mp3", b[:len(b)/2])
		}},
		{name: "m4a-header-claims-10x", seconds: 3, audio: func(t testing.TB, dir string) string {
			return corpusFile(t, dir, "lie.m4a", stretchMP4Duration(t, readFile(t, makeAudio(t, dir, "src.m4a", "sine=f=440:d=3", "-c:a", "aac")), 10))
		}},
		{name: "opus-large-pre-skip", audio: func(t testing.TB, dir string) string {
			return corpusFile(t, dir, "preskip.opus", withPreSkip(t, readFile(t, makeAudio(t, dir, "src.opus", "sine=f=440:d=4", "-c:a", "libopus", "-f", "ogg")), 64800))
		}},
		// ID3 before other codecs.
		{name: "flac-with-id3", audio: func(t testing.TB, dir string) string {
			return corpusFile(t, dir, "id3.flac", append(id3Tag(), readFile(t, makeAudio(t, dir, "src.flac", "sine=f=440:d=2"))...))
		}},
		{name: "adts-aac-with-id3", audio: func(t testing.TB, dir string) string {
			return corpusFile(t, dir, "id3.aac", append(id3Tag(), readFile(t, makeAudio(t, dir, "src.aac", "sine=f=440:d=2", "-c:a", "aac", "-f", "adts"))...))
		}},
		// ADTS AAC whose last frame does not decode (damagedADTS), which a copy would carry into the video.
		{name: "adts-aac-last-frame-flipped", audio: damagedADTSFile("flip")},
		{name: "adts-aac-last-frame-cut", audio: damagedADTSFile("cut")},
		// ADTS AAC with bytes that are no frame inside a frame, which ffprobe's packet positions
		// then miscount: encoded, not copied.
		{name: "adts-aac-zeros-inserted", audio: func(t testing.TB, dir string) string {
			b := readFile(t, makeAudio(t, dir, "src.aac", "sine=f=440:d=5", "-c:a", "aac", "-f", "adts"))
			return corpusFile(t, dir, "zeros.aac", slices.Concat(b[:30000], make([]byte, 500), b[30000:]))
		}},
		// AAC in an M4A or Matroska file with a frame that does not decode (damagedAAC), which a
		// copy would carry into the video: encoded.
		{name: "m4a-aac-middle-frame-flipped", audio: damagedAACFile("m4a", "flip")},
		{name: "m4a-aac-last-frame-cut", audio: damagedAACFile("m4a", "cut")},
		{name: "fragmented-m4a-aac-last-frame-cut", audio: damagedAACFile("fragmented-m4a", "cut")},
		{name: "mka-aac-last-frame-cut", audio: damagedAACFile("mka", "cut")},
		// More audio types.
		{name: "flac", audio: audioRecipe("tone.flac", "sine=f=440:d=2")},
		{name: "aiff", audio: audioRecipe("tone.aiff", "sine=f=440:d=2")},
		{name: "adts-aac", audio: audioRecipe("tone.aac", "sine=f=440:d=2", "-c:a", "aac", "-f", "adts")},
		{name: "webm-opus", audio: audioRecipe("tone.webm", "sine=f=440:d=2", "-c:a", "libopus", "-f", "webm")},
		{name: "mka-vorbis", audio: audioRecipe("tone.mka", "sine=f=440:d=2", "-c:a", "libvorbis", "-f", "matroska")},
		{name: "mka-flac-5.1-96k", audio: audioRecipe("surround.mka", "sine=f=440:d=2:r=96000", "-af", "aformat=channel_layouts=5.1", "-c:a", "flac", "-f", "matroska")},
		{name: "m4a-alac", audio: audioRecipe("alac.m4a", "sine=f=440:d=2", "-c:a", "alac")},
		{name: "webm-with-video-only", status: 415, words: []string{"audio", "WebM/Matroska", "no audio track"}, audio: func(t testing.TB, dir string) string {
			out := filepath.Join(dir, "video.webm")
			ffmpegMake(t, "-f", "lavfi", "-i", "testsrc2=s=64x32:d=0.5", "-c:v", "libvpx", out)
			return out
		}},
		{name: "ogg-flac", status: 415, words: []string{"audio", "not a supported format"}, audio: audioRecipe("flac.ogg", "sine=f=440:d=1", "-c:a", "flac", "-f", "ogg")},
	}
	tools := map[string]bool{}
	for _, tool := range []string{"heif-enc", "heif-convert"} {
		_, err := exec.LookPath(tool)
		tools[tool] = err == nil
	}
	for _, c := range sampled(cases, matrixSample) {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if c.needs != "" && !tools[c.needs] {
				t.Skipf("needs %s (Debian: libheif-examples)", c.needs)
			}
			dir := t.TempDir()
			img := filepath.Join(dir, "picture.png")
			os.WriteFile(img, encodePNG(t, corpusPicture), 0o644)
			if c.image != nil {
				img = c.image(t, dir)
			}
			aud := fixture(t, "corpus.wav")
			if c.audio != nil {
				aud = c.audio(t, dir)
			}
			keepCorpusFile(t, c.name, img, aud)
			env := e
			if (c.name == "heic" || c.name == "avif") && !tools["heif-convert"] {
				env = eNoHeif
				c.status, c.words = 415, []string{"image", strings.ToUpper(c.name), "heif-convert"}
			}
			key := env.newKey(t, c.name)
			code, body := env.submit(t, key, img, aud, nil)
			if c.status != 0 {
				msg, _ := body["error"].(string)
				if code != c.status {
					t.Fatalf("status %d (%q), want %d", code, msg, c.status)
				}
				for _, w := range c.words {
					if !strings.Contains(strings.ToLower(msg), strings.ToLower(w)) {
						t.Errorf("message %q lacks %q", msg, w)
					}
				}
				return
			}
			if code != 201 {
				t.Fatalf("submit: %d %v", code, body)
			}
			st := env.wait(t, key, body["jobId"].(string), StatusCompleted)
			video, _ := download(t, st["outputVideo"].(string))
			out := writeFixture(t, "out.mp4", video)
			checkCorpusOutput(t, out, aud, c)
		})
	}
	// Without heif-convert, HEIC and AVIF are a 415 that says what is missing.
	t.Run("heic-without-heif-convert", func(t *testing.T) {
		t.Parallel()
		if !tools["heif-enc"] {
			t.Skip("needs heif-enc (Debian: libheif-examples)")
		}
		key := eNoHeif.newKey(t, "noheif")
		code, body := eNoHeif.submit(t, key, heifFile("img.heic")(t, t.TempDir()), fixture(t, "corpus.wav"), nil)
		if msg, _ := body["error"].(string); code != 415 || !strings.Contains(msg, "HEIC") || !strings.Contains(msg, "heif-convert") {
			t.Errorf("HEIC without heif-convert: %d %q", code, msg)
		}
	})
}

func init() {
	fixtureRecipes["corpus.wav"] = []string{"-f", "lavfi", "-i", "sine=f=440:d=1", "-ac", "1", "-ar", "16000"}
}

// checkCorpusOutput asserts what every rendered corpus file must give: a video that plays
// everywhere and decodes to its end without an error, whose picture is the expected one (not black,
// not false colours), and whose video and audio both end within 0.05 s of the sound the input holds.
func checkCorpusOutput(t testing.TB, out, audio string, c corpusCase) {
	t.Helper()
	p := ffprobe(t, out)
	if p.VideoCodec != "h264" || p.PixFmt != "yuv420p" || p.AudioCodec != "aac" {
		t.Errorf("streams: %+v, want h264 yuv420p + aac", p)
	}
	if msg := ffmpegErrors(t, out); msg != "" {
		t.Errorf("the video does not decode cleanly:\n%s", msg)
	}
	want := c.seconds
	if want == 0 {
		want = decodedSeconds(t, audio)
	}
	if got := decodedSeconds(t, out); math.Abs(got-want) > 0.05 {
		t.Errorf("output audio lasts %.3f s, the input's sound %.3f s", got, want)
	}
	if got := videoSeconds(t, out); math.Abs(got-want) > 0.05 {
		t.Errorf("video lasts %.3f s, the input's sound %.3f s", got, want)
	}
	pic := c.picture
	if pic == nil {
		pic = corpusPicture
	}
	w, h, rgb := decodeFrame(t, out)
	b := pic.Bounds()
	comparePicture(t, pic, b.Dx()&^1, b.Dy()&^1, w, h, rgb, 40)
}

// decodedSeconds is how long the first audio stream of the file at path lasts when decoded.
func decodedSeconds(t testing.TB, path string) float64 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-map", "0:a:0", "-f", "null", "-progress", "pipe:1", "-").Output()
	if err != nil {
		t.Fatalf("decode %s: %v", filepath.Base(path), err)
	}
	us := -1.0
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "out_time_us="); ok {
			us, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if us < 0 {
		t.Fatalf("decode %s: no duration in %q", filepath.Base(path), out)
	}
	return us / 1e6
}

// videoSeconds is where the video stream of the MP4 at path ends: its last frame's end.
func videoSeconds(t testing.TB, path string) float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	end := 0.0
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, ",")
		if len(f) < 2 {
			continue
		}
		pts, _ := strconv.ParseFloat(f[0], 64)
		d, _ := strconv.ParseFloat(f[1], 64)
		end = max(end, pts+d)
	}
	return end
}

// keepCorpusFile copies a case's inputs into $VIDGEN_CORPUS_DIR, when set, for use outside tests.
func keepCorpusFile(t testing.TB, name string, paths ...string) {
	dir := os.Getenv("VIDGEN_CORPUS_DIR")
	if dir == "" {
		return
	}
	os.MkdirAll(dir, 0o755)
	for _, p := range paths {
		if strings.HasPrefix(p, fixtureDir) && strings.Contains(p, "corpus.wav") {
			continue
		}
		os.WriteFile(filepath.Join(dir, name+"--"+filepath.Base(p)), readFile(t, p), 0o644)
	}
}

func corpusFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func bytesOf(name string, make func(testing.TB) []byte) func(testing.TB, string) string {
	return func(t testing.TB, dir string) string { return corpusFile(t, dir, name, make(t)) }
}

// makeAudio renders the lavfi source src with ffmpeg's args into dir/name.
func makeAudio(t testing.TB, dir, name, src string, args ...string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	ffmpegMake(t, append(append([]string{"-f", "lavfi", "-i", src}, args...), out)...)
	return out
}

func audioRecipe(name, src string, args ...string) func(testing.TB, string) string {
	return func(t testing.TB, dir string) string { return makeAudio(t, dir, name, src, args...) }
}

// pngChunk is one chunk of a PNG: its type, data and stored CRC.
type pngChunk struct {
	kind string
	data []byte
	crc  uint32
}

// pngChunks encodes corpusPicture as a PNG, lets edit change its chunks, and writes them back.
func pngChunks(t testing.TB, edit func([]pngChunk) []pngChunk) []byte {
	t.Helper()
	b := encodePNG(t, corpusPicture)
	var cs []pngChunk
	for p := 8; p+12 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[p:]))
		cs = append(cs, pngChunk{string(b[p+4 : p+8]), b[p+8 : p+8+n], binary.BigEndian.Uint32(b[p+8+n:])})
		p += 12 + n
	}
	out := []byte("\x89PNG\r\n\x1a\n")
	for _, c := range edit(cs) {
		out = binary.BigEndian.AppendUint32(out, uint32(len(c.data)))
		out = append(append(out, c.kind...), c.data...)
		out = binary.BigEndian.AppendUint32(out, c.crc)
	}
	return out
}

func withCRC(kind string, data []byte) pngChunk {
	return pngChunk{kind, data, crc32.ChecksumIEEE(append([]byte(kind), data...))}
}

func dropIEND(cs []pngChunk) []pngChunk { return cs[:len(cs)-1] }

func badAdler(cs []pngChunk) []pngChunk {
	for i, c := range cs {
		if c.kind == "IDAT" {
			d := append([]byte{}, c.data...)
			d[len(d)-1] ^= 0xff
			cs[i] = withCRC("IDAT", d)
		}
	}
	return cs
}

func halfIDAT(cs []pngChunk) []pngChunk {
	for i, c := range cs {
		if c.kind == "IDAT" {
			cs[i] = withCRC("IDAT", c.data[:len(c.data)/2])
		}
	}
	return cs
}

func brokenICCP(cs []pngChunk) []pngChunk {
	iccp := withCRC("iCCP", append([]byte("icc\x00\x00"), "\x78\x9cnot a zlib stream"...))
	return append([]pngChunk{cs[0], iccp}, cs[1:]...)
}

func brokenICCPCRC(cs []pngChunk) []pngChunk {
	iccp := withCRC("iCCP", append([]byte("icc\x00\x00"), "\x78\x9cnot a zlib stream"...))
	iccp.crc++
	return append([]pngChunk{cs[0], iccp}, cs[1:]...)
}

// rgbJPEG writes a baseline 3-component JPEG of img (whose 8×8 blocks must each be one colour),
// stored as RGB, not YCbCr. variant places the Adobe marker (transform 0) "before-sof" or
// "after-sof", or names the components R, G, B with no Adobe marker ("ids"); "dri7" adds a
// restart interval of 7 blocks (not a divisor of a row's 8), "rst-missing" leaves one marker out.
func rgbJPEG(w, h int, img image.Image, variant string) []byte {
	var b bytes.Buffer
	seg := func(marker byte, data []byte) {
		b.Write([]byte{0xff, marker, byte((len(data) + 2) >> 8), byte(len(data) + 2)})
		b.Write(data)
	}
	adobe := append([]byte("Adobe\x00\x64\x00\x00\x00\x00"), 0)
	ids := []byte{1, 2, 3}
	if variant == "ids" {
		ids = []byte("RGB")
	}
	b.Write([]byte{0xff, 0xd8})
	if variant != "ids" && variant != "after-sof" {
		seg(0xee, adobe)
	}
	seg(0xdb, append([]byte{0}, bytes.Repeat([]byte{8}, 64)...))
	seg(0xc0, []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 3, ids[0], 0x11, 0, ids[1], 0x11, 0, ids[2], 0x11, 0})
	if variant == "after-sof" {
		seg(0xee, adobe)
	}
	dcBits := []byte{0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0}
	dht := append([]byte{0x00}, dcBits...)
	dht = append(dht, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
	dht = append(dht, 0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00)
	seg(0xc4, dht)
	interval := 0
	if variant == "dri7" || variant == "rst-missing" {
		interval = 7
		seg(0xdd, []byte{0, byte(interval)})
	}
	seg(0xda, []byte{3, ids[0], 0x00, ids[1], 0x00, ids[2], 0x00, 0, 63, 0})
	scan := newDCScan(&b, dcBits)
	var prev [3]int
	mcu, rst := 0, 0
	for by := 0; by < h; by += 8 {
		for bx := 0; bx < w; bx += 8 {
			if interval > 0 && mcu > 0 && mcu%interval == 0 {
				scan.flush()
				if !(variant == "rst-missing" && rst == 1) {
					b.Write([]byte{0xff, 0xd0 + byte(rst%8)})
				}
				rst++
				prev = [3]int{}
			}
			mcu++
			c := color.NRGBAModel.Convert(img.At(bx, by)).(color.NRGBA)
			for i, s := range []uint8{c.R, c.G, c.B} {
				v := int(s) - 128
				scan.block(v - prev[i])
				prev[i] = v
			}
		}
	}
	scan.flush()
	b.Write([]byte{0xff, 0xd9})
	return b.Bytes()
}

// animatedGIF is two frames: corpusPicture, then its colours swapped (which must not show).
func animatedGIF(t testing.TB) []byte {
	t.Helper()
	first := paletted(corpusPicture)
	second := paletted(quadrants(64, 32, yellow, blue, green, red))
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, &gif.GIF{Image: []*image.Paletted{first, second}, Delay: []int{50, 50}}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// paletteGIF is img as a one-frame GIF; fully transparent pixels use a transparent palette entry.
func paletteGIF(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gif.Encode(&b, paletted(img), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// paletted is img over a palette of its own colours (at most 256).
func paletted(img image.Image) *image.Paletted {
	var pal color.Palette
	seen := map[color.NRGBA]bool{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			if c.A == 0 {
				c = color.NRGBA{}
			}
			if !seen[c] {
				seen[c] = true
				pal = append(pal, c)
			}
		}
	}
	p := image.NewPaletted(bounds, pal)
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			p.Set(x, y, img.At(x, y))
		}
	}
	return p
}

func opaqueRGBA(img image.Image) *image.RGBA {
	out := image.NewRGBA(img.Bounds())
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			out.Set(x, y, img.At(x, y))
		}
	}
	return out
}

func tiffEncode(w io.Writer, img image.Image) error {
	return tiff.Encode(w, img, &tiff.Options{Compression: tiff.Deflate})
}

func encodeWith(t testing.TB, enc func(io.Writer, image.Image) error, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := enc(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// heifFile makes corpusPicture into a HEIC (or, with -A, an AVIF) with heif-enc.
func heifFile(name string, args ...string) func(testing.TB, string) string {
	return func(t testing.TB, dir string) string {
		t.Helper()
		in := filepath.Join(dir, "heif-src.png")
		os.WriteFile(in, encodePNG(t, quad(128, 64)), 0o644)
		out := filepath.Join(dir, name)
		cmd := exec.Command("heif-enc", append(append([]string{"-q", "90", "-o", out}, args...), in)...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("heif-enc: %v: %s", err, msg)
		}
		return out
	}
}

// id3Tag is a small ID3v2.3 tag with a title, as taggers put before any audio.
func id3Tag() []byte {
	frame := append([]byte("TIT2\x00\x00\x00\x06\x00\x00\x00"), "Title"...)
	frame[7] = byte(len("Title") + 1)
	tag := []byte("ID3\x03\x00\x00\x00\x00\x00\x00")
	tag[9] = byte(len(frame))
	return append(tag, frame...)
}

// stretchMP4Duration multiplies the duration an MP4's mvhd and mdhd boxes (version 0) claim by k,
// as a damaged or hand-edited file claims more than it holds.
func stretchMP4Duration(t testing.TB, b []byte, k uint32) []byte {
	t.Helper()
	b = append([]byte{}, b...)
	for _, box := range []string{"mvhd", "mdhd", "tkhd"} {
		i := bytes.Index(b, []byte(box))
		if i < 0 || b[i+4] != 0 {
			t.Fatalf("no version-0 %s box", box)
		}
		off := i + 4 + 4 + 8 + 4 // version/flags, creation and modification times, timescale
		if box == "tkhd" {
			off = i + 4 + 4 + 8 + 4 // track id instead of a timescale, then the duration
			off += 4                // reserved
		}
		binary.BigEndian.PutUint32(b[off:], binary.BigEndian.Uint32(b[off:])*k)
	}
	return b
}

// withPreSkip sets the pre-skip of an Ogg Opus file (the samples a player drops at the start) and
// fixes the first page's checksum.
func withPreSkip(t testing.TB, b []byte, samples uint16) []byte {
	t.Helper()
	b = append([]byte{}, b...)
	i := bytes.Index(b, []byte("OpusHead"))
	if i < 0 {
		t.Fatal("no OpusHead")
	}
	binary.LittleEndian.PutUint16(b[i+10:], samples)
	n := int(b[26])
	page := 27 + n
	for _, s := range b[27 : 27+n] {
		page += int(s)
	}
	binary.LittleEndian.PutUint32(b[22:], 0)
	binary.LittleEndian.PutUint32(b[22:], oggCRC(b[:page]))
	return b
}

// oggCRC is Ogg's page checksum: CRC-32, polynomial 0x04c11db7, not reflected, initial value 0.
func oggCRC(b []byte) uint32 {
	var c uint32
	for _, x := range b {
		c ^= uint32(x) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04c11db7
			} else {
				c <<= 1
			}
		}
	}
	return c
}
