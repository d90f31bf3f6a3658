// Package h264 writes the frames of a still picture's video from one H.264 keyframe: it splits
// x264's Annex B output into NAL units, reads the fields of its parameter sets that a P slice
// depends on, and writes P-frames in which every macroblock is skipped (P_Skip), each of which a
// decoder turns into an exact copy of the frame before (NewStillClip). It also splices a few
// encoded pictures (keyframes, or P-frames that each refer to the one before) into a video that
// shows each for a run of frames, skipped frames filling each run (Splice), and splices a narrow
// band's video into a still picture's rows (SpliceBand). It follows ITU-T H.264 (2016).
//
// It accepts the progressive streams x264 writes (CAVLC or CABAC, picture order count type 0 or
// 2, weighted prediction or not, any chroma format and bit depth x264 offers; for Splice and
// SpliceBand, no B-frames, and for Splice one reference frame; SpliceBand's band without weighted
// prediction) and refuses any other with an error wrapping ErrUnsupported.
// It works on bytes in memory: it knows no container, file or job.
package h264

import "bytes"

// NAL unit types (H.264 Table 7-1), the low 5 bits of a NAL unit's first byte.
const (
	NALSlice = 1 // a slice of a picture other than an IDR picture
	NALIDR   = 5 // a slice of an IDR picture: a keyframe
	NALSPS   = 7 // a sequence parameter set
	NALPPS   = 8 // a picture parameter set
)

// SplitAnnexB returns the NAL units of an Annex B byte stream, without their start codes.
func SplitAnnexB(b []byte) [][]byte {
	var nals [][]byte
	start := -1
	for i := 0; i+2 < len(b); {
		if b[i] != 0 || b[i+1] != 0 || b[i+2] != 1 {
			i++
			continue
		}
		if start >= 0 {
			nals = append(nals, bytes.TrimRight(b[start:i], "\x00"))
		}
		i += 3
		start = i
	}
	if start >= 0 {
		nals = append(nals, b[start:])
	}
	return nals
}
