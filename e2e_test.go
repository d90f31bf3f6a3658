//go:build e2e

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fullMatrix: make e2e renders every case of the tables of renders (see sampled).
const fullMatrix = true

// The slow end-to-end tests: real processes killed and restarted, a Node.js receiver, connection
// floods and a render watched in real time. `make e2e` runs them (`go test -tags e2e -run E2E`);
// `make test` is the fast suite without them.

// TestE2ESlowloris: clients that send their headers a line at a time are cut at the header timeout,
// while a normal client is served at full speed throughout; a header past the cap gets 431.
func TestE2ESlowloris(t *testing.T) {
	s, _, _ := limitServer(t)
	s.headerTimeout = time.Second
	addr := slowServer(t, s)

	const slow = 50
	cut := make(chan time.Duration, slow)
	for range slow {
		go func() {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				cut <- -1
				return
			}
			defer conn.Close()
			start := time.Now()
			fmt.Fprint(conn, "GET /api/jobs HTTP/1.1\r\nHost: x\r\n")
			done := make(chan struct{})
			go func() {
				io.Copy(io.Discard, conn) // returns when the server closes the connection
				close(done)
			}()
			for {
				select {
				case <-done:
					cut <- time.Since(start)
					return
				case <-time.After(200 * time.Millisecond):
					fmt.Fprint(conn, "X-Pad: y\r\n")
				}
				if time.Since(start) > 10*time.Second {
					cut <- time.Since(start)
					return
				}
			}
		}()
	}
	// Meanwhile, a normal client.
	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 10 {
		start := time.Now()
		resp, err := client.Get("http://" + addr + "/api/health")
		if err != nil {
			t.Fatalf("normal client: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || time.Since(start) > 500*time.Millisecond {
			t.Errorf("normal request %d: %d in %v", i, resp.StatusCode, time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for range slow {
		d := <-cut
		if d < 900*time.Millisecond || d > 3*time.Second {
			t.Errorf("slowloris connection cut after %v, want about the 1 s header timeout", d)
		}
	}

	// Headers past the cap are refused.
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/health", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 2*maxHeaderBytes))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized header: %d", resp.StatusCode)
	}

	// An idle keep-alive connection is kept open until IdleTimeout, not cut at the header timeout
	// (which would hurt well-behaved clients), and a request on it is still served.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for i := range 2 {
		fmt.Fprint(conn, "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("keep-alive request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(1500 * time.Millisecond)
	}
}

// TestE2EProgress polls a render slowed to a few seconds (ffmpeg reads its inputs at 10× realtime):
// progress never goes down, passes through intermediate values, and etaSeconds is an integer or null.
func TestE2EProgress(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	real, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	slow := filepath.Join(dir, "ffmpeg")
	os.WriteFile(slow, []byte("#!/bin/sh\nfor a do\n  shift\n  [ \"$a\" = -i ] && set -- \"$@\" -readrate 10\n  set -- \"$@\" \"$a\"\ndone\nexec "+real+" \"$@\"\n"), 0o755)
	cfg := testConfig(t.TempDir())
	cfg.FFmpeg = slow
	e := newTestEnv(t, &cfg)
	wait := renderDeadline(t) // measured before the render, whose first values it would miss
	id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "long.wav"))
	last, seen, etas := -1, map[int]bool{}, 0
	for deadline := time.Now().Add(wait); ; time.Sleep(40 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the job did not complete")
		}
		st := e.status(t, e.key, id)
		p := int(st["progress"].(float64))
		if p < last {
			t.Errorf("progress went down from %d to %d", last, p)
		}
		last = p
		eta, present := st["etaSeconds"]
		if !present {
			t.Fatalf("status body without etaSeconds: %v", st)
		}
		if eta != nil {
			f, ok := eta.(float64)
			if !ok || f != float64(int(f)) || f < 0 {
				t.Errorf("etaSeconds %v: want a non-negative integer or null", eta)
			}
			etas++
		}
		if st["status"] == string(StatusCompleted) {
			if p != 100 || eta != nil {
				t.Errorf("completed: progress %d, etaSeconds %v", p, eta)
			}
			break
		}
		if st["status"] != string(StatusProcessing) && st["status"] != string(StatusPending) {
			t.Fatalf("job ended %v", st)
		}
		if p > 0 && p < 100 {
			seen[p] = true
		}
	}
	if len(seen) < 5 {
		t.Errorf("progress took %d intermediate values (%v); want a bar that moves", len(seen), seen)
	}
	if etas == 0 {
		t.Error("etaSeconds was never known while processing")
	}
}

// TestE2EWebhookExpressSnippet runs the API document's own Express snippet as the receiver: it must accept
// vidgen's deliveries unchanged.
func TestE2EWebhookExpressSnippet(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; the API document's Express snippet cannot run")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed; express cannot be installed")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--prefer-offline", "--fetch-retries=1", "--loglevel=error", "express")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Skipf("express cannot be installed (%v); skipping the Express receiver:\n%s", err, out)
	}
	certPEM, keyPEM, pool := hookTestCert(t)
	for name, data := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM, "receiver.mjs": []byte(expressReceiver)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// The account exists before the receiver starts, so the snippet gets its secret the usual way.
	dataDir := t.TempDir()
	_, st, err := openData(context.Background(), dataDir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	k, apiKey, err := createKey(context.Background(), st, "express", crand.Reader, time.Now())
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(node, "receiver.mjs", "key.pem", "cert.pem")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "WEBHOOK_SECRET="+k.WebhookSecret)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("Express receiver stderr:\n%s", stderr.String())
		}
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the Express receiver exited")
			}
			return l
		case <-time.After(15 * time.Second):
			t.Fatal("no output from the Express receiver")
		}
		return ""
	}
	port, ok := strings.CutPrefix(next(), "listening ")
	if !ok {
		t.Fatal("the Express receiver did not start")
	}
	hookURL := "https://127.0.0.1:" + port + "/hooks/vidgen"

	cfg := testConfig(dataDir)
	cfg.WebhookAllowPrivate, cfg.WebhookPorts = true, []string{"443", port}
	e := newTestEnv(t, &cfg, hookTrustPool(pool))
	id, _ := e.finishWithHook(t, apiKey, hookURL)
	e.settle(t)
	ds := e.deliveries(t, apiKey, id)
	if len(ds) != 1 || ds[0].State != "delivered" || len(ds[0].Attempts) != 1 || ds[0].code(0) != 200 {
		t.Fatalf("delivery to the Express snippet: %+v", ds)
	}
	var logged struct {
		ID     string
		Status int
	}
	if err := json.Unmarshal([]byte(next()), &logged); err != nil || logged.ID != ds[0].ID || logged.Status != 200 {
		t.Errorf("the snippet logged %+v, want delivery %s answered 200", logged, ds[0].ID)
	}

	// The snippet does check: a request signed with another secret gets its 401.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	body := []byte(`{"jobId":"cforged0000000000000000000","status":"COMPLETED"}`)
	mac := hmac.New(sha256.New, []byte("not the secret"))
	mac.Write(body)
	req, _ := http.NewRequest("POST", hookURL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Webhook-Signature", hex.EncodeToString(mac.Sum(nil)))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged request: %d, want 401", resp.StatusCode)
	}
}
