//go:build e2e

package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EPostgresKill9Reclaim: two real vidgen processes on one Postgres, their uploads and outputs
// shared (symlinks stand in for shared storage). Node A is killed with kill -9 mid-render; node B,
// started while A's lease still runs, leaves the job alone at start-up, claims it again once the
// lease lapsed, and renders it: COMPLETED once, one retry counted, the video served by B.
func TestE2EPostgresKill9Reclaim(t *testing.T) {
	u := postgresTestURL(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	for _, sub := range []string{"inputs", "outputs"} {
		if err := os.MkdirAll(filepath.Join(dirA, sub), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(dirA, sub), filepath.Join(dirB, sub)); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"VIDGEN_DATABASE_URL=" + u}
	pids := filepath.Join(t.TempDir(), "pids")
	block, _ := filepath.Abs("testdata/ffmpeg-block")
	a := startVidgen(t, dirA, block, append(env, "FAKE_FFMPEG_PIDS="+pids), "-lease", "10s")
	cmd := exec.Command(vidgenBinary(t), "keys", "create", "-name", "x", "-json", "-data", dirA)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	var k cliKey
	if err != nil || json.Unmarshal(out, &k) != nil || k.APIKey == "" {
		t.Fatalf("keys create: %v %s", err, out)
	}
	id := a.submit(t, k.APIKey)
	a.waitStatus(t, k.APIKey, id, StatusProcessing)
	eventually(t, 20*time.Second, func() error {
		if len(readPids(t, pids)) == 0 {
			return errors.New("the fake ffmpeg wrote no pid")
		}
		return nil
	})
	a.kill9()
	waitGone(t, readPids(t, pids))

	b := startVidgen(t, dirB, "ffmpeg", env, "-lease", "10s")
	st := b.waitStatus(t, k.APIKey, id, StatusCompleted)
	if item := b.listItem(t, k.APIKey, id); item["retries"].(float64) != 1 {
		t.Errorf("retries %v, want 1", item["retries"])
	}
	if code, _, err := b.do("GET", strings.TrimPrefix(st["outputVideo"].(string), b.url), "", nil, ""); err != nil || code != 200 {
		t.Errorf("video from node B: %d %v", code, err)
	}
	if logs := b.logs.String(); !strings.Contains(logs, "claimed again") || strings.Contains(logs, "interrupted by a crash") {
		t.Errorf("node B did not take the job over by its lapsed lease:\n%s", logs)
	}
}
