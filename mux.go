package main

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"vidgen/internal/aac"
	"vidgen/internal/h264"
)

// vidgen writes a still picture's video itself: the clip's frames over and over and the audio's
// AAC frames, each by copy. Starting ffmpeg to do it cost ~0.3 s of a job's 2 s (start-up, a
// decode of the keyframe to probe the clip, and a second pass over the file to put the index
// first), and the Go writer takes a few milliseconds. The boxes are the ones ffmpeg's MP4 muxer
// writes for these streams, in its order, so players see what they saw before.

// mp4Track is one track of an MP4 file writeMovie writes.
type mp4Track struct {
	handler   string // "vide" or "soun"
	timescale uint32
	entry     []byte   // the sample entry (avc1, mp4a) that describes the samples
	sizes     []uint32 // each sample's size in bytes
	delta     uint32   // each sample's duration in timescale units,
	lastDelta uint32   // but the last one's, when not 0
	keyframes []uint32 // the sync samples, numbered from 1; nil when every sample is one
	// skip is how much of the media is not shown from its start (the AAC encoder's priming): an
	// edit list starts the presentation there.
	skip          uint32
	width, height uint32 // a video track's presentation size
	roll          bool   // AAC: a sample decodes whole only after the one before it
	// write writes the samples' bytes, each call the next sample of the track.
	write func(w io.Writer) error
}

// mediaDuration is the track's duration in its time scale, skipped part included.
func (t *mp4Track) mediaDuration() uint64 {
	n := uint64(len(t.sizes))
	if n == 0 {
		return 0
	}
	last := uint64(t.delta)
	if t.lastDelta != 0 {
		last = uint64(t.lastDelta)
	}
	return (n-1)*uint64(t.delta) + last
}

// presented is the track's shown duration in the movie's time scale (milliseconds), rounded up
// as ffmpeg does.
func (t *mp4Track) presented() uint64 {
	d := t.mediaDuration() - min(uint64(t.skip), t.mediaDuration())
	return (d*movieTimescale + uint64(t.timescale) - 1) / uint64(t.timescale)
}

// bitRate is the track's average bit rate, as its esds and btrt boxes state it.
func (t *mp4Track) bitRate() uint32 {
	var bytes uint64
	for _, s := range t.sizes {
		bytes += uint64(s)
	}
	d := t.mediaDuration()
	if d == 0 {
		return 0
	}
	return uint32(min(bytes*8*uint64(t.timescale)/d, math.MaxUint32))
}

const movieTimescale = 1000

// mp4Chunk is a run of consecutive samples of one track stored together.
type mp4Chunk struct {
	track, first, count int
}

// interleave lays the tracks' samples out in the order they are presented, a chunk being a run
// of one track's samples, so a player reading the file from the start finds picture and sound
// of the same moment side by side.
func interleave(tracks []*mp4Track) []mp4Chunk {
	next := make([]int, len(tracks))
	var chunks []mp4Chunk
	for {
		best, bestTime := -1, 0.0
		for k, t := range tracks {
			if next[k] == len(t.sizes) {
				continue
			}
			at := (float64(next[k])*float64(t.delta) - float64(t.skip)) / float64(t.timescale)
			if best < 0 || at < bestTime {
				best, bestTime = k, at
			}
		}
		if best < 0 {
			return chunks
		}
		if n := len(chunks); n > 0 && chunks[n-1].track == best {
			chunks[n-1].count++
		} else {
			chunks = append(chunks, mp4Chunk{track: best, first: next[best], count: 1})
		}
		next[best]++
	}
}

