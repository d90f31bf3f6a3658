package main

import (
	"path/filepath"
	"regexp"
	"testing"
)

// TestPlatformLimitWarns renders an x video of 141 s, a second past what X takes from accounts
// without Premium: the job completes, its video is X's 1280×720 and as long as the audio, and its
// status warns of the limit.
func TestPlatformLimitWarns(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	audio := filepath.Join(t.TempDir(), "long.m4a") // AAC-LC at 48 kHz: copied, so the render is quick
	ffmpegMake(t, "-f", "lavfi", "-i", "sine=f=440:d=141:sample_rate=48000", "-c:a", "aac", "-b:a", "32k", audio)
	status, body := e.submit(t, e.key, fixture(t, "img.png"), audio, map[string]string{"size": "x"})
	if status != 201 {
		t.Fatalf("submit: %d %v", status, body)
	}
	st := e.wait(t, e.key, body["jobId"].(string), StatusCompleted)
	// vidgen measures the AAC file at 141.01 s (its last frame's padding): 0:02:21.0 or 0:02:21.1.
	w, _ := st["warnings"].([]any)
	if len(w) != 1 || !regexp.MustCompile(`^The video lasts 0:02:21\.[01]: X takes at most 2 minutes 20 seconds \(140 s\) from accounts without Premium$`).MatchString(w[0].(string)) {
		t.Errorf("warnings %#v, want X's limit", st["warnings"])
	}
	video, _ := download(t, st["outputVideo"].(string))
	if p := checkVideo(t, video, audio); p.Width != 1280 || p.Height != 720 {
		t.Errorf("video %dx%d, want 1280x720", p.Width, p.Height)
	}
}

// TestPlatformLimits: every platform size has a limit, and a job within it has no warning.
func TestPlatformLimits(t *testing.T) {
	for size := range platformSizes {
		l, ok := platformLimits[size]
		if !ok {
			t.Errorf("size %s has no platform limit", size)
			continue
		}
		j := Job{AudioDuration: l.seconds, Options: Options{Size: size}}
		if w := jobWarnings(j); len(w) != 0 {
			t.Errorf("%s at its limit: %v", size, w)
		}
		if j.AudioDuration += 0.1; len(jobWarnings(j)) != 1 {
			t.Errorf("%s past its limit: no warning", size)
		}
	}
	if w := jobWarnings(Job{AudioDuration: 1e6, Options: defaultOptions}); w == nil || len(w) != 0 {
		t.Errorf("the original size: %#v, want an empty list", w)
	}
}
