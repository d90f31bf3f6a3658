//go:build e2e

package main

// Several real vidgen processes on one Postgres and one bucket, behaving as one service.

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sharedBackends is what every node of a multi-node test shares: a Postgres schema and a bucket
// prefix of the test's own, and a webhook receiver on loopback that the nodes may reach and trust.
type sharedBackends struct {
	db   string
	env  []string
	args []string
	recv *hookReceiver
}

// newSharedBackends skips t unless both a Postgres server and an S3-compatible bucket are named.
func newSharedBackends(t testing.TB) sharedBackends {
	t.Helper()
	if os.Getenv(postgresTestEnv) == "" || os.Getenv(testS3Env) == "" {
		t.Skipf("several nodes need both a Postgres server and an S3-compatible bucket: set %s and %s (make test-backends starts both)", postgresTestEnv, testS3Env)
	}
	b := sharedBackends{db: postgresTestURL(t), recv: newHookReceiver(t, nil)}
	st := testS3Settings(t)
	cert := filepath.Join(t.TempDir(), "receiver.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.recv.ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	b.env = []string{"VIDGEN_DATABASE_URL=" + b.db, "SSL_CERT_FILE=" + cert,
		"VIDGEN_S3_ACCESS_KEY_ID=" + st.AccessKeyID, "VIDGEN_S3_SECRET_ACCESS_KEY=" + st.SecretAccessKey, "VIDGEN_S3_REGION=" + st.Region}
	// A short lease, so that a dead node's job is taken over within seconds.
	b.args = []string{"-files", "s3://" + st.Bucket + "/" + st.Prefix, "-s3-endpoint", st.Endpoint, "-s3-path-style",
		"-lease", "3s", "-webhook-allow-private", "-webhook-ports", b.recv.port()}
	return b
}

// node starts a vidgen on dataDir (its own; each node has one) and the shared backends.
func (b sharedBackends) node(t testing.TB, dataDir string, args ...string) *vidgenProc {
	t.Helper()
	return startVidgen(t, dataDir, "ffmpeg", b.env, append(slices.Clip(b.args), args...)...)
}

// key makes a key with `vidgen keys create -database`, as an operator does on any node.
func (b sharedBackends) key(t testing.TB, name string) cliKey {
	t.Helper()
	out, err := exec.Command(vidgenBinary(t), "keys", "create", "-name", name, "-json", "-database", b.db).Output()
	var k cliKey
	if err != nil || json.Unmarshal(out, &k) != nil || k.APIKey == "" {
		t.Fatalf("keys create -database: %v %s", err, out)
	}
	return k
}

// hookedSubmission is a short job's form with a webhook to url.
func hookedSubmission(t testing.TB, url string) (io.Reader, string) {
	t.Helper()
	return multipartBody(t, map[string]string{"image": fixture(t, "img.jpg"), "audio": fixture(t, "tone.wav")}, map[string]string{"webhookUrl": url})
}

// hasChild reports whether process pid has a running child named comm.
func hasChild(pid int, comm string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if err != nil || open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:]) // state ppid …
		if len(f) > 1 && s[open+1:end] == comm && f[1] == strconv.Itoa(pid) && f[0] != "Z" {
			return true
		}
	}
	return false
}

// waitRendering waits until p's ffmpeg runs: p is mid-render.
func waitRendering(t testing.TB, p *vidgenProc, within time.Duration) {
	t.Helper()
	eventually(t, within, func() error {
		if hasChild(p.cmd.Process.Pid, "ffmpeg") {
			return nil
		}
		return fmt.Errorf("node %s runs no ffmpeg", p.url)
	})
}

// TestE2ERenderOnlyNode: a render-only node (serve -api=false) beside an API-only one (-workers 0)
// renders what the API node takes: it listens on no API address, answers /health on its metrics
// listener naming both shared backends, and its job's webhook links to the outputs at -public-url.
func TestE2ERenderOnlyNode(t *testing.T) {
	b := newSharedBackends(t)
	api := b.node(t, t.TempDir(), "-workers", "0")
	worker := b.node(t, t.TempDir(), "-api=false", "-public-url", api.url)
	if strings.Contains(worker.logs.String(), "vidgen listening") {
		t.Errorf("the render-only node listens for the API:\n%s", worker.logs.String())
	}
	if h := worker.mustDo(t, "GET", "/health", "", nil, "", 200); h["store"] != "postgres" || h["files"] != "s3" {
		t.Errorf("render-only node's health: %v", h)
	}
	if code, _, err := worker.do("GET", "/api/jobs", "", nil, ""); err != nil || code != http.StatusNotFound {
		t.Errorf("the render-only node's metrics listener answers GET /api/jobs: %d %v", code, err)
	}
	k := b.key(t, "render-only")
	body, ctype := hookedSubmission(t, b.recv.url())
	id := api.mustDo(t, "POST", "/api/jobs", k.APIKey, body, ctype, 201)["jobId"].(string)
	st := api.waitStatus(t, k.APIKey, id, StatusCompleted)
	video, _ := download(t, st["outputVideo"].(string))
	checkVideo(t, video, fixture(t, "tone.wav"))
	var hook statusBody
	if err := json.Unmarshal(b.recv.waitFor(t, 1)[0].Body, &hook); err != nil || hook.JobID != id || hook.OutputVideo == nil || !strings.HasPrefix(*hook.OutputVideo, api.url+"/") {
		t.Errorf("webhook %+v (%v): want job %s's, linking to %s", hook, err, id, api.url)
	}
}
