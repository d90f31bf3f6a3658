//go:build e2e

package main

// Several real vidgen processes on one Postgres and one bucket, behaving as one service.

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
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
	return b.nodeWith(t, dataDir, "ffmpeg", nil, args...)
}

// nodeWith is node with another ffmpeg and more variables.
func (b sharedBackends) nodeWith(t testing.TB, dataDir, ffmpeg string, env []string, args ...string) *vidgenProc {
	t.Helper()
	return startVidgen(t, dataDir, ffmpeg, append(slices.Clip(b.env), env...), append(slices.Clip(b.args), args...)...)
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

// Multi-node run's size: the 60 jobs from 12 keys, short ones (2.5 s of tone), so three
// nodes rendering side by side finish in well under a minute on a loaded 2-core machine and every
// node has several jobs in flight when it is stopped.
const (
	nodesKeys       = 12
	nodesJobsPerKey = 5
)

// TestE2ENodesShareOneQueue: three vidgen processes on one Postgres and one bucket, each with its
// own data directory. Each key's first job is submitted to all three at once: one 201, two 409s.
// While those render, node A is killed with kill -9 in the middle of a render (its ffmpeg blocks,
// so that the kill finds it rendering) and node B stopped with SIGTERM; node C, and A started
// again, go on, and each key's next
// jobs are submitted to them. Every job ends COMPLETED exactly once (one webhook delivery each,
// each delivered once, as every attempt is answered 200), A's lapsed job is counted as a retry,
// and every output downloads, the same bytes, from both surviving nodes.
func TestE2ENodesShareOneQueue(t *testing.T) {
	b := newSharedBackends(t)
	deadline := renderDeadline(t)
	// A's renders block (testdata/ffmpeg-block) until it is killed: it is killed mid-render.
	dirA, pids := t.TempDir(), filepath.Join(t.TempDir(), "pids")
	block, _ := filepath.Abs("testdata/ffmpeg-block")
	a := b.nodeWith(t, dirA, block, []string{"FAKE_FFMPEG_PIDS=" + pids})
	bn := b.node(t, t.TempDir(), "-shutdown-grace", "2s")
	c := b.node(t, t.TempDir())
	nodes := []*vidgenProc{a, bn, c}

	keys := make([]cliKey, nodesKeys)
	for i := range keys {
		keys[i] = b.key(t, fmt.Sprintf("node-key-%d", i))
	}
	// The first wave: every key's first job raced to the three nodes.
	jobs := make([][]string, nodesKeys) // per key, in order
	for i, k := range keys {
		codes := make([]int, len(nodes))
		ids := make([]string, len(nodes))
		var wg sync.WaitGroup
		for n, p := range nodes {
			body, ctype := hookedSubmission(t, b.recv.url())
			wg.Go(func() {
				code, resp, err := p.do("POST", "/api/jobs", k.APIKey, body, ctype)
				var v struct{ JobID string }
				if err == nil {
					json.Unmarshal(resp, &v)
				}
				codes[n], ids[n] = code, v.JobID
			})
		}
		wg.Wait()
		slices.Sort(codes)
		if !slices.Equal(codes, []int{201, 409, 409}) {
			t.Fatalf("key %d's racing submissions to three nodes: %v, want one 201 and two 409s", i, codes)
		}
		for _, id := range ids {
			if id != "" {
				jobs[i] = append(jobs[i], id)
			}
		}
	}

	eventually(t, deadline, func() error {
		if len(readPids(t, pids)) == 0 {
			return errors.New("node A started no render")
		}
		return nil
	})
	a.kill9()
	waitGone(t, readPids(t, pids))
	// B renders or has jobs queued behind its worker: its grace lets a render end, else the job
	// goes back to the queue.
	if err := bn.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bn.exited:
		if code := bn.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("node B exited %d after SIGTERM", code)
		}
	case <-time.After(deadline):
		t.Fatal("node B did not stop after SIGTERM")
	}
	a = b.node(t, dirA) // A again, on its data directory, with the real ffmpeg
	survivors := []*vidgenProc{c, a}

	// The next jobs, in rounds: each key's after its previous one ended, to the surviving nodes in
	// turn (the rounds' jobs render side by side).
	for n := 1; n < nodesJobsPerKey; n++ {
		for i, k := range keys {
			p := survivors[(i+n)%len(survivors)]
			p.waitStatus(t, k.APIKey, jobs[i][n-1], StatusCompleted)
			body, ctype := hookedSubmission(t, b.recv.url())
			jobs[i] = append(jobs[i], p.mustDo(t, "POST", "/api/jobs", k.APIKey, body, ctype, 201)["jobId"].(string))
		}
	}

	all := map[string]bool{}
	retries := 0.0
	for i, k := range keys {
		for _, id := range jobs[i] {
			all[id] = true
			retries += c.listItem(t, k.APIKey, id)["retries"].(float64)
			st := c.waitStatus(t, k.APIKey, id, StatusCompleted)
			video := st["outputVideo"].(string)
			var first []byte
			for _, p := range survivors {
				got, _ := download(t, p.url+video[strings.Index(video, "/v/"):])
				if first == nil {
					first = got
					checkVideo(t, got, fixture(t, "tone.wav"))
				} else if !bytes.Equal(got, first) {
					t.Errorf("job %s's video differs between the surviving nodes", id)
				}
			}
		}
	}
	if len(all) != nodesKeys*nodesJobsPerKey {
		t.Errorf("%d jobs, want %d", len(all), nodesKeys*nodesJobsPerKey)
	}
	if retries < 1 {
		t.Error("no job counts a retry: the job node A was rendering when killed was not taken over")
	}

	// Exactly once: one delivery per job, its final status COMPLETED, each delivery received once.
	var reqs []hookRequest
	eventually(t, deadline, func() error {
		if reqs = b.recv.requests(); len(reqs) < len(all) {
			return fmt.Errorf("%d webhooks received, want %d", len(reqs), len(all))
		}
		return nil
	})
	time.Sleep(2 * time.Second) // a duplicate would come now, as the sender works through its outbox
	perJob, perDelivery := map[string]int{}, map[string]int{}
	for _, r := range b.recv.requests() {
		var hook statusBody
		if err := json.Unmarshal(r.Body, &hook); err != nil || hook.Status != StatusCompleted || !all[hook.JobID] {
			t.Errorf("webhook %s (%v): want a COMPLETED job of this test", r.Body, err)
		}
		perJob[hook.JobID]++
		perDelivery[r.Header.Get("webhook-id")]++
	}
	for id := range all {
		if perJob[id] != 1 {
			t.Errorf("job %s: %d webhooks, want 1", id, perJob[id])
		}
	}
	for id, n := range perDelivery {
		if n != 1 {
			t.Errorf("delivery %s received %d times", id, n)
		}
	}
}
