package h264

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A still picture's clip is one keyframe followed by frames that repeat it. An encoder spends
// 6-9 ms of CPU on each of those frames at 1080p looking for changes where there are none, so the
// encoder makes only the keyframe and NewStillClip writes the rest: P-frames in which every
// macroblock is skipped, which a decoder turns into an exact copy of the frame before. Each is a
// few dozen bytes.

// ErrUnsupported is a stream whose settings this package does not write frames for: interlaced,
// slice groups, picture order count type 1, or parameter sets it cannot read. x264 writes none of
// these for a progressive picture.
var ErrUnsupported = errors.New("unsupported H.264 stream")

// StillClip is a still picture's clip: an encoder's parameter sets and keyframe, and the skipped
// frames that repeat it; or, made by Splice, pictures that follow one another, each repeated so;
// or, made by SpliceBand, a band's frames in a still picture's rows.
type StillClip struct {
	SPS            *SPS
	SPSNAL, PPSNAL []byte // the parameter sets' NAL units, for a container's decoder configuration
	// Frames are the clip's frames, each its NAL units one after the other, each after its length
	// (4 bytes, big-endian), as MP4 stores them. The first is the keyframe.
	Frames [][]byte
	// Keyframes are the indexes in Frames of the IDR pictures, in order: the first is 0.
	Keyframes []int
	FPS       int // frames a second
}

// NewStillClip is the clip of frames frames (at least 1) at fps frames a second made from stream,
// x264's Annex B output for a still picture: its parameter sets and keyframe (with any NAL units
// before the keyframe, such as x264's SEI; the frames after it are dropped), then frames-1
// all-skip P-frames. A stream it cannot extend is an error that wraps ErrUnsupported.
func NewStillClip(stream []byte, frames, fps int) (*StillClip, error) {
	c := &StillClip{FPS: fps, Keyframes: []int{0}}
	var (
		pps      *picParams
		first    []byte
		keyframe bool
	)
	for _, nal := range SplitAnnexB(stream) {
		if len(nal) == 0 {
			continue
		}
		typ := nal[0] & 0x1f
		if keyframe && typ != NALIDR {
			break // x264's frames after the keyframe: the skipped frames take their place
		}
		var err error
		switch typ {
		case NALSPS:
			c.SPSNAL = nal
			c.SPS, err = ParseSPS(unescapeRBSP(nal[1:]))
		case NALPPS:
			c.PPSNAL = nal
			pps, err = parsePPS(unescapeRBSP(nal[1:]))
		case NALIDR:
			keyframe = true
			fallthrough
		default:
			first = appendLengthPrefixed(first, nal)
		}
		if err != nil {
			return nil, err
		}
	}
	if c.SPS == nil || pps == nil || !keyframe {
		return nil, fmt.Errorf("%w: no parameter sets or keyframe", ErrUnsupported)
	}
	c.Frames = make([][]byte, frames)
	c.Frames[0] = first
	for i := 1; i < frames; i++ {
		c.Frames[i] = appendLengthPrefixed(nil, skipFrame(c.SPS, pps, i))
	}
	return c, nil
}

func appendLengthPrefixed(b, nal []byte) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(nal))), nal...)
}

// Size is the clip's size in bytes: its frames, without a container's index.
func (c *StillClip) Size() int64 {
	var n int64
	for _, f := range c.Frames {
		n += int64(len(f))
	}
	return n
}

// skipFrame returns the NAL unit of frame n (n ≥ 1 after the keyframe) as one P slice in which
// every macroblock is skipped: with no motion and no residual it decodes to the frame before.
// Each is a reference frame, so frame_num and the picture order count advance by one frame.
func skipFrame(sps *SPS, pps *picParams, n int) []byte {
	var w rbspWriter
	w.ue(0) // first_mb_in_slice
	w.ue(5) // slice_type: P, and every slice of the picture is P
	w.ue(pps.id)
	if sps.separateColour {
		w.u(0, 2) // colour_plane_id
	}
	w.u(uint(n)&(1<<sps.log2MaxFrameNum-1), sps.log2MaxFrameNum) // frame_num
	if sps.pocType == 0 {
		w.u(uint(2*n)&(1<<sps.log2MaxPocLsb-1), sps.log2MaxPocLsb) // pic_order_cnt_lsb
		if pps.bottomFieldPoc {
			w.se(0) // delta_pic_order_cnt_bottom
		}
	}
	if pps.redundantPicCnt {
		w.ue(0)
	}
	w.u(1, 1) // num_ref_idx_active_override_flag: one reference, the frame before
	w.ue(0)   // num_ref_idx_l0_active_minus1
	w.u(0, 1) // ref_pic_list_modification_flag_l0
	if pps.weightedPred {
		w.ue(0) // luma_log2_weight_denom
		if sps.chromaArrayType != 0 {
			w.ue(0) // chroma_log2_weight_denom
		}
		w.u(0, 1) // luma_weight_l0_flag
		if sps.chromaArrayType != 0 {
			w.u(0, 1) // chroma_weight_l0_flag
		}
	}
	w.u(0, 1) // adaptive_ref_pic_marking_mode_flag: the sliding window
	if pps.cabac {
		w.ue(0) // cabac_init_idc
	}
	w.se(sliceQP - pps.picInitQP) // slice_qp_delta
	if pps.deblockingControl {
		w.ue(1) // disable_deblocking_filter_idc: nothing to filter in a copy
	}
	if pps.cabac {
		for w.n%8 != 0 {
			w.u(1, 1) // cabac_alignment_one_bit
		}
		e := cabacEncoder{w: &w, rng: 510, first: true}
		state, mps := cabacInit(mbSkipInit, sliceQP)
		for mb := uint(0); mb < sps.picSizeInMbs; mb++ {
			e.decision(&state, &mps, 1)           // mb_skip_flag
			e.terminate(mb == sps.picSizeInMbs-1) // end_of_slice_flag
		}
	} else {
		w.ue(sps.picSizeInMbs) // mb_skip_run
		w.u(1, 1)              // rbsp_stop_one_bit
	}
	for w.n%8 != 0 {
		w.u(0, 1)
	}
	const nalRefIdc = 2 << 5
	return append([]byte{nalRefIdc | NALSlice}, escapeRBSP(w.b)...)
}

// sliceQP is the skipped frames' slice QP. A skipped macroblock has no residual, so it changes
// nothing in the picture; it only sets the context the skip flags start from, and at 26 that
// context already expects a skip.
const sliceQP = 26

// mbSkipInit is (m, n) for mb_skip_flag's context in a P slice with cabac_init_idc 0 (ctxIdx 11,
// H.264 Table 9-13). Every macroblock is skipped, so its neighbours are too and ctxIdxInc is 0.
var mbSkipInit = [2]int{23, 33}
