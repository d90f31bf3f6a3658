package main

import (
	"math"
	"os"
	"time"
)

// jobProgress is a running job's progress bar. Each step (image, then mux) owns a span [from, to)
// of it, sized by the step's expected duration; within a step the bar advances with ffmpeg's
// reported position when there is one, and with the time spent against the estimate otherwise
// (approaching the span's end without reaching it), so even a fast render moves smoothly.
type jobProgress struct {
	pct     int
	started time.Time

	from, to  int
	band      [2]int // the span of the bar the steps' spans are parts of; {0, 0} for all of it
	stepStart time.Time
	est       float64 // seconds the step is expected to take
	ceiling   int     // while a fast path may yet fall back, the bar stays below it (holdBar); 0: none
}

// limit is the most the bar may show now: 99 until the job is recorded, and below the ceiling
// while there is one.
func (p *jobProgress) limit() int {
	if p.ceiling > 0 {
		return min(p.ceiling-1, 99)
	}
	return 99
}

// timeBased is where the bar would be from the time spent in the current step alone: 63 % of the
// step's span at its estimate, never past 90 %, the last stretch being ffmpeg's to report.
func (p *jobProgress) timeBased(now time.Time) int {
	if p.est <= 0 || p.to <= p.from {
		return p.pct
	}
	f := 1 - math.Exp(-now.Sub(p.stepStart).Seconds()/p.est)
	return p.from + int(0.9*f*float64(p.to-p.from))
}

// Progress returns a PROCESSING job's progress (0-100, never decreasing) and its estimated seconds
// left, nil when unknown.
func (rd *renderer) Progress(id string) (int, *int) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	p := rd.progress[id]
	if p == nil {
		return 0, nil
	}
	was := p.pct
	p.pct = max(p.pct, min(p.timeBased(rd.now()), p.limit()))
	rd.seen(id, p, was, false)
	elapsed := rd.now().Sub(p.started).Seconds()
	if p.pct < 3 || elapsed < 1 {
		return p.pct, nil // too early for an estimate worth showing
	}
	eta := int(elapsed*float64(100-p.pct)/float64(p.pct) + 0.5)
	return p.pct, &eta
}

// startStep gives the next step of job id the span [from, to) of the bar (of its band, when it has
// one) and its expected seconds. A step never starts behind the bar: one that the bar has passed
// (work done again after a fallback) fills from where the bar is to its end, so it moves the bar
// from its first second instead of leaving it still until its own progress catches up.
func (rd *renderer) startStep(id string, from, to int, est float64) {
	rd.mu.Lock()
	if p := rd.progress[id]; p != nil {
		if b := p.band; b[1] > 0 {
			from, to = b[0]+from*(b[1]-b[0])/100, b[0]+to*(b[1]-b[0])/100
		}
		p.pct = max(p.pct, min(max(p.timeBased(rd.now()), from), p.limit()))
		from = max(from, p.pct)
		p.from, p.to, p.stepStart, p.est = from, max(to, from), rd.now(), est
		rd.seen(id, p, -1, true)
	}
	rd.mu.Unlock()
}

// stepDone reports the fraction (0-1) of the current step that ffmpeg says it has done.
func (rd *renderer) stepDone(id string, frac float64) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if p := rd.progress[id]; p != nil {
		was, pct := p.pct, p.from+int(min(frac, 1)*float64(p.to-p.from))
		p.pct = max(p.pct, min(pct, p.to-1, p.limit()))
		rd.seen(id, p, was, false)
	}
}

// holdBar keeps job id's bar below ceiling (of the whole bar) until holdBar(id, 0) lifts it: a
// fast path that may yet be refused, running beside work that reports its progress (the audio's
// encode beside the still clip's), then shows no more than the fast path's share of the job should
// it fall back, and the slower encode it falls back to has the rest of the bar to fill.
func (rd *renderer) holdBar(id string, ceiling int) {
	rd.mu.Lock()
	if p := rd.progress[id]; p != nil {
		p.ceiling = ceiling
	}
	rd.mu.Unlock()
}

// fellBack tells job id's bar that the work of its current step is thrown away, a fast path
// refused: the bar keeps what it showed, the step's time no longer moves it, and a ceiling is
// lifted for the work that follows.
func (rd *renderer) fellBack(id string) {
	rd.mu.Lock()
	if p := rd.progress[id]; p != nil {
		was := p.pct
		p.pct = max(p.pct, min(p.timeBased(rd.now()), p.limit()))
		p.from, p.to, p.est, p.ceiling = p.pct, p.pct, 0, 0
		rd.seen(id, p, was, false)
	}
	rd.mu.Unlock()
}

// barAt is where job id's bar is, 0 for a job not running.
func (rd *renderer) barAt(id string) int {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if p := rd.progress[id]; p != nil {
		return p.pct
	}
	return 0
}

// seen tells rd.progressSeen, when set, of job id's bar p: as a step starts, or when it moved from
// was. rd.mu is held.
func (rd *renderer) seen(id string, p *jobProgress, was int, step bool) {
	if rd.progressSeen != nil && (step || p.pct != was) {
		rd.progressSeen(id, p.pct, step)
	}
}

// renderEstimates are the expected seconds of a job's two steps, to size their parts of the bar:
// the image step grows with the image file, the mux step with the audio, much faster when copied.
func renderEstimates(job Job, imagePath string) (clip, mux float64) {
	clip = 0.4
	if fi, err := os.Stat(imagePath); err == nil {
		clip += float64(fi.Size()) / 20e6
	}
	speed := 80.0 // times realtime, encoding the audio
	if a := audioArgs(job.AudioCodec, job.Options); len(a) > 1 && a[1] == "copy" {
		speed = 1000
	}
	return clip, 0.2 + job.AudioDuration/speed
}

// progressBand makes the span [from, to) of job id's bar the whole of the steps that start next,
// which is how the renders of a job's sizes, one after another, share it.
func (rd *renderer) progressBand(id string, from, to int) {
	rd.mu.Lock()
	if p := rd.progress[id]; p != nil {
		p.band = [2]int{from, to}
	}
	rd.mu.Unlock()
}
