package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"vidgen/internal/media"
)

// postgresTestEnv names the Postgres server the store's contract tests run on besides SQLite, as a
// URL (scripts/postgres-test.sh, which `make test-postgres` runs, starts one and sets it). Unset,
// they run on SQLite alone, so `make test` needs nothing installed.
const postgresTestEnv = "VIDGEN_TEST_POSTGRES"

// storeOpener opens a fresh, empty, migrated store of one backend, closed when the test ends.
type storeOpener func(t testing.TB) *Store

// storeBackends are the backends the contract tests run on: SQLite always, a real file in the
// test's temporary directory, and Postgres when postgresTestEnv names a server.
func storeBackends() map[string]storeOpener {
	b := map[string]storeOpener{"sqlite": openSQLiteTestStore}
	if os.Getenv(postgresTestEnv) != "" {
		b["postgres"] = func(t testing.TB) *Store { return openPostgresTestStore(t, postgresMigrations) }
	}
	return b
}

// forEachStore runs fn, in parallel, once for each backend (storeBackends) as a subtest named for
// it; open gives it a fresh store and an account named alice on it, as many as it asks for.
func forEachStore(t *testing.T, fn func(t *testing.T, open func(testing.TB) (*Store, Key))) {
	t.Helper()
	for name, opener := range storeBackends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, func(t testing.TB) (*Store, Key) {
				st := opener(t)
				return st, storeKey(t, st, "alice")
			})
		})
	}
}

// openSQLiteTestStore opens a store on a fresh SQLite file, every migration applied, closed when the
// test ends.
func openSQLiteTestStore(t testing.TB) *Store {
	t.Helper()
	st, err := OpenStore(context.Background(), filepath.Join(t.TempDir(), "vidgen.db"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// postgresTestURL returns a URL of the Postgres server named by postgresTestEnv whose connections
// work in a schema of their own, made for this test and dropped after it: tests run in parallel on
// one server without meeting. It skips the test when no server is named.
func postgresTestURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(postgresTestEnv)
	if admin == "" {
		t.Skipf("no Postgres server: %s is unset (make test-postgres starts one)", postgresTestEnv)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "vidgen_test_" + hex.EncodeToString(b[:])
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		db.Close()
		t.Fatalf("%s: %v", postgresTestEnv, err)
	}
	t.Cleanup(func() {
		defer db.Close()
		if _, err := db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema) // pgx sends it as a run-time parameter of every connection
	u.RawQuery = q.Encode()
	return u.String()
}

// openPostgresTestStore opens a store on a fresh schema of the test server, with the migrations migs.
func openPostgresTestStore(t testing.TB, migs []string) *Store {
	t.Helper()
	st, err := openPostgres(context.Background(), postgresTestURL(t), time.Now, migs, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestRebind: the ? of a query become $1, $2 … in order on Postgres, and stay on SQLite.
func TestRebind(t *testing.T) {
	t.Parallel()
	q := `SELECT id FROM jobs WHERE key_id = ? AND status = ? AND id < ? LIMIT ?`
	if got, want := postgresDialect.rebind(q), `SELECT id FROM jobs WHERE key_id = $1 AND status = $2 AND id < $3 LIMIT $4`; got != want {
		t.Errorf("postgres: %s, want %s", got, want)
	}
	if got := sqliteDialect.rebind(q); got != q {
		t.Errorf("sqlite changed the query: %s", got)
	}
	if got := postgresDialect.rebind(`SELECT 1`); got != `SELECT 1` {
		t.Errorf("a query without arguments became %s", got)
	}
}

// TestStoreBackendName: each store says which database it runs on, as /health reports it.
func TestStoreBackendName(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		st, _ := open(t)
		if got, want := st.Backend(), t.Name()[strings.LastIndex(t.Name(), "/")+1:]; got != want {
			t.Errorf("Backend() = %q, want %q", got, want)
		}
	})
}

// TestConcurrentClaims: workers claiming at once, as render workers on several nodes do, each get a
// different job, every job is claimed exactly once, and a claim with none left says so.
func TestConcurrentClaims(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, _ := open(t)
		const jobs, workers = 24, 6
		base := time.Now().Add(-time.Minute)
		for i := range jobs {
			storeJob(t, st, storeKey(t, st, fmt.Sprintf("k%d", i)), "", base.Add(time.Duration(i)*time.Millisecond))
		}
		var mu sync.Mutex
		claimed := map[string]int{}
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					j, err := st.ClaimJob(ctx, claiming())
					if errors.Is(err, ErrNotFound) {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					claimed[j.ID]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(claimed) != jobs {
			t.Errorf("%d jobs claimed, want %d", len(claimed), jobs)
		}
		for id, n := range claimed {
			if n != 1 {
				t.Errorf("job %s claimed %d times", id, n)
			}
		}
	})
}

// TestCancelRacesClaim: a cancel and a claim of the same PENDING job at once: exactly one wins, and
// the job is stored as the winner left it (on Postgres the loser waits for the winner's row lock
// and then reads the job as it now stands).
func TestCancelRacesClaim(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, k := open(t)
		for round := range 10 {
			j := storeJob(t, st, k, "", time.Now())
			var claimErr, cancelErr error
			var wg sync.WaitGroup
			wg.Go(func() { _, claimErr = st.ClaimJob(ctx, claiming()) })
			wg.Go(func() {
				_, cancelErr = st.Transition(ctx, transition{JobID: j.ID, KeyID: k.ID, From: StatusPending, Next: toward(Outcome{Status: StatusCancelled})})
			})
			wg.Wait()
			stored, err := st.JobByID(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case claimErr == nil && errors.Is(cancelErr, ErrNotCancelable):
				if stored.Status != StatusProcessing {
					t.Fatalf("round %d: claim won, job is %s", round, stored.Status)
				}
				if _, err := st.Transition(ctx, transition{JobID: j.ID, From: StatusProcessing, Next: toward(Outcome{Status: StatusCompleted, OutputToken: fmt.Sprint("t", round)})}); err != nil {
					t.Fatal(err)
				}
			case cancelErr == nil && errors.Is(claimErr, ErrNotFound):
				if stored.Status != StatusCancelled {
					t.Fatalf("round %d: cancel won, job is %s", round, stored.Status)
				}
			default:
				t.Fatalf("round %d: claim %v, cancel %v, job %s", round, claimErr, cancelErr, stored.Status)
			}
		}
	})
}

