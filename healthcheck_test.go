package main

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// unreachableFiles is a fileStore whose server (a bucket) does not answer its health check.
type unreachableFiles struct{ fileStore }

func (unreachableFiles) Check(context.Context) error { return errors.New("bucket: connection refused") }

// TestHealthWatchdogOnlyLocalFaults: /health and systemd's watchdog read one health. /health
// answers 503 for every fault, with the part that failed; the watchdog withholds its ping (so
// that systemd restarts the node) only for a fault of this node, its SQLite file replaced, and not
// while the shared Postgres server or bucket is down: a restart would not bring them back, and
// would kill every node's renders that the leases are meant to carry through the outage.
func TestHealthWatchdogOnlyLocalFaults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		fault    func(t *testing.T, s *server)
		wantMsg  string // in /health's 503; "" for a 200
		watchdog bool   // the watchdog withholds its ping
	}{
		{name: "healthy", fault: func(*testing.T, *server) {}},
		{name: "postgres down", wantMsg: "cannot reach its database", fault: func(t *testing.T, s *server) {
			// A Postgres store whose server does not answer: nothing listens on port 1.
			db, err := sql.Open("pgx", "postgres://vidgen@127.0.0.1:1/vidgen?sslmode=disable&connect_timeout=5")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			s.store = &Store{db: database{DB: db, d: postgresDialect}, now: time.Now}
			s.dbFile = nil
		}},
		{name: "bucket down", wantMsg: "cannot reach its bucket", fault: func(t *testing.T, s *server) {
			s.files = unreachableFiles{s.files}
		}},
		{name: "sqlite replaced", wantMsg: "cannot use its data directory", watchdog: true, fault: func(t *testing.T, s *server) {
			if err := os.Rename(s.dirs.db(), s.dirs.db()+".old"); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.dirs.db(), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, err := newServer(context.Background(), testConfig(t.TempDir()), slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
			if err != nil {
				t.Fatal(err)
			}
			sqlite := s.store
			t.Cleanup(func() { sqlite.Close() })
			c.fault(t, s)

			rec := httptest.NewRecorder()
			s.routes().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
			if c.wantMsg == "" && rec.Code != http.StatusOK {
				t.Errorf("/health: %d %s, want 200", rec.Code, rec.Body)
			}
			if c.wantMsg != "" && (rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), c.wantMsg)) {
				t.Errorf("/health: %d %s, want 503 saying %q", rec.Code, rec.Body, c.wantMsg)
			}
			if got := rec.Header().Get("Retry-After"); got != "" {
				t.Errorf("/health: Retry-After %q, want none", got)
			}
			err = s.healthy(context.Background())
			if withheld := err != nil; withheld != c.watchdog {
				t.Errorf("watchdog: withheld %v (%v), want %v", withheld, err, c.watchdog)
			}
		})
	}
}
