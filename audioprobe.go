package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"vidgen/internal/ffmpeg"
	"vidgen/internal/media"
)

// This file reads the audio at upload: what it holds, and how long it sounds.

// probeTimeout bounds the upload's look at the audio: one ffprobe that decodes all of it.
const probeTimeout = time.Minute

// audioInfo is what vidgen needs to know about an audio input.
type audioInfo struct {
	Codec      string
	Profile    string
	Channels   int
	SampleRate int
	Duration   float64 // seconds
	// Damaged is audio some of whose frames did not decode, which is left as it is: the render
	// must encode what decodes of it, never copy it (damagedMark).
	Damaged bool
}

// probeAudio reads and decodes the audio at path, of sniffed type typ, with one ffprobe restricted
// to that demuxer and to local files. Bad or unsupported audio is a kindInvalid or kindUnsupported
// error naming the audio part. An ADTS file some of whose frames did not decode is cut down to the
// frames that did, or marked Damaged when that cannot be done with certainty (mendADTS); audio of
// any other type whose decode reported an error is marked Damaged.
//
// The header's duration is a claim (an MP3 without a Xing header has it guessed from the first
// frame's bitrate; a cut or damaged M4A keeps the whole file's), so the duration returned is what
// decodes: the sum of the decoded frames' samples, with Opus pre-skip and MP3 encoder delay and
// padding already dropped by the decoder. Decoding costs ~0.05 s a minute of audio; one process
// instead of a probe and then a decode saves ~0.16 s of start-up on every submission.
func probeAudio(ctx context.Context, t ffmpeg.Tools, path, typ string) (audioInfo, error) {
	// A file that makes a tool hang must not hold the upload forever (reading 50 MB takes well under
	// a second); it is then as broken as one the tool refuses.
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	frame := "nb_samples"
	var scan audioScan
	if typ == media.AAC {
		frame += ",pkt_pos,pkt_size"
		scan.packets = &decodedPackets{}
	}
	cmd := exec.CommandContext(pctx, t.FFprobe, "-v", "error", "-protocol_whitelist", "file", "-f", demuxer[typ],
		"-select_streams", "a:0", "-show_entries",
		"stream=codec_name,profile,channels,sample_rate:format=duration:frame="+frame,
		"-of", "compact", "file:"+path)
	var stderr ffmpeg.Tail // a flood of decode errors is held to its last 4 KB
	cmd.Stdout, cmd.Stderr = &scan, &stderr
	err := t.Run(pctx, cmd)
	if ctx.Err() != nil {
		return audioInfo{}, ctx.Err() // the client went away
	}
	if terr := toolTrouble("ffprobe", err); terr != nil {
		return audioInfo{}, terr // nothing is known of the file
	}
	if fe := (*ffmpeg.Error)(nil); errors.As(err, &fe) && fe.Reason == ffmpeg.OutOfMemory {
		// As for a picture (prepareInspected): the file asks more of the decoder than -child-memory allows.
		return audioInfo{}, &Error{Kind: kindInvalid, Msg: "audio: decoding it takes more memory than this server gives one file; export it again as MP3 or AAC and upload it",
			Err: fmt.Errorf("ffprobe: %w: %s", errChildMemory, fe.Log)}
	}
	broken := badMedia("audio: the %s could not be decoded; check that the file plays and upload it again", typeName(typ))
	info, ok := scan.info()
	if err == nil && !ok && scan.format != nil {
		// The container was read whole and holds no audio: a video without sound, most often.
		return audioInfo{}, unsupportedMedia("audio: the file is %s with no audio track; send %s", withArticle(containerName(typ)), audioTypes)
	}
	if err != nil || !ok {
		return audioInfo{}, broken
	}
	allowed := map[string][]string{
		media.M4A: {"aac", "alac"}, media.Ogg: {"vorbis", "opus"}, media.MP3: {"mp3"}, media.FLAC: {"flac"},
		media.AAC: {"aac"}, media.Matroska: {"opus", "vorbis", "flac", "aac", "mp3"},
	}[typ]
	switch {
	case typ == media.WAV || typ == media.AIFF:
		// ffmpeg decodes every PCM and the common compressed WAV/AIFC codecs.
	case !slices.Contains(allowed, info.Codec):
		return audioInfo{}, unsupportedMedia("audio: this %s holds %s audio; %s must hold %s", typeName(typ), info.Codec, typeName(typ), strings.ToUpper(strings.Join(allowed, " or ")))
	}
	if info.Channels <= 0 {
		return audioInfo{}, badMedia("audio: the %s holds no sound", typeName(typ))
	}
	decoded := scan.seconds(info.SampleRate)
	if decoded <= 0 {
		return audioInfo{}, broken
	}
	// Errors on the way are fine when the sound is whole (a damaged frame in the middle), not when
	// the file is cut short of what its header says. A header that states the length exactly needs
	// no error to show a cut; any other header's length may be a guess (an MP3's, from its first
	// frame's bitrate) or a lie over whole sound (an M4A's), which renders as the sound it holds.
	claimed, exact := info.Duration, typ == media.AIFF // an AIFF's frame count is what ffprobe reports
	if s, ok := declaredSeconds(path, typ); ok {
		claimed, exact = s, true
	}
	if (exact || len(stderr.Bytes()) > 0) && claimed > decoded+0.5 {
		// Cut short or damaged throughout, the file cannot tell: frames that do not decode count
		// as missing either way.
		return audioInfo{}, badMedia("audio: the %s is truncated or damaged: only %.1f s of its %.1f s decode; upload the whole file, or export it again",
			typeName(typ), decoded, claimed)
	}
	switch {
	case len(stderr.Bytes()) == 0:
	case typ == media.AAC:
		// Some frames did not decode: an ADTS stream, which the render may copy, keeps only those
		// that did, or is encoded when that cannot be done with certainty.
		copyable, err := mendADTS(path, scan.packets)
		if kindOf(err) == kindInvalid {
			return audioInfo{}, err
		}
		if err != nil {
			return audioInfo{}, rewriteFailed(err, broken)
		}
		info.Damaged = !copyable
	default:
		// Some frames did not decode, or were cut short or lost in the container (an M4A or
		// Matroska file whose recording stopped mid-frame). The frames of an M4A or Matroska file
		// are not cut out of it: what the render may copy (AAC) is encoded, taking what decodes.
		info.Damaged = true
	}
	info.Duration = decoded
	return info, nil
}

