package main

import (
	"net/http"
	"testing"
)

// TestUnauthorizedChallenge: every 401, a missing key and a wrong one, carries the WWW-Authenticate
// challenge HTTP requires, naming the X-API-Key header the API reads.
func TestUnauthorizedChallenge(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	for _, key := range []string{"", "vg_wrong"} {
		for _, path := range []string{"/api/jobs", "/api/status/c0mx1lgwgsnrq4avl98w5fi6x"} {
			resp, b := e.do(t, "GET", path, key, nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("GET %s with key %q: %d %s", path, key, resp.StatusCode, b)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != `ApiKey realm="vidgen", header="X-API-Key"` {
				t.Errorf("GET %s with key %q: WWW-Authenticate %q", path, key, got)
			}
		}
	}
	if resp, _ := e.do(t, "GET", "/api/jobs", e.key, nil); resp.Header.Get("WWW-Authenticate") != "" {
		t.Error("a 200 carries WWW-Authenticate")
	}
}
