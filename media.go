package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// maxPixels caps the images vidgen accepts, checked from the header before anything is decoded.
const maxPixels = 100_000_000

// Media types, as sniffed from a file's bytes.
const (
	typeJPEG = "jpeg"
	typePNG  = "png"
	typeWebP = "webp"
	typeMP3  = "mp3"
	typeWAV  = "wav"
	typeM4A  = "m4a"
	typeOgg  = "ogg"
)

// demuxer names the ffmpeg input format for each type, so ffmpeg never guesses one from the content
// (an .mp3 that is really an HLS playlist is never opened as a playlist).
var demuxer = map[string]string{
	typeJPEG: "jpeg_pipe", typePNG: "png_pipe", typeWebP: "webp_pipe",
	typeMP3: "mp3", typeWAV: "wav", typeM4A: "mov", typeOgg: "ogg",
}

// badMedia is an uploaded file that claims a supported type but cannot be used as it is.
func badMedia(format string, args ...any) error { return errorf(kindInvalid, format, args...) }

// unsupportedMedia is an uploaded file of a type vidgen does not take.
func unsupportedMedia(format string, args ...any) error {
	return errorf(kindUnsupported, format, args...)
}

// sniffImage returns the image type of a file that starts with head, or "".
func sniffImage(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("\xff\xd8\xff")):
		return typeJPEG
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return typePNG
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WEBP":
		return typeWebP
	}
	return ""
}

// sniffAudio returns the audio type of a file that starts with head, or "". An MP3 without an ID3
// tag has no magic number, so it is recognised by a chain of valid MPEG audio frame headers.
func sniffAudio(head []byte) string {
	switch {
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WAVE":
		return typeWAV
	case len(head) >= 12 && string(head[4:8]) == "ftyp":
		return typeM4A // the codec (AAC) is checked by probeAudio
	case bytes.HasPrefix(head, []byte("OggS")) && len(head) >= 27:
		// The first page holds the codec's identification header.
		start := 27 + int(head[26])
		if start < len(head) {
			p := head[start:]
			if bytes.HasPrefix(p, []byte("\x01vorbis")) || bytes.HasPrefix(p, []byte("OpusHead")) {
				return typeOgg
			}
		}
		return ""
	case bytes.HasPrefix(head, []byte("ID3")):
		return typeMP3
	case mp3FrameChain(head):
		return typeMP3
	}
	return ""
}

// describe names what a file looks like, for error messages.
func describe(head []byte) string {
	if t := sniffImage(head); t != "" {
		return "a " + strings.ToUpper(t) + " image"
	}
	if t := sniffAudio(head); t != "" {
		return "an " + strings.ToUpper(t) + " audio file"
	}
	if len(head) == 0 {
		return "empty"
	}
	return "not a supported format"
}

var (
	mp3BitratesV1 = [16]int{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, -1}
	mp3BitratesV2 = [16]int{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, -1}
	mp3Rates      = [4][3]int{{11025, 12000, 8000}, {}, {22050, 24000, 16000}, {44100, 48000, 32000}}
)

// mp3FrameLen returns the length of the MPEG-1/2/2.5 Layer III frame whose header starts b, or 0.
func mp3FrameLen(b []byte) int {
	if len(b) < 4 || b[0] != 0xff || b[1]&0xe0 != 0xe0 {
		return 0
	}
	version := (b[1] >> 3) & 3
	layer := (b[1] >> 1) & 3
	bri := b[2] >> 4
	sri := (b[2] >> 2) & 3
	if version == 1 || layer != 1 || sri == 3 {
		return 0
	}
	kbps := mp3BitratesV2[bri]
	coef := 72000
	if version == 3 {
		kbps, coef = mp3BitratesV1[bri], 144000
	}
	if kbps <= 0 {
		return 0
	}
	return coef*kbps/mp3Rates[version][sri] + int((b[2]>>1)&1)
}

// mp3FrameChain reports whether head holds three MPEG Layer III frames in a row, the first within its
// first 8 KB. Random bytes almost never do.
func mp3FrameChain(head []byte) bool {
	for i := 0; i < len(head) && i < 8192; i++ {
		if head[i] != 0xff {
			continue
		}
		p, ok := i, true
		for n := 0; n < 3 && ok; n++ {
			l := 0
			if p < len(head) { // a frame may claim to run past the end of a short file
				l = mp3FrameLen(head[p:])
			}
			ok = l > 0
			p += l
		}
		if ok {
			return true
		}
	}
	return false
}

