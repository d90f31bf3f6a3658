package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// A still picture's clip is one keyframe followed by frames that repeat it. x264 spends 6-9 ms of
// CPU on each of those frames at 1080p looking for changes where there are none (99 of them cost
// 0.6-0.9 s, more than the keyframe), so x264 encodes only the keyframe and the few frames its
// rate control looks ahead at, which give the keyframe the same quality as a full clip's, and
// writeClip writes the rest: P-frames in which every macroblock is skipped, which a decoder
// turns into an exact copy of the frame before. Each is a few dozen bytes.

// clipLookahead is x264's rate-control lookahead (rc-lookahead) for the clip: the keyframe's
// quality depends on how many frames that repeat it x264 sees, and it sees this many.
const clipLookahead = 10

// errClipStream is returned for an H.264 stream whose settings writeClip does not write frames
// for (interlaced, slice groups, picture order count type 1): x264 as the clip step runs it
// makes none of these.
var errClipStream = errors.New("clip: unsupported H.264 stream")

// writeClip writes to path an MP4 of frames frames at fps frames a second: the keyframe of
// stream, x264's Annex B output for a still picture (parameter sets, the keyframe, any frames
// after it, which are dropped), then frames-1 all-skip P-frames.
func writeClip(path string, stream []byte, frames, fps int) error {
	var (
		sps      *seqParams
		pps      *picParams
		spsNAL   []byte
		ppsNAL   []byte
		first    []byte // the keyframe's sample: its NAL units, each after its length
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
			spsNAL = nal
			sps, err = parseSPS(unescapeRBSP(nal[1:]))
		case nalPPS:
			ppsNAL = nal
			pps, err = parsePPS(unescapeRBSP(nal[1:]))
		case nalIDR:
			keyframe = true
			fallthrough
		default:
			first = appendLengthPrefixed(first, nal)
		}
		if err != nil {
			return err
		}
	}
	if sps == nil || pps == nil || !keyframe {
		return fmt.Errorf("%w: no parameter sets or keyframe", errClipStream)
	}
	samples := make([][]byte, frames)
	samples[0] = first
	for i := 1; i < frames; i++ {
		samples[i] = appendLengthPrefixed(nil, skipFrame(sps, pps, i))
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("clip: %w", err)
	}
	_, err = f.Write(clipMP4(sps, spsNAL, ppsNAL, samples, fps))
	return errors.Join(err, f.Close())
}

func appendLengthPrefixed(b, nal []byte) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(nal))), nal...)
}

// clipMP4 is an MP4 file of one H.264 track: samples (NAL units each after a 4-byte length) at
// fps, the first the only keyframe, with the index before the data. The time scale is the one
// ffmpeg's muxer picks for fps, so the video that repeats the clip is timed as before.
func clipMP4(sps *seqParams, spsNAL, ppsNAL []byte, samples [][]byte, fps int) []byte {
	timescale := uint32(fps)
	for timescale < 10000 {
		timescale *= 2
	}
	delta := timescale / uint32(fps)
	n := uint32(len(samples))
	duration := n * delta
	movieDuration := uint32(uint64(duration) * 1000 / uint64(timescale))
	u32 := binary.BigEndian.AppendUint32
	u16 := binary.BigEndian.AppendUint16
	matrix := []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0}

	avcC := []byte{1, spsNAL[1], spsNAL[2], spsNAL[3], 0xff, 0xe1}
	avcC = append(u16(avcC, uint16(len(spsNAL))), spsNAL...)
	avcC = append(u16(append(avcC, 1), uint16(len(ppsNAL))), ppsNAL...)
	if sps.high {
		avcC = append(avcC, 0xfc|byte(sps.chromaFormat), 0xf8|byte(sps.bitDepthLuma-8), 0xf8|byte(sps.bitDepthChroma-8), 0)
	}
	avc1 := make([]byte, 6, 78)
	avc1 = u16(avc1, 1) // data_reference_index
	avc1 = append(avc1, make([]byte, 16)...)
	avc1 = u16(u16(avc1, uint16(sps.width)), uint16(sps.height))
	avc1 = u32(u32(avc1, 0x00480000), 0x00480000) // 72 dpi
	avc1 = u16(u32(avc1, 0), 1)                   // frame_count
	avc1 = append(avc1, make([]byte, 32)...)      // compressorname
	avc1 = u16(u16(avc1, 0x18), 0xffff)           // depth, pre_defined

	stsz := u32(u32(make([]byte, 4), 0), n)
	for _, s := range samples {
		stsz = u32(stsz, uint32(len(s)))
	}
	moov := func(dataOffset uint32) []byte {
		stbl := mp4Box("stbl",
			mp4Box("stsd", u32(make([]byte, 4), 1), mp4Box("avc1", avc1, mp4Box("avcC", avcC))),
			mp4Box("stts", u32(u32(u32(make([]byte, 4), 1), n), delta)),
			mp4Box("stss", u32(u32(make([]byte, 4), 1), 1)),
			mp4Box("stsc", u32(u32(u32(u32(make([]byte, 4), 1), 1), n), 1)),
			mp4Box("stsz", stsz),
			mp4Box("stco", u32(u32(make([]byte, 4), 1), dataOffset)))
		minf := mp4Box("minf",
			mp4Box("vmhd", []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}),
			mp4Box("dinf", mp4Box("dref", u32(make([]byte, 4), 1), mp4Box("url ", []byte{0, 0, 0, 1}))),
			stbl)
		mdhd := u32(u32(u32(make([]byte, 12), timescale), duration), 0x55c40000) // language "und"
		hdlr := append(append(make([]byte, 8), "vide"...), make([]byte, 12)...)
		hdlr = append(hdlr, "VideoHandler\x00"...)
		tkhd := u32(u32(make([]byte, 12), 1), 0) // flags: enabled, in movie; track 1
		tkhd[3] = 3
		tkhd = append(u32(tkhd, movieDuration), make([]byte, 16)...) // reserved, layer, group, volume, reserved
		tkhd = append(tkhd, matrix...)
		tkhd = u32(u32(tkhd, uint32(sps.width)<<16), uint32(sps.height)<<16)
		mvhd := u32(u32(make([]byte, 12), 1000), movieDuration)
		mvhd = append(u16(u32(mvhd, 0x00010000), 0x0100), make([]byte, 10)...) // rate, volume, reserved
		mvhd = u32(append(append(mvhd, matrix...), make([]byte, 24)...), 2)    // next_track_ID
		return mp4Box("moov", mp4Box("mvhd", mvhd),
			mp4Box("trak", mp4Box("tkhd", tkhd), mp4Box("mdia", mp4Box("mdhd", mdhd), mp4Box("hdlr", hdlr), minf)))
	}
	ftyp := mp4Box("ftyp", []byte("isom\x00\x00\x02\x00isomiso2avc1mp41"))
	head := len(ftyp) + len(moov(0)) + 8
	var data []byte
	for _, s := range samples {
		data = append(data, s...)
	}
	out := append(ftyp, moov(uint32(head))...)
	out = u32(out, uint32(8+len(data)))
	return append(append(out, "mdat"...), data...)
}

// mp4Box is an ISO BMFF box of type typ whose payload is the parts one after the other.
func mp4Box(typ string, parts ...[]byte) []byte {
	size := 8
	for _, p := range parts {
		size += len(p)
	}
	b := binary.BigEndian.AppendUint32(make([]byte, 0, size), uint32(size))
	b = append(b, typ...)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
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