// writeMovie writes an MP4 file of tracks to w, the index before the samples so that a player
// can start before the whole file has arrived.
func writeMovie(w io.Writer, tracks ...*mp4Track) error {
	chunks := interleave(tracks)
	var data uint64
	for _, t := range tracks {
		for _, s := range t.sizes {
			data += uint64(s)
		}
	}
	ftyp := mp4Box("ftyp", []byte("isom\x00\x00\x02\x00isomiso2avc1mp41"))
	// The index's size does not depend on the offsets it holds, only on their width: offsets past
	// 4 GiB need 64 bits (co64), and so does the mdat's size.
	large := false
	start := uint64(len(ftyp) + len(movieBox(tracks, chunks, 0, false)) + 8)
	if start+data > math.MaxUint32 {
		large = true
		start = uint64(len(ftyp) + len(movieBox(tracks, chunks, 0, true)) + 16)
	}
	moov := movieBox(tracks, chunks, start, large)

	bw := bufio.NewWriterSize(w, 1<<20)
	bw.Write(ftyp)
	bw.Write(moov)
	if large { // size 1: the 64-bit size follows the type
		bw.Write(binary.BigEndian.AppendUint64(append(be32(nil, 1), "mdat"...), 16+data))
	} else {
		bw.Write(append(be32(nil, uint32(8+data)), "mdat"...))
	}
	for _, c := range chunks {
		for range c.count {
			if err := tracks[c.track].write(bw); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

// movieBox is the moov box of tracks laid out as chunks, the first sample's bytes at offset
// start of the file; large stores the offsets in 64 bits.
func movieBox(tracks []*mp4Track, chunks []mp4Chunk, start uint64, large bool) []byte {
	offsets := make([][]uint64, len(tracks))
	counts := make([][]uint32, len(tracks))
	at := start
	for _, c := range chunks {
		offsets[c.track] = append(offsets[c.track], at)
		counts[c.track] = append(counts[c.track], uint32(c.count))
		for i := c.first; i < c.first+c.count; i++ {
			at += uint64(tracks[c.track].sizes[i])
		}
	}
	var movieDuration uint64
	boxes := [][]byte{nil} // the mvhd, when the duration is known
	for k, t := range tracks {
		movieDuration = max(movieDuration, t.presented())
		boxes = append(boxes, trackBox(uint32(k+1), t, sampleTable(t, offsets[k], counts[k], large)))
	}
	mvhd := be32(be32(be32(fullBox(0, 0), 0), 0), movieTimescale) // creation, modification time
	mvhd = be32(mvhd, uint32(movieDuration))
	mvhd = append(be16(be32(mvhd, 0x00010000), 0x0100), make([]byte, 10)...) // rate, volume, reserved
	mvhd = append(append(mvhd, unityMatrix...), make([]byte, 24)...)
	boxes[0] = mp4Box("mvhd", be32(mvhd, uint32(len(tracks)+1))) // next_track_ID
	return mp4Box("moov", boxes...)
}

// trackBox is the trak box of track t, numbered id, whose sample table is stbl.
func trackBox(id uint32, t *mp4Track, stbl []byte) []byte {
	dinf := mp4Box("dinf", mp4Box("dref", be32(fullBox(0, 0), 1), mp4Box("url ", fullBox(0, 1)))) // data in this file
	header, name := mp4Box("vmhd", be32(be32(fullBox(0, 1), 0), 0)), "VideoHandler"
	if t.handler == "soun" {
		header, name = mp4Box("smhd", be32(fullBox(0, 0), 0)), "SoundHandler"
	}
	var mdhd []byte
	if d := t.mediaDuration(); d > math.MaxUint32 { // a day of 48 kHz sound: version 1, 64-bit times
		mdhd = append(fullBox(1, 0), make([]byte, 16)...) // creation, modification time
		mdhd = binary.BigEndian.AppendUint64(be32(mdhd, t.timescale), d)
	} else {
		mdhd = be32(be32(be32(be32(fullBox(0, 0), 0), 0), t.timescale), uint32(d))
	}
	mdhd = be32(mdhd, 0x55c40000) // language "und"
	hdlr := append(append(be32(fullBox(0, 0), 0), t.handler...), make([]byte, 12)...)
	hdlr = append(append(hdlr, name...), 0)

	tkhd := be32(be32(be32(be32(fullBox(0, 3), 0), 0), id), 0) // enabled, in movie
	tkhd = be32(be32(be32(tkhd, uint32(t.presented())), 0), 0)
	if t.handler == "soun" {
		tkhd = be16(be16(be16(be16(tkhd, 0), 1), 0x0100), 0) // layer, alternate group, volume
	} else {
		tkhd = be16(be16(be16(be16(tkhd, 0), 0), 0), 0)
	}
	tkhd = append(tkhd, unityMatrix...)
	tkhd = be32(be32(tkhd, t.width<<16), t.height<<16)
	elst := be32(fullBox(0, 0), 1)
	elst = be32(be32(be32(elst, uint32(t.presented())), t.skip), 0x00010000) // media rate 1
	return mp4Box("trak", mp4Box("tkhd", tkhd), mp4Box("edts", mp4Box("elst", elst)),
		mp4Box("mdia", mp4Box("mdhd", mdhd), mp4Box("hdlr", hdlr), mp4Box("minf", header, dinf, stbl)))
}

// sampleTable is the stbl box of track t, whose chunks start at offsets and hold counts samples.
func sampleTable(t *mp4Track, offsets []uint64, counts []uint32, large bool) []byte {
	n := uint32(len(t.sizes))
	stts := fullBox(0, 0) // runs of samples of one duration
	if t.lastDelta != 0 && n > 1 {
		stts = be32(be32(be32(be32(be32(stts, 2), n-1), t.delta), 1), t.lastDelta)
	} else {
		stts = be32(be32(be32(stts, 1), n), cmp.Or(t.lastDelta, t.delta))
	}
	var runs []byte // runs of chunks of one sample count
	var entries uint32
	for i, c := range counts {
		if i == 0 || c != counts[i-1] {
			runs = be32(be32(be32(runs, uint32(i+1)), c), 1)
			entries++
		}
	}
	stsc := append(be32(fullBox(0, 0), entries), runs...)
	stsz := be32(be32(fullBox(0, 0), 0), n)
	for _, s := range t.sizes {
		stsz = be32(stsz, s)
	}
	co := be32(fullBox(0, 0), uint32(len(offsets)))
	for _, o := range offsets {
		if large {
			co = binary.BigEndian.AppendUint64(co, o)
		} else {
			co = be32(co, uint32(o))
		}
	}
	boxes := [][]byte{mp4Box("stsd", be32(fullBox(0, 0), 1), t.entry), mp4Box("stts", stts)}
	if t.keyframes != nil {
		stss := be32(fullBox(0, 0), uint32(len(t.keyframes)))
		for _, s := range t.keyframes {
			stss = be32(stss, s)
		}
		boxes = append(boxes, mp4Box("stss", stss))
	}
	boxes = append(boxes, mp4Box("stsc", stsc), mp4Box("stsz", stsz))
	if large {
		boxes = append(boxes, mp4Box("co64", co))
	} else {
		boxes = append(boxes, mp4Box("stco", co))
	}
	if t.roll {
		sgpd := append(fullBox(1, 0), "roll"...)
		sgpd = be16(be32(be32(sgpd, 2), 1), 0xffff) // default_length, entry_count, roll_distance -1
		sbgp := append(fullBox(0, 0), "roll"...)
		sbgp = be32(be32(be32(sbgp, 1), n), 1) // every sample in group 1
		boxes = append(boxes, mp4Box("sgpd", sgpd), mp4Box("sbgp", sbgp))
	}
	return mp4Box("stbl", boxes...)
}

// be32 and be16 append v to b, big-endian, as every MP4 field is.
func be32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func be16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }

// fullBox is the start of a "full box"'s payload: its version and flags.
func fullBox(version byte, flags uint32) []byte { return be32(nil, uint32(version)<<24|flags) }

var unityMatrix = []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0}

// mp4Box is an ISO BMFF box of type typ whose payload is the parts one after the other.
func mp4Box(typ string, parts ...[]byte) []byte {
	size := 8
	for _, p := range parts {
		size += len(p)
	}
	b := append(be32(make([]byte, 0, size), uint32(size)), typ...)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// btrt is the bit rate box of a sample entry.
func btrt(rate uint32) []byte {
	return mp4Box("btrt", be32(be32(make([]byte, 4), rate), rate)) // buffer size (not given), maximum, average
}

// aacTrack is the audio track of the ADTS stream in f, which an AAC encoder wrote: its first
// frame is the encoder's priming, which the edit list skips, and the last frame's duration ends
// where the sound ends, seconds from its start. f is read to the end, and the track's write
// reads it again from the start.
func aacTrack(f io.ReadSeeker, seconds float64) (*mp4Track, error) {
	a := aac.NewReader(f)
	var config []byte // the first header's: every frame must have the same
	t := &mp4Track{handler: "soun", delta: aacFrame, skip: aacFrame, roll: true}
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
			return nil, fmt.Errorf("frame %d: %w: its format changes", len(t.sizes), aac.ErrADTS)
		}
		t.sizes = append(t.sizes, uint32(len(frame)-aac.HeaderLen(frame)))
	}
	if config == nil {
		return nil, fmt.Errorf("no frames: %w", aac.ErrADTS)
	}
	object, rateIndex, channels := config[0]>>6+1, config[0]>>2&0xF, (config[0]&1)<<2|config[1]>>6
	rates := []uint32{96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}
	if int(rateIndex) >= len(rates) || channels == 0 {
		return nil, fmt.Errorf("rate index %d, channel configuration %d: %w", rateIndex, channels, aac.ErrADTS)
	}
	t.timescale = rates[rateIndex]
	samples := int64(math.Round(seconds * float64(t.timescale)))
	if end := samples + aacFrame - int64(len(t.sizes)-1)*aacFrame; end > 0 && end < aacFrame {
		t.lastDelta = uint32(end)
	}
	asc := binary.BigEndian.AppendUint16(nil, uint16(object)<<11|uint16(rateIndex)<<7|uint16(channels)<<3)
	t.entry = mp4aEntry(asc, t.timescale, t.bitRate())
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	a = aac.NewReader(f)
	t.write = func(w io.Writer) error {
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
	return mp4Box("mp4a", entry, mp4Box("esds", be32(nil, 0), es), btrt(bitRate))
}

// stillVideoFrames is the number of frames of a still picture's video under sound lasting seconds
// at fps: those that start within clipMillis, as ffmpeg counted them when it repeated the clip.
func stillVideoFrames(seconds float64, fps int) int {
	return int((clipMillis(seconds, fps)*int64(fps) + 999) / 1000)
}

// writeStillVideo writes to path the video of a still picture: clip's frames repeated for
// seconds, under the AAC audio of the ADTS stream at audio (an encoder's, priming first).
func writeStillVideo(path string, clip *h264.StillClip, audio string, seconds float64) error {
	f, err := os.Open(audio)
	if err != nil {
		return fmt.Errorf("mux: %w", err)
	}
	defer f.Close()
	sound, err := aacTrack(f, seconds)
	if err != nil {
		return fmt.Errorf("mux: audio: %w", err)
	}
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("mux: %w", err)
	}
	err = writeMovie(out, clipTrack(clip, stillVideoFrames(seconds, clip.FPS)), sound)
	if err = errors.Join(err, out.Close()); err != nil {
		return fmt.Errorf("mux: %w", err)
	}
	return nil
}
