package h264

import (
	"bytes"
	"fmt"
)

// A picture that changes now and then (captions that come and go over a still picture) needs one
// encoded frame a change, not one a frame: the encoder codes only the pictures, one after the
// other, and Splice shows each for as long as it lasts by following it with skipped frames. The
// encoder's frames were coded as if they followed one another; here each follows skipped copies of
// the one before it, which decode to exactly that frame, so each refers to the same picture it was
// coded against. Only the fields that count frames (frame_num, pic_order_cnt_lsb) change, and they
// have a fixed width, so every other bit of the encoder's slices stays where it was.

// Splice is the clip of the pictures of stream shown one after another, picture i for runs[i]
// frames (each at least 1) at fps frames a second. stream is an encoder's Annex B output of
// len(runs) pictures, the first an IDR picture: each an IDR picture (a keyframe of the clip, in
// Keyframes) or a P picture that refers only to the picture before it (the stream has one
// reference frame), every one a reference. Each picture keeps its NAL units (any SEI with it), the
// frame numbers of its slices rewritten to its place in the clip; the frames after it until the
// next picture are skipped frames, as NewStillClip writes. Parameter sets are the clip's SPSNAL
// and PPSNAL, and a repeat of them in the stream must be the same bytes. A stream it cannot splice
// so is an error that wraps ErrUnsupported.
func Splice(stream []byte, runs []int, fps int) (*StillClip, error) {
	c := &StillClip{FPS: fps}
	pics, pps, err := c.pictures(stream)
	if err != nil {
		return nil, err
	}
	if len(pics) != len(runs) {
		return nil, fmt.Errorf("%w: %d pictures for %d runs", ErrUnsupported, len(pics), len(runs))
	}
	if c.SPS.maxNumRefFrames != 1 {
		// A P picture could then refer to one further back, where the clip has a skipped copy.
		return nil, fmt.Errorf("%w: %d reference frames", ErrUnsupported, c.SPS.maxNumRefFrames)
	}
	var (
		n       uint // the frame's number since the last IDR picture
		lastIDR = -1 // the last IDR picture's idr_pic_id, when the frame before was that picture
	)
	for i, pic := range pics {
		if runs[i] < 1 {
			return nil, fmt.Errorf("%w: picture %d shown for %d frames", ErrUnsupported, i, runs[i])
		}
		if pic[len(pic)-1][0]&0x1f == NALIDR {
			n = 0
			c.Keyframes = append(c.Keyframes, len(c.Frames))
		}
		frame, idrID, err := renumber(c.SPS, pps, pic, n)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%w: picture %d: %w", ErrUnsupported, i, err)
		case i == 0 && idrID < 0:
			return nil, fmt.Errorf("%w: the first picture is not an IDR picture", ErrUnsupported)
		case idrID >= 0 && idrID == lastIDR:
			// Two IDR pictures in a row must differ in idr_pic_id (7.4.3).
			return nil, fmt.Errorf("%w: pictures %d and %d: two IDR pictures in a row with one idr_pic_id", ErrUnsupported, i-1, i)
		}
		c.Frames = append(c.Frames, frame)
		for range runs[i] - 1 {
			n++
			c.Frames = append(c.Frames, appendLengthPrefixed(nil, skipFrame(c.SPS, pps, int(n))))
		}
		n++
		lastIDR = -1
		if runs[i] == 1 {
			lastIDR = idrID
		}
	}
	return c, nil
}

