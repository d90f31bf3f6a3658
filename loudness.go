package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Loudness normalisation (the loudness option). Before the encode, one ffmpeg run measures the
// audio as it will be encoded (resampled and downmixed) with ffmpeg's EBU R128 meter: its integrated
// loudness and its true peak. The encode then applies one gain, the target less the measured
// loudness, to the whole file: the sound's dynamics are left as they are. Where that gain would
// lift the true peak past truePeakCeiling (a quiet recording with loud peaks), a lookahead limiter
// holds the peaks that would cross it and only those. Every part of the audio, and every segment of
// a long file's encode (segments.go), gets the same gain: the filters run on the whole decoded sound
// before the segment is cut from it.
const (
	// minLoudness and maxLoudness bound the targets accepted: -31 LUFS is quieter than any
	// platform asks for (broadcast's -23 and -24 included), and past -5 a limiter would have to
	// flatten most of the sound.
	minLoudness, maxLoudness = -31, -5
	// truePeakCeiling is the highest true peak, in dBTP, a normalised file may have: the AES and
	// the podcast platforms' recommendation (-1 dBTP), with room for the AAC encode's overshoot.
	truePeakCeiling = -1.5
	// limiterMargin is how far under the ceiling the limiter holds sample peaks: it sees samples,
	// not the peaks between them, and the encode adds its own.
	limiterMargin = 0.5
	// silence is the loudness, in LUFS, at and under which the audio is left as it is: the meter's
	// floor, what it gives for digital silence.
	silence = -70
)

var loudnessAllowed = fmt.Sprintf("off or a target in LUFS from %d to %d, like -16 or -14", minLoudness, maxLoudness)

