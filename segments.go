package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"vidgen/internal/aac"
)

// Audio is encoded in segments side by side, one ffmpeg each, because ffmpeg's AAC encoder uses
// one core: a minute of speech takes ~0.8 s of twoloop on one core of this 2-core machine, ten
// minutes of music ~19 s, and the render of a still picture is otherwise that encode beside the
// picture step. aac.Plan cuts the audio and aac.Join joins the segments' frames; this file decides
// how many segments a job gets and runs their encodes.

// maxSegments bounds the processes one render starts for its audio.
const maxSegments = 8

// encodeCosts are what the parts of a still picture's render cost, in seconds of one core: they
// decide how many segments its audio is encoded in (audioSegments).
type encodeCosts struct {
	// Start is one ffmpeg's start-up and exit, paid again by every segment.
	Start float64
	// Decode is decoding a second of the audio. Each segment decodes the audio from its beginning
	// (the cut is made on the decoded sound) to the end of its share.
	Decode float64
	// Encode is encoding a second of the audio to AAC.
	Encode float64
	// Picture is the picture step's work past its start: alone, the step costs Start+Picture,
	// beside the audio's encodes on the same cores.
	Picture float64
	// Pictures is how many picture steps run side by side, one a size of the job (0 counts as 1):
	// the longest process is one of them, the work all of them.
	Pictures int
	// Ride says that the one picture step may run the first segment's encode in its own ffmpeg
	// when the audio is cut in two or more (audioRide, plan): a start fewer, with the first
	// segment's share smaller by the picture's work.
	Ride bool
}

// maxRide bounds the expected work of a picture step that runs a segment (plan): the step holds
// the memory its picture was admitted with (renderer.pictures, which the uploads' checks wait on
// too) until its ffmpeg exits, and one start saved is worth nothing to long audio. A minute of
// speech's rider takes ~0.7 s, of stereo music ~1.2 s.
const maxRide = 2.0

// Costs of one core of this 2-core machine (ffmpeg 5.1), measured with bench/render.sh's fixtures.
// What an encode costs scales with the channels and the sample rate it encodes; the other steps
// cost about the same whatever the audio.
const (
	// startCost: an encode of 0.2 s of MP3 took 0.06-0.07 s of CPU (most of it the dynamic loader
	// binding ffmpeg's shared libraries).
	startCost = 0.07
	// decodeCost: 60 s of MP3 (the dearest of the common decoders; FLAC, WAV, AAC and Opus cost
	// less) decoded in 0.08-0.09 s of CPU.
	decodeCost = 0.0015
	// encodeCostPerChannel is twoloop on a second of one channel at 48 kHz: 60 s of mono speech at
	// 44.1 kHz took 0.80-0.91 s of CPU, 60 s of stereo music 1.65-1.68 s.
	encodeCostPerChannel = 0.0152
	// pictureCostBase is a still's picture step past its start for a 1080p frame: x264's keyframe
	// and the 10 frames it looks ahead at, the colour conversions, the poster, and the page faults
	// of x264's ~170 MB of frames. Alone beside two segments, the whole step took 0.17-0.23 s of
	// CPU, 0.045 s of it ffmpeg's start; in the first segment's ffmpeg (audioRide), 0.20-0.23 s
	// more than that segment's encode, which is what the first segment's share is cut by. A step
	// alone is thus expected to take 0.29 s, long by a little, which keeps a clip of a few seconds
	// in one segment.
	pictureCostBase = 0.22
	// pictureCostPerByte is the image's decode, by its file's size (as renderEstimates grows the
	// step's part of the progress bar): a 20 MB photo decodes in about a second more.
	pictureCostPerByte = 1 / 20e6
)

// maxRidePixels bounds the pictures whose step may run a segment (ridePicture).
const maxRidePixels = 24_000_000

// ridePicture reports whether the picture step of image, of type typ, may run a segment
// (audioRide): pictureWork predicts the step by its file's size, which says little of a big
// picture that compresses well (a 100-megapixel PNG of a few MB decodes for seconds, and the
// segment would wait for it); a phone's photo rides.
func ridePicture(image, typ string) bool {
	w, h, _, err := imageSize(image, typ)
	return err == nil && w > 0 && h > 0 && int64(w)*int64(h) <= maxRidePixels
}