// audioScan reads ffprobe's compact output as it is written: the decoded frames' sample counts
// are summed as they come, so ten hours of audio (1.7 million frames) take no memory, and the
// stream and format lines are kept.
type audioScan struct {
	line    []byte
	samples int64
	stream  map[string]string
	format  map[string]string
	packets *decodedPackets // when set, the bytes each decoded frame came from are noted there
}

// maxProbeLine bounds one line of ffprobe's output; the fields asked for are short.
const maxProbeLine = 4 << 10

func (a *audioScan) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(a.line)+len(p) <= maxProbeLine {
				a.line = append(a.line, p...)
			}
			break
		}
		if len(a.line)+i <= maxProbeLine {
			a.line = append(a.line, p[:i]...)
		}
		a.parse(a.line)
		a.line = a.line[:0]
		p = p[i+1:]
	}
	return n, nil
}

// parse takes one line such as "frame|nb_samples=1152" (one for each of up to millions of frames, so
// read without allocating; an ADTS stream's also give "pkt_pos=…|pkt_size=…") or
// "stream|codec_name=mp3|channels=2|...".
func (a *audioScan) parse(b []byte) {
	if rest, ok := bytes.CutPrefix(b, []byte("frame|")); ok {
		samples, pos, size := int64(-1), int64(-1), int64(-1)
		for len(rest) > 0 {
			var field []byte
			field, rest, _ = bytes.Cut(rest, []byte("|"))
			k, v, _ := bytes.Cut(field, []byte("="))
			n := probeInt(v)
			switch string(k) {
			case "nb_samples":
				samples = n
			case "pkt_pos":
				pos = n
			case "pkt_size":
				size = n
			}
		}
		if samples < 0 {
			return
		}
		a.samples += samples
		if a.packets != nil {
			a.packets.add(pos, size)
		}
		return
	}
	section, rest, _ := strings.Cut(string(b), "|")
	fields := map[string]string{}
	for _, kv := range strings.Split(rest, "|") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			fields[k] = v
		}
	}
	switch section {
	case "stream":
		if a.stream == nil { // the first audio stream is the one decoded
			a.stream = fields
		}
	case "format":
		a.format = fields
	}
}

// probeInt reads a decimal count of ffprobe's output without allocating, or -1 ("N/A", too big).
func probeInt(v []byte) int64 {
	if len(v) == 0 {
		return -1
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' || n > 1<<40 {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// info returns the stream's description, with the container's claimed duration; ok is false when
// ffprobe found no audio stream.
func (a *audioScan) info() (audioInfo, bool) {
	if a.stream == nil {
		return audioInfo{}, false
	}
	info := audioInfo{Codec: a.stream["codec_name"], Profile: a.stream["profile"]}
	info.Channels, _ = strconv.Atoi(a.stream["channels"])
	info.SampleRate, _ = strconv.Atoi(a.stream["sample_rate"])
	info.Duration, _ = strconv.ParseFloat(a.format["duration"], 64)
	return info, true
}

// seconds is how long the decoded samples last at rate samples a second.
func (a *audioScan) seconds(rate int) float64 {
	if rate <= 0 {
		return 0
	}
	return float64(a.samples) / float64(rate)
}

// declaredSeconds is how long the audio file at path, of sniffed type typ, says it lasts, for the
// types whose header states it exactly (media.ReadAudioHeader); ok is false for the others, and for
// a header that states no exact length. An AIFF's frame count is what ffprobe reports.
func declaredSeconds(path, typ string) (secs float64, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	h := media.ReadAudioHeader(f)
	return h.Seconds, h.Declared && h.Format == typ
}
