//go:build e2e

package main

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestE2EInputsByURL: the real binary fetches inputs from a local HTTPS server (allowed as a
// developer allows one: -webhook-allow-private and its port). A job whose audio is a 404 ends
// FAILED naming the URL; a job killed with kill -9 half-way through fetching its audio is fetched
// again after the restart and completes.
func TestE2EInputsByURL(t *testing.T) {
	img := readFile(t, fixture(t, "img.jpg"))
	audio := readFile(t, fixture(t, "tone.wav"))
	stalled := make(chan struct{}, 1)
	release := make(chan struct{})
	var audioRequests atomic.Int64
	files := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cover.jpg":
			w.Write(img)
		case "/tone.wav":
			w.Header().Set("Content-Length", strconv.Itoa(len(audio)))
			if audioRequests.Add(1) == 1 {
				w.Write(audio[:len(audio)/2]) // half, then nothing until the server is gone
				w.(http.Flusher).Flush()
				stalled <- struct{}{}
				<-release
				return
			}
			w.Write(audio)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(files.Close)
	t.Cleanup(func() { close(release) })
	certFile := filepath.Join(t.TempDir(), "files.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: files.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(files.Listener.Addr().(*net.TCPAddr).Port)
	base := "https://127.0.0.1:" + port
	env := []string{"SSL_CERT_FILE=" + certFile}
	args := []string{"-webhook-allow-private", "-webhook-ports", port}
	dir := t.TempDir()
	k := createKeyCLI(t, dir, "urls")
	submit := func(p *vidgenProc, fields map[string]string) string {
		t.Helper()
		body, ctype := multipartBody(t, nil, fields)
		return p.mustDo(t, "POST", "/api/jobs", k.APIKey, body, ctype, http.StatusCreated)["jobId"].(string)
	}

	p := startVidgen(t, dir, "ffmpeg", env, args...)
	failed := submit(p, map[string]string{"imageUrl": base + "/cover.jpg", "audioUrl": base + "/gone.wav?key=SECRET"})
	st := p.waitStatus(t, k.APIKey, failed, StatusFailed)
	want := "Could not use audioUrl " + base + "/gone.wav: the server answered HTTP 404"
	if msg, _ := st["errorMessage"].(string); !strings.HasPrefix(msg, want) {
		t.Errorf("errorMessage %q, want %q…", msg, want)
	}

	id := submit(p, map[string]string{"imageUrl": base + "/cover.jpg", "audioUrl": base + "/tone.wav"})
	select {
	case <-stalled:
	case <-time.After(renderDeadline(t)):
		t.Fatal("the audio was never fetched")
	}
	p.kill9()
	if strings.Contains(p.logs.String(), "SECRET") {
		t.Error("the log holds a URL's query string")
	}

	p2 := startVidgen(t, dir, "ffmpeg", env, args...)
	st = p2.waitStatus(t, k.APIKey, id, StatusCompleted)
	if n := audioRequests.Load(); n != 2 {
		t.Errorf("the audio was fetched %d times, want 2 (before and after the restart)", n)
	}
	code, video, err := p2.do("GET", strings.TrimPrefix(st["outputVideo"].(string), p2.url), "", nil, "")
	if err != nil || code != http.StatusOK || len(video) == 0 {
		t.Fatalf("video: %d %v", code, err)
	}
	path := filepath.Join(t.TempDir(), "v.mp4")
	if err := os.WriteFile(path, video, 0o600); err != nil {
		t.Fatal(err)
	}
	if d := mediaDuration(t, path); d < 2 || d > 3 {
		t.Errorf("the video lasts %.2f s, want the audio's 2.5 s", d)
	}
	var list struct{ Jobs []json.RawMessage }
	_, b, _ := p2.do("GET", "/api/jobs", k.APIKey, nil, "")
	if err := json.Unmarshal(b, &list); err != nil || len(list.Jobs) != 2 || !bytes.Contains(b, []byte(`"retries":1`)) {
		t.Errorf("jobs %s (%v), want 2, the restarted one with 1 retry", b, err)
	}
}
