package h264

import "fmt"

// SPS is what a still clip's frames and its container's description of them depend on in a
// sequence parameter set (H.264 7.3.2.1.1).
type SPS struct {
	// High is whether the profile is one of the High profiles, whose parameter sets give the
	// chroma format and bit depths (an MP4 avcC records them then).
	High                         bool
	ChromaFormat                 uint // chroma_format_idc: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4
	BitDepthLuma, BitDepthChroma uint
	Width, Height                uint // the picture's, in samples, after cropping
	// From the video usability information: the sample aspect ratio (0/0: not given) and the
	// colour description (nil: not given).
	SARWidth, SARHeight uint
	Colour              *Colour

	chromaArrayType uint
	separateColour  bool
	log2MaxFrameNum uint
	pocType         uint
	log2MaxPocLsb   uint
	maxNumRefFrames uint
	widthMbs        uint
	picSizeInMbs    uint
	// layout is the set's bits that shape how a slice decodes, other than those a slice header's
	// writer takes from it (frame_num's and the picture order count's) and the picture's height:
	// the profile, the chroma format, bit depths and scaling lists, the reference frames, the
	// width in macroblocks and the frame coding flags (see bitRanges).
	layout string
}

// Colour is an H.264 stream's colour description (H.264 E.2.1), as an MP4 colr box holds it.
type Colour struct {
	Primaries, Transfer, Matrix uint
	FullRange                   bool
}

// picParams is what a P slice depends on in a picture parameter set (H.264 7.3.2.2).
type picParams struct {
	id                uint
	cabac             bool
	bottomFieldPoc    bool
	weightedPred      bool
	picInitQP         int
	deblockingControl bool
	redundantPicCnt   bool
	// layout is all the set's bits but pic_init_qp's, which a slice header's writer answers for
	// (slice_qp_delta); see bitRanges.
	layout string
}

