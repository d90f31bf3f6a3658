// Package mp4 writes MP4 files (ISO/IEC 14496-12 and 14496-14) of tracks whose samples are all
// known before the file is written: the index (moov) first, so that a player can start before the
// whole file has arrived, then the samples interleaved in the order they are presented. Its boxes,
// their fields and their order are those ffmpeg's MP4 muxer writes for H.264 video and AAC
// sound, so that players see what they saw in ffmpeg's files. Tracks come from an H.264 still
// clip (StillTrack), an ADTS stream of AAC (AACTrack), or are built by hand.
//
// It writes to an io.Writer and reads the io.ReadSeeker it is given: it knows no file name or
// job. Its errors are those of the writer, the reader and the tracks' Write, and the
// aac.ErrADTS of a sound stream it cannot store.
package mp4

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"io"
	"math"
)

// A still picture's video written here rather than by ffmpeg costs a few milliseconds where
// starting ffmpeg cost ~0.3 s of a job's 2 s (start-up, a decode of the keyframe to probe the
// clip, and a second pass over the file to put the index first).

// Track is one track of an MP4 file that WriteMovie writes, every sample known in advance.
type Track struct {
	Handler   string // "vide" or "soun"
	Timescale uint32
	Entry     []byte   // the sample entry (avc1, mp4a) that describes the samples
	Sizes     []uint32 // each sample's size in bytes
	Delta     uint32   // each sample's duration in Timescale units,
	LastDelta uint32   // but the last one's, when not 0
	Keyframes []uint32 // the sync samples, numbered from 1; nil when every sample is one
	// Skip is how much of the media is not shown from its start (the AAC encoder's priming): an
	// edit list starts the presentation there.
	Skip          uint32
	Width, Height uint32 // a video track's presentation size
	Roll          bool   // AAC: a sample decodes whole only after the one before it
	// Write writes the samples' bytes to w, each call the next sample of the track, in order:
	// WriteMovie calls it once a sample, and fails with the first error it returns.
	Write func(w io.Writer) error
}

// mediaDuration is the track's duration in its time scale, skipped part included.
func (t *Track) mediaDuration() uint64 {
	n := uint64(len(t.Sizes))
	if n == 0 {
		return 0
	}
	last := uint64(t.Delta)
	if t.LastDelta != 0 {
		last = uint64(t.LastDelta)
	}
	return (n-1)*uint64(t.Delta) + last
}

// presented is the track's shown duration in the movie's time scale (milliseconds), rounded up
// as ffmpeg does.
func (t *Track) presented() uint64 {
	d := t.mediaDuration() - min(uint64(t.Skip), t.mediaDuration())
	return (d*movieTimescale + uint64(t.Timescale) - 1) / uint64(t.Timescale)
}

// bitRate is the track's average bit rate, as its esds and btrt boxes state it.
func (t *Track) bitRate() uint32 {
	var bytes uint64
	for _, s := range t.Sizes {
		bytes += uint64(s)
	}
	d := t.mediaDuration()
	if d == 0 {
		return 0
	}
	return uint32(min(bytes*8*uint64(t.Timescale)/d, math.MaxUint32))
}

const movieTimescale = 1000

// chunk is a run of consecutive samples of one track stored together.
type chunk struct {
	track, first, count int
}

// interleave lays the tracks' samples out in the order they are presented, a chunk being a run
// of one track's samples, so a player reading the file from the start finds picture and sound
// of the same moment side by side.
func interleave(tracks []*Track) []chunk {
	next := make([]int, len(tracks))
	var chunks []chunk
	for {
		best, bestTime := -1, 0.0
		for k, t := range tracks {
			if next[k] == len(t.Sizes) {
				continue
			}
			at := (float64(next[k])*float64(t.Delta) - float64(t.Skip)) / float64(t.Timescale)
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
			chunks = append(chunks, chunk{track: best, first: next[best], count: 1})
		}
		next[best]++
	}
}

// WriteMovie writes an MP4 file of tracks to w, numbered from 1 in their order, the index before
// the samples so that a player can start before the whole file has arrived. It returns the first
// error of w or of a track's Write.
func WriteMovie(w io.Writer, tracks ...*Track) error {
	chunks := interleave(tracks)
	var data uint64
	for _, t := range tracks {
		for _, s := range t.Sizes {
			data += uint64(s)
		}
	}
	ftyp := box("ftyp", []byte("isom\x00\x00\x02\x00isomiso2avc1mp41"))
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
			if err := tracks[c.track].Write(bw); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}

