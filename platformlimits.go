package main

import "fmt"

// platformLimit is the longest video, in seconds, the platforms a size is made for take as an
// ordinary post, and the warning a longer job's status gives. A job over it still renders: the
// video may be posted elsewhere, or by an account the platform allows longer videos. Each is the
// platform's published limit (docs/api.md, "Platform sizes", has the sources and the rest of each
// spec: frame rate, size, codecs, which every preset meets).
type platformLimit struct {
	seconds float64
	warning string // with %s for the audio's length
}

var platformLimits = map[string]platformLimit{
	// YouTube: 15 minutes for an account that has not verified its phone number.
	"landscape": {15 * 60, "The video lasts %s: YouTube takes videos over 15 minutes only from verified accounts"},
	// YouTube Shorts take up to 3 minutes; Instagram Reels made in the app 3 (TikTok 10).
	"portrait": {3 * 60, "The video lasts %s: YouTube Shorts and Instagram Reels take at most 3 minutes (TikTok 10)"},
	// Instagram's feed takes videos of up to 60 minutes.
	"square": {60 * 60, "The video lasts %s: Instagram's feed takes videos of at most 60 minutes"},
	// X: 2 minutes 20 seconds (140 s) for accounts without a subscription.
	"x": {140, "The video lasts %s: X takes at most 2 minutes 20 seconds (140 s) from accounts without Premium"},
}

// jobWarnings are what a job's status says the user should know before posting its videos: that
// they are longer than the platforms of a size take, one warning a size in its order, then that
// their sound is quieter than the loudness asked (loudnessWarning). Never nil, so the status body
// always has the array.
func jobWarnings(j Job) []string {
	w := []string{}
	for _, size := range j.Options.sizes() {
		if l, ok := platformLimits[size]; ok && j.AudioDuration > l.seconds {
			w = append(w, fmt.Sprintf(l.warning, fmtOver(j.AudioDuration)))
		}
	}
	if lw, ok := loudnessWarning(j); ok {
		w = append(w, lw)
	}
	return w
}
