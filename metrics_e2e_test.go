//go:build e2e

package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestE2EMetricsListener runs the real binary: its start-up line says where the metrics listen,
// that listener serves them, and the API's address answers /metrics 404, through a raw TCP proxy
// on this machine too.
func TestE2EMetricsListener(t *testing.T) {
	t.Parallel()
	p := startVidgen(t, t.TempDir(), "ffmpeg", nil)
	m := regexp.MustCompile(`msg="vidgen listening" .* metrics=(127\.0\.0\.1:[0-9]+)`).FindStringSubmatch(p.logs.String())
	if m == nil {
		t.Fatalf("the start-up line does not say where the metrics listen:\n%s", p.logs.String())
	}
	resp, b := mustRequest(t, "GET", "http://"+m[1]+"/metrics", "", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "vidgen_build_info{") {
		t.Errorf("GET /metrics on the metrics listener %s: %d %.200s", m[1], resp.StatusCode, b)
	}
	proxied := "http://" + tcpForwarder(t, strings.TrimPrefix(p.url, "http://"))
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for _, base := range []string{p.url, proxied} {
		resp, b, err := request(client, "GET", base+"/metrics", "", nil)
		if err != nil {
			t.Fatalf("GET %s/metrics: %v", base, err)
		}
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(b), "vidgen_") {
			t.Errorf("GET %s/metrics: %d %.200s, want 404", base, resp.StatusCode, b)
		}
	}
}
