//go:build e2e

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serviceUser is the account the service runs as in these tests: nobody, whom every Linux has.
const serviceUser = 65534

// sharedBinary is the real binary copied where serviceUser can run it, and a directory under which
// serviceUser can reach what the test makes (t.TempDir's parents are root's alone).
func sharedBinary(t testing.TB) (bin, base string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test runs vidgen as root and as another account")
	}
	base = t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	bin = filepath.Join(base, "vidgen")
	b, err := os.ReadFile(vidgenBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, base
}

// serviceDataDir makes a data directory under base that serviceUser owns.
func serviceDataDir(t testing.TB, base string) string {
	t.Helper()
	data := filepath.Join(base, "var-lib-vidgen")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, serviceUser, serviceUser); err != nil {
		t.Fatal(err)
	}
	return data
}

// asService runs cmd as serviceUser.
func asService(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: serviceUser, Gid: serviceUser}}
	return cmd
}

// TestE2EKeysAsRootForServiceUser: root runs `vidgen keys create` with neither -data nor
// VIDGEN_DATA, on a server whose unit names the data directory, which the service's user owns. The
// key lands in that directory's database, every file the command made is the service user's, and
// the service user then opens the database (a root-owned one stopped the service from starting).
func TestE2EKeysAsRootForServiceUser(t *testing.T) {
	t.Parallel()
	bin, base := sharedBinary(t)
	data := serviceDataDir(t, base)
	unit := filepath.Join(base, "vidgen.service")
	if err := os.WriteFile(unit, []byte("[Service]\nUser=nobody\nEnvironment=VIDGEN_DATA="+data+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "keys", "create", "-name", "app", "-json")
	cmd.Env, cmd.Dir = []string{"PATH=/usr/bin:/bin", "VIDGEN_UNIT=" + unit}, base
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"apiKey"`) || !strings.Contains(string(out), "data directory "+data) {
		t.Fatalf("keys create as root: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(base, "data")); err == nil {
		t.Error("keys create made ./data in its working directory")
	}
	entries, err := os.ReadDir(data)
	if err != nil || len(entries) < 4 {
		t.Fatalf("data directory: %v %v", entries, err)
	}
	for _, e := range entries {
		fi, err := os.Stat(filepath.Join(data, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != serviceUser || st.Gid != serviceUser {
			t.Errorf("%s is %d:%d, want the service user's %d:%d", e.Name(), st.Uid, st.Gid, serviceUser, serviceUser)
		}
	}
	list := asService(exec.Command(bin, "keys", "list", "-data", data))
	if out, err := list.CombinedOutput(); err != nil || !strings.Contains(string(out), "app") {
		t.Errorf("keys list as the service user: %v\n%s", err, out)
	}
}

// TestE2EServeNamesOwnershipFix: a service whose database root owns (made by a keys command run as
// root by an older vidgen) stops at start-up naming the file, its owner and the command that gives
// the directory back.
func TestE2EServeNamesOwnershipFix(t *testing.T) {
	t.Parallel()
	bin, base := sharedBinary(t)
	data := filepath.Join(base, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := OpenStore(context.Background(), filepath.Join(data, "vidgen.db"), time.Now) // root's
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := os.Chown(data, serviceUser, serviceUser); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := asService(exec.CommandContext(ctx, bin, "serve", "-data", data, "-addr", "127.0.0.1:0", "-metrics-addr", "off"))
	out, err := cmd.CombinedOutput()
	svc := accountOf(serviceUser, serviceUser)
	for _, want := range []string{filepath.Join(data, "vidgen.db"), "belongs to root:root", "chown -R " + svc.name + ":" + svc.group + " " + data} {
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("serve as %s on a root-owned database: %v, want %q in:\n%s", svc.name, err, want, out)
		}
	}
}

// TestE2EKeysRefuseWithCommand: an account that can write neither as itself nor by switching (not
// root) gets the exact command to run instead: sudo, and runuser for a directory of another
// service account; nothing is created.
func TestE2EKeysRefuseWithCommand(t *testing.T) {
	t.Parallel()
	bin, base := sharedBinary(t)
	for _, c := range []struct {
		owner int
		want  string
	}{
		{0, "run `sudo vidgen keys list -data " + base + "/d0`"},
		{65533, "or `sudo runuser -u " + accountOf(65533, 65533).name + " -- vidgen keys list -data " + base + "/d65533`"},
	} {
		data := filepath.Join(base, "d"+strconv.Itoa(c.owner))
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(data, c.owner, c.owner); err != nil {
			t.Fatal(err)
		}
		unit := filepath.Join(base, "unit"+strconv.Itoa(c.owner)+".service")
		if err := os.WriteFile(unit, []byte("[Service]\nEnvironment=VIDGEN_DATA="+data+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := asService(exec.Command(bin, "keys", "list"))
		cmd.Env = []string{"VIDGEN_UNIT=" + unit}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("keys list as nobody on a directory of uid %d: %v, want %q in:\n%s", c.owner, err, c.want, out)
		}
		if entries, _ := os.ReadDir(data); len(entries) != 0 {
			t.Errorf("the refused command left %v in %s", entries, data)
		}
	}
}
