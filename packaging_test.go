package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"testing"
)

// TestHealthCommand: `vidgen health`, the container's HEALTHCHECK, succeeds against a serve whose
// /api/health is 200, fails naming the 503 when the data directory is gone, fails when nothing
// listens, and finds the address in VIDGEN_ADDR as serve does.
func TestHealthCommand(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	addr := e.hs.Listener.Addr().String()
	health := func(env map[string]string, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"health"}, args...), func(k string) string { return env[k] }, &out, &errOut)
		return out.String(), err
	}
	if out, err := health(nil, "-addr", addr); err != nil || !strings.Contains(out, `"status":"ok"`) {
		t.Errorf("health -addr %s: %v %q", addr, err, out)
	}
	if out, err := health(map[string]string{"VIDGEN_ADDR": addr}); err != nil || !strings.Contains(out, `"status":"ok"`) {
		t.Errorf("health with VIDGEN_ADDR=%s: %v %q", addr, err, out)
	}
	_, port, _ := net.SplitHostPort(addr)
	if _, err := health(nil, "-addr", ":"+port); err != nil {
		t.Errorf("health -addr :%s (every interface, asked on loopback): %v", port, err)
	}

	root := e.srv.dirs.root
	if err := os.Rename(e.srv.dirs.outputs(), root+"/outputs.moved"); err != nil {
		t.Fatal(err)
	}
	if _, err := health(nil, "-addr", addr); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("health with outputs/ gone: %v, want an error naming the 503", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	if _, err := health(nil, "-addr", closed); err == nil || !strings.Contains(err.Error(), closed) {
		t.Errorf("health with nothing on %s: %v, want an error naming it", closed, err)
	}
	if _, err := health(nil, "-addr", "127.0.0.1:0"); err == nil {
		t.Error("health -addr 127.0.0.1:0 succeeded: there is no port to ask")
	}
}

// TestVersionFlag: `vidgen -version` prints what `vidgen version` prints, the version first.
func TestVersionFlag(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"-version", "--version", "version"} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{arg, "-ffmpeg", "/nonexistent/ffmpeg"}, func(string) string { return "" }, &out, &errOut); err != nil {
			t.Errorf("vidgen %s: %v %s", arg, err, errOut.String())
		}
		if !strings.HasPrefix(out.String(), "vidgen "+version+" (") {
			t.Errorf("vidgen %s printed %q, want it to start with the version %q", arg, out.String(), version)
		}
	}
}