// checkImage validates the image at path, of sniffed type typ, without decoding its pixels: the
// header's dimensions against maxPixels, and the file's structure against truncation.
func checkImage(path, typ string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var w, h int
	switch typ {
	case typeJPEG, typePNG:
		decode := jpeg.DecodeConfig
		if typ == typePNG {
			decode = png.DecodeConfig
		}
		cfg, err := decode(bufio.NewReader(f))
		if err != nil {
			return badMedia("image: the %s could not be read (%v); re-export it and try again", strings.ToUpper(typ), err)
		}
		w, h = cfg.Width, cfg.Height
	case typeWebP:
		if w, h, err = webpSize(f); err != nil {
			return err
		}
	}
	if w <= 0 || h <= 0 {
		return badMedia("image: it has no pixels")
	}
	if int64(w)*int64(h) > maxPixels {
		return badMedia("image: %d×%d is %.0f megapixels; the most accepted is %d", w, h, float64(w)*float64(h)/1e6, maxPixels/1_000_000)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	var complete bool
	switch typ {
	case typeJPEG:
		complete = jpegComplete(bufio.NewReaderSize(f, 64<<10))
	case typePNG:
		complete = pngComplete(bufio.NewReader(f))
	case typeWebP:
		complete = true // webpSize compared the RIFF size with the file's
	}
	if !complete {
		return badMedia("image: the %s is truncated or damaged; upload the whole file", strings.ToUpper(typ))
	}
	return nil
}

// jpegComplete walks a JPEG's markers, through every scan's entropy-coded data, and reports whether
// it reaches the end-of-image marker. Bytes after it (a phone's "motion photo" video) are allowed.
func jpegComplete(r *bufio.Reader) bool {
	if b, err := r.Peek(2); err != nil || b[0] != 0xff || b[1] != 0xd8 {
		return false
	}
	r.Discard(2)
	sawFF := false // the 0xFF of the next marker was consumed by a scan
	for {
		if !sawFF {
			b, err := r.ReadByte()
			if err != nil {
				return false
			}
			if b != 0xff {
				continue // stray byte between segments; decoders skip these too
			}
		}
		sawFF = false
		m, err := r.ReadByte()
		for err == nil && m == 0xff {
			m, err = r.ReadByte()
		}
		if err != nil {
			return false
		}
		switch {
		case m == 0xd9:
			return true
		case m == 0x00, m == 0x01, m >= 0xd0 && m <= 0xd7:
			continue
		}
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return false
		}
		n := int(binary.BigEndian.Uint16(l[:])) - 2
		if n < 0 {
			return false
		}
		if k, err := r.Discard(n); err != nil || k != n {
			return false
		}
		if m == 0xda {
			// Entropy-coded data follows a scan header: FF is stuffed as FF 00 and restart markers
			// are FF D0-D7, so the first other FF xx ends the scan.
			for !sawFF {
				b, err := r.ReadByte()
				if err != nil {
					return false
				}
				if b != 0xff {
					continue
				}
				nb, err := r.Peek(1)
				if err != nil {
					return false
				}
				switch {
				case nb[0] == 0x00, nb[0] >= 0xd0 && nb[0] <= 0xd7:
					r.Discard(1)
				case nb[0] != 0xff:
					sawFF = true
				}
			}
		}
	}
}

// pngComplete walks a PNG's chunks and reports whether it reaches IEND.
func pngComplete(r *bufio.Reader) bool {
	if _, err := r.Discard(8); err != nil {
		return false
	}
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return false
		}
		n := int64(binary.BigEndian.Uint32(hdr[:4]))
		if string(hdr[4:]) == "IEND" {
			return true
		}
		if k, err := io.CopyN(io.Discard, r, n+4); err != nil || k != n+4 {
			return false
		}
	}
}

// webpSize reads a WebP's canvas size from its first chunk. Animated WebP is refused: ffmpeg cannot
// decode it, and a user would rather hear so now than see a failed job.
func webpSize(f *os.File) (int, int, error) {
	var b [30]byte
	n, _ := io.ReadFull(f, b[:])
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	broken := badMedia("image: the WebP is truncated or damaged; upload the whole file")
	if n < 30 || int64(binary.LittleEndian.Uint32(b[4:8]))+8 > fi.Size() {
		return 0, 0, broken
	}
	d := b[20:]
	switch string(b[12:16]) {
	case "VP8X":
		if d[0]&0x02 != 0 {
			return 0, 0, unsupportedMedia("image: animated WebP is not supported; send a still image (JPEG, PNG or a still WebP)")
		}
		w := int(d[4]) | int(d[5])<<8 | int(d[6])<<16
		h := int(d[7]) | int(d[8])<<8 | int(d[9])<<16
		return w + 1, h + 1, nil
	case "VP8L":
		if d[0] != 0x2f {
			return 0, 0, broken
		}
		v := binary.LittleEndian.Uint32(d[1:5])
		return int(v&0x3fff) + 1, int((v>>14)&0x3fff) + 1, nil
	case "VP8 ":
		if d[3] != 0x9d || d[4] != 0x01 || d[5] != 0x2a {
			return 0, 0, broken
		}
		return int(binary.LittleEndian.Uint16(d[6:8]) & 0x3fff), int(binary.LittleEndian.Uint16(d[8:10]) & 0x3fff), nil
	}
	return 0, 0, broken
}