// movieBox is the moov box of tracks laid out as chunks, the first sample's bytes at offset
// start of the file; large stores the offsets in 64 bits.
func movieBox(tracks []*Track, chunks []chunk, start uint64, large bool) []byte {
	offsets := make([][]uint64, len(tracks))
	counts := make([][]uint32, len(tracks))
	at := start
	for _, c := range chunks {
		offsets[c.track] = append(offsets[c.track], at)
		counts[c.track] = append(counts[c.track], uint32(c.count))
		for i := c.first; i < c.first+c.count; i++ {
			at += uint64(tracks[c.track].Sizes[i])
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
	boxes[0] = box("mvhd", be32(mvhd, uint32(len(tracks)+1))) // next_track_ID
	return box("moov", boxes...)
}

// trackBox is the trak box of track t, numbered id, whose sample table is stbl.
func trackBox(id uint32, t *Track, stbl []byte) []byte {
	dinf := box("dinf", box("dref", be32(fullBox(0, 0), 1), box("url ", fullBox(0, 1)))) // data in this file
	header, name := box("vmhd", be32(be32(fullBox(0, 1), 0), 0)), "VideoHandler"
	if t.Handler == "soun" {
		header, name = box("smhd", be32(fullBox(0, 0), 0)), "SoundHandler"
	}
	var mdhd []byte
	if d := t.mediaDuration(); d > math.MaxUint32 { // a day of 48 kHz sound: version 1, 64-bit times
		mdhd = append(fullBox(1, 0), make([]byte, 16)...) // creation, modification time
		mdhd = binary.BigEndian.AppendUint64(be32(mdhd, t.Timescale), d)
	} else {
		mdhd = be32(be32(be32(be32(fullBox(0, 0), 0), 0), t.Timescale), uint32(d))
	}
	mdhd = be32(mdhd, 0x55c40000) // language "und"
	hdlr := append(append(be32(fullBox(0, 0), 0), t.Handler...), make([]byte, 12)...)
	hdlr = append(append(hdlr, name...), 0)

	tkhd := be32(be32(be32(be32(fullBox(0, 3), 0), 0), id), 0) // enabled, in movie
	tkhd = be32(be32(be32(tkhd, uint32(t.presented())), 0), 0)
	if t.Handler == "soun" {
		tkhd = be16(be16(be16(be16(tkhd, 0), 1), 0x0100), 0) // layer, alternate group, volume
	} else {
		tkhd = be16(be16(be16(be16(tkhd, 0), 0), 0), 0)
	}
	tkhd = append(tkhd, unityMatrix...)
	tkhd = be32(be32(tkhd, t.Width<<16), t.Height<<16)
	elst := be32(fullBox(0, 0), 1)
	elst = be32(be32(be32(elst, uint32(t.presented())), t.Skip), 0x00010000) // media rate 1
	return box("trak", box("tkhd", tkhd), box("edts", box("elst", elst)),
		box("mdia", box("mdhd", mdhd), box("hdlr", hdlr), box("minf", header, dinf, stbl)))
}

// sampleTable is the stbl box of track t, whose chunks start at offsets and hold counts samples.
func sampleTable(t *Track, offsets []uint64, counts []uint32, large bool) []byte {
	n := uint32(len(t.Sizes))
	stts := fullBox(0, 0) // runs of samples of one duration
	if t.LastDelta != 0 && n > 1 {
		stts = be32(be32(be32(be32(be32(stts, 2), n-1), t.Delta), 1), t.LastDelta)
	} else {
		stts = be32(be32(be32(stts, 1), n), cmp.Or(t.LastDelta, t.Delta))
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
	for _, s := range t.Sizes {
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
	boxes := [][]byte{box("stsd", be32(fullBox(0, 0), 1), t.Entry), box("stts", stts)}
	if t.Keyframes != nil {
		stss := be32(fullBox(0, 0), uint32(len(t.Keyframes)))
		for _, s := range t.Keyframes {
			stss = be32(stss, s)
		}
		boxes = append(boxes, box("stss", stss))
	}
	boxes = append(boxes, box("stsc", stsc), box("stsz", stsz))
	if large {
		boxes = append(boxes, box("co64", co))
	} else {
		boxes = append(boxes, box("stco", co))
	}
	if t.Roll {
		sgpd := append(fullBox(1, 0), "roll"...)
		sgpd = be16(be32(be32(sgpd, 2), 1), 0xffff) // default_length, entry_count, roll_distance -1
		sbgp := append(fullBox(0, 0), "roll"...)
		sbgp = be32(be32(be32(sbgp, 1), n), 1) // every sample in group 1
		boxes = append(boxes, box("sgpd", sgpd), box("sbgp", sbgp))
	}
	return box("stbl", boxes...)
}

// be32 and be16 append v to b, big-endian, as every MP4 field is.
func be32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func be16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }

// fullBox is the start of a "full box"'s payload: its version and flags.
func fullBox(version byte, flags uint32) []byte { return be32(nil, uint32(version)<<24|flags) }

var unityMatrix = []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0}

// box is an ISO BMFF box of type typ whose payload is the parts one after the other.
func box(typ string, parts ...[]byte) []byte {
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
	return box("btrt", be32(be32(make([]byte, 4), rate), rate)) // buffer size (not given), maximum, average
}
