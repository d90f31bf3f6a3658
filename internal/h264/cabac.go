package h264

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