// pictureWork is the expected work of the picture step of image, past its start (Picture).
func pictureWork(image string) float64 {
	fi, err := os.Stat(image)
	if err != nil {
		return pictureCostBase
	}
	return pictureCostBase + float64(fi.Size())*pictureCostPerByte
}

// jobEncodeCosts are the costs of job's render whose picture step is expected to take picture
// seconds of work past its start (pictureWork).
func jobEncodeCosts(job Job, picture float64) encodeCosts {
	_, rate := encodedFormat(job)
	channels := parseCodecTag(job.AudioCodec).encodedChannels()
	return encodeCosts{Start: startCost, Decode: decodeCost,
		Encode: encodeCostPerChannel * float64(channels) * float64(rate) / 48000, Picture: picture}
}

// audioSegments is how many segments (at least 1, at most cores and maxSegments) the audio of a
// job lasting seconds is encoded in, with cores free for the job: the fewest that bring the job's
// expected time (renderSpan) to its least. A segment more takes its share of the encode off the
// longest process, and costs a start and a decode of the audio before its cut: long audio uses
// every core; a job whose encode takes a fraction of a second, or less than the picture step
// beside it, keeps one segment, as a segment more would not win its start back.
func audioSegments(seconds float64, c encodeCosts, cores int) int {
	best, span := 1, renderSpan(seconds, c, cores, 1)
	for n := 2; n <= min(cores, maxSegments); n++ {
		// A thousandth of a second more is noise: the fewer processes then.
		if s := renderSpan(seconds, c, cores, n); s < span-0.001 {
			best, span = n, s
		}
	}
	return best
}

// renderSpan is the expected wall time of a still picture's render whose audio lasting seconds is
// encoded in n segments (plan) on cores cores: the longer of the longest process (the picture step
// or a segment, the first with the picture step in it when it rides) and all the work shared out
// over the cores.
func renderSpan(seconds float64, c encodeCosts, cores, n int) float64 {
	longest, work := c.Start+c.Picture, (c.Start+c.Picture)*float64(max(1, c.Pictures))
	shares, ride := c.plan(seconds, n)
	rider := 0.0 // the picture's work in the first segment's ffmpeg
	if ride {
		longest, work, rider = 0, 0, c.Picture
	}
	var end float64
	for k, share := range shares {
		end += share
		segment := c.Start + c.Decode*end + c.Encode*share
		if k == 0 {
			segment += rider
		}
		longest = max(longest, segment)
		work += segment
	}
	return max(longest, work/float64(cores))
}

// plan is the seconds of audio each of n segments encodes (segmentShares) and whether the first
// rides in the picture step (audioRide): it does when Ride allows it, the audio is cut, the
// picture's work leaves the first segment a share, and that ffmpeg is expected to end within
// maxRide. Else the shares are cut as beside a picture step of its own.
func (c encodeCosts) plan(seconds float64, n int) (shares []float64, ride bool) {
	if c.Ride && n > 1 {
		shares = segmentShares(seconds, c, n, c.Picture)
		if shares[0] > 0 && c.Start+c.Picture+(c.Encode+c.Decode)*shares[0] <= maxRide {
			return shares, true
		}
	}
	return segmentShares(seconds, c, n, 0), false
}

// segmentShares are the seconds of audio each of n segments encodes (aac.PlanWeighted cuts by
// them), chosen so that every segment's ffmpeg costs the same, the first with first seconds of
// other work in it (the picture's, when it rides). A segment decodes the audio from its beginning
// to the end of its share, so each share is smaller than the one before. A minute of mono speech
// at 44.1 kHz is cut at 31.6 s, at 24.1 s when it rides a 1080p picture step; cut in the middle,
// the second segment had ~0.045 s more CPU to spend, alone on the cores at the end. Should first
// outweigh a whole share, the first segment gets none.
func segmentShares(seconds float64, c encodeCosts, n int, first float64) []float64 {
	shares := make([]float64, n)
	unit := c.Encode + c.Decode // a second of a share, its decode included
	if n == 1 || unit <= 0 {
		for k := range shares {
			shares[k] = seconds / float64(n)
		}
		return shares
	}
	// Every segment's work past its start is the same w; with r = Encode/unit, p = first/unit and
	// a = w/unit, the ends of the shares are end_0 = a - p and end_k = a + r*end_(k-1), so
	// end_(n-1) = a*(1 + r + ... + r^(n-1)) - p*r^(n-1), which is seconds.
	r, p := c.Encode/unit, first/unit
	var geometric float64 // 1 + r + ... + r^(n-1)
	for k := range n {
		geometric += math.Pow(r, float64(k))
	}
	a := (seconds + p*math.Pow(r, float64(n-1))) / geometric
	if a <= p {
		shares[0] = 0
		copy(shares[1:], segmentShares(seconds, c, n-1, 0))
		return shares
	}
	end := a - p
	shares[0] = end
	for k := 1; k < n; k++ {
		next := a + r*end
		shares[k] = next - end
		end = next
	}
	return shares
}

