//go:build e2e

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// debianSuites maps the image's base to the Debian suite debootstrap makes it from.
var debianSuites = map[string]string{"debian:12-slim": "bookworm"}

// TestDockerImageSteps runs the Dockerfile where there is no Docker engine: the build stage's
// commands on this machine, then every instruction of the image stage, in order, in a scratch root
// that debootstrap makes of the image's Debian (a minimal base, as the slim image is): its RUNs in
// the root as its USER with its ENV, COPY --from the build stage, WORKDIR and VOLUME. Then, as
// `docker run` would with -p and -e: a key made with `vidgen keys create`, vidgen started from
// ENTRYPOINT and CMD as the image's user on a free loopback port, the HEALTHCHECK command passing,
// a job rendered by the image's ffmpeg, and a clean exit on STOPSIGNAL. Any instruction it does not
// know fails it, so a new one must be taught here. make check-docker runs it as root;
// VIDGEN_DEBOOTSTRAP_CACHE (a .tar path) keeps the debootstrapped base between runs.
func TestDockerImageSteps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot and debootstrap need root: make check-docker runs this as root")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Skip("debootstrap is not installed: make check-docker installs it")
	}
	stages := parseDockerfile(t, "Dockerfile")
	build, image := stages[0], stages[len(stages)-1]
	suite, ok := debianSuites[image.From]
	if !ok {
		t.Fatalf("the image is FROM %s: no Debian suite known for it here", image.From)
	}
	tmp := t.TempDir()
	root, out := filepath.Join(tmp, "root"), filepath.Join(tmp, "out")
	start := time.Now()
	debootstrap(t, suite, root)
	t.Logf("base %s: %s", suite, time.Since(start).Round(time.Second))
	if err := os.WriteFile(filepath.Join(root, "etc/resolv.conf"), readFile(t, "/etc/resolv.conf"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The build stage, here: its ARGs' defaults as variables, its /out under tmp.
	args := []string{"VERSION=check-docker"}
	for _, in := range build.all("RUN") {
		cmd := exec.Command("sh", "-c", strings.ReplaceAll(in.Args, " /out/", " "+out+"/"))
		cmd.Env = append(os.Environ(), args...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build stage, line %d: %s: %v\n%s", in.Line, in.Args, err, b)
		}
	}

	user, workdir := "root", "/"
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	var volumes []string
	var health, argv []string
	stop := syscall.SIGTERM
	for _, in := range image.Instrs {
		switch in.Cmd {
		case "RUN":
			step := time.Now()
			inRoot(t, root, user, workdir, env, 20*time.Minute, "/bin/sh", "-c", in.Args)
			t.Logf("line %d RUN: %s", in.Line, time.Since(step).Round(time.Second))
		case "COPY":
			f := strings.Fields(in.Args)
			if len(f) != 3 || f[0] != "--from="+build.Name || !strings.HasPrefix(f[1], "/out/") {
				t.Fatalf("line %d: COPY %s: only COPY --from=%s /out/FILE DEST is run here", in.Line, in.Args, build.Name)
			}
			copyFile(t, filepath.Join(out, strings.TrimPrefix(f[1], "/out/")), filepath.Join(root, f[2]))
			if err := os.Chmod(filepath.Join(root, f[2]), 0o755); err != nil {
				t.Fatal(err)
			}
		case "ENV":
			for k, v := range dockerEnv(t, dockerStage{Instrs: []dockerInstr{in}}) {
				env = append(env, k+"="+v)
			}
		case "USER":
			user = in.Args
		case "WORKDIR":
			workdir = in.Args
			if err := os.MkdirAll(filepath.Join(root, workdir), 0o755); err != nil {
				t.Fatal(err)
			}
		case "VOLUME":
			volumes = append(volumes, in.Args)
		case "HEALTHCHECK":
			_, cmd, _ := strings.Cut(in.Args, "CMD ")
			health = execForm(t, dockerInstr{Cmd: "CMD", Args: cmd, Line: in.Line})
		case "ENTRYPOINT":
			argv = append(execForm(t, in), argv...)
		case "CMD":
			argv = append(argv, execForm(t, in)...)
		case "STOPSIGNAL":
			if in.Args != "SIGTERM" {
				t.Fatalf("STOPSIGNAL %s: only SIGTERM is run here", in.Args)
			}
		case "EXPOSE":
		default:
			t.Fatalf("line %d: %s is not run here: teach TestDockerImageSteps", in.Line, in.Cmd)
		}
	}
	uid, gid := rootAccount(t, root, user)
	for _, v := range volumes {
		fi, err := os.Stat(filepath.Join(root, v))
		if err != nil || fi.Mode().Perm() != 0o700 || fi.Sys().(*syscall.Stat_t).Uid != uid {
			t.Fatalf("VOLUME %s: %v %v, want a 0700 folder of %s (uid %d)", v, fi.Mode(), err, user, uid)
		}
	}

	// docker run -p 127.0.0.1:PORT:8080 -e …: the port of this machine's choosing, no metrics listener.
	addr := "127.0.0.1:" + freeLoopbackPort(t)
	env = append(env, "VIDGEN_ADDR="+addr, "VIDGEN_METRICS_ADDR=off")
	var key cliKey
	if err := json.Unmarshal(inRoot(t, root, user, workdir, env, time.Minute, "vidgen", "keys", "create", "-name", "check", "-json"), &key); err != nil {
		t.Fatalf("keys create -json: %v", err)
	}
	p := runVidgen(t, rootCommand(context.Background(), root, uid, gid, workdir, env, argv...))
	eventually(t, time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		cmd := rootCommand(ctx, root, uid, gid, workdir, env, health...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("HEALTHCHECK %q: %v %s", health, err, b)
		}
		return nil
	})
	id := p.submit(t, key.APIKey)
	st := p.waitStatus(t, key.APIKey, id, StatusCompleted)
	if video, _ := download(t, st["outputVideo"].(string)); len(video) < 8 || string(video[4:8]) != "ftyp" {
		t.Errorf("the image's render is not an MP4 (%d bytes)", len(video))
	}
	if err := p.cmd.Process.Signal(stop); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("vidgen exited %d on %v", code, stop)
		}
	case <-time.After(60 * time.Second):
		t.Errorf("vidgen did not exit within 60 s of %v", stop)
	}
	t.Logf("image steps and a render: %s", time.Since(start).Round(time.Second))
}

