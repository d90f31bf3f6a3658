package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// A still picture's clip is one keyframe followed by frames that repeat it. x264 spends 6-9 ms of
// CPU on each of those frames at 1080p looking for changes where there are none (99 of them cost
// 0.6-0.9 s, more than the keyframe), so x264 encodes only the keyframe and the few frames its
// rate control looks ahead at, which give the keyframe the same quality as a full clip's, and
// newStillClip writes the rest: P-frames in which every macroblock is skipped, which a decoder
// turns into an exact copy of the frame before. Each is a few dozen bytes.

// clipLookahead is x264's rate-control lookahead (rc-lookahead) for the clip: the keyframe's
// quality depends on how many frames that repeat it x264 sees, and it sees this many.
const clipLookahead = 10

// errClipStream is returned for an H.264 stream whose settings newStillClip does not write frames
// for (interlaced, slice groups, picture order count type 1): x264 as the clip step runs it
// makes none of these.
var errClipStream = errors.New("clip: unsupported H.264 stream")

// stillClip is a still picture's clip: x264's parameter sets and keyframe, and the skipped
// frames that repeat it.
type stillClip struct {
	sps            *seqParams
	spsNAL, ppsNAL []byte
	samples        [][]byte // the frames, each its NAL units after their lengths; the first is the keyframe
	fps            int
}

// newStillClip is the clip of frames frames at fps frames a second made from stream, x264's
// Annex B output for a still picture: its parameter sets and keyframe (any frames after it are
// dropped), then frames-1 all-skip P-frames.
func newStillClip(stream []byte, frames, fps int) (*stillClip, error) {
	c := &stillClip{fps: fps}
	var (
		pps      *picParams
		first    []byte
		keyframe bool
	)
	for _, nal := range splitAnnexB(stream) {
		if len(nal) == 0 {
			continue
		}
		typ := nal[0] & 0x1f
		if keyframe && typ != nalIDR {
			break // x264's frames after the keyframe: the skipped frames take their place
		}
		var err error
		switch typ {
		case nalSPS:
			c.spsNAL = nal
			c.sps, err = parseSPS(unescapeRBSP(nal[1:]))
		case nalPPS:
			c.ppsNAL = nal
			pps, err = parsePPS(unescapeRBSP(nal[1:]))
		case nalIDR:
			keyframe = true
			fallthrough
		default:
			first = appendLengthPrefixed(first, nal)
		}
		if err != nil {
			return nil, err
		}
	}
	if c.sps == nil || pps == nil || !keyframe {
		return nil, fmt.Errorf("%w: no parameter sets or keyframe", errClipStream)
	}
	c.samples = make([][]byte, frames)
	c.samples[0] = first
	for i := 1; i < frames; i++ {
		c.samples[i] = appendLengthPrefixed(nil, skipFrame(c.sps, pps, i))
	}
	return c, nil
}

// writeClipFile writes clip c to path as an MP4 file, for ffmpeg to repeat.
func writeClipFile(path string, c *stillClip) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("clip: %w", err)
	}
	err = writeMovie(f, c.track(len(c.samples)))
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("clip: %w", err)
	}
	return nil
}

func appendLengthPrefixed(b, nal []byte) []byte {
	return append(be32(b, uint32(len(nal))), nal...)
}

// size is the clip's size in bytes: its frames, without the MP4 index.
func (c *stillClip) size() int64 {
	var n int64
	for _, s := range c.samples {
		n += int64(len(s))
	}
	return n
}

