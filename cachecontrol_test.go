package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"
	"time"
)

// TestOutputCacheUntilExpiry: a video, its poster and its share page, by GET and HEAD, may be cached
// for a day at most and never past the moment the output expires, so no cache serves an output
// after its links answer 410.
func TestOutputCacheUntilExpiry(t *testing.T) {
	t.Parallel()
	e, clk, st := completedOnClock(t)
	video, share := st["outputVideo"].(string), st["outputShareLink"].(string)
	poster := strings.TrimSuffix(video, ".mp4") + ".jpg"
	j, err := e.srv.store.JobByToken(context.Background(), path.Base(share))
	if err != nil {
		t.Fatal(err)
	}
	expires := j.FinishedAt.Add(e.srv.cfg.Retention)

	for _, c := range []struct {
		now  time.Time
		want string
	}{
		{j.FinishedAt.Add(time.Hour), "public, max-age=86400"}, // a day at most, as before
		{expires.Add(-36 * time.Hour), "public, max-age=86400"},
		{expires.Add(-90 * time.Second), "public, max-age=90"},
		{expires.Add(-1500 * time.Millisecond), "public, max-age=1"}, // whole seconds, rounded down
		{expires, "public, max-age=0"},                               // its last instant
	} {
		clk.Set(c.now)
		for _, u := range []string{video, poster, share} {
			for _, method := range []string{"GET", "HEAD"} {
				resp, b := mustRequest(t, method, u, "", nil)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s %s at expiry%+v: %d %.200s", method, u, c.now.Sub(expires), resp.StatusCode, b)
				}
				if got := resp.Header.Get("Cache-Control"); got != c.want {
					t.Errorf("%s %s at expiry%+v: Cache-Control %q, want %q", method, path.Base(u), c.now.Sub(expires), got, c.want)
				}
			}
		}
	}
	// Once expired, a 410 that no cache keeps as the video.
	clk.Set(expires.Add(time.Second))
	for _, u := range []string{video, poster, share} {
		resp, b := mustRequest(t, "GET", u, "", nil)
		errorBody(t, resp, b, http.StatusGone)
		if cc := resp.Header.Get("Cache-Control"); strings.Contains(cc, "public") {
			t.Errorf("410 of %s: Cache-Control %q", path.Base(u), cc)
		}
	}
}

// TestOutputCacheKeptForEver: with -retention 0 outputs never expire, and may be cached for a day,
// however old.
func TestOutputCacheKeptForEver(t *testing.T) {
	t.Parallel()
	finished := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &server{cfg: config{Retention: 0}, now: func() time.Time { return finished.Add(5 * 365 * 24 * time.Hour) }}
	w := httptest.NewRecorder()
	s.cacheOutput(w, Job{FinishedAt: finished})
	if got := w.Header().Get("Cache-Control"); got != "public, max-age=86400" {
		t.Errorf("Cache-Control %q, want public, max-age=86400", got)
	}
}