// parseLoudness accepts "off" (0: no normalisation) or a number of LUFS within [minLoudness,
// maxLoudness], rounded to a tenth.
func parseLoudness(v string) (float64, bool) {
	if strings.EqualFold(v, "off") {
		return 0, true
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < minLoudness || f > maxLoudness {
		return 0, false
	}
	return math.Round(f*10) / 10, true
}

// audioLevel is what the render does to the audio's level: a gain in dB, and whether the limiter
// holds the peaks under truePeakCeiling. The zero value leaves the sound as it is.
type audioLevel struct {
	gain  float64
	limit bool
}

// filters are the ffmpeg audio filters that apply the level, none for the zero value.
func (l audioLevel) filters() []string {
	var f []string
	if l.gain != 0 {
		f = append(f, fmt.Sprintf("volume=%.2fdB", l.gain))
	}
	if l.limit {
		// latency=1 removes the lookahead's delay, so the sound stays in time with the picture and
		// every segment's samples line up; level=0 keeps the limiter from normalising on its own.
		f = append(f, fmt.Sprintf("alimiter=limit=%.4f:attack=5:release=50:level=0:latency=1",
			math.Pow(10, (truePeakCeiling-limiterMargin)/20)))
	}
	return f
}

// levelFor is the level that brings audio of integrated loudness (LUFS) and true peak (dBTP) to
// target: the gain between them, with the limiter when the gain lifts the peak past the ceiling.
func levelFor(loudness, truePeak, target float64) audioLevel {
	if loudness <= silence || math.IsInf(loudness, 0) || math.IsNaN(loudness) {
		return audioLevel{}
	}
	l := audioLevel{gain: math.Round((target-loudness)*100) / 100}
	l.limit = truePeak+l.gain > truePeakCeiling
	return l
}

// measureArgs are ffmpeg's arguments that measure a job's audio as it will be encoded: its
// integrated loudness and true peak, the meter's running values written, frame by frame, to the
// files loudness and peak (the last line of each holds the whole file's). The sound is measured as
// the AAC encoder keeps it, without what it cuts above its bandwidth: the meter weighs high
// frequencies up, and pink noise measured in full came out of the encode 0.4 LU under its target
// (through the lowpass, on target), white noise 1.1 LU (0.4 LU over).
func measureArgs(job Job, audio, loudness, peak string) []string {
	chain, rate := encodedFormat(job)
	if bw := aacBandwidth(job); bw > 0 && bw < rate/2 {
		chain = append(chain, fmt.Sprintf("lowpass=f=%d", bw))
	}
	chain = append(chain, "ebur128=metadata=1:peak=true",
		"ametadata=mode=print:key=lavfi.r128.I:file="+filterArg(loudness),
		"ametadata=mode=print:key=lavfi.r128.true_peak:file="+filterArg(peak))
	return append(audioInput(job, audio), "-map", "0:a:0", "-af", strings.Join(chain, ","), "-f", "null", "-")
}

// aacBandwidth is the highest frequency, in Hz, ffmpeg's AAC encoder keeps at audioRate for the
// channels a job's audio is encoded with (its AAC_CUTOFF_FROM_BITRATE): 18 kHz in stereo, 22 kHz
// in mono.
func aacBandwidth(job Job) int {
	perChannel, _ := strconv.Atoi(strings.TrimSuffix(audioRate, "k"))
	perChannel = perChannel * 1000 / parseCodecTag(job.AudioCodec).encodedChannels()
	return min(max(perChannel/5, perChannel*15/32-5500), 3000+perChannel/4, 12000+perChannel/16, 22000)
}

// measureLevel measures a job's audio (measureArgs, in tmp) and returns the level that brings it
// to the job's loudness. When the limiter holds peaks it also takes away some loudness (2 dB of
// peaks over the ceiling cost speech 1 LU): the sound is measured again through the gain and the
// limiter and the gain raised by what is missing, at most limiterPasses times, until within
// limiterTolerance of the target.
func (rd *renderer) measureLevel(ctx context.Context, job Job, audio, tmp string) (audioLevel, error) {
	loudness, peak, err := rd.measure(ctx, job, audio, tmp)
	if err != nil {
		return audioLevel{}, err
	}
	target := job.Options.Loudness
	l := levelFor(loudness, peak, target)
	for pass := 0; l.limit && pass < limiterPasses; pass++ {
		job.Options.level = l
		got, _, err := rd.measure(ctx, job, audio, tmp)
		if err != nil {
			return audioLevel{}, err
		}
		if math.Abs(target-got) <= limiterTolerance {
			break
		}
		l.gain = math.Round((l.gain+target-got)*100) / 100
	}
	rd.log.Info("loudness measured", job.logAttrs("lufs", loudness, "true_peak_db", math.Round(peak*10)/10,
		"target", target, "gain_db", l.gain, "limiter", l.limit)...)
	return l, nil
}

const (
	// limiterPasses and limiterTolerance bound the measurements made through the limiter: a
	// pass costs a decode of the audio, and each brings the loudness within a third of the LU
	// it missed by before.
	limiterPasses    = 3
	limiterTolerance = 0.2
)

// measure runs measureArgs for a job's audio, at its level, and returns the integrated loudness
// (LUFS) and the true peak (dBTP) of what it measured.
func (rd *renderer) measure(ctx context.Context, job Job, audio, tmp string) (loudness, peak float64, err error) {
	loudnessFile, peakFile := filepath.Join(tmp, "loudness.txt"), filepath.Join(tmp, "peak.txt")
	args := measureArgs(job, audio, loudnessFile, peakFile)
	if err := rd.ffmpegRun(ctx, job.ID, 0, args...); err != nil {
		return 0, 0, rd.stepFailed(ctx, err, job, inputAudio, audio, args)
	}
	if loudness, err = lastMeasure(loudnessFile, "lavfi.r128.I="); err != nil {
		return 0, 0, err
	}
	if peak, err = lastMeasure(peakFile, "lavfi.r128.true_peak="); err != nil {
		return 0, 0, err
	}
	return loudness, 20 * math.Log10(peak), nil
}

// lastMeasure reads the value of the last line starting with key in the meter's file at path.
func lastMeasure(path, key string) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("loudness: %w", err)
	}
	defer f.Close()
	// The file grows with the audio (~60 bytes a tenth of a second); its end holds the last value.
	const tail = 4096
	if fi, err := f.Stat(); err == nil && fi.Size() > tail {
		f.Seek(fi.Size()-tail, io.SeekStart)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return 0, fmt.Errorf("loudness: %w", err)
	}
	i := bytes.LastIndex(b, []byte(key))
	if i < 0 {
		return 0, fmt.Errorf("loudness: no %s in %s", key, filepath.Base(path))
	}
	line, _, _ := strings.Cut(string(b[i+len(key):]), "\n")
	v, err := strconv.ParseFloat(strings.TrimSpace(line), 64)
	if err != nil {
		return 0, fmt.Errorf("loudness: %s%q: %w", key, line, err)
	}
	return v, nil
}