// TestPostgresMigrations opens a Postgres schema at each migration in turn, from none, and then at
// this binary's: every one applies, is recorded once, and an older binary refuses the newer schema.
func TestPostgresMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := postgresTestURL(t)
	for n := 0; n <= len(postgresMigrations); n++ {
		st, err := openPostgres(ctx, u, time.Now, postgresMigrations[:n], true)
		if err != nil {
			t.Fatalf("at migration %d: %v", n, err)
		}
		v, err := st.schemaVersion(ctx)
		if err == nil && n == 6 { // a job being rendered when leases came
			_, err = st.db.Exec(`INSERT INTO api_keys (id, name, key_hash, prefix, webhook_secret, created_at) VALUES ('key_1', 'k', '\x01', 'vg_', 's', 1);
				INSERT INTO jobs (id, key_id, status, image_type, audio_type, audio_codec, audio_duration, retries, created_at, updated_at)
				VALUES ('c0000000000000000000000p1', 'key_1', 'PROCESSING', 'png', 'wav', 'pcm', 1, 0, 1, 1)`)
		}
		st.Close()
		if err != nil || v != n {
			t.Fatalf("at migration %d: schema version %d (%v)", n, v, err)
		}
	}
	if _, err := openPostgres(ctx, u, time.Now, postgresMigrations[:len(postgresMigrations)-1], false); !errors.Is(err, errSchemaAhead) {
		t.Errorf("an older binary opened the newer schema: %v", err)
	}
	st, err := OpenPostgresStoreAsIs(ctx, u, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The job from before leases has none, so a starting node's recovery takes it back.
	if j, err := st.JobByID(ctx, "c0000000000000000000000p1"); err != nil || j.Status != StatusProcessing || j.Lease != (Lease{}) || j.Progress != 0 {
		t.Errorf("job from before leases: %+v %v", j, err)
	}
	k := storeKey(t, st, "alice")
	storeJob(t, st, k, "https://example.com/h", time.Now())
}