// segmentArgs are ffmpeg's arguments for encoding segment s of a job's audio to an ADTS stream at
// out. The cut is made on the decoded sound after it is resampled and downmixed as audioArgs
// would, so it falls at the same sample in every segment.
func segmentArgs(job Job, audio, out string, s aac.Segment) []string {
	return append(audioInput(job, audio), segmentOutput(job, 0, out, s)...)
}

// segmentOutput are the output options of segmentArgs for an ffmpeg whose input number input is
// the audio.
func segmentOutput(job Job, input int, out string, s aac.Segment) []string {
	chain, _ := encodedFormat(job)
	trim := fmt.Sprintf("atrim=start_sample=%d", s.Start)
	if s.End > 0 {
		trim += fmt.Sprintf(":end_sample=%d", s.End)
	}
	chain = append(chain, trim, "asetpts=N/SR/TB")
	return []string{"-map", fmt.Sprintf("%d:a:0", input),
		"-af", strings.Join(chain, ","),
		"-c:a", "aac", "-aac_coder", aacCoder, "-b:a", audioRate,
		"-map_metadata", "-1", "-f", "adts", "file:" + out}
}

// audioRide is a segment's encode that a picture step's ffmpeg runs beside the picture, the audio
// its second input: a render of a still and two segments starts two ffmpegs, not three. Measured
// on 60 s of speech over a 1080p JPEG, interleaved (10 runs each): 0.63-0.68 s where three took
// 0.66-0.80 s (medians 0.665 and 0.70), the picture's outputs and the segment byte for byte the
// same. Only audio that decoded cleanly at upload rides: the picture step stops at its first
// decoding error (-xerror), where a segment of damaged audio decodes past its bad frames.
type audioRide struct {
	audio string   // the job's audio
	args  []string // its input and the segment's output, for after the picture's
	apart []string // the segment's encode in an ffmpeg of its own (segmentArgs)
}

// newAudioRide is the ride of segment s of job's audio, encoded to out.
func newAudioRide(job Job, audio, out string, s aac.Segment) *audioRide {
	return &audioRide{audio: audio, args: append(audioInput(job, audio), segmentOutput(job, 1, out, s)...),
		apart: segmentArgs(job, audio, out, s)}
}

// segmentSeconds is how much sound segment s of audio lasting seconds at rate encodes, its
// margins included.
func segmentSeconds(s aac.Segment, rate int, seconds float64) float64 {
	if s.End > 0 {
		return float64(s.End-s.Start) / float64(rate)
	}
	return seconds - float64(s.Start)/float64(rate)
}

// encodedFormat returns the filters that give a job's audio the channels, rate and level audioArgs
// asks for with -ac, -ar and -af, and the sample rate the audio is encoded at.
func encodedFormat(job Job) (filters []string, rate int) {
	rate = parseCodecTag(job.AudioCodec).rate
	args := audioArgs(job.AudioCodec, job.Options)
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-ar":
			filters = append(filters, "aresample="+args[i+1])
			rate, _ = strconv.Atoi(args[i+1])
		case "-ac":
			filters = append(filters, "aformat=channel_layouts=stereo")
		case "-af":
			filters = append(filters, args[i+1])
		}
	}
	return filters, rate
}

// joinSegments writes to dst the frames each segment's ADTS stream (the files parts, in order)
// contributes.
func joinSegments(dst string, parts []string, segs []aac.Segment) error {
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("join audio: %w", err)
	}
	readers := make([]io.Reader, len(parts))
	for k, p := range parts {
		f, err := os.Open(p)
		if err != nil {
			out.Close()
			return fmt.Errorf("join audio: segment %d: %w", k, err)
		}
		defer f.Close()
		readers[k] = f
	}
	if err := aac.Join(out, readers, segs); err != nil {
		out.Close()
		return fmt.Errorf("join audio: %w", err)
	}
	return out.Close()
}
