//go:build e2e

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EKeysUnreadableEnvFile: the service's user runs `vidgen keys list` with neither -data nor
// VIDGEN_DATA, on a unit that names the data directory in Environment= and has an optional
// EnvironmentFile= that root alone may read (0600, as deploy.md installs it): the list comes from
// the unit's directory.
func TestE2EKeysUnreadableEnvFile(t *testing.T) {
	t.Parallel()
	bin, base := sharedBinary(t)
	data := serviceDataDir(t, base)
	envFile := filepath.Join(base, "vidgen.env")
	if err := os.WriteFile(envFile, []byte("VIDGEN_S3_SECRET_ACCESS_KEY=root-only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(base, "vidgen.service")
	if err := os.WriteFile(unit, []byte("[Service]\nUser=nobody\nEnvironmentFile=-"+envFile+"\nEnvironment=VIDGEN_DATA="+data+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	create := asService(exec.Command(bin, "keys", "create", "-name", "app", "-data", data))
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("keys create: %v\n%s", err, out)
	}
	list := asService(exec.Command(bin, "keys", "list"))
	list.Env, list.Dir = []string{"PATH=/usr/bin:/bin", "VIDGEN_UNIT=" + unit}, base
	if out, err := list.CombinedOutput(); err != nil || !strings.Contains(string(out), "app") {
		t.Errorf("keys list as the service user, the env file root's: %v\n%s", err, out)
	}
}