// track is the video track of frames frames that repeat the clip's over and over, a keyframe at
// the start of each repeat. Its time scale is the one ffmpeg's muxer picks for the frame rate,
// so the video is timed as ffmpeg timed it.
func (c *stillClip) track(frames int) *mp4Track {
	timescale := uint32(c.fps)
	for timescale < 10000 {
		timescale *= 2
	}
	t := &mp4Track{handler: "vide", timescale: timescale, delta: timescale / uint32(c.fps),
		sizes: make([]uint32, frames), width: uint32(c.sps.width), height: uint32(c.sps.height)}
	if c.sps.sarWidth > 0 && c.sps.sarHeight > 0 {
		t.width = uint32(uint64(c.sps.width) * uint64(c.sps.sarWidth) / uint64(c.sps.sarHeight))
	}
	for i := range frames {
		t.sizes[i] = uint32(len(c.samples[i%len(c.samples)]))
		if i%len(c.samples) == 0 {
			t.keyframes = append(t.keyframes, uint32(i+1))
		}
	}
	t.entry = c.sampleEntry(t.bitRate())
	next := 0
	t.write = func(w io.Writer) error {
		_, err := w.Write(c.samples[next%len(c.samples)])
		next++
		return err
	}
	return t
}

// sampleEntry is the clip's avc1 sample entry, with its average bit rate.
func (c *stillClip) sampleEntry(rate uint32) []byte {
	sps := c.sps
	avcC := []byte{1, c.spsNAL[1], c.spsNAL[2], c.spsNAL[3], 0xff, 0xe1}
	avcC = append(be16(avcC, uint16(len(c.spsNAL))), c.spsNAL...)
	avcC = append(be16(append(avcC, 1), uint16(len(c.ppsNAL))), c.ppsNAL...)
	if sps.high {
		avcC = append(avcC, 0xfc|byte(sps.chromaFormat), 0xf8|byte(sps.bitDepthLuma-8), 0xf8|byte(sps.bitDepthChroma-8), 0)
	}
	avc1 := make([]byte, 6, 78)
	avc1 = be16(avc1, 1) // data_reference_index
	avc1 = append(avc1, make([]byte, 16)...)
	avc1 = be16(be16(avc1, uint16(sps.width)), uint16(sps.height))
	avc1 = be32(be32(avc1, 0x00480000), 0x00480000) // 72 dpi
	avc1 = be16(be32(avc1, 0), 1)                   // frame_count
	avc1 = append(avc1, make([]byte, 32)...)        // compressorname
	avc1 = be16(be16(avc1, 0x18), 0xffff)           // depth, pre_defined
	boxes := [][]byte{avc1, mp4Box("avcC", avcC)}
	if col := sps.colour; col != nil {
		colr := be16(be16(be16([]byte("nclx"), uint16(col.primaries)), uint16(col.transfer)), uint16(col.matrix))
		if col.fullRange {
			colr = append(colr, 0x80)
		} else {
			colr = append(colr, 0)
		}
		boxes = append(boxes, mp4Box("colr", colr))
	}
	if sps.sarWidth > 0 && sps.sarHeight > 0 {
		boxes = append(boxes, mp4Box("pasp", be32(be32(nil, uint32(sps.sarWidth)), uint32(sps.sarHeight))))
	}
	return mp4Box("avc1", append(boxes, btrt(rate))...)
}

// skipFrame returns the NAL unit of frame n (n ≥ 1 after the keyframe) as one P slice in which
// every macroblock is skipped: with no motion and no residual it decodes to the frame before.
// Each is a reference frame, so frame_num and the picture order count advance by one frame.
func skipFrame(sps *seqParams, pps *picParams, n int) []byte {
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
	return append([]byte{nalRefIdc | nalSlice}, escapeRBSP(w.b)...)
}

// sliceQP is the skipped frames' slice QP. A skipped macroblock has no residual, so it changes
// nothing in the picture; it only sets the context the skip flags start from, and at 26 that
// context already expects a skip.
const sliceQP = 26

// mbSkipInit is (m, n) for mb_skip_flag's context in a P slice with cabac_init_idc 0 (ctxIdx 11,
// H.264 Table 9-13). Every macroblock is skipped, so its neighbours are too and ctxIdxInc is 0.
var mbSkipInit = [2]int{23, 33}
