package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestMigrateStore moves a single box's SQLite database, with jobs in every state, a queued and a
// delivered webhook with their attempts, into an empty Postgres with the real command: every key
// (working by its API key), job and delivery reads back the same, Postgres goes on from there (a
// new attempt, a new job), and a second run into the now full database, or a run beside a serve,
// is refused.
func TestMigrateStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := postgresTestURL(t)
	dirs := must(openDataDir(t.TempDir()))(t)
	src := must(OpenStore(ctx, dirs.db(), time.Now))(t)
	k, apiKey, err := createKey(ctx, src, "alice", rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := src.RotateSecret(ctx, k.ID, "whsec_new", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	old := storeKey(t, src, "old")
	if err := src.DeactivateKey(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Now()}
	l := testNode(t, src, "node_a", clk, &eventCounts{})
	var ids []string
	for i, end := range []Outcome{{Status: StatusCompleted, OutputToken: "tok1"}, {Status: StatusFailed, ErrorMessage: "bad image"}, {Status: StatusCancelled}, {}, {}} {
		key := storeKey(t, src, fmt.Sprint("k", i))
		j := storeJob(t, src, key, "https://example.com/h", time.Now().Add(time.Duration(i-10)*time.Second))
		ids = append(ids, j.ID)
		switch {
		case end.Status == StatusCancelled:
			must(l.cancel(ctx, key.ID, j.ID))(t)
		case end.Status != "":
			claimed := must(l.claim(ctx))(t)
			must(l.change(ctx, transition{JobID: claimed.ID, From: StatusProcessing, Next: toward(end), Owner: claimed.Lease.Owner}))(t)
		case i == 3:
			claimed := must(l.claim(ctx))(t) // PROCESSING under node_a's lease
			if err := src.RenewLease(ctx, claimed.ID, claimed.Lease.Owner, clk.Now().Add(time.Minute), 42); err != nil {
				t.Fatal(err)
			}
		} // the last stays PENDING
	}
	ds := must(src.Deliveries(ctx, ids[0]))(t)
	if err := src.RecordAttempt(ctx, ds[0].ID, "", Attempt{At: time.Now(), StatusCode: 200}, DeliveryDelivered, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := src.Redeliver(ctx, "key_x", ids[0], "msg_again"); err == nil {
		t.Fatal("redelivery by another key")
	}
	failedKey := must(src.JobByID(ctx, ids[1]))(t).KeyID
	if err := src.RecordAttempt(ctx, must(src.Deliveries(ctx, ids[1]))(t)[0].ID, "", Attempt{At: time.Now(), StatusCode: 503, Error: "HTTP 503"}, DeliveryPending, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// A PENDING job given its audio by URL, submitted with a traceparent and an Idempotency-Key.
	urlKey := storeKey(t, src, "urls")
	if _, err := src.ClaimIdempotencyKey(ctx, urlKey.ID, "retry-1", "node_a/c1", time.Now()); err != nil {
		t.Fatal(err)
	}
	byURL := Job{ID: must(newJobID(time.Now(), rand.Reader))(t), KeyID: urlKey.ID, ImageType: "png", AudioType: "wav",
		InputURLs: map[inputKind]string{inputAudio: "https://example.com/a.wav"}, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", CreatedAt: time.Now().UTC()}
	answer := storedResponse{Fingerprint: "f00d", JobID: byURL.ID, StatusCode: 201, Body: []byte(`{"id":"` + byURL.ID + `"}`)}
	if err := src.CreateJobIdempotent(ctx, byURL, "retry-1", "node_a/c1", answer); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, byURL.ID)
	before := snapshotStore(t, src, ids)
	src.Close()

	var out, errOut syncBuffer
	if err := run(ctx, []string{"migrate-store", "-from", dirs.db(), "-to", u}, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("migrate-store: %v %s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "6 jobs") || !strings.Contains(out.String(), "8 api_keys") ||
		!strings.Contains(out.String(), "1 idempotency_keys") || strings.Contains(out.String(), "password") {
		t.Errorf("report: %s", out.String())
	}
	dst := must(OpenPostgresStore(ctx, u, time.Now))(t)
	defer dst.Close()
	if after := snapshotStore(t, dst, ids); !reflect.DeepEqual(before, after) {
		t.Errorf("moved store differs:\nbefore %+v\nafter  %+v", before, after)
	}
	if got, err := dst.KeyByHash(ctx, hashKey(apiKey)); err != nil || got.ID != k.ID {
		t.Errorf("alice's API key on Postgres: %+v %v", got, err)
	}
	if got, err := dst.ClaimIdempotencyKey(ctx, urlKey.ID, "retry-1", "node_b/c1", time.Now()); err != nil || got == nil || !reflect.DeepEqual(*got, answer) {
		t.Errorf("a retry with the Idempotency-Key after the move: %+v %v, want %+v", got, err, answer)
	}
	pendingDelivery := must(dst.Deliveries(ctx, ids[1]))(t)[0]
	if err := dst.RecordAttempt(ctx, pendingDelivery.ID, "", Attempt{At: time.Now(), StatusCode: 200}, DeliveryDelivered, time.Time{}); err != nil {
		t.Errorf("a new attempt on Postgres: %v", err)
	}
	if err := dst.CreateJob(ctx, Job{ID: must(newJobID(time.Now(), rand.Reader))(t), KeyID: failedKey, ImageType: "png", AudioType: "wav", CreatedAt: time.Now()}); err != nil {
		t.Errorf("a new job for a key whose job ended: %v", err)
	}
	if err := run(ctx, []string{"migrate-store", "-from", dirs.db(), "-to", u}, func(string) string { return "" }, &out, &errOut); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("second migration into a full database: %v", err)
	}
	unlock := must(dirs.lock())(t) // a serve running on the directory
	defer unlock()
	if err := run(ctx, []string{"migrate-store", "-from", filepath.Join(dirs.root, "vidgen.db"), "-to", u}, func(string) string { return "" }, &out, &errOut); err == nil || !strings.Contains(err.Error(), "stop vidgen serve") {
		t.Errorf("migration beside a serve: %v", err)
	}
}

// storeSnapshot is what a store holds that migrate-store must carry over.
type storeSnapshot struct {
	Keys       []Key
	Jobs       []Job
	Deliveries [][]Delivery
}

func snapshotStore(t testing.TB, st *Store, jobIDs []string) storeSnapshot {
	t.Helper()
	ctx := context.Background()
	s := storeSnapshot{Keys: must(st.ListKeys(ctx))(t)}
	for _, id := range jobIDs {
		s.Jobs = append(s.Jobs, must(st.JobByID(ctx, id))(t))
		s.Deliveries = append(s.Deliveries, must(st.Deliveries(ctx, id))(t))
	}
	return s
}

// TestMigrateStoreCoversSchema: migrate-store copies every table and column the schema has, on each
// backend, so a migration that adds one without adding it to migratedTables fails here.
func TestMigrateStoreCoversSchema(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, open func(testing.TB) (*Store, Key)) {
		st, _ := open(t)
		q := `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
			WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`
		if st.db.d == postgresDialect {
			q = `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()`
		}
		got := map[string]map[string]bool{}
		rows := must(st.db.Query(q))(t)
		defer rows.Close()
		for rows.Next() {
			var table, column string
			if err := rows.Scan(&table, &column); err != nil {
				t.Fatal(err)
			}
			// Postgres generates rowid (GENERATED ALWAYS): it is numbered anew in copy order.
			if table == "schema_migrations" || table == "webhook_deliveries" && column == "rowid" {
				continue
			}
			if got[table] == nil {
				got[table] = map[string]bool{}
			}
			got[table][column] = true
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		want := map[string]map[string]bool{}
		for _, m := range migratedTables {
			want[m.name] = map[string]bool{}
			for _, c := range strings.Split(m.columns, ",") {
				want[m.name][strings.TrimSpace(c)] = true
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("the schema's tables and columns:\n%v\nmigratedTables:\n%v", got, want)
		}
	})
}

// TestMigrateStoreOlderFile: a SQLite file an older vidgen last wrote (schema 9, before leases) is
// brought up to date under the command's lock and moved, instead of failing on a missing column.
func TestMigrateStoreOlderFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := postgresTestURL(t)
	dirs := must(openDataDir(t.TempDir()))(t)
	old := must(openStore(ctx, dirs.db(), time.Now, migrations[:9], true))(t)
	storeJob(t, old, storeKey(t, old, "alice"), "", time.Now())
	old.Close()
	var out, errOut syncBuffer
	if err := run(ctx, []string{"migrate-store", "-from", dirs.db(), "-to", u}, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("migrate-store of a schema 9 file: %v %s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "1 jobs") {
		t.Errorf("report: %s", out.String())
	}
	if err := run(ctx, []string{"migrate-store", "-from", filepath.Join(dirs.root, "missing.db"), "-to", u}, func(string) string { return "" }, &out, &errOut); err == nil {
		t.Error("a -from file that does not exist was moved")
	}
}
