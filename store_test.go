package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"vidgen/internal/media"
)

// testStore opens a store on a fresh SQLite file with every migration, and one account.
func testStore(t testing.TB) (*Store, Key) {
	t.Helper()
	st := openSQLiteTestStore(t)
	return st, storeKey(t, st, "alice")
}

// storeKey creates an account named name.
func storeKey(t testing.TB, st *Store, name string) Key {
	t.Helper()
	k, _, err := createKey(context.Background(), st, name, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// storeJob creates a PENDING job for key k, with webhook URL hook ("" for none), created at.
func storeJob(t testing.TB, st *Store, k Key, hook string, at time.Time) Job {
	t.Helper()
	id, err := newJobID(at, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	j := Job{ID: id, KeyID: k.ID, ImageType: media.PNG, AudioType: media.WAV, AudioCodec: "pcm_s16le//2/44100",
		AudioDuration: 2.5, WebhookURL: hook, CreatedAt: at.UTC()}
	if err := st.CreateJob(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	return j
}

// deliveryCount is how many webhook deliveries job id has.
func deliveryCount(t testing.TB, st *Store, id string) int {
	t.Helper()
	var n int
	if err := st.db.QueryRow(`SELECT count(*) FROM webhook_deliveries WHERE job_id = ?`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTransition walks jobs through the state changes the lifecycle makes and checks the stored
// result: retries counted and capped, the outbox row written exactly when a webhook is owed.
func TestTransition(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		type step struct {
			from JobStatus
			o    Outcome
		}
		requeue := step{StatusProcessing, Outcome{Status: StatusPending, CountRetry: true}}
		shutdown := step{StatusProcessing, Outcome{Status: StatusPending}}
		cases := []struct {
			name        string
			hook        string
			steps       []step
			wantStatus  JobStatus
			wantRetries int
			wantMsg     string // a substring of the stored errorMessage
			deliveries  int
		}{
			{"completed with webhook", "https://example.com/h", []step{{StatusProcessing, Outcome{Status: StatusCompleted, OutputToken: "t1"}}}, StatusCompleted, 0, "", 1},
			{"completed without webhook", "", []step{{StatusProcessing, Outcome{Status: StatusCompleted, OutputToken: "t2"}}}, StatusCompleted, 0, "", 0},
			{"failed with webhook", "https://example.com/h", []step{{StatusProcessing, Outcome{Status: StatusFailed, ErrorMessage: "bad image"}}}, StatusFailed, 0, "bad image", 1},
			{"cancelled with webhook", "https://example.com/h", []step{{StatusPending, Outcome{Status: StatusCancelled}}}, StatusCancelled, 0, "", 0},
			{"one crash, then completed", "", []step{requeue, {StatusProcessing, Outcome{Status: StatusCompleted, OutputToken: "t3"}}}, StatusCompleted, 1, "", 0},
			{"shutdowns count no retry", "", []step{shutdown, shutdown, shutdown, shutdown}, StatusPending, 0, "", 0},
			{"retry cap", "https://example.com/h", []step{requeue, requeue, requeue}, StatusFailed, MaxAttempts - 1, "failed 3 times", 1},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				st, k := open(t)
				j := storeJob(t, st, k, c.hook, time.Now())
				var got Job
				for i, s := range c.steps {
					if s.from == StatusProcessing {
						if _, err := st.ClaimJob(ctx, claiming()); err != nil {
							t.Fatalf("step %d: claim: %v", i, err)
						}
					}
					var err error
					got, err = st.Transition(ctx, transition{JobID: j.ID, From: s.from, Next: toward(s.o), DeliveryID: fmt.Sprintf("msg_%d", i)})
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				}
				if got.Status != c.wantStatus || got.Retries != c.wantRetries || !strings.Contains(got.ErrorMessage, c.wantMsg) {
					t.Errorf("got %s retries %d %q, want %s retries %d %q", got.Status, got.Retries, got.ErrorMessage, c.wantStatus, c.wantRetries, c.wantMsg)
				}
				if stored, err := st.JobByID(ctx, j.ID); err != nil || stored.Status != got.Status || stored.Retries != got.Retries {
					t.Errorf("stored %+v (%v), returned %+v", stored, err, got)
				}
				if got.Status.Final() == got.FinishedAt.IsZero() {
					t.Errorf("status %s with finishedAt %v", got.Status, got.FinishedAt)
				}
				if n := deliveryCount(t, st, j.ID); n != c.deliveries {
					t.Errorf("%d deliveries, want %d", n, c.deliveries)
				}
			})
		}
	})
}

func TestTransitionRefusals(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, alice := open(t)
		bob := storeKey(t, st, "bob")
		j := storeJob(t, st, alice, "", time.Now())
		cancel := transition{JobID: j.ID, KeyID: bob.ID, From: StatusPending, Next: toward(Outcome{Status: StatusCancelled})}
		if _, err := st.Transition(ctx, cancel); !errors.Is(err, ErrJobNotFound) {
			t.Errorf("cancel by another key: %v, want ErrJobNotFound", err)
		}
		if _, err := st.ClaimJob(ctx, claiming()); err != nil {
			t.Fatal(err)
		}
		cancel.KeyID = alice.ID
		if _, err := st.Transition(ctx, cancel); !errors.Is(err, ErrNotCancelable) {
			t.Errorf("cancel while PROCESSING: %v, want ErrNotCancelable", err)
		}
		if _, err := st.Transition(ctx, transition{JobID: "c000000000000000000000000", From: StatusProcessing}); !errors.Is(err, ErrJobNotFound) {
			t.Errorf("unknown job: %v", err)
		}
		if _, err := st.ClaimJob(ctx, claiming()); !errors.Is(err, ErrNotFound) {
			t.Errorf("claim with nothing pending: %v, want ErrNotFound", err)
		}
	})
}

