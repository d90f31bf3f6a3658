package main

import (
	"net/http"
	"path"
	"strings"
	"testing"
	"time"
)

// TestOutputNamesExpired: a name under /v/ that a job never had (a size it was not made in, or no
// size at all) is 404 whether the job is live or expired; the names it had (its video and poster,
// by the token and by its size's name) and its share page are 200 while it lives and 410 once it
// has expired.
func TestOutputNamesExpired(t *testing.T) {
	t.Parallel()
	e, clk, st := completedOnClock(t)
	video, share := st["outputVideo"].(string), st["outputShareLink"].(string)
	base := strings.TrimSuffix(video, ".mp4")
	had := []string{video, base + ".jpg", base + ".original.mp4", base + ".original.jpg", share}
	never := []string{base + ".bogus.mp4", base + ".bogus.jpg", base + ".x.mp4", base + ".landscape.jpg"}
	check := func(when string, urls []string, status int) {
		t.Helper()
		for _, u := range urls {
			for _, method := range []string{"GET", "HEAD"} {
				resp, b := mustRequest(t, method, u, "", nil)
				if method == "HEAD" || status == http.StatusOK {
					if resp.StatusCode != status {
						t.Errorf("%s %s of a %s job: %d, want %d", method, path.Base(u), when, resp.StatusCode, status)
					}
					continue
				}
				errorBody(t, resp, b, status)
			}
		}
	}
	check("live", had, http.StatusOK)
	check("live", never, http.StatusNotFound)

	e.waitFirstSweep(t) // before the clock moves, as the service's sweeps expect
	clk.Advance(e.srv.cfg.Retention + time.Minute)
	check("expired", had, http.StatusGone)
	check("expired", never, http.StatusNotFound)
}

// completedOnClock starts a vidgen whose clock is clk, which a test moves (past the retention, say),
// and returns it with the status body of a job it completed.
func completedOnClock(t testing.TB) (*testEnv, *fakeClock, map[string]any) {
	t.Helper()
	clk := &fakeClock{t: time.Now()}
	e := newTestEnv(t, nil, func(s *server) { s.now = clk.Now })
	id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.wav"))
	return e, clk, e.wait(t, e.key, id, StatusCompleted)
}
