package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"vidgen/internal/h264"
)

// A still picture's clip is one keyframe followed by frames that repeat it. x264 spends 6-9 ms of
// CPU on each of those frames at 1080p looking for changes where there are none (99 of them cost
// 0.6-0.9 s, more than the keyframe), so x264 encodes only the keyframe and the few frames its
// rate control looks ahead at, which give the keyframe the same quality as a full clip's, and
// h264.NewStillClip writes the rest: P-frames in which every macroblock is skipped, which a
// decoder turns into an exact copy of the frame before. Each is a few dozen bytes.

// clipLookahead is x264's rate-control lookahead (rc-lookahead) for the clip: the keyframe's
// quality depends on how many frames that repeat it x264 sees, and it sees this many.
const clipLookahead = 10

// newStillClip is the clip of frames frames at fps frames a second made from stream, x264's
// Annex B output for a still picture (see h264.NewStillClip). A stream it cannot extend (an
// h264.ErrUnsupported: x264 as the clip step runs it writes none) fails the render like any
// other fault of the server's tools.
func newStillClip(stream []byte, frames, fps int) (*h264.StillClip, error) {
	c, err := h264.NewStillClip(stream, frames, fps)
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	return c, nil
}

// writeClipFile writes clip c to path as an MP4 file, for ffmpeg to repeat.
func writeClipFile(path string, c *h264.StillClip) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("clip: %w", err)
	}
	err = writeMovie(f, clipTrack(c, len(c.Frames)))
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("clip: %w", err)
	}
	return nil
}

// clipTrack is the video track of frames frames that repeat clip c's over and over, a keyframe at
// the start of each repeat. Its time scale is the one ffmpeg's muxer picks for the frame rate,
// so the video is timed as ffmpeg timed it.
func clipTrack(c *h264.StillClip, frames int) *mp4Track {
	timescale := uint32(c.FPS)
	for timescale < 10000 {
		timescale *= 2
	}
	t := &mp4Track{handler: "vide", timescale: timescale, delta: timescale / uint32(c.FPS),
		sizes: make([]uint32, frames), width: uint32(c.SPS.Width), height: uint32(c.SPS.Height)}
	if c.SPS.SARWidth > 0 && c.SPS.SARHeight > 0 {
		t.width = uint32(uint64(c.SPS.Width) * uint64(c.SPS.SARWidth) / uint64(c.SPS.SARHeight))
	}
	for i := range frames {
		t.sizes[i] = uint32(len(c.Frames[i%len(c.Frames)]))
		if i%len(c.Frames) == 0 {
			t.keyframes = append(t.keyframes, uint32(i+1))
		}
	}
	t.entry = avc1Entry(c, t.bitRate())
	next := 0
	t.write = func(w io.Writer) error {
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
	boxes := [][]byte{avc1, mp4Box("avcC", avcC)}
	if col := sps.Colour; col != nil {
		colr := be16(be16(be16([]byte("nclx"), uint16(col.Primaries)), uint16(col.Transfer)), uint16(col.Matrix))
		if col.FullRange {
			colr = append(colr, 0x80)
		} else {
			colr = append(colr, 0)
		}
		boxes = append(boxes, mp4Box("colr", colr))
	}
	if sps.SARWidth > 0 && sps.SARHeight > 0 {
		boxes = append(boxes, mp4Box("pasp", be32(be32(nil, uint32(sps.SARWidth)), uint32(sps.SARHeight))))
	}
	return mp4Box("avc1", append(boxes, btrt(rate))...)
}
