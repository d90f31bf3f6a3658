package main

import (
	"strconv"
	"strings"
	"testing"
)

// TestCodecTagOneRule: a codec tag reads the same wherever the render reads it, a tag without a
// channel count too: the encode's cost (jobEncodeCosts, which sizes the segments) and the encoder's
// bandwidth (aacBandwidth, which the loudness measure filters to) count the same channels, and
// audioArgs downmixes exactly the tags counted as more than two.
func TestCodecTagOneRule(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		tag      string
		want     codecTag
		channels int // encoded
	}{
		{"aac/LC/2/44100", codecTag{"aac", "LC", 2, 44100}, 2},
		{"mp3//1/48000", codecTag{"mp3", "", 1, 48000}, 1},
		{"pcm_s16le//6/96000", codecTag{"pcm_s16le", "", 6, 96000}, 2},
		{"aac+damaged/LC/2/48000", codecTag{"aac+damaged", "LC", 2, 48000}, 2},
		{"opus//0/48000", codecTag{"opus", "", 0, 48000}, 2}, // the probe gave no count
		{"flac///44100", codecTag{"flac", "", 0, 44100}, 2},
		{"aac/LC", codecTag{"aac", "LC", 0, 0}, 2},
	} {
		got := parseCodecTag(c.tag)
		if got != c.want {
			t.Errorf("%s: %+v, want %+v", c.tag, got, c.want)
		}
		job := Job{AudioCodec: c.tag}
		// The same audio with its encoded channel count written out is the reference.
		ref := Job{AudioCodec: "aac/LC/" + strconv.Itoa(c.channels) + "/" + strconv.Itoa(got.rate)}
		if got, want := jobEncodeCosts(job, 0).Encode, jobEncodeCosts(ref, 0).Encode; got != want {
			t.Errorf("%s: encode cost %g, want %g (%d channels)", c.tag, got, want, c.channels)
		}
		if got, want := aacBandwidth(job), aacBandwidth(ref); got != want {
			t.Errorf("%s: bandwidth %d Hz, want %d (%d channels)", c.tag, got, want, c.channels)
		}
		downmixed := strings.Contains(strings.Join(audioArgs(c.tag, Options{}), " "), "-ac 2")
		if downmixed != (got.channels > 2) {
			t.Errorf("%s: downmixed %v, want %v", c.tag, downmixed, got.channels > 2)
		}
	}
}
