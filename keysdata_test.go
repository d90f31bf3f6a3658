package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestKeysDataDirFromUnit: with no -data and no VIDGEN_DATA, a keys command reads the data
// directory from the installed unit as systemd would give it to the service: Environment= (quoted
// or not, several to a line), a drop-in's, the EnvironmentFile's (which wins, optional with '-'),
// else StateDirectory under /var/lib; -data and VIDGEN_DATA come first.
func TestKeysDataDirFromUnit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	envFile := write("vidgen.env", "# settings\nVIDGEN_PUBLIC_URL=https://v.example.com\nVIDGEN_DATA=\"/srv/from env file\"\n")
	cases := []struct {
		name, unit, dropIn string
		flag, envData      string
		want               string
	}{
		{name: "stock", unit: "[Service]\nUser=vidgen\nEnvironment=VIDGEN_DATA=/var/lib/vidgen\nEnvironmentFile=-/nonexistent/vidgen.env\n", want: "/var/lib/vidgen"},
		{name: "quoted", unit: "[Service]\nEnvironment=\"VIDGEN_ADDR=127.0.0.1:8080\" \"VIDGEN_DATA=/srv/video data\"\n", want: "/srv/video data"},
		{name: "env file wins", unit: "[Service]\nEnvironment=VIDGEN_DATA=/var/lib/vidgen\nEnvironmentFile=" + envFile + "\n", want: "/srv/from env file"},
		{name: "drop-in", unit: "[Service]\nEnvironment=VIDGEN_DATA=/var/lib/vidgen\n", dropIn: "[Service]\nEnvironment=VIDGEN_DATA=/data/vidgen\n", want: "/data/vidgen"},
		{name: "state directory", unit: "[Unit]\nDescription=Environment=VIDGEN_DATA=/not/this\n[Service]\nStateDirectory=vg\n", want: "/var/lib/vg"},
		{name: "other section", unit: "[Install]\nEnvironment=VIDGEN_DATA=/not/this\n[Service]\nStateDirectory=vidgen\n", want: "/var/lib/vidgen"},
		{name: "flag first", unit: "[Service]\nEnvironment=VIDGEN_DATA=/var/lib/vidgen\n", flag: "/flag", want: "/flag"},
		{name: "variable first", unit: "[Service]\nEnvironment=VIDGEN_DATA=/var/lib/vidgen\n", envData: "/var", want: "/var"},
	}
	for i, c := range cases {
		unit := write(filepath.Join(c.name, "vidgen.service"), c.unit)
		if c.dropIn != "" {
			write(filepath.Join(c.name, "vidgen.service.d", "10-data.conf"), c.dropIn)
		}
		env := func(k string) string {
			return map[string]string{"VIDGEN_UNIT": unit, "VIDGEN_DATA": c.envData}[k]
		}
		got, from, err := keysDataDir(c.flag, env)
		if err != nil || got != c.want {
			t.Errorf("%d %s: %q (from %s, %v), want %q", i, c.name, got, from, err, c.want)
		}
	}
	// A unit that names no data directory, and one that is not there: the error says to pass -data.
	for _, unit := range []string{write("none/vidgen.service", "[Service]\nUser=vidgen\n"), filepath.Join(dir, "missing.service")} {
		_, _, err := keysDataDir("", func(k string) string { return map[string]string{"VIDGEN_UNIT": unit}[k] })
		if err == nil || !strings.Contains(err.Error(), "-data") {
			t.Errorf("unit %s: %v, want an error naming -data", unit, err)
		}
	}
}

// TestKeysNeverCreateDataDir: a keys command pointed at a directory that is not there, by -data or
// by the unit, fails with how to create it, and creates nothing (a mistyped path made a second,
// empty database that no service read).
func TestKeysNeverCreateDataDir(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "typo")
	unit := filepath.Join(t.TempDir(), "vidgen.service")
	if err := os.WriteFile(unit, []byte("[Service]\nEnvironment=VIDGEN_DATA="+missing+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"keys", "create", "-name", "app", "-data", missing}, nil},
		{[]string{"keys", "create", "-name", "app"}, map[string]string{"VIDGEN_UNIT": unit}},
	} {
		var out bytes.Buffer
		err := run(context.Background(), c.args, func(k string) string { return c.env[k] }, &out, &out)
		if err == nil || !strings.Contains(err.Error(), "no data directory at "+missing) || !strings.Contains(err.Error(), "install -d -o vidgen") {
			t.Errorf("%q: %v, want the missing directory and how to create it", c.args, err)
		}
		if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%q created %s", c.args, missing)
		}
	}
}

// TestKeysAsRootBecomeOwner: run as root on a data directory another account owns, a keys command
// becomes that account before it opens anything; on root's own directory it stays root.
func TestKeysAsRootBecomeOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the switch is only made by root")
	}
	mine, theirs := t.TempDir(), t.TempDir()
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	var became []account
	become := func(a account) error { became = append(became, a); return nil }
	for _, dir := range []string{mine, theirs} {
		if err := actAsOwnerOf(dir, []string{"vidgen", "keys", "list", "-data", dir}, become); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
	}
	if len(became) != 1 || became[0].uid != 65534 || became[0].gid != 65534 {
		t.Errorf("became %+v, want only uid 65534 gid 65534 (the owner of %s)", became, theirs)
	}
	// A switch that fails says how to run the command as the owner instead.
	err := actAsOwnerOf(theirs, []string{"vidgen", "keys", "create", "-name", "my app"}, func(account) error { return errors.New("EPERM") })
	if err == nil || !strings.Contains(err.Error(), "runuser -u "+accountOf(65534, 65534).name+" -- vidgen keys create -name 'my app'") {
		t.Errorf("a failed switch: %v", err)
	}
}

// TestFirstKeyMessageRunsAsPrinted: the first start's "make more with" command names the data
// directory, so that it works as printed from anywhere, with no unit installed (a laptop's quick
// start), now that keys commands no longer fall back to ./data.
func TestFirstKeyMessageRunsAsPrinted(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data dir")
	s, err := newServer(context.Background(), testConfig(dir), slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.store.Close()
	var msg bytes.Buffer
	if err := s.ensureDefaultKey(context.Background(), &msg); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("Make more with `vidgen (keys create -name NAME[^`]*)`").FindStringSubmatch(msg.String())
	if m == nil {
		t.Fatalf("no keys command in %q", msg.String())
	}
	cmd := strings.Replace(strings.Replace(m[1], "NAME", "second", 1), "'"+dir+"'", "\x00", 1)
	args := strings.Fields(cmd)
	for i, a := range args {
		if a == "\x00" {
			args[i] = dir
		}
	}
	var out bytes.Buffer
	noUnit := filepath.Join(t.TempDir(), "none.service") // a machine with no vidgen unit installed
	env := func(k string) string { return map[string]string{"VIDGEN_UNIT": noUnit}[k] }
	if err := run(context.Background(), args, env, &out, &out); err != nil {
		t.Errorf("vidgen %s, as printed: %v\n%s", m[1], err, out.String())
	}
}
