package mp4

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"vidgen/internal/aac"
)

// AACTrack is the sound track of the ADTS stream in f, which an AAC encoder wrote: its first
// frame is the encoder's priming, which the edit list skips, and the last frame's duration ends
// where the sound ends, seconds from its start. f is read to the end, and the track's Write
// reads it again from the start. A stream that is not ADTS, has no frames, or whose format
// changes between frames is an error that wraps aac.ErrADTS.
func AACTrack(f io.ReadSeeker, seconds float64) (*Track, error) {
	a := aac.NewReader(f)
	var config []byte // the first header's: every frame must have the same
	t := &Track{Handler: "soun", Delta: aac.FrameSamples, Skip: aac.FrameSamples, Roll: true}
	for {
		frame, err := a.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		// Profile, rate, channels (and bits beside them that do not change in a stream).
		c := []byte{frame[2], frame[3] & 0xF0}
		if config == nil {
			config = c
		}
		if c[0] != config[0] || c[1] != config[1] || frame[6]&3 != 0 { // one AAC frame an ADTS frame
			return nil, fmt.Errorf("frame %d: %w: its format changes", len(t.Sizes), aac.ErrADTS)
		}
		t.Sizes = append(t.Sizes, uint32(len(frame)-aac.HeaderLen(frame)))
	}
	if config == nil {
		return nil, fmt.Errorf("no frames: %w", aac.ErrADTS)
	}
	object, rateIndex, channels := config[0]>>6+1, config[0]>>2&0xF, (config[0]&1)<<2|config[1]>>6
	rates := []uint32{96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}
	if int(rateIndex) >= len(rates) || channels == 0 {
		return nil, fmt.Errorf("rate index %d, channel configuration %d: %w", rateIndex, channels, aac.ErrADTS)
	}
	t.Timescale = rates[rateIndex]
	samples := int64(math.Round(seconds * float64(t.Timescale)))
	if end := samples + aac.FrameSamples - int64(len(t.Sizes)-1)*aac.FrameSamples; end > 0 && end < aac.FrameSamples {
		t.LastDelta = uint32(end)
	}
	asc := binary.BigEndian.AppendUint16(nil, uint16(object)<<11|uint16(rateIndex)<<7|uint16(channels)<<3)
	t.Entry = mp4aEntry(asc, t.Timescale, t.bitRate())
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	a = aac.NewReader(f)
	t.Write = func(w io.Writer) error {
		frame, err := a.Next()
		if err != nil {
			return fmt.Errorf("audio: %w", err) // the file changed since it was read
		}
		_, err = w.Write(frame[aac.HeaderLen(frame):])
		return err
	}
	return t, nil
}

// mp4aEntry is the sample entry of AAC audio described by asc (its AudioSpecificConfig) at rate
// samples a second and bitRate bits a second, as track 2 of a movie.
func mp4aEntry(asc []byte, rate, bitRate uint32) []byte {
	descriptor := func(tag byte, parts ...[]byte) []byte {
		var n int
		for _, p := range parts {
			n += len(p)
		}
		d := []byte{tag, 0x80, 0x80, 0x80, byte(n)}
		for _, p := range parts {
			d = append(d, p...)
		}
		return d
	}
	config := be32(be32([]byte{0x40, 0x15, 0, 0, 0}, bitRate), bitRate) // AAC, audio stream; buffer size, max and average rate
	es := descriptor(3, []byte{0, 2, 0}, descriptor(4, config, descriptor(5, asc)), descriptor(6, []byte{2}))
	entry := be16(make([]byte, 6), 1)                            // data_reference_index
	entry = be16(be16(append(entry, make([]byte, 8)...), 2), 16) // channel count (2 in MP4, the ASC has the real one), sample size
	entry = be32(entry, 0)
	if rate <= math.MaxUint16 {
		entry = be32(entry, rate<<16)
	} else {
		entry = be32(entry, 0)
	}
	return box("mp4a", entry, box("esds", be32(nil, 0), es), btrt(bitRate))
}
