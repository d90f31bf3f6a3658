package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
)

// The parts of H.264 (ITU-T H.264, 2016) that the still clip's frames need: the byte stream and
// its NAL units, the fields of the parameter sets a P slice depends on, and the CABAC encoder for
// decisions and termination.

// NAL unit types (H.264 Table 7-1).
const (
	nalSlice = 1
	nalIDR   = 5
	nalSPS   = 7
	nalPPS   = 8
)

// splitAnnexB returns the NAL units of an Annex B byte stream, without their start codes.
func splitAnnexB(b []byte) [][]byte {
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

// unescapeRBSP removes the emulation prevention bytes (the 03 of each 00 00 03) from a NAL unit's
// payload.
func unescapeRBSP(b []byte) []byte { return bytes.ReplaceAll(b, []byte{0, 0, 3}, []byte{0, 0}) }

// escapeRBSP inserts the emulation prevention bytes a NAL unit's payload needs.
func escapeRBSP(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/64)
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c <= 3 {
			out = append(out, 3)
			zeros = 0
		}
		out = append(out, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// seqParams is what the clip's frames and its MP4 track depend on in a sequence parameter set
// (H.264 7.3.2.1.1).
type seqParams struct {
	high                          bool // a High profile, whose avcC records the chroma format and bit depths
	chromaFormat, chromaArrayType uint
	bitDepthLuma, bitDepthChroma  uint
	separateColour                bool
	log2MaxFrameNum               uint
	pocType                       uint
	log2MaxPocLsb                 uint
	maxNumRefFrames               uint
	picSizeInMbs                  uint
	width, height                 uint // after cropping
	// From the video usability information, for the MP4 sample entry: the sample aspect ratio
	// (0/0: not given) and the colour description (nil: not given).
	sarWidth, sarHeight uint
	colour              *colourInfo
}

// colourInfo is an H.264 stream's colour description (H.264 E.2.1), as an MP4 colr box holds it.
type colourInfo struct {
	primaries, transfer, matrix uint
	fullRange                   bool
}

// picParams is what a P-slice depends on in a picture parameter set (H.264 7.3.2.2).
type picParams struct {
	id                uint
	cabac             bool
	bottomFieldPoc    bool
	weightedPred      bool
	picInitQP         int
	deblockingControl bool
	redundantPicCnt   bool
}

func parseSPS(b []byte) (*seqParams, error) {
	r := rbspReader{b: b}
	profile := r.u(8)
	r.u(16) // constraint flags, level
	r.ue()  // seq_parameter_set_id
	p := &seqParams{chromaFormat: 1, bitDepthLuma: 8, bitDepthChroma: 8}
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		p.high = true
		p.chromaFormat = r.ue()
		if p.chromaFormat == 3 {
			p.separateColour = r.u(1) == 1
		}
		p.bitDepthLuma = r.ue() + 8
		p.bitDepthChroma = r.ue() + 8
		r.u(1)           // qpprime_y_zero_transform_bypass_flag
		if r.u(1) == 1 { // seq_scaling_matrix_present_flag
			lists := 8
			if p.chromaFormat == 3 {
				lists = 12
			}
			for i := range lists {
				if r.u(1) == 1 {
					size := 16
					if i >= 6 {
						size = 64
					}
					r.skipScalingList(size)
				}
			}
		}
	}
	p.chromaArrayType = p.chromaFormat
	if p.separateColour {
		p.chromaArrayType = 0
	}
	p.log2MaxFrameNum = r.ue() + 4
	p.pocType = r.ue()
	switch p.pocType {
	case 0:
		p.log2MaxPocLsb = r.ue() + 4
	case 2:
	default:
		return nil, fmt.Errorf("%w: picture order count type %d", errClipStream, p.pocType)
	}
	p.maxNumRefFrames = r.ue()
	r.u(1) // gaps_in_frame_num_value_allowed_flag
	widthMbs, heightMbs := r.ue()+1, r.ue()+1
	p.picSizeInMbs = widthMbs * heightMbs
	if r.u(1) == 0 { // frame_mbs_only_flag
		return nil, fmt.Errorf("%w: interlaced", errClipStream)
	}
	r.u(1) // direct_8x8_inference_flag
	var crop [4]uint
	if r.u(1) == 1 { // frame_cropping_flag
		crop = [4]uint{r.ue(), r.ue(), r.ue(), r.ue()}
	}
	// Crop units (7-19 to 7-22): chroma samples for 4:2:0 and 4:2:2 across, 4:2:0 down.
	unitX, unitY := uint(1), uint(1)
	if p.chromaArrayType == 1 || p.chromaArrayType == 2 {
		unitX = 2
	}
	if p.chromaArrayType == 1 {
		unitY = 2
	}
	p.width = widthMbs*16 - unitX*(crop[0]+crop[1])
	p.height = heightMbs*16 - unitY*(crop[2]+crop[3])
	if r.u(1) == 1 { // vui_parameters_present_flag
		p.parseVUI(&r)
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: sequence parameter set: %w", errClipStream, r.err)
	}
	if p.maxNumRefFrames == 0 {
		return nil, fmt.Errorf("%w: no reference frames", errClipStream)
	}
	return p, nil
}

// parseVUI reads the start of the video usability information (H.264 E.1.1), up to the colour
// description.
func (p *seqParams) parseVUI(r *rbspReader) {
	if r.u(1) == 1 { // aspect_ratio_info_present_flag
		p.sarWidth, p.sarHeight = sampleAspect(r.u(8))
		if p.sarWidth == 0 && p.sarHeight == 1 { // Extended_SAR
			p.sarWidth, p.sarHeight = r.u(16), r.u(16)
		}
	}
	if r.u(1) == 1 { // overscan_info_present_flag
		r.u(1) // overscan_appropriate_flag
	}
	if r.u(1) == 1 { // video_signal_type_present_flag
		r.u(3) // video_format
		full := r.u(1) == 1
		if r.u(1) == 1 { // colour_description_present_flag
			p.colour = &colourInfo{primaries: r.u(8), transfer: r.u(8), matrix: r.u(8), fullRange: full}
		}
	}
}

// sampleAspect is the sample aspect ratio of aspect_ratio_idc (H.264 Table E-1): 0/0 when
// unspecified or reserved, 0/1 for Extended_SAR, which the stream then gives.
func sampleAspect(idc uint) (w, h uint) {
	table := [...][2]uint{{0, 0}, {1, 1}, {12, 11}, {10, 11}, {16, 11}, {40, 33}, {24, 11}, {20, 11},
		{32, 11}, {80, 33}, {18, 11}, {15, 11}, {64, 33}, {160, 99}, {4, 3}, {3, 2}, {2, 1}}
	switch {
	case idc < uint(len(table)):
		return table[idc][0], table[idc][1]
	case idc == 255:
		return 0, 1
	}
	return 0, 0
}

func parsePPS(b []byte) (*picParams, error) {
	r := rbspReader{b: b}
	p := &picParams{id: r.ue()}
	r.ue() // seq_parameter_set_id
	p.cabac = r.u(1) == 1
	p.bottomFieldPoc = r.u(1) == 1
	if r.ue() != 0 {
		return nil, fmt.Errorf("%w: slice groups", errClipStream)
	}
	r.ue() // num_ref_idx_l0_default_active_minus1
	r.ue() // num_ref_idx_l1_default_active_minus1
	p.weightedPred = r.u(1) == 1
	r.u(2) // weighted_bipred_idc
	p.picInitQP = 26 + r.se()
	r.se() // pic_init_qs_minus26
	r.se() // chroma_qp_index_offset
	p.deblockingControl = r.u(1) == 1
	r.u(1) // constrained_intra_pred_flag
	p.redundantPicCnt = r.u(1) == 1
	if r.err != nil {
		return nil, fmt.Errorf("%w: picture parameter set: %w", errClipStream, r.err)
	}
	return p, nil
}

// cabacInit returns a context's initial state and most probable symbol at slice QP qp (9.3.1.1).
func cabacInit(mn [2]int, qp int) (state int, mps int) {
	pre := min(max((mn[0]*min(max(qp, 0), 51))>>4+mn[1], 1), 126)
	if pre <= 63 {
		return 63 - pre, 0
	}
	return pre - 64, 1
}

// cabacEncoder is H.264's binary arithmetic encoder (9.3.4), for decisions and termination.
type cabacEncoder struct {
	w           *rbspWriter
	low, rng    uint
	outstanding int
	first       bool
}

func (e *cabacEncoder) decision(state, mps *int, bin int) {
	lps := uint(rangeTabLPS[*state][(e.rng>>6)&3])
	e.rng -= lps
	if bin == *mps {
		*state = min(*state+1, 62)
	} else {
		e.low += e.rng
		e.rng = lps
		if *state == 0 {
			*mps = 1 - *mps
		}
		*state = int(transIdxLPS[*state])
	}
	e.renorm()
}

func (e *cabacEncoder) terminate(end bool) {
	e.rng -= 2
	if !end {
		e.renorm()
		return
	}
	e.low += e.rng
	e.rng = 2
	e.renorm()
	e.putBit((e.low >> 9) & 1)
	// The second of these two bits is the slice's rbsp_stop_one_bit.
	e.w.u(((e.low>>7)&3)|1, 2)
}

func (e *cabacEncoder) renorm() {
	for e.rng < 256 {
		switch {
		case e.low < 256:
			e.putBit(0)
		case e.low >= 512:
			e.low -= 512
			e.putBit(1)
		default:
			e.low -= 256
			e.outstanding++
		}
		e.rng <<= 1
		e.low <<= 1
	}
}

func (e *cabacEncoder) putBit(b uint) {
	if e.first {
		e.first = false
	} else {
		e.w.u(b, 1)
	}
	for ; e.outstanding > 0; e.outstanding-- {
		e.w.u(1-b, 1)
	}
}

// rangeTabLPS is H.264 Table 9-44: the range of the less probable symbol by state and
// quantised range.
var rangeTabLPS = [64][4]uint8{
	{128, 176, 208, 240}, {128, 167, 197, 227}, {128, 158, 187, 216}, {123, 150, 178, 205},
	{116, 142, 169, 195}, {111, 135, 160, 185}, {105, 128, 152, 175}, {100, 122, 144, 166},
	{95, 116, 137, 158}, {90, 110, 130, 150}, {85, 104, 123, 142}, {81, 99, 117, 135},
	{77, 94, 111, 128}, {73, 89, 105, 122}, {69, 85, 100, 116}, {66, 80, 95, 110},
	{62, 76, 90, 104}, {59, 72, 86, 99}, {56, 69, 81, 94}, {53, 65, 77, 89},
	{51, 62, 73, 85}, {48, 59, 69, 80}, {46, 56, 66, 76}, {43, 53, 63, 72},
	{41, 50, 59, 69}, {39, 48, 56, 65}, {37, 45, 54, 62}, {35, 43, 51, 59},
	{33, 41, 48, 56}, {32, 39, 46, 53}, {30, 37, 43, 50}, {29, 35, 41, 48},
	{27, 33, 39, 45}, {26, 31, 37, 43}, {24, 30, 35, 41}, {23, 28, 33, 39},
	{22, 27, 32, 37}, {21, 26, 30, 35}, {20, 24, 29, 33}, {19, 23, 27, 31},
	{18, 22, 26, 30}, {17, 21, 25, 28}, {16, 20, 23, 27}, {15, 19, 22, 25},
	{14, 18, 21, 24}, {14, 17, 20, 23}, {13, 16, 19, 22}, {12, 15, 18, 21},
	{12, 14, 17, 20}, {11, 14, 16, 19}, {11, 13, 15, 18}, {10, 12, 15, 17},
	{10, 12, 14, 16}, {9, 11, 13, 15}, {9, 11, 12, 14}, {8, 10, 12, 14},
	{8, 9, 11, 13}, {7, 9, 11, 12}, {7, 9, 10, 12}, {7, 8, 10, 11},
	{6, 8, 9, 11}, {6, 7, 9, 10}, {6, 7, 8, 9}, {2, 2, 2, 2},
}

// transIdxLPS is H.264 Table 9-45's next state after a less probable symbol.
var transIdxLPS = [64]uint8{
	0, 0, 1, 2, 2, 4, 4, 5, 6, 7, 8, 9, 9, 11, 11, 12,
	13, 13, 15, 15, 16, 16, 18, 18, 19, 19, 21, 21, 22, 22, 23, 24,
	24, 25, 26, 26, 27, 27, 28, 29, 29, 30, 30, 30, 31, 32, 32, 33,
	33, 33, 34, 34, 35, 35, 35, 36, 36, 36, 37, 37, 37, 38, 38, 63,
}

// rbspReader reads the fixed-width and Exp-Golomb fields of an RBSP; past the end it reads zeros
// and sets err.
type rbspReader struct {
	b   []byte
	pos uint
	err error
}

func (r *rbspReader) u(n uint) uint {
	var v uint
	for range n {
		v <<= 1
		if r.pos/8 >= uint(len(r.b)) {
			r.err = errors.New("truncated")
			continue
		}
		v |= uint(r.b[r.pos/8]>>(7-r.pos%8)) & 1
		r.pos++
	}
	return v
}

func (r *rbspReader) ue() uint {
	zeros := uint(0)
	for r.u(1) == 0 {
		if r.err != nil || zeros > 31 {
			r.err = cmp.Or(r.err, errors.New("bad Exp-Golomb code"))
			return 0
		}
		zeros++
	}
	return 1<<zeros - 1 + r.u(zeros)
}

func (r *rbspReader) se() int {
	k := r.ue()
	if k%2 == 1 {
		return int(k+1) / 2
	}
	return -int(k / 2)
}

func (r *rbspReader) skipScalingList(size int) {
	last, next := 8, 8
	for range size {
		if next != 0 {
			next = (last + r.se() + 256) % 256
		}
		if next != 0 {
			last = next
		}
	}
}

// rbspWriter writes the fields of an RBSP.
type rbspWriter struct {
	b []byte
	n uint // bits written
}

func (w *rbspWriter) u(v, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte((v>>uint(i))&1) << (7 - w.n%8)
		w.n++
	}
}

func (w *rbspWriter) ue(v uint) {
	v++
	bits := uint(0)
	for x := v; x > 1; x >>= 1 {
		bits++
	}
	w.u(0, bits)
	w.u(v, bits+1)
}

func (w *rbspWriter) se(v int) {
	if v > 0 {
		w.ue(uint(2*v - 1))
	} else {
		w.ue(uint(-2 * v))
	}
}