// TestPostgresMigrationsAtOnce: nodes starting together on an empty database each create and
// migrate it under the schema lock; none fails and every migration is recorded once.
func TestPostgresMigrationsAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := postgresTestURL(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			st, err := OpenPostgresStore(ctx, u, time.Now)
			if err != nil {
				t.Error(err)
				return
			}
			st.Close()
		})
	}
	wg.Wait()
	st := must(OpenPostgresStore(ctx, u, time.Now))(t)
	defer st.Close()
	var rows, versions int
	if err := st.db.QueryRow(`SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&rows, &versions); err != nil {
		t.Fatal(err)
	}
	if rows != len(postgresMigrations) || versions != rows {
		t.Errorf("%d migration rows for %d versions, want %d each", rows, versions, len(postgresMigrations))
	}
}

// TestPostgresSchemaDeadlockRetried: a node upgrading the schema deadlocks with a transaction
// that writes jobs and then wants the schema lock; Postgres ends the upgrade's transaction, which
// is run again once the other is through, so the node starts instead of failing. A database
// already at this binary's schema is opened without taking any lock at all.
func TestPostgresSchemaDeadlockRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := postgresTestURL(t)
	must(openPostgres(ctx, u, time.Now, postgresMigrations[:len(postgresMigrations)-1], true))(t).Close()

	other := must(sql.Open("pgx", u))(t)
	defer other.Close()
	tx := must(other.BeginTx(ctx, nil))(t)
	defer tx.Rollback()
	// The upgrade must be the one Postgres ends: the other transaction checks for deadlocks
	// only long after the upgrade has (1 s, the server's default).
	for _, q := range []string{`SET LOCAL deadlock_timeout = '60s'`, `LOCK TABLE jobs IN ROW EXCLUSIVE MODE`} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	opened := make(chan error, 1)
	go func() {
		st, err := OpenPostgresStore(ctx, u, time.Now)
		if err == nil {
			st.Close()
		}
		opened <- err
	}()
	eventually(t, time.Minute, func() error { // the upgrade holds the schema lock and waits for jobs
		var waiting int
		if err := other.QueryRow(`SELECT count(*) FROM pg_locks WHERE relation = 'jobs'::regclass AND NOT granted`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 0 {
			return errors.New("the upgrade does not wait for the jobs table yet")
		}
		return nil
	})
	// Granted only once Postgres has ended the upgrade's transaction, which held it.
	if _, err := tx.Exec(postgresDialect.lockSchema); err != nil {
		t.Fatalf("the other transaction was ended instead of the upgrade: %v", err)
	}
	select {
	case err := <-opened:
		t.Fatalf("the upgrade ended while the other transaction holds the schema lock: %v", err)
	default:
	}
	tx.Rollback()
	if err := <-opened; err != nil {
		t.Fatalf("the node did not start: %v", err)
	}
	asIs := must(OpenPostgresStoreAsIs(ctx, u, time.Now))(t)
	v, err := asIs.schemaVersion(ctx)
	asIs.Close()
	if err != nil || v != len(postgresMigrations) {
		t.Errorf("schema version %d (%v), want %d", v, err, len(postgresMigrations))
	}

	// At this binary's schema, a node starts while another transaction holds the schema lock
	// and writes jobs: it waits for neither.
	tx = must(other.BeginTx(ctx, nil))(t)
	defer tx.Rollback()
	for _, q := range []string{postgresDialect.lockSchema, `LOCK TABLE jobs IN ROW EXCLUSIVE MODE`} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := OpenPostgresStore(openCtx, u, time.Now)
	if err != nil {
		t.Fatalf("a node at the current schema waited for a lock: %v", err)
	}
	st.Close()
}

// TestPostgresQueryPlans is TestQueryPlans on Postgres: every frequent query can search an index
// rather than a whole table. The planner rightly scans a table of a few rows, so it is told to
// avoid scans (enable_seqscan off), which it still makes when no index serves the query.
func TestPostgresQueryPlans(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openPostgresTestStore(t, postgresMigrations)
	k := storeKey(t, st, "alice")
	insertStoreJobs(t, st, k.ID, 2000, time.Now().Add(-time.Hour), StatusCompleted, StatusFailed, StatusCompleted, StatusCancelled)
	conn, err := st.db.DB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `ANALYZE; SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	for _, c := range frequentQueries() {
		// EXPLAIN takes no parameters: the arguments go in as literals, quoted where text.
		q := c.q
		for _, a := range c.args {
			lit := fmt.Sprint(a)
			switch v := a.(type) {
			case string:
				lit = "'" + v + "'"
			case []byte:
				lit = `'\x` + hex.EncodeToString(v) + `'::bytea`
			}
			q = strings.Replace(q, "?", lit, 1)
		}
		var plan []string
		rows, err := conn.QueryContext(ctx, `EXPLAIN `+q)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		rows.Close()
		all := strings.Join(plan, "\n")
		if strings.Contains(all, "Seq Scan") {
			t.Errorf("%s scans a table:\n%s", c.name, all)
		}
		// Sorting the jobs of jobs_one_active, the active ones (one a key at most), is sorting the
		// queue, not the history.
		if strings.Contains(all, "Sort") && !strings.Contains(all, "using jobs_one_active") {
			t.Errorf("%s sorts its whole match:\n%s", c.name, all)
		}
	}
}

