package main

import (
	"fmt"
	"strconv"
	"strings"
)

// audioCodecTag records what the render needs to know about the audio: "codec/profile/channels/rate",
// the codec followed by damagedMark for audio that must be encoded whatever its codec.
func audioCodecTag(info audioInfo) string {
	codec := info.Codec
	if info.Damaged {
		codec += damagedMark
	}
	return fmt.Sprintf("%s/%s/%d/%d", codec, info.Profile, info.Channels, info.SampleRate)
}

// damagedMark follows the codec in the codec tag of audio some of whose frames did not decode and
// which is kept as it was uploaded (audioInfo.Damaged): a copy would carry the damage into the
// video, an encode takes only what decodes.
const damagedMark = "+damaged"

// codecTag is a codec tag (audioCodecTag) read back: what the render decides from. A field the
// tag lacks, or cannot be read, is "" or 0.
type codecTag struct {
	codec    string // with damagedMark when the audio must be encoded whatever its codec
	profile  string
	channels int
	rate     int // Hz
}

// parseCodecTag reads tag, "codec/profile/channels/rate", the one place that knows its layout.
func parseCodecTag(tag string) codecTag {
	f := strings.Split(tag, "/")
	for len(f) < 4 {
		f = append(f, "")
	}
	channels, _ := strconv.Atoi(f[2])
	rate, _ := strconv.Atoi(f[3])
	return codecTag{codec: f[0], profile: f[1], channels: channels, rate: rate}
}

// encodedChannels is how many channels the audio has once encoded: mono stays mono, more are
// downmixed to stereo (audioArgs), and an unknown count counts as stereo, the common case and the
// costlier, for every estimate alike.
func (ct codecTag) encodedChannels() int {
	if ct.channels == 1 {
		return 1
	}
	return 2
}

// damaged reports whether the tag marks audio some of whose frames did not decode (damagedMark).
func (ct codecTag) damaged() bool { return strings.HasSuffix(ct.codec, damagedMark) }
