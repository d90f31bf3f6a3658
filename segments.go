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
	// (the cut is made on the decoded sound), so segment k of n decodes (k+1)/n of it.
	Decode float64
	// Encode is encoding a second of the audio to AAC.
	Encode float64
	// Picture is the picture step, which runs beside the audio's encodes on the same cores.
	Picture float64
	// Pictures is how many picture steps run side by side, one a size of the job (0 counts as 1):
	// the longest process is one of them, the work all of them.
	Pictures int
}

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
)

// jobEncodeCosts are the costs of job's render whose picture step is expected to take picture
// seconds (renderEstimates).
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
// encoded in n segments (segmentWeights) on cores cores: the longer of the longest process (the
// picture step or a segment) and all the work shared out over the cores.
func renderSpan(seconds float64, c encodeCosts, cores, n int) float64 {
	longest, work := c.Picture, c.Picture*float64(max(1, c.Pictures))
	weights := segmentWeights(n, c)
	var sum, end float64
	for _, w := range weights {
		sum += w
	}
	for _, w := range weights {
		share := seconds * w / sum
		end += share
		segment := c.Start + c.Decode*end + c.Encode*share
		longest = max(longest, segment)
		work += segment
	}
	return max(longest, work/float64(cores))
}

// segmentWeights are the shares of the audio's n segments (aac.PlanWeighted) that make their
// encodes cost the same: a segment decodes the audio from its beginning to the end of its share,
// so each share is the one before it times Encode/(Encode+Decode). A minute of mono speech at 44.1
// kHz in two is cut at 31.6 s; cut in the middle, the second segment had ~0.045 s more CPU to
// spend, alone on the cores at the end.
func segmentWeights(n int, c encodeCosts) []float64 {
	r := 1.0
	if c.Encode > 0 {
		r = c.Encode / (c.Encode + c.Decode)
	}
	w := make([]float64, n)
	for k := range w {
		w[k] = math.Pow(r, float64(k))
	}
	return w
}

// segmentArgs are ffmpeg's arguments for encoding segment s of a job's audio to an ADTS stream at
// out. The cut is made on the decoded sound after it is resampled and downmixed as audioArgs
// would, so it falls at the same sample in every segment.
func segmentArgs(job Job, audio, out string, s aac.Segment) []string {
	chain, _ := encodedFormat(job)
	trim := fmt.Sprintf("atrim=start_sample=%d", s.Start)
	if s.End > 0 {
		trim += fmt.Sprintf(":end_sample=%d", s.End)
	}
	chain = append(chain, trim, "asetpts=N/SR/TB")
	return append(audioInput(job, audio), "-map", "0:a:0",
		"-af", strings.Join(chain, ","),
		"-c:a", "aac", "-aac_coder", aacCoder, "-b:a", audioRate,
		"-map_metadata", "-1", "-f", "adts", "file:"+out)
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
