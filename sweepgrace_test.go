package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"
)

// TestPostgresSharedDiskSweepGrace: a node on a shared queue with disk storage (which its nodes may
// share) leaves at start-up an upload younger than an hour, another node's job not yet committed,
// and still sweeps an older orphan.
func TestPostgresSharedDiskSweepGrace(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.Database = postgresTestURL(t)
	files := diskFiles{must(openDataDir(cfg.DataDir))(t)}
	ctx := context.Background()
	for _, id := range []string{"c0young", "c0old"} {
		if err := files.Put(ctx, inputKey(id, inputImage), strings.NewReader("png"), 3); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(files.path(inputKey("c0old", inputImage)), old, old); err != nil {
		t.Fatal(err)
	}
	newTestEnv(t, &cfg)
	if _, err := os.Stat(files.path(inputKey("c0young", inputImage))); err != nil {
		t.Errorf("another node's upload, a second old, after this node's start: %v", err)
	}
	if _, err := os.Stat(files.path(inputKey("c0old", inputImage))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an orphan two hours old after the start: %v, want swept", err)
	}
}