// TestPostgresStoreKeys: an account made through one store opens on another on the same database,
// as a key made with `vidgen keys` on one node works on every node.
func TestPostgresStoreKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := postgresTestURL(t)
	a := must(OpenPostgresStore(ctx, u, time.Now))(t)
	defer a.Close()
	b := must(OpenPostgresStoreAsIs(ctx, u, time.Now))(t)
	defer b.Close()
	k, apiKey, err := createKey(ctx, a, "alice", rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.KeyByHash(ctx, hashKey(apiKey))
	if err != nil || got.ID != k.ID || !got.Active {
		t.Errorf("key on the other node: %+v %v", got, err)
	}
	if _, _, err := createKey(ctx, b, "alice", rand.Reader, time.Now()); !errors.Is(err, ErrNameTaken) {
		t.Errorf("second alice: %v, want ErrNameTaken", err)
	}
	j := Job{ID: must(newJobID(time.Now(), rand.Reader))(t), KeyID: k.ID, ImageType: media.PNG, AudioType: media.WAV,
		AudioCodec: "pcm", AudioDuration: 1.25, CreatedAt: time.Now()}
	if err := a.CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	j.ID = must(newJobID(time.Now(), rand.Reader))(t)
	if err := b.CreateJob(ctx, j); !errors.Is(err, ErrActiveJob) {
		t.Errorf("second active job through the other node: %v, want ErrActiveJob", err)
	}
}