// TestClaimOrder: jobs are taken oldest first by creation, so a job put back after a crash goes
// before jobs submitted after it, whatever their rowids.
func TestClaimOrder(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, _ := open(t)
		base := time.Now().Add(-time.Hour)
		var want []string
		for i := range 4 {
			k := storeKey(t, st, fmt.Sprintf("k%d", i))
			want = append(want, storeJob(t, st, k, "", base.Add(time.Duration(i)*time.Second)).ID)
		}
		first, err := st.ClaimJob(ctx, claiming())
		if err != nil || first.ID != want[0] {
			t.Fatalf("first claim %s %v, want %s", first.ID, err, want[0])
		}
		if _, err := st.Transition(ctx, transition{JobID: first.ID, From: StatusProcessing, Next: toward(Outcome{Status: StatusPending, CountRetry: true})}); err != nil {
			t.Fatal(err)
		}
		for i, id := range want {
			j, err := st.ClaimJob(ctx, claiming())
			if err != nil || j.ID != id {
				t.Errorf("claim %d: %s %v, want %s", i, j.ID, err, id)
			}
		}
	})
}

// TestOneActiveJobIndex: many submissions for one key at the same instant, straight at the store:
// the partial unique index lets exactly one in.
func TestOneActiveJobIndex(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		st, k := open(t)
		var wg sync.WaitGroup
		var mu sync.Mutex
		results := map[string]int{}
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, _ := newJobID(time.Now(), rand.Reader)
				err := st.CreateJob(context.Background(), Job{ID: id, KeyID: k.ID, ImageType: media.PNG, AudioType: media.WAV, CreatedAt: time.Now()})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					results["created"]++
				case errors.Is(err, ErrActiveJob):
					results["conflict"]++
				default:
					results[err.Error()]++
				}
			}()
		}
		wg.Wait()
		if results["created"] != 1 || results["conflict"] != 19 {
			t.Errorf("results %v, want 1 created and 19 conflicts", results)
		}
		other := storeKey(t, st, "other")
		if err := st.DeactivateKey(context.Background(), other.ID); err != nil {
			t.Fatal(err)
		}
		id, _ := newJobID(time.Now(), rand.Reader)
		if err := st.CreateJob(context.Background(), Job{ID: id, KeyID: other.ID, CreatedAt: time.Now()}); !errors.Is(err, ErrBadKey) {
			t.Errorf("job for a deactivated key: %v, want ErrBadKey", err)
		}
	})
}

