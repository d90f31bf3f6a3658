package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestInputURLTooSlow: a server that declares a file and trickles it (1 KB/s, where the minimum is
// set to 64 KB/s after 100 ms) no longer holds a render worker for inputFetchTimeout: the job fails
// once the body falls behind, and its message says the server sent too slowly. A server that stalls
// after a few bytes is cut the same way, while its read is waiting.
func TestInputURLTooSlow(t *testing.T) {
	t.Parallel()
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	fe := newFetchEnv(t, nil, map[string]http.HandlerFunc{
		"/trickle.jpg": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100000")
			for {
				w.Write(make([]byte, 10))
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		},
		"/stall.jpg": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100000")
			w.Write(make([]byte, 10))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		},
	}, func(s *server) { s.fetchGrace, s.fetchMinRate = 100*time.Millisecond, 64<<10 })
	for _, path := range []string{"/trickle.jpg", "/stall.jpg"} {
		key, id := fe.submitURLs(t, map[string]string{"audio": fixture(t, "tone.wav")}, map[string]string{"imageUrl": fe.url(path)})
		st := fe.wait(t, key, id, StatusFailed)
		want := "Could not use imageUrl " + fe.url(path) + ": the server sent the file too slowly"
		if msg, _ := st["errorMessage"].(string); !strings.HasPrefix(msg, want) {
			t.Errorf("%s: errorMessage %q, want it to start %q", path, msg, want)
		}
	}
}

// TestInputURLTruncated: a server that declares 1000 bytes more than it sends, then closes, ends
// the job FAILED saying the file was cut short, not that the server was unreachable.
func TestInputURLTruncated(t *testing.T) {
	t.Parallel()
	fe := newFetchEnv(t, nil, map[string]http.HandlerFunc{
		"/short.jpg": func(w http.ResponseWriter, r *http.Request) {
			b := readFile(t, fixture(t, "img.jpg"))
			w.Header().Set("Content-Length", strconv.Itoa(len(b)+1000))
			w.Write(b)
		},
	})
	key, id := fe.submitURLs(t, map[string]string{"audio": fixture(t, "tone.wav")}, map[string]string{"imageUrl": fe.url("/short.jpg")})
	st := fe.wait(t, key, id, StatusFailed)
	want := "Could not use imageUrl " + fe.url("/short.jpg") + ": the server closed the connection before sending the whole file"
	if msg, _ := st["errorMessage"].(string); msg != want {
		t.Errorf("errorMessage %q, want %q", msg, want)
	}
}
