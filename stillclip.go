package main

import (
	"errors"
	"fmt"
	"os"

	"vidgen/internal/h264"
	"vidgen/internal/mp4"
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
// Annex B output for a still picture (see h264.NewStillClip). A stream it cannot extend is an
// error that wraps h264.ErrUnsupported: x264 as the clip step runs it writes none today, and
// renderStill then encodes every frame instead.
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
	err = mp4.WriteMovie(f, mp4.StillTrack(c, len(c.Frames)))
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("clip: %w", err)
	}
	return nil
}
