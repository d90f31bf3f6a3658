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
// lift the true peak past limiterStart (a quiet recording with loud peaks), a true-peak limiter
// holds the peaks that would cross it and only those, and the level is checked on the sound as
// users get it: encoded to AAC (whose coding lifts the peaks of limited sound by up to 3 dB) and
// measured again, the limit lowered where the peaks pass truePeakCeiling and the gain raised where
// the limiter took loudness. Dense sound (noise, loud masters) asked for a loud target can reach it
// only past the ceiling: it is made as loud as the ceiling allows, and the job says so (its
// LoudnessReached, loudnessWarning). Every part of the audio, and every segment of a long file's
// encode (segments.go), gets the same level: the filters run on the whole decoded sound before the
// segment is cut from it.
const (
	// minLoudness and maxLoudness bound the targets accepted: -31 LUFS is quieter than any
	// platform asks for (broadcast's -23 and -24 included), and past -5 a limiter would have to
	// flatten most of the sound.
	minLoudness, maxLoudness = -31, -5
	// truePeakCeiling is the highest true peak, in dBTP, a normalised file may have, measured on
	// its AAC as decoded: the AES and the podcast platforms' recommendation (-1 dBTP), with room
	// for a player's decoder.
	truePeakCeiling = -1.5
	// limiterStart is the true peak, in dBTP, over which the gain needs the limiter, and where
	// the limiter first holds the peaks: a dB under the ceiling, the most the AAC encode lifted
	// the peaks of sound it had not limited (0.2-0.8 dB on noise, speech and music at 192k).
	limiterStart = truePeakCeiling - 1
	// encodeMargin is how far under the ceiling a checked encode's true peak must be: the render's
	// own encode, cut in segments, codes the sound at the cuts a little differently.
	encodeMargin = 0.2
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

// audioLevel is what the render does to the audio's level: a gain in dB, and the true peak, in
// dBTP, the limiter holds the sound under (0: no limiter). The zero value leaves the sound as it is.
type audioLevel struct {
	gain  float64
	limit float64
}

// limiterOversampling is how many times the audio's rate the limiter runs at: at 4× it sees the
// peaks between the samples too (the true peak, as ITU-R BS.1770 measures it).
const limiterOversampling = 4

// filters are the ffmpeg audio filters that apply the level to audio at rate Hz (0: unknown, the
// limiter then holds sample peaks), none for the zero value.
func (l audioLevel) filters(rate int) []string {
	var f []string
	if l.gain != 0 {
		f = append(f, fmt.Sprintf("volume=%.2fdB", l.gain))
	}
	if l.limit != 0 {
		// latency=1 removes the lookahead's delay, so the sound stays in time with the picture and
		// every segment's samples line up; level=0 keeps the limiter from normalising on its own.
		limiter := fmt.Sprintf("alimiter=limit=%.4f:attack=5:release=50:level=0:latency=1", math.Pow(10, l.limit/20))
		if rate > 0 {
			f = append(f, fmt.Sprintf("aresample=%d", rate*limiterOversampling), limiter, fmt.Sprintf("aresample=%d", rate))
		} else {
			f = append(f, limiter)
		}
	}
	return f
}

// levelFor is the level that brings audio of integrated loudness (LUFS) and true peak (dBTP) to
// target: the gain between them, with the limiter at limiterStart when the gain lifts the peak
// past it.
func levelFor(loudness, truePeak, target float64) audioLevel {
	if loudness <= silence || math.IsInf(loudness, 0) || math.IsNaN(loudness) {
		return audioLevel{}
	}
	l := audioLevel{gain: math.Round((target-loudness)*100) / 100}
	if truePeak+l.gain > limiterStart {
		l.limit = limiterStart
	}
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
	return append(audioInput(job, audio), meterArgs(chain, loudness, peak)...)
}

// meterArgs are the arguments, after the input's, of an ffmpeg that measures the first audio
// stream through the filters chain, writing to the files loudness and peak (measureArgs).
func meterArgs(chain []string, loudness, peak string) []string {
	chain = append(chain, "ebur128=metadata=1:peak=true",
		"ametadata=mode=print:key=lavfi.r128.I:file="+filterArg(loudness),
		"ametadata=mode=print:key=lavfi.r128.true_peak:file="+filterArg(peak))
	return []string{"-map", "0:a:0", "-af", strings.Join(chain, ","), "-f", "null", "-"}
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
// to the job's loudness, and the loudness (LUFS) that level gives. A level without the limiter
// gives the target. One with it is checked (levelChecked) on the audio encoded as the render will
// encode it, at most limiterPasses times: the limit lowered by what the true peak passed the
// ceiling by, the gain raised by the loudness the limiter took (and the limit by the room left
// under the ceiling), until within limiterTolerance of the target; the gain is raised no more once
// a raise bought less than a third of itself (the limiter flattening the sound). It returns the
// level checked nearest the target that keeps the ceiling (the loudest, when none reaches it), or,
// when none kept it, the gain alone that puts the true peak at limiterStart.
func (rd *renderer) measureLevel(ctx context.Context, job Job, audio, tmp string) (audioLevel, float64, error) {
	loudness, peak, err := rd.measure(ctx, job, audio, tmp)
	if err != nil {
		return audioLevel{}, 0, err
	}
	target := job.Options.Loudness
	l := levelFor(loudness, peak, target)
	best, reached, checked := audioLevel{}, math.Inf(-1), 0
	if l.limit == 0 {
		best, reached = l, target // silence too: there is nothing to bring up, nor to warn of
	}
	var raised, before float64 // the last raise of the gain, and the loudness before it
	for l.limit != 0 && checked < limiterPasses {
		checked++
		job.Options.level = l
		got, tp, err := rd.levelChecked(ctx, job, audio, tmp)
		if err != nil {
			return audioLevel{}, 0, err
		}
		rd.log.Debug("loudness checked", job.logAttrs("gain_db", l.gain, "limit_dbtp", l.limit, "lufs", got, "true_peak_db", tp)...)
		if over := tp - (truePeakCeiling - encodeMargin); over > 0 {
			l.limit = math.Round((l.limit-over-0.1)*100) / 100
			continue
		}
		if math.Abs(target-got) < math.Abs(target-reached) {
			best, reached = l, got
		}
		short := target - got
		if math.Abs(short) <= limiterTolerance || short > 0 && raised > 0 && got-before < raised/3 {
			break
		}
		raised, before = short, got
		l.gain = math.Round((l.gain+short)*100) / 100
		if room := truePeakCeiling - encodeMargin - tp; short > 0 && room > 0.3 {
			// Peaks held further under the ceiling than the encode needs: loudness left unused.
			l.limit = math.Round(min(l.limit+room-0.1, truePeakCeiling-encodeMargin)*100) / 100
		}
	}
	if math.IsInf(reached, -1) {
		best = audioLevel{gain: math.Round((limiterStart-peak)*100) / 100}
		reached = loudness + best.gain
	}
	rd.log.Info("loudness measured", job.logAttrs("lufs", loudness, "true_peak_db", math.Round(peak*10)/10,
		"target", target, "gain_db", best.gain, "limiter", best.limit != 0, "limit_dbtp", best.limit,
		"checked", checked, "reached_lufs", math.Round(reached*10)/10)...)
	return best, reached, nil
}

const (
	// limiterPasses and limiterTolerance bound the checks of a level with the limiter: a check
	// costs an encode of the audio (1.8 s of a core a minute of stereo) and a decode.
	limiterPasses    = 5
	limiterTolerance = 0.2
)

// levelChecked encodes a job's audio at its level as the render does (audioEncodeArgs, in tmp) and
// returns the integrated loudness (LUFS) and true peak (dBTP) of the AAC as decoded.
func (rd *renderer) levelChecked(ctx context.Context, job Job, audio, tmp string) (loudness, peak float64, err error) {
	encoded := filepath.Join(tmp, "level.aac")
	defer os.Remove(encoded)
	args := audioEncodeArgs(job, audio, encoded)
	if err := rd.ffmpegRun(ctx, job.ID, 0, args...); err != nil {
		return 0, 0, rd.stepFailed(ctx, err, job, inputAudio, audio, args)
	}
	return rd.meter(ctx, job, audio, tmp, func(loudness, peak string) []string {
		return append([]string{"-threads", "1", "-f", "aac", "-i", "file:" + encoded}, meterArgs(nil, loudness, peak)...)
	})
}

// loudnessTolerance is how far, in LU, a render's loudness may be from the target asked: the
// promise docs/api.md makes. A render further from it says so (loudnessShort, loudnessWarning).
const loudnessTolerance = 0.5

// loudnessShort is what a job records of the loudness (LUFS) its render reached for target: the
// loudness when further from it than loudnessTolerance, else 0.
func loudnessShort(target, reached float64) float64 {
	if target == 0 || math.Abs(reached-target) <= loudnessTolerance {
		return 0
	}
	return math.Round(reached*10) / 10
}

// loudnessWarning is what a job's status says when its render could not bring the audio to the
// loudness asked without passing the peak ceiling (its LoudnessReached), and what to do about it:
// a whole target at or under the level reached (-8.4 reached: ask for -9), which is in reach.
func loudnessWarning(j Job) (string, bool) {
	if j.Options.Loudness == 0 || j.LoudnessReached == 0 {
		return "", false
	}
	return fmt.Sprintf("loudness: reached %.1f LUFS, not %g: louder would pass the %.1f dBTP peak ceiling; "+
		"ask for %.0f or quieter, or use audio with more dynamic range", j.LoudnessReached, j.Options.Loudness,
		truePeakCeiling, math.Floor(j.LoudnessReached)), true
}

// measure runs measureArgs for a job's audio and returns the integrated loudness (LUFS) and the
// true peak (dBTP) of what it measured.
func (rd *renderer) measure(ctx context.Context, job Job, audio, tmp string) (loudness, peak float64, err error) {
	return rd.meter(ctx, job, audio, tmp, func(loudness, peak string) []string {
		return measureArgs(job, audio, loudness, peak)
	})
}

// meter runs ffmpeg with the arguments args gives for the meter's files (meterArgs), in tmp, and
// returns the integrated loudness (LUFS) and the true peak (dBTP) they hold at the end.
func (rd *renderer) meter(ctx context.Context, job Job, audio, tmp string, args func(loudness, peak string) []string) (loudness, peak float64, err error) {
	loudnessFile, peakFile := filepath.Join(tmp, "loudness.txt"), filepath.Join(tmp, "peak.txt")
	a := args(loudnessFile, peakFile)
	if err := rd.ffmpegRun(ctx, job.ID, 0, a...); err != nil {
		return 0, 0, rd.stepFailed(ctx, err, job, inputAudio, audio, a)
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
