package mp4

import (
	"io"

	"vidgen/internal/h264"
)

// StillTrack is the video track of frames frames that repeat clip c's over and over, its
// keyframes (c.Keyframes) in each repeat. Its time scale is the one ffmpeg's muxer picks for the frame rate,
// so the video is timed as ffmpeg timed it.
func StillTrack(c *h264.StillClip, frames int) *Track {
	timescale := uint32(c.FPS)
	for timescale < 10000 {
		timescale *= 2
	}
	t := &Track{Handler: "vide", Timescale: timescale, Delta: timescale / uint32(c.FPS),
		Sizes: make([]uint32, frames), Width: uint32(c.SPS.Width), Height: uint32(c.SPS.Height)}
	if c.SPS.SARWidth > 0 && c.SPS.SARHeight > 0 {
		t.Width = uint32(uint64(c.SPS.Width) * uint64(c.SPS.SARWidth) / uint64(c.SPS.SARHeight))
	}
	key := make([]bool, len(c.Frames))
	for _, k := range c.Keyframes {
		key[k] = true
	}
	for i := range frames {
		t.Sizes[i] = uint32(len(c.Frames[i%len(c.Frames)]))
		if key[i%len(c.Frames)] {
			t.Keyframes = append(t.Keyframes, uint32(i+1))
		}
	}
	t.Entry = avc1Entry(c, t.bitRate())
	next := 0
	t.Write = func(w io.Writer) error {
		_, err := w.Write(c.Frames[next%len(c.Frames)])
		next++
		return err
	}
	return t
}

// avc1Entry is clip c's avc1 sample entry, with its average bit rate.
func avc1Entry(c *h264.StillClip, rate uint32) []byte {
	sps := c.SPS
	avcC := []byte{1, c.SPSNAL[1], c.SPSNAL[2], c.SPSNAL[3], 0xff, 0xe1}
	avcC = append(be16(avcC, uint16(len(c.SPSNAL))), c.SPSNAL...)
	avcC = append(be16(append(avcC, 1), uint16(len(c.PPSNAL))), c.PPSNAL...)
	if sps.High {
		avcC = append(avcC, 0xfc|byte(sps.ChromaFormat), 0xf8|byte(sps.BitDepthLuma-8), 0xf8|byte(sps.BitDepthChroma-8), 0)
	}
	avc1 := make([]byte, 6, 78)
	avc1 = be16(avc1, 1) // data_reference_index
	avc1 = append(avc1, make([]byte, 16)...)
	avc1 = be16(be16(avc1, uint16(sps.Width)), uint16(sps.Height))
	avc1 = be32(be32(avc1, 0x00480000), 0x00480000) // 72 dpi
	avc1 = be16(be32(avc1, 0), 1)                   // frame_count
	avc1 = append(avc1, make([]byte, 32)...)        // compressorname
	avc1 = be16(be16(avc1, 0x18), 0xffff)           // depth, pre_defined
	boxes := [][]byte{avc1, box("avcC", avcC)}
	if col := sps.Colour; col != nil {
		colr := be16(be16(be16([]byte("nclx"), uint16(col.Primaries)), uint16(col.Transfer)), uint16(col.Matrix))
		if col.FullRange {
			colr = append(colr, 0x80)
		} else {
			colr = append(colr, 0)
		}
		boxes = append(boxes, box("colr", colr))
	}
	if sps.SARWidth > 0 && sps.SARHeight > 0 {
		boxes = append(boxes, box("pasp", be32(be32(nil, uint32(sps.SARWidth)), uint32(sps.SARHeight))))
	}
	return box("avc1", append(boxes, btrt(rate))...)
}
