package h264

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// A waveform video changes only in its band: the rest of every frame is the still picture.
// SpliceBand builds such a video from two encodes: the picture alone, one slice per macroblock row, and the
// band alone as a narrow video of the frame's width. Each keyframe is the picture's rows with the
// band's keyframe slice moved down into its rows; every other frame is the band's slice, moved
// down, between slices whose macroblocks are all skipped. The band's slices do not filter across
// their edges (disable_deblocking_filter_idc 2), so the band decodes as in its own stream, where
// those edges are the picture's; nor does the picture's row just below the band across its top.
// The other picture rows keep the picture's loop filter across their edges.

// sliceHeader is what SpliceBand reads from and writes to a slice header (H.264 7.3.3).
type sliceHeader struct {
	nal        byte // the NAL unit's first byte
	firstMB    uint
	sliceType  uint // 0 P, 2 I (mod 5)
	idrPicID   uint
	numRefOver bool
	numRefL0   uint
	refMod     []uint // ref_pic_list_modification_l0's fields, the final 3 included; nil: none
	noOutput   bool   // IDR: no_output_of_prior_pics_flag
	longTerm   bool   // IDR: long_term_reference_flag
	mmco       []uint // adaptive marking's fields, the final 0 included; nil: the sliding window
	cabacInit  uint
	qp         int
	deblock    uint // disable_deblocking_filter_idc
	alpha      int
	beta       int
	data       []byte // the slice data from its first byte (CABAC) ...
	dataBit    uint   // ... and the bit it starts at in data[0] (CAVLC)
}

// parseSlice reads the header of the slice NAL unit nal, which sps and pps describe.
func parseSlice(nal []byte, sps *SPS, pps *picParams) (*sliceHeader, error) {
	r := rbspReader{b: unescapeRBSP(nal[1:])}
	h := &sliceHeader{nal: nal[0]}
	h.firstMB = r.ue()
	h.sliceType = r.ue() % 5
	if h.sliceType != 0 && h.sliceType != 2 {
		return nil, fmt.Errorf("%w: slice type %d", ErrUnsupported, h.sliceType)
	}
	if r.ue() != pps.id {
		return nil, fmt.Errorf("%w: another picture parameter set", ErrUnsupported)
	}
	if sps.separateColour {
		return nil, fmt.Errorf("%w: separate colour planes", ErrUnsupported)
	}
	r.u(sps.log2MaxFrameNum) // frame_num: SpliceBand numbers the frames
	idr := nal[0]&0x1f == NALIDR
	if idr {
		h.idrPicID = r.ue()
	}
	if sps.pocType == 0 {
		r.u(sps.log2MaxPocLsb)
		if pps.bottomFieldPoc {
			r.se()
		}
	}
	if pps.redundantPicCnt {
		r.ue()
	}
	if h.sliceType == 0 {
		if h.numRefOver = r.u(1) == 1; h.numRefOver {
			h.numRefL0 = r.ue()
		}
		if r.u(1) == 1 {
			h.refMod = []uint{}
			for i := 0; r.err == nil && i < 64; i++ {
				idc := r.ue()
				h.refMod = append(h.refMod, idc)
				if idc == 3 {
					break
				}
				h.refMod = append(h.refMod, r.ue())
			}
		}
		if pps.weightedPred {
			return nil, fmt.Errorf("%w: weighted prediction", ErrUnsupported)
		}
	}
	if nal[0]&0x60 != 0 {
		if idr {
			h.noOutput, h.longTerm = r.u(1) == 1, r.u(1) == 1
		} else if r.u(1) == 1 {
			h.mmco = []uint{}
			for i := 0; r.err == nil && i < 64; i++ {
				op := r.ue()
				h.mmco = append(h.mmco, op)
				if op == 0 {
					break
				}
				switch op {
				case 3:
					h.mmco = append(h.mmco, r.ue(), r.ue())
				case 1, 2, 4, 6:
					h.mmco = append(h.mmco, r.ue())
				}
			}
		}
	}
	if pps.cabac && h.sliceType != 2 {
		h.cabacInit = r.ue()
	}
	h.qp = pps.picInitQP + r.se()
	if pps.deblockingControl {
		if h.deblock = r.ue(); h.deblock != 1 {
			h.alpha, h.beta = r.se(), r.se()
		}
	}
	if pps.cabac {
		r.pos = (r.pos + 7) &^ 7 // cabac_alignment_one_bit
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: slice header: %w", ErrUnsupported, r.err)
	}
	h.data, h.dataBit = r.b[r.pos/8:], r.pos%8
	return h, nil
}