// TestListJobsKeyset pages through a key's jobs with and without a status filter: every job once,
// newest first, none of another key's.
func TestListJobsKeyset(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, alice := open(t)
		bob := storeKey(t, st, "bob")
		cycle := []JobStatus{StatusCompleted, StatusFailed}
		ids := insertStoreJobs(t, st, alice.ID, 23, time.Now().Add(-time.Hour), cycle...)
		insertStoreJobs(t, st, bob.ID, 5, time.Now().Add(-time.Hour), StatusCompleted)
		for _, status := range []JobStatus{"", StatusCompleted, StatusFailed, StatusCancelled} {
			var want []string
			for i := len(ids) - 1; i >= 0; i-- {
				if status == "" || cycle[i%len(cycle)] == status {
					want = append(want, ids[i])
				}
			}
			var got []string
			f := JobFilter{Status: status, Limit: 5}
			for range 10 {
				page, err := st.ListJobs(ctx, alice.ID, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, j := range page {
					got = append(got, j.ID)
					if status != "" && j.Status != status {
						t.Errorf("filter %s returned a %s job", status, j.Status)
					}
				}
				if len(page) < f.Limit {
					break
				}
				f.Before = page[len(page)-1].ID
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("status %q: %d jobs %v, want %d %v", status, len(got), got, len(want), want)
			}
		}
	})
}