// pictures splits stream into its pictures' NAL units, a picture starting at the slice whose
// first_mb_in_slice is 0 (with the SEI and access unit delimiter before it), and reads its
// parameter sets, which it keeps in c.
func (c *StillClip) pictures(stream []byte) ([][][]byte, *picParams, error) {
	var (
		pics    [][][]byte
		pending [][]byte // NAL units before a picture's first slice
		pps     *picParams
	)
	for _, nal := range SplitAnnexB(stream) {
		if len(nal) == 0 {
			continue
		}
		switch typ := nal[0] & 0x1f; typ {
		case NALSPS, NALPPS:
			known := &c.SPSNAL
			if typ == NALPPS {
				known = &c.PPSNAL
			}
			if *known != nil {
				if !bytes.Equal(*known, nal) {
					return nil, nil, fmt.Errorf("%w: a parameter set changes within the stream", ErrUnsupported)
				}
				continue
			}
			*known = nal
			var err error
			if typ == NALSPS {
				c.SPS, err = ParseSPS(unescapeRBSP(nal[1:]))
			} else {
				pps, err = parsePPS(unescapeRBSP(nal[1:]))
			}
			if err != nil {
				return nil, nil, err
			}
		case NALSlice, NALIDR:
			r := rbspReader{b: unescapeRBSP(nal[1:min(len(nal), 8)])}
			if r.ue() == 0 || len(pics) == 0 { // first_mb_in_slice
				pics = append(pics, pending)
				pending = nil
			}
			last := len(pics) - 1
			pics[last] = append(append(pics[last], pending...), nal)
			pending = nil
		case 6, 9: // SEI, access unit delimiter: they belong to the picture that follows
			pending = append(pending, nal)
		default:
			return nil, nil, fmt.Errorf("%w: NAL unit type %d", ErrUnsupported, typ)
		}
	}
	if c.SPS == nil || pps == nil || len(pics) == 0 {
		return nil, nil, fmt.Errorf("%w: no parameter sets or pictures", ErrUnsupported)
	}
	return pics, pps, nil
}

// renumber returns the frame of picture pic (its NAL units, each after its length) as frame n
// after the last IDR picture: the frame_num and pic_order_cnt_lsb of each slice rewritten as
// skipFrame writes them for frame n. idrID is the picture's idr_pic_id, -1 when it is not an IDR
// picture. A slice that is not a reference, of another type than I or P, of another PPS, or of
// mixed IDR and non-IDR slices is an error.
func renumber(sps *SPS, pps *picParams, pic [][]byte, n uint) (frame []byte, idrID int, err error) {
	idrID = -2 // not yet known
	for _, nal := range pic {
		typ := nal[0] & 0x1f
		if typ != NALSlice && typ != NALIDR {
			frame = appendLengthPrefixed(frame, nal)
			continue
		}
		if nal[0]>>5 == 0 {
			return nil, 0, fmt.Errorf("a slice that is not a reference")
		}
		b := unescapeRBSP(nal[1:])
		r := rbspReader{b: b}
		r.ue() // first_mb_in_slice
		switch r.ue() % 5 {
		case 0, 2: // P, I
		default:
			return nil, 0, fmt.Errorf("a slice neither I nor P")
		}
		if r.ue() != pps.id {
			return nil, 0, fmt.Errorf("a slice of another picture parameter set")
		}
		if sps.separateColour {
			r.u(2)
		}
		frameNum := r.pos
		r.u(sps.log2MaxFrameNum)
		id := -1
		if typ == NALIDR {
			id = int(min(r.ue(), 1<<16))
		}
		pocLsb := r.pos
		if r.err != nil {
			return nil, 0, fmt.Errorf("a slice header cut short")
		}
		if idrID != -2 && (id < 0) != (idrID < 0) {
			return nil, 0, fmt.Errorf("IDR and non-IDR slices in one picture")
		}
		idrID = id
		setBits(b, frameNum, n&(1<<sps.log2MaxFrameNum-1), sps.log2MaxFrameNum)
		if sps.pocType == 0 {
			if pocLsb+sps.log2MaxPocLsb > uint(len(b))*8 {
				return nil, 0, fmt.Errorf("a slice header cut short")
			}
			setBits(b, pocLsb, (2*n)&(1<<sps.log2MaxPocLsb-1), sps.log2MaxPocLsb)
		}
		out := escapeRBSP(b)
		if len(out) > 0 && out[len(out)-1] == 0 {
			out = append(out, 3) // a cabac_zero_word at the end keeps its emulation prevention byte
		}
		frame = appendLengthPrefixed(frame, append([]byte{nal[0]}, out...))
	}
	if idrID == -2 {
		return nil, 0, fmt.Errorf("no slice")
	}
	return frame, idrID, nil
}

// setBits writes the width low bits of v into b from bit pos on (the first bit of b is its first
// byte's highest).
func setBits(b []byte, pos, v, width uint) {
	for i := range width {
		bit, at := byte(v>>(width-1-i))&1, pos+i
		mask := byte(1) << (7 - at%8)
		b[at/8] = b[at/8]&^mask | bit<<(7-at%8)
	}
}