// write returns h as a NAL unit of frame frameNum (since the last keyframe) of a stream that sps
// and pps describe, its slice data copied.
func (h *sliceHeader) write(sps *SPS, pps *picParams, frameNum uint) []byte {
	var w rbspWriter
	w.ue(h.firstMB)
	w.ue(h.sliceType)
	w.ue(pps.id)
	w.u(frameNum&(1<<sps.log2MaxFrameNum-1), sps.log2MaxFrameNum)
	if h.nal&0x1f == NALIDR {
		w.ue(h.idrPicID)
	}
	if sps.pocType == 0 {
		w.u(2*frameNum&(1<<sps.log2MaxPocLsb-1), sps.log2MaxPocLsb)
		if pps.bottomFieldPoc {
			w.se(0)
		}
	}
	if pps.redundantPicCnt {
		w.ue(0)
	}
	if h.sliceType == 0 {
		w.u(b2u(h.numRefOver), 1)
		if h.numRefOver {
			w.ue(h.numRefL0)
		}
		w.u(b2u(h.refMod != nil), 1)
		for _, v := range h.refMod {
			w.ue(v)
		}
	}
	if h.nal&0x60 != 0 {
		if h.nal&0x1f == NALIDR {
			w.u(b2u(h.noOutput), 1)
			w.u(b2u(h.longTerm), 1)
		} else {
			w.u(b2u(h.mmco != nil), 1)
			for _, v := range h.mmco {
				w.ue(v)
			}
		}
	}
	if pps.cabac && h.sliceType != 2 {
		w.ue(h.cabacInit)
	}
	w.se(h.qp - pps.picInitQP)
	if pps.deblockingControl {
		w.ue(h.deblock)
		if h.deblock != 1 {
			w.se(h.alpha)
			w.se(h.beta)
		}
	}
	if pps.cabac {
		for w.n%8 != 0 {
			w.u(1, 1)
		}
		w.b = append(w.b, h.data...)
	} else {
		for i := h.dataBit; i < 8 && len(h.data) > 0; i++ {
			w.u(uint(h.data[0]>>(7-i))&1, 1)
		}
		if w.n%8 == 0 && len(h.data) > 0 {
			w.b = append(w.b, h.data[1:]...)
		} else {
			for _, c := range h.data[min(1, len(h.data)):] {
				w.u(uint(c), 8)
			}
		}
	}
	return append([]byte{h.nal}, escapeRBSP(w.b)...)
}

func b2u(b bool) uint {
	if b {
		return 1
	}
	return 0
}

// skipSlice is a P slice of count macroblocks from first on, all skipped, with h's frame-wide
// fields (the NAL unit's reference flag, the reference marking), its deblocking off.
func skipSlice(sps *SPS, pps *picParams, h *sliceHeader, first, count, frameNum uint) []byte {
	s := &sliceHeader{nal: h.nal&0x60 | NALSlice, firstMB: first, numRefOver: true, mmco: h.mmco,
		qp: sliceQP, deblock: 1}
	var w rbspWriter
	if pps.cabac {
		e := cabacEncoder{w: &w, rng: 510, first: true}
		state, mps := cabacInit(mbSkipInit, sliceQP)
		for mb := range count {
			e.decision(&state, &mps, 1)
			e.terminate(mb == count-1)
		}
	} else {
		w.ue(count)
		w.u(1, 1)
	}
	for w.n%8 != 0 {
		w.u(0, 1)
	}
	s.data = w.b
	return s.write(sps, pps, frameNum)
}

