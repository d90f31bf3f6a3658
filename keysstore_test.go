package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// staleKeysDir is a data directory whose vidgen.db holds a key named stale, as migrate-store
// leaves it (the serve moved to Postgres, the file stays), and a unit at the returned path that
// serves it with database (a Postgres URL) in its environment.
func staleKeysDir(t testing.TB, database string) (dir, unit string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "data")
	_, st, err := openData(context.Background(), dir, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = createKey(context.Background(), st, "stale", rand.Reader, time.Now())
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	unit = filepath.Join(t.TempDir(), "vidgen.service")
	text := "[Service]\nEnvironment=VIDGEN_DATA=" + dir + "\nEnvironment=\"" + envName("database") + "=" + database + "\"\n"
	if err := os.WriteFile(unit, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, unit
}

// TestKeysPostgresFromUnit: on a node whose unit gives serve a Postgres database, `vidgen keys`
// without -database works on that database, as the service does, and not on the vidgen.db that
// migrate-store left in the data directory; and a serve on Postgres makes no vidgen.db of its own.
func TestKeysPostgresFromUnit(t *testing.T) {
	t.Parallel()
	pg := postgresTestURL(t)
	ctx := context.Background()
	dir, unit := staleKeysDir(t, pg)
	os.Remove(filepath.Join(dir, "vidgen.db")) // the stale file goes; the serve below must not make one
	cfg := testConfig(dir)
	cfg.Database = pg
	s, err := newServer(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.store.Close()
	if _, err := os.Stat(filepath.Join(dir, "vidgen.db")); !os.IsNotExist(err) {
		t.Errorf("serve on Postgres made %s (%v): a keys command would take it for the service's", filepath.Join(dir, "vidgen.db"), err)
	}
	if _, _, err := createKey(ctx, s.store, "shared", rand.Reader, time.Now()); err != nil {
		t.Fatal(err)
	}
	dir, unit = staleKeysDir(t, pg) // a stale vidgen.db again, beside the same database
	env := func(k string) string { return map[string]string{"VIDGEN_UNIT": unit}[k] }
	var out, errOut bytes.Buffer
	if err := runKeys(ctx, []string{"list"}, &out, &errOut, env, rand.Reader, time.Now, switchToOwner); err != nil {
		t.Fatalf("keys list: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "shared") || strings.Contains(out.String(), "stale") {
		t.Errorf("keys list on the unit's node listed\n%s\nwant the Postgres key shared, not the stale SQLite key", out.String())
	}
	if !strings.Contains(errOut.String(), unit) {
		t.Errorf("keys list did not say the database came from %s: %q", unit, errOut.String())
	}
}

// TestKeysRefuseDataDirOfPostgresService: a keys command pointed by -data at the directory of a
// service on Postgres says so, and writes nothing there: when the unit names the database, and
// when the directory shows a serve ran (its node id) yet holds no vidgen.db.
func TestKeysRefuseDataDirOfPostgresService(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir, unit := staleKeysDir(t, "postgres://vidgen@127.0.0.1:1/vidgen")
	env := func(k string) string { return map[string]string{"VIDGEN_UNIT": unit}[k] }
	for _, sub := range [][]string{{"list"}, {"create", "-name", "new"}} {
		var out, errOut bytes.Buffer
		err := runKeys(ctx, append(sub, "-data", dir), &out, &errOut, env, rand.Reader, time.Now, switchToOwner)
		if err == nil || !strings.Contains(err.Error(), "Postgres") || !strings.Contains(err.Error(), "-database") {
			t.Errorf("keys %s -data %s of a Postgres service: %v\n%s, want an error saying it uses Postgres", sub[0], dir, err, out.String())
		}
	}
	// No unit here; a serve on Postgres ran in the directory.
	noUnit := func(k string) string {
		return map[string]string{"VIDGEN_UNIT": filepath.Join(t.TempDir(), "none.service")}[k]
	}
	pgDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(pgDir, "node-id"), []byte("node_abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err := runKeys(ctx, []string{"create", "-name", "new", "-data", pgDir}, &out, &errOut, noUnit, rand.Reader, time.Now, switchToOwner)
	if err == nil || !strings.Contains(err.Error(), "Postgres") {
		t.Errorf("keys create in a Postgres serve's directory: %v, want an error saying it uses Postgres", err)
	}
	if _, err := os.Stat(filepath.Join(pgDir, "vidgen.db")); !os.IsNotExist(err) {
		t.Errorf("keys create made %s (%v)", filepath.Join(pgDir, "vidgen.db"), err)
	}
}

// TestKeysDataWithUnreadableUnit: a keys command given -data works on that directory even when the
// installed unit cannot be read (here its EnvironmentFile is a directory): the unit is consulted
// only to tell a Postgres service's directory, and a unit it cannot read tells nothing.
func TestKeysDataWithUnreadableUnit(t *testing.T) {
	t.Parallel()
	dir, _ := staleKeysDir(t, "")
	unit := filepath.Join(t.TempDir(), "vidgen.service")
	text := "[Service]\nEnvironment=VIDGEN_DATA=" + dir + "\nEnvironmentFile=" + t.TempDir() + "\n"
	if err := os.WriteFile(unit, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(k string) string { return map[string]string{"VIDGEN_UNIT": unit}[k] }
	var out, errOut bytes.Buffer
	if err := runKeys(context.Background(), []string{"list", "-data", dir}, &out, &errOut, env, rand.Reader, time.Now, switchToOwner); err != nil {
		t.Fatalf("keys list -data %s beside an unreadable unit: %v\n%s", dir, err, errOut.String())
	}
	if !strings.Contains(out.String(), "stale") {
		t.Errorf("keys list -data %s listed\n%s\nwant the directory's key stale", dir, out.String())
	}
}

// TestPostgresFirstKeyMessage: on Postgres the first start's "make more with" command names the
// database by its variable, never the URL (whose password the journal would keep), and runs as
// printed with that variable set.
func TestPostgresFirstKeyMessage(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	cfg := testConfig(dir)
	cfg.Database = postgresTestURL(t)
	s, err := newServer(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.store.Close()
	var msg bytes.Buffer
	if err := s.ensureDefaultKey(context.Background(), &msg); err != nil {
		t.Fatal(err)
	}
	want := `vidgen keys create -name NAME -database "$VIDGEN_DATABASE_URL"`
	if !strings.Contains(msg.String(), "Make more with `"+want+"`") || strings.Contains(msg.String(), cfg.Database) {
		t.Fatalf("first key message: %q", msg.String())
	}
	env := func(k string) string { return map[string]string{"VIDGEN_DATABASE_URL": cfg.Database}[k] }
	var out bytes.Buffer
	args := []string{"keys", "create", "-name", "second", "-database", env("VIDGEN_DATABASE_URL")}
	if err := run(context.Background(), args, env, &out, &out); err != nil {
		t.Errorf("%s, as printed: %v\n%s", want, err, out.String())
	}
}