// insertStoreJobs writes n ended jobs for keyID straight into the table, a millisecond apart from
// start, cycling through statuses, and returns their ids oldest first. It is how tests and the
// listing benchmark make a long history fast.
func insertStoreJobs(t testing.TB, st *Store, keyID string, n int, start time.Time, statuses ...JobStatus) []string {
	t.Helper()
	ids := make([]string, 0, n)
	err := st.tx(context.Background(), func(tx txn) error {
		stmt, err := tx.PrepareContext(context.Background(), `INSERT INTO jobs (id, key_id, status, image_type, audio_type, audio_codec, audio_duration,
			retries, created_at, updated_at, finished_at) VALUES (?, ?, ?, 'png', 'wav', 'pcm', 1, 0, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range n {
			at := start.Add(time.Duration(i) * time.Millisecond)
			id, err := newJobID(at, rand.Reader)
			if err != nil {
				return err
			}
			if _, err := stmt.Exec(id, keyID, statuses[i%len(statuses)], ms(at), ms(at), ms(at)); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestQueryPlans reads SQLite's plan for every query a request or the renderer runs often: each
// must search an index, never scan a table, so its cost is that of its answer, not of the history.
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	st, _ := testStore(t)
	for _, c := range frequentQueries() {
		rows, err := st.db.Query(`EXPLAIN QUERY PLAN `+c.q, c.args...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		all := strings.Join(plan, "; ")
		for _, d := range plan {
			if strings.HasPrefix(d, "SCAN") && !strings.Contains(d, "USING") {
				t.Errorf("%s scans a table: %s", c.name, all)
			}
		}
		if strings.Contains(all, "USE TEMP B-TREE") {
			t.Errorf("%s sorts its whole match: %s", c.name, all)
		}
	}
}

// TestJobOptionsStored creates jobs with and without options and reads back what was given: the
// defaults stored as ” (as every job from before options), anything else as it was chosen.
func TestJobOptionsStored(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, _ := open(t)
		for i, o := range []Options{defaultOptions,
			{Size: "portrait", Background: "#102030", Waveform: "bars", WaveformColor: "#FF00AA", Captions: true}} {
			k := storeKey(t, st, fmt.Sprintf("options-%d", i))
			id, _ := newJobID(time.Now(), rand.Reader)
			j := Job{ID: id, KeyID: k.ID, ImageType: media.PNG, AudioType: media.WAV, AudioCodec: "pcm", AudioDuration: 1, Options: o, CreatedAt: time.Now()}
			if err := st.CreateJob(ctx, j); err != nil {
				t.Fatal(err)
			}
			var stored string
			if err := st.db.QueryRow(`SELECT options FROM jobs WHERE id = ?`, id).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if o.equal(defaultOptions) != (stored == "") {
				t.Errorf("options %+v stored as %q", o, stored)
			}
			if got, err := st.JobByID(ctx, id); err != nil || !got.Options.equal(o) {
				t.Errorf("created with %+v, read %+v (%v)", o, got.Options, err)
			}
		}
	})
}

// TestMigrateFromFirstRelease opens a database as the first release left it (its schema, absolute
// input paths, a stored webhook body) and checks that every migration applies and keeps the data.
func TestMigrateFromFirstRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vidgen.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(string(readFile(t, "testdata/schema-v1.sql"))); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO api_keys (id, name, key_hash, prefix, webhook_secret, created_at) VALUES ('key_1', 'alice', x'01', 'vg_1', 'whsec_x', %d)`, now),
		fmt.Sprintf(`INSERT INTO jobs (id, key_id, status, image_path, image_type, audio_path, audio_type, audio_codec, audio_duration,
			webhook_url, retries, created_at, updated_at) VALUES ('c0000000000000000000000p1', 'key_1', 'PENDING', '/old/data/inputs/c0000000000000000000000p1.image',
			'png', '/old/data/inputs/c0000000000000000000000p1.audio', 'wav', 'pcm_s16le//2/44100', 2.5, 'https://example.com/h', 0, %d, %d)`, now, now),
		fmt.Sprintf(`INSERT INTO jobs (id, key_id, status, image_path, image_type, audio_path, audio_type, audio_codec, audio_duration,
			webhook_url, output_token, retries, created_at, updated_at, finished_at) VALUES ('c0000000000000000000000d1', 'key_1', 'COMPLETED', '/x.image',
			'png', '/x.audio', 'wav', 'pcm', 1, 'https://example.com/h', 'tok', 1, %d, %d, %d)`, now-1, now, now),
		fmt.Sprintf(`INSERT INTO webhook_deliveries (id, job_id, url, payload, state, attempts, next_attempt_at, created_at, updated_at)
			VALUES ('msg_1', 'c0000000000000000000000d1', 'https://example.com/h', '{}', 'pending', 1, %d, %d, %d)`, now, now, now),
	} {
		if _, err := old.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	st, err := OpenStore(ctx, path, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var applied int
	if err := st.db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != len(migrations) {
		t.Errorf("%d migrations recorded, want %d", applied, len(migrations))
	}
	pending, err := st.JobByID(ctx, "c0000000000000000000000p1")
	if err != nil || pending.Status != StatusPending || pending.WebhookURL != "https://example.com/h" || pending.AudioDuration != 2.5 {
		t.Errorf("pending job after migration: %+v %v", pending, err)
	}
	if !pending.Options.equal(defaultOptions) {
		t.Errorf("a job from before options renders with %+v, want the defaults", pending.Options)
	}
	done, err := st.JobByToken(ctx, "tok")
	if err != nil || done.Status != StatusCompleted || done.Retries != 1 {
		t.Errorf("completed job after migration: %+v %v", done, err)
	}
	ds, err := st.DueDeliveries(ctx, time.Now().Add(time.Minute), 10)
	if err != nil || len(ds) != 1 || ds[0].ID != "msg_1" || ds[0].Attempts != 1 {
		t.Errorf("deliveries after migration: %+v %v", ds, err)
	}
	for _, col := range []string{"jobs.image_path", "jobs.audio_path", "webhook_deliveries.payload"} {
		table, name, _ := strings.Cut(col, ".")
		var n int
		if err := st.db.QueryRow(`SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, table, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s is still there", col)
		}
	}
	// A second open applies nothing again.
	st.Close()
	st2, err := OpenStore(ctx, path, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	st2.Close()
}

// BenchmarkListFiltered lists pages of one key's jobs filtered by status, with 300,000 jobs in the
// key's history (a few thousand of the wanted status), and reports the time per page.
func BenchmarkListFiltered(b *testing.B) {
	st, k := testStore(b)
	const n = 300_000
	// One PENDING job at most per key; FAILED is rare next to COMPLETED.
	insertStoreJobs(b, st, k.ID, n, time.Now().Add(-n*time.Millisecond), append(repeatStatus(StatusCompleted, 99), StatusFailed)...)
	ctx := context.Background()
	list := func(status JobStatus) func(b *testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				if _, err := st.ListJobs(ctx, k.ID, JobFilter{Status: status, Limit: 21}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	for _, status := range []JobStatus{"", StatusFailed, StatusPending} {
		b.Run(fmt.Sprintf("status=%s", status), list(status))
	}
	// The baseline, in the same run: the same filtered page without the (key_id, status, id) index,
	// as the first release listed it.
	if _, err := st.db.Exec(`DROP INDEX jobs_by_key_status`); err != nil {
		b.Fatal(err)
	}
	b.Run("status=FAILED/without-index", list(StatusFailed))
	b.Run("status=PENDING/without-index", list(StatusPending))
}

func repeatStatus(s JobStatus, n int) []JobStatus {
	out := make([]JobStatus, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// TestPruneDeliveries: the webhook history of jobs that finished before the cutoff goes, with its
// attempts; a delivery still pending and newer jobs' history stay.
func TestPruneDeliveries(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		ctx := context.Background()
		st, k := open(t)
		end := func(j Job, id string) {
			t.Helper()
			if _, err := st.ClaimJob(ctx, claiming()); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Transition(ctx, transition{JobID: j.ID, From: StatusProcessing, Next: toward(Outcome{Status: StatusCompleted, OutputToken: id}), DeliveryID: id}); err != nil {
				t.Fatal(err)
			}
		}
		old := storeJob(t, st, k, "https://example.com/h", time.Now())
		end(old, "msg_old")
		if err := st.RecordAttempt(ctx, "msg_old", "", Attempt{At: time.Now(), StatusCode: 200}, DeliveryDelivered, time.Time{}); err != nil {
			t.Fatal(err)
		}
		stillPending := storeJob(t, st, storeKey(t, st, "b"), "https://example.com/h", time.Now())
		end(stillPending, "msg_pending")
		cutoff := time.Now().Add(time.Second)
		recent := storeJob(t, st, storeKey(t, st, "c"), "https://example.com/h", time.Now())
		st.now = func() time.Time { return cutoff.Add(time.Hour) }
		end(recent, "msg_recent")
		st.RecordAttempt(ctx, "msg_recent", "", Attempt{At: time.Now(), StatusCode: 200}, DeliveryDelivered, time.Time{})

		n, err := st.PruneDeliveries(ctx, cutoff)
		if err != nil || n != 1 {
			t.Fatalf("pruned %d (%v), want 1", n, err)
		}
		for id, want := range map[string]int{old.ID: 0, stillPending.ID: 1, recent.ID: 1} {
			if got := deliveryCount(t, st, id); got != want {
				t.Errorf("job %s: %d deliveries left, want %d", id, got, want)
			}
		}
		var attempts int
		if err := st.db.QueryRow(`SELECT count(*) FROM webhook_attempts WHERE delivery_id = 'msg_old'`).Scan(&attempts); err != nil {
			t.Fatal(err)
		}
		if attempts != 0 {
			t.Errorf("%d attempts of the pruned delivery left", attempts)
		}
	})
}

// TestPoolBound: however many requests read the database at once, the store holds at most
// maxOpenConns connections, so a flood of public video requests from many addresses cannot spend
// the process's descriptors on vidgen.db (each connection is one on the database and one on its
// WAL; the shared memory file is one for all).
func TestPoolBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vidgen.db")
	st, err := OpenStore(ctx, path, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const readers = 4 * maxOpenConns
	release := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows, err := st.db.QueryContext(ctx, `SELECT id FROM api_keys`)
			if err != nil {
				errs <- err
				return
			}
			defer rows.Close()
			<-release // every reader holds its connection until the count is taken
		}()
	}
	// The pool is full once the readers beyond its size are waiting for a connection; a pool
	// without a bound never makes one wait, and its descriptors are counted after a while.
	for give := time.Now().Add(10 * time.Second); time.Now().Before(give); {
		if s := st.db.Stats(); s.InUse >= maxOpenConns && s.WaitCount > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	open := databaseDescriptors(t, path)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s := st.db.Stats(); s.MaxOpenConnections != maxOpenConns {
		t.Errorf("pool limit %d, want %d", s.MaxOpenConnections, maxOpenConns)
	}
	if open > 2*maxOpenConns+1 {
		t.Errorf("%d descriptors on the database with %d readers; the pool allows %d connections", open, readers, maxOpenConns)
	}
}

// databaseDescriptors counts this process's descriptors on the database at path and its WAL and
// shared memory files.
func databaseDescriptors(t testing.TB, path string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	n := 0
	for _, e := range entries {
		if l, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); strings.HasPrefix(l, path) {
			n++
		}
	}
	return n
}

// frequentQuery is a query a request or the renderer runs often, with arguments for it.
type frequentQuery struct {
	name, q string
	args    []any
}

// frequentQueries are the queries TestQueryPlans and TestPostgresQueryPlans check.
func frequentQueries() []frequentQuery {
	now := ms(time.Now())
	return []frequentQuery{
		{"list", `SELECT ` + jobColumns + ` FROM jobs WHERE key_id = ? ORDER BY id DESC LIMIT ?`, []any{"k", 21}},
		{"list page 2", `SELECT ` + jobColumns + ` FROM jobs WHERE key_id = ? AND id < ? ORDER BY id DESC LIMIT ?`, []any{"k", "c1", 21}},
		{"list by status", `SELECT ` + jobColumns + ` FROM jobs WHERE key_id = ? AND status = ? ORDER BY id DESC LIMIT ?`, []any{"k", "FAILED", 21}},
		{"list by status page 2", `SELECT ` + jobColumns + ` FROM jobs WHERE key_id = ? AND status = ? AND id < ? ORDER BY id DESC LIMIT ?`, []any{"k", "FAILED", "c1", 21}},
		{"status poll", `SELECT ` + jobColumns + ` FROM jobs WHERE id = ? AND key_id = ?`, []any{"c1", "k"}},
		{"active job", `SELECT count(*) FROM jobs WHERE key_id = ? AND status IN ('PENDING','PROCESSING')`, []any{"k"}},
		{"video by token", `SELECT ` + jobColumns + ` FROM jobs WHERE output_token = ?`, []any{"t"}},
		{"claim", `SELECT id FROM jobs WHERE status = 'PENDING' ORDER BY created_at, id LIMIT 1`, nil},
		{"lapsed lease", `SELECT id FROM jobs WHERE status = 'PROCESSING' AND lease_until < ? ORDER BY lease_until LIMIT 1`, []any{now}},
		{"key", `SELECT ` + keyColumns + ` FROM api_keys WHERE key_hash = ?`, []any{[]byte("h")}},
		{"due deliveries", `SELECT ` + deliveryColumns + ` FROM webhook_deliveries d JOIN jobs j ON j.id = d.job_id
			WHERE d.state = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at LIMIT ?`, []any{now, 64}},
		{"queued delivery", `SELECT id FROM webhook_deliveries WHERE job_id = ? AND state = 'pending' LIMIT 1`, []any{"c1"}},
	}
}