// probeTimeout bounds the upload's look at the audio (ffprobe, then the packet count of an MP3).
const probeTimeout = time.Minute

// decodeImage has ffprobe decode the image at path, of sniffed type typ (in its own process, so a
// large image costs vidgen no memory): a file whose structure is sound but whose pixels cannot be
// decoded is refused at upload, not found out by a render.
func decodeImage(ctx context.Context, ffprobe, path, typ string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, ffprobe, "-v", "error", "-protocol_whitelist", "file", "-f", demuxer[typ],
		"-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0",
		"file:"+path).Output()
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(string(out))); err != nil || n < 1 {
		return badMedia("image: the %s could not be decoded; it may be damaged. Export it again and upload it", strings.ToUpper(typ))
	}
	return nil
}

// audioInfo is what vidgen needs to know about an audio input.
type audioInfo struct {
	Codec      string
	Profile    string
	Channels   int
	SampleRate int
	Duration   float64 // seconds
}

// probeAudio reads the audio at path, of sniffed type typ, with ffprobe restricted to that demuxer
// and to local files. Bad or unsupported audio is a *mediaError.
func probeAudio(ctx context.Context, ffprobe, ffmpeg, path, typ string) (audioInfo, error) {
	// A file that makes a tool hang must not hold the upload forever (reading 50 MB takes well under
	// a second); it is then as broken as one the tool refuses.
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(pctx, ffprobe, "-v", "error", "-protocol_whitelist", "file", "-f", demuxer[typ],
		"-select_streams", "a:0", "-show_entries", "stream=codec_name,profile,channels,sample_rate:format=duration",
		"-of", "json", "file:"+path)
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return audioInfo{}, ctx.Err() // the client went away
	}
	broken := badMedia("audio: the %s could not be decoded; check that the file plays and upload it again", strings.ToUpper(typ))
	if err != nil {
		return audioInfo{}, broken
	}
	var res struct {
		Streams []struct {
			CodecName  string `json:"codec_name"`
			Profile    string `json:"profile"`
			Channels   int    `json:"channels"`
			SampleRate string `json:"sample_rate"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Streams) == 0 {
		return audioInfo{}, broken
	}
	s := res.Streams[0]
	info := audioInfo{Codec: s.CodecName, Profile: s.Profile, Channels: s.Channels}
	info.SampleRate, _ = strconv.Atoi(s.SampleRate)
	info.Duration, _ = strconv.ParseFloat(res.Format.Duration, 64)
	switch {
	case typ == typeM4A && info.Codec != "aac":
		return audioInfo{}, unsupportedMedia("audio: this M4A holds %s audio; M4A must hold AAC", info.Codec)
	case typ == typeOgg && info.Codec != "vorbis" && info.Codec != "opus":
		return audioInfo{}, unsupportedMedia("audio: this Ogg holds %s audio; Ogg must hold Vorbis or Opus", info.Codec)
	case typ == typeMP3 && info.Codec != "mp3":
		return audioInfo{}, unsupportedMedia("audio: this is MPEG audio of another layer (%s); send MP3", info.Codec)
	}
	if typ == typeMP3 {
		// An MP3 without a Xing/VBRI header has its duration guessed from the first frame's bitrate,
		// which is wrong for VBR. Counting the packets is exact and costs ~0.1 s for 10 minutes.
		d, err := scanDuration(pctx, ffmpeg, path, typ)
		if err != nil {
			return audioInfo{}, broken
		}
		info.Duration = d
	}
	if info.Duration <= 0 || info.Channels <= 0 {
		return audioInfo{}, badMedia("audio: the %s holds no sound", strings.ToUpper(typ))
	}
	return info, nil
}

// scanDuration returns the duration of the first audio stream by copying its packets to nowhere.
func scanDuration(ctx context.Context, ffmpeg, path, typ string) (float64, error) {
	cmd := exec.CommandContext(ctx, ffmpeg, "-nostdin", "-v", "error", "-protocol_whitelist", "file", "-f", demuxer[typ],
		"-i", "file:"+path, "-map", "0:a:0", "-c", "copy", "-f", "null", "-progress", "pipe:1", "-")
	out, err := cmd.Output()
	if err != nil {
		return 0, err
	}
	var us int64 = -1
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "out_time_us="); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				us = n
			}
		}
	}
	if us < 0 {
		return 0, errors.New("no duration")
	}
	return float64(us) / 1e6, nil
}