// debootstrap makes a minimal Debian suite in root from this machine's package mirror (debootstrap's
// default), or unpacks the tar that VIDGEN_DEBOOTSTRAP_CACHE names, writing it the first time.
func debootstrap(t testing.TB, suite, root string) {
	t.Helper()
	cache := os.Getenv("VIDGEN_DEBOOTSTRAP_CACHE")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if cache != "" {
		if _, err := os.Stat(cache); err == nil {
			if b, err := exec.Command("tar", "-xpf", cache, "-C", root).CombinedOutput(); err != nil {
				t.Fatalf("unpack %s: %v\n%s", cache, err, b)
			}
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", suite, root).CombinedOutput(); err != nil {
		t.Fatalf("debootstrap %s: %v\n%s", suite, err, b)
	}
	if cache != "" {
		if b, err := exec.Command("tar", "-cpf", cache, "-C", root, ".").CombinedOutput(); err != nil {
			t.Fatalf("save %s: %v\n%s", cache, err, b)
		}
	}
}

// rootCommand runs argv in root as uid:gid from workdir with exactly env, as a container's process
// is; chroot and env exec, so the command's pid is the program's.
func rootCommand(ctx context.Context, root string, uid, gid uint32, workdir string, env []string, argv ...string) *exec.Cmd {
	args := append([]string{fmt.Sprintf("--userspec=%d:%d", uid, gid), root, "/usr/bin/env", "-i", "-C", workdir}, env...)
	return exec.CommandContext(ctx, "chroot", append(args, argv...)...)
}

// inRoot runs argv in root as user (of the root's passwd) and returns its standard output.
func inRoot(t testing.TB, root, user, workdir string, env []string, timeout time.Duration, argv ...string) []byte {
	t.Helper()
	uid, gid := rootAccount(t, root, user)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := rootCommand(ctx, root, uid, gid, workdir, env, argv...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("in the image as %s: %q: %v\n%s%s", user, argv, err, b, tail(stderr.String(), 4000))
	}
	return b
}

// rootAccount is the uid and gid of user in root's /etc/passwd.
func rootAccount(t testing.TB, root, user string) (uint32, uint32) {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) > 3 && fields[0] == user {
			var uid, gid uint32
			fmt.Sscan(fields[2], &uid)
			fmt.Sscan(fields[3], &gid)
			return uid, gid
		}
	}
	t.Fatalf("no user %s in the image", user)
	return 0, 0
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
