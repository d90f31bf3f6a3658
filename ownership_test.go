package main

import (
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestFilesS3SecondDatabase: a second vidgen with a database of its own, started on the bucket
// prefix of a first one (two hours later, when the start-up sweep's grace no longer spares the
// first one's files), refuses to start with the fix in its error and deletes nothing; the first
// one, restarted on its own database, starts.
func TestFilesS3SecondDatabase(t *testing.T) {
	t.Parallel()
	e, _ := s3TestEnv(t, false)
	id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.mp3"))
	videoURL := e.wait(t, e.key, id, StatusCompleted)["outputVideo"].(string)
	token := strings.TrimSuffix(videoURL[strings.LastIndex(videoURL, "/")+1:], ".mp4")
	ctx := context.Background()

	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	cfg := testConfig(t.TempDir())
	cfg.Files, cfg.S3, cfg.PublicURL = e.srv.cfg.Files, e.srv.cfg.S3, "http://127.0.0.1:1"
	seedDatabase(t, cfg.DataDir)
	second, err := newServer(ctx, cfg, slog.New(slog.DiscardHandler), later)
	if err != nil {
		t.Fatal(err)
	}
	defer second.store.Close()
	stop, err := second.start(ctx)
	if err == nil {
		stop(ctx)
	}
	if !errors.Is(err, errFilesOwned) || !strings.Contains(err.Error(), "its own prefix") || !strings.Contains(err.Error(), cfg.Files) {
		t.Errorf("a second database on the prefix started: %v; want errFilesOwned with the fix", err)
	}
	if _, err := e.srv.files.Stat(ctx, outputKey(token, "mp4")); err != nil {
		t.Errorf("the first server's video after the second one started: %v", err)
	}

	e.close()
	first, err := newServer(ctx, e.srv.cfg, slog.New(slog.DiscardHandler), later)
	if err != nil {
		t.Fatal(err)
	}
	defer first.store.Close()
	stop, err = first.start(ctx)
	if err != nil {
		t.Fatalf("the first server, restarted on its own database: %v", err)
	}
	stop(ctx)
	if _, err := e.srv.files.Stat(ctx, outputKey(token, "mp4")); err != nil {
		t.Errorf("the first server's video after its restart: %v", err)
	}
}

// TestClaimFiles: the owner marker is written on a store that has none, the same id passes again
// (nodes on one database), another is refused.
func TestClaimFiles(t *testing.T) {
	t.Parallel()
	eachFileStore(t, func(t *testing.T, name string, files fileStore, _ dataDir) {
		ctx := t.Context()
		for _, id := range []string{"aaaa", "aaaa"} {
			if err := claimFiles(ctx, files, id, "the store"); err != nil {
				t.Fatalf("claim by %s: %v", id, err)
			}
		}
		if err := claimFiles(ctx, files, "bbbb", "the store"); !errors.Is(err, errFilesOwned) {
			t.Errorf("claim by another database: %v, want errFilesOwned", err)
		}
	})
}

// failingList is a file store whose List fails while fails is above zero, as a bucket that does
// not answer.
type failingList struct {
	fileStore
	fails *atomic.Int32
}

func (f failingList) List(ctx context.Context, prefix string) ([]fileEntry, error) {
	if f.fails.Add(-1) >= 0 {
		return nil, errors.New("connection refused")
	}
	return f.fileStore.List(ctx, prefix)
}

// TestStartSweepFails: a listing that fails at start-up does not keep the service from starting;
// the sweep runs again in the background and deletes the orphan then.
func TestStartSweepFails(t *testing.T) {
	t.Parallel()
	var fails atomic.Int32
	fails.Store(1)
	var orphan string
	e := newTestEnv(t, nil, func(s *server) {
		s.jobs.files = failingList{s.files, &fails}
		orphan = filepath.Join(s.cfg.DataDir, filepath.FromSlash(inputKey("orphan", inputImage)))
		if err := os.WriteFile(orphan, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-2 * time.Hour)
		if err := os.Chtimes(orphan, old, old); err != nil {
			t.Fatal(err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := os.Stat(orphan)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the orphan upload is still there 30 s after start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(e.logs.String(), "will try again") {
		t.Errorf("the failed start-up sweep was not logged:\n%s", e.logs.String())
	}
}

// TestInstallID: a database's id is made once and read alike after, on each store.
func TestInstallID(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		st, _ := open(t)
		ctx := t.Context()
		first, err := st.InstallID(ctx, rand.Reader)
		if err != nil || len(first) != 32 {
			t.Fatalf("install id: %q, %v", first, err)
		}
		if again, err := st.InstallID(ctx, rand.Reader); again != first || err != nil {
			t.Errorf("install id asked again: %q, %v; want %q", again, err, first)
		}
	})
}
