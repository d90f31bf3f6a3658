package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFetchedJobObserved: a job whose audio comes by URL is logged and measured as fetched: its
// "render ended" line carries the audio's length and the fetch's time, the realtime ratio counts
// it; a job whose audio URL answers 404 ends FAILED without counting an ffmpeg failure, since no
// ffmpeg ran.
func TestFetchedJobObserved(t *testing.T) {
	t.Parallel()
	fe := newFetchEnv(t, nil, map[string]http.HandlerFunc{
		"/tone.mp3":    serveFile(t, fixture(t, "tone.mp3")),
		"/missing.mp3": http.NotFound,
	})
	key, ok := fe.submitURLs(t, map[string]string{"image": fixture(t, "img.jpg")}, map[string]string{"audioUrl": fe.url("/tone.mp3")})
	fe.wait(t, key, ok, StatusCompleted)
	key, bad := fe.submitURLs(t, map[string]string{"image": fixture(t, "img.jpg")}, map[string]string{"audioUrl": fe.url("/missing.mp3")})
	fe.wait(t, key, bad, StatusFailed)

	line := regexp.MustCompile(`msg="render ended" job=` + ok + `[^\n]*`)
	var ended string
	eventually(t, 10*time.Second, func() error {
		ended = line.FindString(fe.logs.String())
		if ended == "" || !strings.Contains(fe.logs.String(), `msg="render ended" job=`+bad) {
			return errors.New("no render ended line for both jobs yet")
		}
		return nil
	})
	var audio float64
	if m := regexp.MustCompile(`audio_s=([0-9.]+)`).FindStringSubmatch(ended); m != nil {
		audio, _ = strconv.ParseFloat(m[1], 64)
	}
	if audio < 1 || !strings.Contains(ended, "fetch_s=") {
		t.Errorf("render ended: %q; want the fetched audio's length (about 2.5 s) and fetch_s", ended)
	}

	w := httptest.NewRecorder()
	fe.srv.metrics.handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	for series, want := range map[string]string{
		`vidgen_render_realtime_ratio_count`:              "1",
		`vidgen_ffmpeg_failures_total{cause="bad_input"}`: "0",
	} {
		if got := metricValue(w.Body.String(), series); got != want {
			t.Errorf("%s = %q, want %s", series, got, want)
		}
	}
}
