//go:build e2e

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// TestE2EIdempotencyAcrossRestart: the real binary. A submission's Idempotency-Key outlives a
// kill -9: after the restart a retry gets the first answer, the same job, byte for byte, and the
// same key with another request a 422. A request the killed process was still receiving held its
// key (a retry then got a 409); the restart releases it, and the retry makes the job.
func TestE2EIdempotencyAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	k := createKeyCLI(t, dir, "idem")
	p := startVidgen(t, dir, "ffmpeg", nil)
	body, ctype := submission(t, map[string]string{"image": fixture(t, "img.png"), "audio": fixture(t, "tone.wav")}, nil)
	code, first, err := p.do("POST", "/api/jobs", k.APIKey, bytes.NewReader(body), ctype, "Idempotency-Key", "restart-1")
	if err != nil || code != http.StatusCreated {
		t.Fatalf("first: %d %s %v", code, first, err)
	}
	var created map[string]string
	if err := json.Unmarshal(first, &created); err != nil {
		t.Fatal(err)
	}
	p.waitStatus(t, k.APIKey, created["jobId"], StatusCompleted)

	// A second submission, half sent when the process dies.
	other := k.APIKey
	half, ctype2 := submission(t, map[string]string{"image": fixture(t, "img.jpg"), "audio": fixture(t, "tone.wav")}, nil)
	pr, pw := io.Pipe()
	go p.do("POST", "/api/jobs", other, pr, ctype2, "Idempotency-Key", "restart-2")
	pw.Write(half[:len(half)/2])
	eventually(t, 20*time.Second, func() error {
		code, b, err := p.do("POST", "/api/jobs", other, bytes.NewReader(half), ctype2, "Idempotency-Key", "restart-2")
		if err != nil || code != http.StatusConflict || !bytes.Contains(b, []byte("still being received")) {
			return fmt.Errorf("retry during the upload: %d %s %v", code, b, err)
		}
		return nil
	})
	p.kill9()
	pw.CloseWithError(errors.New("the server died"))

	p2 := startVidgen(t, dir, "ffmpeg", nil)
	code, again, err := p2.do("POST", "/api/jobs", k.APIKey, bytes.NewReader(body), ctype, "Idempotency-Key", "restart-1")
	if err != nil || code != http.StatusCreated || !bytes.Equal(again, first) {
		t.Errorf("retry after the restart: %d %s %v, want 201 %s", code, again, err, first)
	}
	code, b, err := p2.do("POST", "/api/jobs", k.APIKey, bytes.NewReader(half), ctype2, "Idempotency-Key", "restart-1")
	if err != nil || code != http.StatusUnprocessableEntity {
		t.Errorf("the key with another request after the restart: %d %s %v, want 422", code, b, err)
	}
	code, b, err = p2.do("POST", "/api/jobs", other, bytes.NewReader(half), ctype2, "Idempotency-Key", "restart-2")
	if err != nil || code != http.StatusCreated {
		t.Errorf("the interrupted submission's retry after the restart: %d %s %v, want 201", code, b, err)
	}
	list := p2.mustDo(t, "GET", "/api/jobs", k.APIKey, nil, "", 200)
	if n := len(list["jobs"].([]any)); n != 2 {
		t.Errorf("%d jobs, want 2 (one per key)", n)
	}
}