// must returns a test helper that fails t when err is set and else gives v.
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// TestPostgresService runs the real service on a Postgres store: /health names it, a submission is
// rendered and its video, poster and share page download, a second active job of the key is refused
// by the database's index, and the status filter lists the job.
func TestPostgresService(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.Database = postgresTestURL(t)
	e := newTestEnv(t, &cfg)
	resp, b := e.do(t, "GET", "/health", "", nil)
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"files":"disk","status":"ok","store":"postgres"}` {
		t.Errorf("health: %d %s", resp.StatusCode, b)
	}
	id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.mp3"))
	other := must(OpenPostgresStoreAsIs(context.Background(), cfg.Database, time.Now))(t)
	defer other.Close()
	if j, err := other.JobByID(context.Background(), id); err != nil {
		t.Errorf("the job is not in Postgres: %v", err)
	} else if j.Status.Final() {
		t.Errorf("job %s before it was rendered", j.Status)
	}
	if code, body := e.submit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.mp3"), nil); code != 409 && code != 201 {
		t.Errorf("second submission while the first is active: %d %v", code, body)
	} else if code == 201 {
		e.wait(t, e.key, body["jobId"].(string), StatusCompleted) // the first had already ended
	}
	st := e.wait(t, e.key, id, StatusCompleted)
	video, _ := download(t, st["outputVideo"].(string))
	checkVideo(t, video, fixture(t, "tone.mp3"))
	checkPoster(t, st["outputThumbnail"].(string), 320, 240)
	if page, _ := download(t, st["outputShareLink"].(string)); !strings.Contains(string(page), "<video") {
		t.Error("share page without its video")
	}
	resp, b = e.do(t, "GET", "/api/jobs?status=COMPLETED", e.key, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), id) {
		t.Errorf("list COMPLETED: %d %s", resp.StatusCode, b)
	}
}

// TestPostgresServeAndKeys runs the real serve and keys commands on one Postgres database, each
// with its own data directory as two nodes have: the serve creates the schema and the default key,
// a key made by `keys create -database` (and listed through VIDGEN_DATABASE_URL) works on the serve.
func TestPostgresServeAndKeys(t *testing.T) {
	t.Parallel()
	u := postgresTestURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-addr", "127.0.0.1:0", "-metrics-addr", "off", "-data", t.TempDir(), "-database", u},
			func(string) string { return "" }, &stderr, &stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v\n%s", err, stderr.String())
		}
	}()
	var addr string
	eventually(t, 20*time.Second, func() error {
		for _, line := range strings.Split(stderr.String(), "\n") {
			if i := strings.Index(line, "addr="); i >= 0 && strings.Contains(line, "vidgen listening") {
				addr = strings.Fields(line[i+5:])[0]
			}
		}
		if addr == "" {
			return fmt.Errorf("not listening yet:\n%s", stderr.String())
		}
		return nil
	})
	keys := func(env func(string) string, args ...string) string {
		t.Helper()
		var out, errOut syncBuffer
		if err := run(context.Background(), append([]string{"keys"}, args...), env, &out, &errOut); err != nil {
			t.Fatalf("keys %v: %v %s", args, err, errOut.String())
		}
		return out.String()
	}
	noEnv := func(string) string { return "" }
	created := keys(noEnv, "create", "-name", "bob", "-json", "-data", t.TempDir(), "-database", u)
	var k struct{ APIKey string }
	if err := json.Unmarshal([]byte(created), &k); err != nil || k.APIKey == "" {
		t.Fatalf("keys create: %v %s", err, created)
	}
	if resp, b := mustRequest(t, "GET", "http://"+addr+"/api/jobs", k.APIKey, nil); resp.StatusCode != 200 {
		t.Errorf("the new key on the serve: %d %s", resp.StatusCode, b)
	}
	env := func(name string) string {
		if name == "VIDGEN_DATABASE_URL" {
			return u
		}
		return ""
	}
	if list := keys(env, "list", "-data", t.TempDir()); !strings.Contains(list, "bob") || !strings.Contains(list, "default") {
		t.Errorf("keys list through VIDGEN_DATABASE_URL:\n%s", list)
	}
}

// BenchmarkClaim claims PENDING jobs one after another, each its own key's, on each backend: the
// claim latency a render worker sees (SQLite file on the local disk, Postgres on loopback).
func BenchmarkClaim(b *testing.B) {
	for name, opener := range storeBackends() {
		b.Run(name, func(b *testing.B) {
			st := opener(b)
			insertPendingJobs(b, st, b.N)
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				if _, err := st.ClaimJob(ctx, claiming()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// insertPendingJobs makes n PENDING jobs, each of a key of its own.
func insertPendingJobs(t testing.TB, st *Store, n int) {
	t.Helper()
	base := time.Now().Add(-time.Hour)
	err := st.tx(context.Background(), func(tx txn) error {
		for i := range n {
			key := fmt.Sprintf("key_bench%d", i)
			at := base.Add(time.Duration(i) * time.Millisecond)
			if _, err := tx.ExecContext(context.Background(), `INSERT INTO api_keys (id, name, key_hash, prefix, webhook_secret, created_at)
				VALUES (?, ?, ?, 'vg_', 's', ?)`, key, key, []byte(key), ms(at)); err != nil {
				return err
			}
			id := must(newJobID(at, rand.Reader))(t)
			if _, err := tx.ExecContext(context.Background(), `INSERT INTO jobs (id, key_id, status, image_type, audio_type, audio_codec,
				audio_duration, retries, created_at, updated_at) VALUES (?, ?, 'PENDING', 'png', 'wav', 'pcm', 1, 0, ?, ?)`, id, key, ms(at), ms(at)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPostgresDriver reads one job by id through database/sql with pgx's driver, as the store
// does, and through pgxpool, pgx's own pool, on the same server: what keeping database/sql costs.
func BenchmarkPostgresDriver(b *testing.B) {
	st := openPostgresTestStore(b, postgresMigrations)
	k := storeKey(b, st, "alice")
	id := insertStoreJobs(b, st, k.ID, 1, time.Now(), StatusCompleted)[0]
	ctx := context.Background()
	b.Run("database-sql", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.JobByID(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
	u := postgresTestURL(b) // a URL of the server; the job's schema is named explicitly below
	pool := must(pgxpool.New(ctx, u))(b)
	defer pool.Close()
	var schema string
	if err := st.db.QueryRow(`SELECT current_schema()`).Scan(&schema); err != nil {
		b.Fatal(err)
	}
	q := `SELECT ` + jobColumns + ` FROM ` + schema + `.jobs WHERE id = $1`
	b.Run("pgxpool", func(b *testing.B) {
		for b.Loop() {
			if _, err := scanJob(pool.QueryRow(ctx, q, id)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPostgresTwoNodes runs two real services on one Postgres and one data directory: an API-only
// node (-workers 0) takes the submissions, the other renders them; every job ends COMPLETED once,
// its video downloads from both nodes, and each webhook reaches the receiver exactly once though
// both nodes' senders work through the outbox at the same moment.
func TestPostgresTwoNodes(t *testing.T) {
	t.Parallel()
	// The receiver answers slowly, so the other node's sender looks at the outbox while attempts
	// are under way.
	recv := newHookReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		time.Sleep(time.Second)
		w.WriteHeader(http.StatusOK)
	})
	dir, u := t.TempDir(), postgresTestURL(t)
	node := func(name string, workers int) *testEnv {
		cfg := hookConfig(dir, recv)
		cfg.Database, cfg.Workers = u, workers
		return newTestEnv(t, cfg, hookTrust(recv), func(s *server) { s.jobs.leases.node = name })
	}
	api, worker := node("node_api", 0), node("node_render", 2)
	var ids, keys []string
	for i := range 3 {
		key := api.newKey(t, fmt.Sprintf("two-nodes-%d", i))
		code, body := api.submit(t, key, fixture(t, "img.jpg"), fixture(t, "tone.wav"), map[string]string{"webhookUrl": recv.url()})
		if code != 201 {
			t.Fatalf("submit: %d %v", code, body)
		}
		ids, keys = append(ids, body["jobId"].(string)), append(keys, key)
	}
	for i, id := range ids {
		st := api.wait(t, keys[i], id, StatusCompleted)
		api.settle(t) // while the rendering node sends this job's webhook
		video := st["outputVideo"].(string)
		for _, base := range []string{api.hs.URL, worker.hs.URL} {
			b, _ := download(t, base+video[strings.Index(video, "/v/"):])
			checkVideo(t, b, fixture(t, "tone.wav"))
		}
	}
	var wg sync.WaitGroup
	for _, e := range []*testEnv{api, worker} {
		wg.Go(func() { e.settle(t) })
	}
	wg.Wait()
	sent := map[string]int{}
	for _, r := range recv.requests() {
		sent[r.Header.Get("webhook-id")]++
	}
	if len(sent) != len(ids) {
		t.Errorf("%d deliveries reached the receiver, want %d: %v", len(sent), len(ids), sent)
	}
	for id, n := range sent {
		if n != 1 {
			t.Errorf("delivery %s sent %d times", id, n)
		}
	}
}

// TestPostgresHealthUnreachable: a node that cannot reach its database answers /health 503 with
// the JSON error a load balancer and its operator read, not 200.
func TestPostgresHealthUnreachable(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.Database = postgresTestURL(t)
	e := newTestEnv(t, &cfg)
	e.srv.store.db.DB.Close() // as good as the server gone, to this node
	resp, b := e.do(t, "GET", "/health", "", nil)
	if msg := errorBody(t, resp, b, http.StatusServiceUnavailable); !strings.Contains(msg, "cannot reach its database") {
		t.Errorf("health with the database gone: %s", msg)
	}
}