// ParseSPS reads the sequence parameter set whose RBSP is b (the NAL unit's payload after its
// header byte, emulation prevention removed). A set this package cannot write frames for
// (interlaced, picture order count type 1, no reference frames, cut short) is an error that wraps
// ErrUnsupported.
func ParseSPS(b []byte) (*SPS, error) {
	r := rbspReader{b: b}
	profile := r.u(8)
	r.u(16) // constraint flags, level
	idAt := r.pos
	r.ue() // seq_parameter_set_id
	p := &SPS{ChromaFormat: 1, BitDepthLuma: 8, BitDepthChroma: 8}
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		p.High = true
		p.ChromaFormat = r.ue()
		if p.ChromaFormat == 3 {
			p.separateColour = r.u(1) == 1
		}
		p.BitDepthLuma = r.ue() + 8
		p.BitDepthChroma = r.ue() + 8
		r.u(1)           // qpprime_y_zero_transform_bypass_flag
		if r.u(1) == 1 { // seq_scaling_matrix_present_flag
			lists := 8
			if p.ChromaFormat == 3 {
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
	p.chromaArrayType = p.ChromaFormat
	if p.separateColour {
		p.chromaArrayType = 0
	}
	frameNumAt := r.pos
	p.log2MaxFrameNum = r.ue() + 4
	p.pocType = r.ue()
	switch p.pocType {
	case 0:
		p.log2MaxPocLsb = r.ue() + 4
	case 2:
	default:
		return nil, fmt.Errorf("%w: picture order count type %d", ErrUnsupported, p.pocType)
	}
	refsAt := r.pos
	p.maxNumRefFrames = r.ue()
	r.u(1) // gaps_in_frame_num_value_allowed_flag
	p.widthMbs = r.ue() + 1
	heightAt := r.pos
	heightMbs := r.ue() + 1
	widthMbs := p.widthMbs
	p.picSizeInMbs = widthMbs * heightMbs
	frameAt := r.pos
	if r.u(1) == 0 { // frame_mbs_only_flag
		return nil, fmt.Errorf("%w: interlaced", ErrUnsupported)
	}
	r.u(1) // direct_8x8_inference_flag
	p.layout = bitRanges(b, 0, 8, idAt, frameNumAt, refsAt, heightAt, frameAt, r.pos)
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
	p.Width = widthMbs*16 - unitX*(crop[0]+crop[1])
	p.Height = heightMbs*16 - unitY*(crop[2]+crop[3])
	if r.u(1) == 1 { // vui_parameters_present_flag
		p.parseVUI(&r)
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: sequence parameter set: %w", ErrUnsupported, r.err)
	}
	// The standard's ranges (7.4.2.1.1; the largest frame is A.3.1's for the highest level): no
	// encoder writes a set outside them, and the frames and fields written for one would have no
	// bound.
	switch {
	case p.ChromaFormat > 3, p.BitDepthLuma > 14, p.BitDepthChroma > 14,
		p.log2MaxFrameNum > 16, p.log2MaxPocLsb > 16, p.maxNumRefFrames > 16,
		widthMbs > maxSideMbs, heightMbs > maxSideMbs, p.picSizeInMbs > maxFrameMbs,
		unitX*(crop[0]+crop[1]) >= widthMbs*16, unitY*(crop[2]+crop[3]) >= heightMbs*16:
		return nil, fmt.Errorf("%w: sequence parameter set outside the standard's ranges", ErrUnsupported)
	case p.maxNumRefFrames == 0:
		return nil, fmt.Errorf("%w: no reference frames", ErrUnsupported)
	}
	return p, nil
}

// maxFrameMbs is the most macroblocks a frame has at any level (MaxFS of levels 6 to 6.2, H.264
// Table A-1), and maxSideMbs the most across or down (A.3.1: at most √(8 × MaxFS)).
const (
	maxFrameMbs = 139264
	maxSideMbs  = 1055
)

// parseVUI reads the start of the video usability information (H.264 E.1.1), up to the colour
// description.
func (p *SPS) parseVUI(r *rbspReader) {
	if r.u(1) == 1 { // aspect_ratio_info_present_flag
		p.SARWidth, p.SARHeight = sampleAspect(r.u(8))
		if p.SARWidth == 0 && p.SARHeight == 1 { // Extended_SAR
			p.SARWidth, p.SARHeight = r.u(16), r.u(16)
		}
	}
	if r.u(1) == 1 { // overscan_info_present_flag
		r.u(1) // overscan_appropriate_flag
	}
	if r.u(1) == 1 { // video_signal_type_present_flag
		r.u(3) // video_format
		full := r.u(1) == 1
		if r.u(1) == 1 { // colour_description_present_flag
			p.Colour = &Colour{Primaries: r.u(8), Transfer: r.u(8), Matrix: r.u(8), FullRange: full}
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

// parsePPS reads the picture parameter set whose RBSP is b; one with slice groups is an error that
// wraps ErrUnsupported.
func parsePPS(b []byte) (*picParams, error) {
	r := rbspReader{b: b}
	p := &picParams{id: r.ue()}
	r.ue() // seq_parameter_set_id
	p.cabac = r.u(1) == 1
	p.bottomFieldPoc = r.u(1) == 1
	if r.ue() != 0 {
		return nil, fmt.Errorf("%w: slice groups", ErrUnsupported)
	}
	r.ue() // num_ref_idx_l0_default_active_minus1
	r.ue() // num_ref_idx_l1_default_active_minus1
	p.weightedPred = r.u(1) == 1
	r.u(2) // weighted_bipred_idc
	qpAt := r.pos
	p.picInitQP = 26 + r.se()
	p.layout = bitRanges(b, 0, qpAt, r.pos, uint(len(b))*8)
	r.se() // pic_init_qs_minus26
	r.se() // chroma_qp_index_offset
	p.deblockingControl = r.u(1) == 1
	r.u(1) // constrained_intra_pred_flag
	p.redundantPicCnt = r.u(1) == 1
	if r.err != nil {
		return nil, fmt.Errorf("%w: picture parameter set: %w", ErrUnsupported, r.err)
	}
	return p, nil
}