// parsedStream is an x264 stream's parameter sets and its pictures' slice NAL units.
type parsedStream struct {
	sps      *SPS
	pps      *picParams
	spsNAL   []byte
	ppsNAL   []byte
	pictures [][][]byte
}

func parseStream(stream []byte) (*parsedStream, error) {
	p := &parsedStream{}
	for _, nal := range SplitAnnexB(stream) {
		if len(nal) == 0 {
			continue
		}
		var err error
		switch nal[0] & 0x1f {
		case NALSPS:
			p.spsNAL = nal
			p.sps, err = ParseSPS(unescapeRBSP(nal[1:]))
		case NALPPS:
			p.ppsNAL = nal
			p.pps, err = parsePPS(unescapeRBSP(nal[1:]))
		case NALSlice, NALIDR:
			if p.sps == nil || p.pps == nil {
				return nil, fmt.Errorf("%w: a slice before the parameter sets", ErrUnsupported)
			}
			r := rbspReader{b: unescapeRBSP(nal[1:min(len(nal), 16)])}
			if r.ue() == 0 {
				p.pictures = append(p.pictures, nil)
			}
			if len(p.pictures) == 0 {
				return nil, fmt.Errorf("%w: a picture without its first slice", ErrUnsupported)
			}
			p.pictures[len(p.pictures)-1] = append(p.pictures[len(p.pictures)-1], nal)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(p.pictures) == 0 {
		return nil, fmt.Errorf("%w: no pictures", ErrUnsupported)
	}
	return p, nil
}

// SpliceBand is the clip at fps frames a second whose frames are band's pictures moved down by
// bandRow macroblock rows into the picture of still, every row outside the band the picture's in
// every frame. still is x264's Annex B stream of one picture of the whole frame, one slice per
// macroblock row; band is x264's stream of the band alone, as wide as the frame, its pictures I
// or P, without weighted prediction or B-frames, made with the same settings. The clip's frames
// are written with still's parameter sets, so band's must be still's in every field that shapes
// how a slice decodes: its picture parameter set bit for bit but for pic_init_qp (SpliceBand
// rewrites each slice's QP delta against still's), its sequence parameter set bit for bit but
// for the constraint flags and level, the sizes of frame_num and of the picture order count and
// its type (SpliceBand rewrites those fields of each slice header), the height, the cropping (the
// cropped widths must be equal) and the video usability information. Each of band's keyframes is
// a keyframe of the clip (in Keyframes): the picture's rows around the band's keyframe; every
// other frame is the band's picture between all-skip slices. The clip has frames frames (at least
// 1): band's first ones, then all-skip frames that repeat the last. A pair of streams it cannot
// splice so (parameter sets that differ otherwise, among others) is an error that wraps
// ErrUnsupported.
//
// The band's rows decode as in band's own stream only while its motion vectors stay inside it:
// one that points outside read band's edge, extended, in its own stream and reads the picture's
// rows in the clip. x264 has no setting that keeps them inside, so the caller must check the
// clip's band against band's own frames (by decoding both) before it uses the clip.
func SpliceBand(still, band []byte, bandRow uint, frames, fps int) (*StillClip, error) {
	s, err := parseStream(still)
	if err != nil {
		return nil, fmt.Errorf("picture: %w", err)
	}
	b, err := parseStream(band)
	if err != nil {
		return nil, fmt.Errorf("band: %w", err)
	}
	w := s.sps.widthMbs
	if b.sps.Width != s.sps.Width || b.sps.widthMbs != w {
		return nil, fmt.Errorf("%w: the band is not as wide as the picture", ErrUnsupported)
	}
	if s.sps.layout != b.sps.layout || s.pps.layout != b.pps.layout {
		return nil, fmt.Errorf("%w: the picture's and the band's parameter sets differ", ErrUnsupported)
	}
	rows, bandRows := s.sps.picSizeInMbs/w, b.sps.picSizeInMbs/w
	if bandRow+bandRows > rows {
		return nil, fmt.Errorf("%w: the band is outside the picture", ErrUnsupported)
	}
	// The picture's rows, by row.
	var stillRows []*sliceHeader
	for _, nal := range s.pictures[0] {
		h, err := parseSlice(nal, s.sps, s.pps)
		if err != nil {
			return nil, fmt.Errorf("picture: %w", err)
		}
		if h.sliceType != 2 || h.firstMB%w != 0 {
			return nil, fmt.Errorf("%w: the picture is not one I slice per row", ErrUnsupported)
		}
		stillRows = append(stillRows, h)
	}
	if uint(len(stillRows)) != rows {
		return nil, fmt.Errorf("%w: the picture is not one I slice per row", ErrUnsupported)
	}
	c := &StillClip{SPS: s.sps, SPSNAL: s.spsNAL, PPSNAL: s.ppsNAL, FPS: fps}
	if b.pictures[0][0][0]&0x1f != NALIDR {
		return nil, fmt.Errorf("%w: the band does not start with a keyframe", ErrUnsupported)
	}
	frameNum := uint(0)
	var last *sliceHeader
	for i, pic := range b.pictures[:min(len(b.pictures), frames)] {
		var frame []byte
		var first *sliceHeader
		var band [][]byte
		for _, nal := range pic {
			h, err := parseSlice(nal, b.sps, b.pps)
			if err != nil {
				return nil, fmt.Errorf("band picture %d: %w", i, err)
			}
			if first == nil {
				first = h
			}
			h.firstMB += bandRow * w
			h.deblock, h.alpha, h.beta = 2, first.alpha, first.beta
			if first.deblock == 1 {
				h.deblock, h.alpha, h.beta = 1, 0, 0
			}
			if h.nal&0x1f == NALIDR {
				frameNum = 0
			}
			band = append(band, h.write(s.sps, s.pps, frameNum))
		}
		if first.nal&0x1f == NALIDR {
			for r, h := range stillRows {
				if uint(r) == bandRow {
					for _, n := range band {
						frame = appendLengthPrefixed(frame, n)
					}
				}
				if uint(r) >= bandRow && uint(r) < bandRow+bandRows {
					continue
				}
				h.nal, h.idrPicID, h.noOutput, h.longTerm = first.nal, first.idrPicID, first.noOutput, first.longTerm
				// A row filters its top edge with its own slice's flags: the row just below the
				// band must not filter into it (the picture's encoder never saw the band there);
				// every other row keeps the picture's loop filter across its slice edges.
				if uint(r) == bandRow+bandRows && h.deblock == 0 {
					h.deblock = 2
				}
				frame = appendLengthPrefixed(frame, h.write(s.sps, s.pps, 0))
			}
		} else {
			if bandRow > 0 {
				frame = appendLengthPrefixed(frame, skipSlice(s.sps, s.pps, first, 0, bandRow*w, frameNum))
			}
			for _, n := range band {
				frame = appendLengthPrefixed(frame, n)
			}
			if end := bandRow + bandRows; end < rows {
				frame = appendLengthPrefixed(frame, skipSlice(s.sps, s.pps, first, end*w, (rows-end)*w, frameNum))
			}
		}
		if first.nal&0x1f == NALIDR {
			c.Keyframes = append(c.Keyframes, len(c.Frames))
		}
		c.Frames = append(c.Frames, frame)
		if first.nal&0x60 != 0 { // a reference picture: the next one's frame_num is one more
			frameNum++
		}
		last = &sliceHeader{nal: first.nal | 0x40}
	}
	for len(c.Frames) < frames {
		c.Frames = append(c.Frames, appendLengthPrefixed(nil, skipSlice(s.sps, s.pps, last, 0, rows*w, frameNum)))
		frameNum++
	}
	return c, nil
}

// AnnexB is clip c as an Annex B byte stream, as a decoder reads it from a file: its parameter
// sets, then its frames' NAL units.
func (c *StillClip) AnnexB() []byte {
	start := []byte{0, 0, 0, 1}
	b := append(append(append(bytes.Clone(start), c.SPSNAL...), start...), c.PPSNAL...)
	for _, f := range c.Frames {
		for len(f) >= 4 {
			n := min(int(binary.BigEndian.Uint32(f)), len(f)-4)
			b = append(append(b, start...), f[4:4+n]...)
			f = f[4+n:]
		}
	}
	return b
}
