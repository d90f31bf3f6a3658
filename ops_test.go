package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vidgen/internal/ffmpeg"
)

// cliOutput runs vidgen with args and no environment, returning stdout, stderr and the error.
func cliOutput(t testing.TB, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestHelpListsCommands: -h, help and a mistyped command show the commands before any flag, and
// `serve -h` lists serve's flags with their variables.
func TestHelpListsCommands(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		out, _, err := cliOutput(t, args...)
		if err != nil {
			t.Errorf("%v: %v", args, err)
		}
		cmds := strings.Index(out, "vidgen keys create")
		flags := strings.Index(out, "-public-url")
		if cmds < 0 || flags < 0 || cmds > flags {
			t.Errorf("%v: commands at %d, flags at %d:\n%s", args, cmds, flags, out)
		}
		for _, c := range []string{"serve", "keys list", "keys deactivate", "keys rotate-secret", "version", "help", "VIDGEN_PUBLIC_URL"} {
			if !strings.Contains(out, c) {
				t.Errorf("%v: no %q in\n%s", args, c, out)
			}
		}
	}
	_, errOut, err := cliOutput(t, "bogus")
	if err == nil || !strings.Contains(err.Error(), `"bogus"`) || !strings.Contains(errOut, "vidgen keys create") {
		t.Errorf("unknown command: %v\n%s", err, errOut)
	}
	_, errOut, err = cliOutput(t, "serve", "-h")
	if err != nil || !strings.HasPrefix(errOut, "Usage: vidgen serve") || strings.Contains(errOut, "panic") {
		t.Errorf("serve -h: %v\n%s", err, errOut)
	}
	for _, v := range []string{"VIDGEN_ADDR", "VIDGEN_LOG_FORMAT", "VIDGEN_METRICS_ADDR", "VIDGEN_WEBHOOK_PORTS", "VIDGEN_SHUTDOWN_GRACE"} {
		if !strings.Contains(errOut, v) {
			t.Errorf("serve -h lacks %s", v)
		}
	}
}

// TestToolsChecked: serve stops at once, naming the tool and the fix, when -ffmpeg or -ffprobe is
// missing or names another program, rather than start and fail every job.
func TestToolsChecked(t *testing.T) {
	t.Parallel()
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1) on PATH")
	}
	hung := filepath.Join(t.TempDir(), "ffmpeg")
	if err := os.WriteFile(hung, []byte("#!/bin/sh\nexec sleep 3600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-ffmpeg", trueBin}, "cannot run " + trueBin + " as ffmpeg"},
		{[]string{"-ffmpeg", "ffprobe"}, `cannot run ffprobe as ffmpeg (its -version printed "ffprobe version`},
		{[]string{"-ffprobe", "ffmpeg"}, "cannot run ffmpeg as ffprobe"},
		{[]string{"-ffprobe", t.TempDir() + "/missing"}, "missing as ffprobe"},
		// It never answers: serve stops after ffmpeg.VersionTimeout.
		{[]string{"-ffmpeg", hung}, "-version did not answer within " + ffmpeg.VersionTimeout.String()},
	}
	for _, c := range cases {
		dir := t.TempDir() + "/data"
		args := append([]string{"serve", "-data", dir, "-addr", "127.0.0.1:0", "-metrics-addr", "off"}, c.args...)
		// A serve that started anyway is stopped, and fails the test, rather than hang it.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := run(ctx, args, func(string) string { return "" }, io.Discard, io.Discard)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "apt-get install -y ffmpeg") {
			t.Errorf("%v: %v, want an error with %q and the fix", c.args, err, c.want)
		}
		if _, statErr := os.Stat(dir); statErr == nil {
			t.Errorf("%v: the data directory was created", c.args)
		}
	}
}

// TestInvalidSettingsNamed: a bad value, from a flag or a variable, stops start-up with an error
// naming the setting, before anything is created.
func TestInvalidSettingsNamed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-log-format", "xml"}, nil, "-log-format (VIDGEN_LOG_FORMAT)"},
		{nil, map[string]string{"VIDGEN_LOG_FORMAT": "yaml"}, "-log-format (VIDGEN_LOG_FORMAT)"},
		{[]string{"-public-url", "ftp://video.example.com"}, nil, "-public-url (VIDGEN_PUBLIC_URL)"},
		{nil, map[string]string{"VIDGEN_PUBLIC_URL": "video.example.com"}, "-public-url (VIDGEN_PUBLIC_URL)"},
		{[]string{"-public-url", "https://v.example.com/?x=1"}, nil, "-public-url"},
		{[]string{"-addr", "8080"}, nil, "-addr (VIDGEN_ADDR)"},
		{[]string{"-addr", ":http-alt"}, nil, "-addr (VIDGEN_ADDR)"},
		{[]string{"-metrics-addr", "localhost"}, nil, "-metrics-addr (VIDGEN_METRICS_ADDR)"},
		{[]string{"-addr", "127.0.0.1:9464"}, nil, `-metrics-addr (VIDGEN_METRICS_ADDR): "127.0.0.1:9464" is -addr's too`},
		{[]string{"-webhook-ports", "443,abc"}, nil, "-webhook-ports (VIDGEN_WEBHOOK_PORTS)"},
		{[]string{"-webhook-ports", "70000"}, nil, "-webhook-ports"},
		{[]string{"-max-duration", "-1s"}, nil, "-max-duration (VIDGEN_MAX_DURATION)"},
		{[]string{"-retention", "-1h"}, nil, "-retention (VIDGEN_RETENTION)"},
		{[]string{"-min-free", "-5"}, nil, "-min-free (VIDGEN_MIN_FREE)"},
		{nil, map[string]string{"VIDGEN_WORKERS": "many"}, `VIDGEN_WORKERS (-workers): "many" is not a whole number`},
		{[]string{"-workers", "-1"}, nil, "-workers (VIDGEN_WORKERS)"},
		{[]string{"-lease", "1s"}, nil, "-lease (VIDGEN_LEASE): must be at least 3s"},
		{[]string{"-database", "mysql://u:secret@h/db"}, nil, "-database (VIDGEN_DATABASE_URL): not a postgres:// URL"},
		{nil, map[string]string{"VIDGEN_RATE_API": "-1"}, "-rate-api (VIDGEN_RATE_API)"},
		{[]string{"-rate-download", "-1"}, nil, "-rate-download (VIDGEN_RATE_DOWNLOAD)"},
		{nil, map[string]string{"VIDGEN_TRUST_PROXY": "nonsense"}, "-trust-proxy (VIDGEN_TRUST_PROXY)"},
		{[]string{"-shutdown-grace", "5"}, nil, `-shutdown-grace (VIDGEN_SHUTDOWN_GRACE): "5" is not a duration like 20s`},
		{nil, map[string]string{"VIDGEN_RETENTION": "30d"}, `VIDGEN_RETENTION (-retention): "30d" is not a duration like 20s`},
		{[]string{"-min-free", "1GB"}, nil, `-min-free (VIDGEN_MIN_FREE): "1GB" is not a whole number`},
		{nil, map[string]string{"VIDGEN_WEBHOOK_ALLOW_PRIVATE": "yes"}, `VIDGEN_WEBHOOK_ALLOW_PRIVATE (-webhook-allow-private): "yes" is not true or false`},
		{[]string{"-webhook-allow-private=maybe"}, nil, `-webhook-allow-private (VIDGEN_WEBHOOK_ALLOW_PRIVATE): "maybe" is not true or false`},
		{[]string{"-bogus"}, nil, "flag provided but not defined: -bogus; run 'vidgen serve -h' for every flag"},
	}
	for _, c := range cases {
		dir := t.TempDir() + "/data"
		env := func(k string) string {
			if k == "VIDGEN_DATA" {
				return dir
			}
			return c.env[k]
		}
		err := run(context.Background(), append([]string{"serve"}, c.args...), env, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: %v, want an error naming %s", c.args, c.env, err, c.want)
		}
		if _, statErr := os.Stat(dir); statErr == nil {
			t.Errorf("%v %v: the data directory was created before the settings were checked", c.args, c.env)
		}
	}
	// A mistake is the one line of the error returned: nothing printed before it, no list of flags.
	for _, args := range [][]string{{"-workers", "x"}, {"-bogus"}} {
		var stderr strings.Builder
		run(context.Background(), append([]string{"serve", "-data", t.TempDir()}, args...), func(string) string { return "" }, io.Discard, &stderr)
		if stderr.Len() > 0 {
			t.Errorf("serve %v printed:\n%s", args, stderr.String())
		}
	}
	// A boolean flag alone still means true.
	if cfg, err := parseServeFlags([]string{"-webhook-allow-private"}, func(string) string { return "" }, io.Discard); err != nil || !cfg.WebhookAllowPrivate {
		t.Errorf("-webhook-allow-private alone: %v %v", err, cfg.WebhookAllowPrivate)
	}
	// Good values pass.
	cfg, err := parseServeFlags([]string{"-log-format", "json", "-metrics-addr", "127.0.0.1:9464", "-public-url", "https://v.example.com/base/", "-webhook-ports", "443, 8443"},
		func(string) string { return "" }, io.Discard)
	if err != nil || cfg.LogFormat != "json" || cfg.MetricsAddr != "127.0.0.1:9464" || cfg.PublicURL != "https://v.example.com/base" || len(cfg.WebhookPorts) != 2 {
		t.Errorf("good values: %v %+v", err, cfg)
	}
}

// TestLogFormatAuto: auto is JSON only when standard error is the journal stream systemd names in
// JOURNAL_STREAM; a terminal, a pipe, a file or a stale JOURNAL_STREAM get text.
func TestLogFormatAuto(t *testing.T) {
	f, err := os.Create(t.TempDir() + "/stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	journal := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	for _, c := range []struct {
		stream string
		w      io.Writer
		want   string
	}{
		{journal, f, "json"},
		{"", f, "text"},
		{fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), f, "text"}, // inherited from a parent whose stderr was the journal
		{journal, &bytes.Buffer{}, "text"},
	} {
		env := func(k string) string {
			if k == "JOURNAL_STREAM" {
				return c.stream
			}
			return ""
		}
		cfg, err := parseServeFlags(nil, env, c.w)
		if err != nil || cfg.LogFormat != c.want {
			t.Errorf("JOURNAL_STREAM=%q, stderr %T: %q %v, want %s", c.stream, c.w, cfg.LogFormat, err, c.want)
		}
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

func TestDerivePublicURL(t *testing.T) {
	for _, c := range []struct{ addr, listened, want string }{
		{":9000", "[::]:9000", "http://localhost:9000"},
		{"0.0.0.0:9000", "0.0.0.0:9000", "http://localhost:9000"},
		{"[::]:9000", "[::]:9000", "http://localhost:9000"},
		{"127.0.0.1:9000", "127.0.0.1:9000", "http://127.0.0.1:9000"},
		{"127.0.0.1:0", "127.0.0.1:41234", "http://127.0.0.1:41234"},
		{"[::1]:8080", "[::1]:8080", "http://[::1]:8080"},
		{"video.lan:8080", "192.168.1.5:8080", "http://video.lan:8080"},
	} {
		if got := derivePublicURL(c.addr, fakeAddr(c.listened)); got != c.want {
			t.Errorf("derivePublicURL(%q, %q) = %q, want %q", c.addr, c.listened, got, c.want)
		}
	}
}

// TestServeDerivesPublicURL runs serve without -public-url: the start-up line says where the links
// point and why, and a finished job's links work as they are.
func TestServeDerivesPublicURL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan error, 1)
	env := func(k string) string {
		if k == "VIDGEN_DATA" {
			return dir
		}
		return ""
	}
	go func() {
		done <- run(ctx, []string{"serve", "-addr", "127.0.0.1:0", "-min-free", "0", "-log-format", "json", "-metrics-addr", "127.0.0.1:0"}, env, &stderr, &stderr)
	}()
	var key, addr, metricsAddr, metricsAt string
	eventually(t, 20*time.Second, func() error {
		for _, line := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(line, `"msg":"metrics listening"`) {
				metricsAddr = jsonField(t, line, "addr")
			}
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "X-API-Key:"); ok {
				key = strings.TrimSpace(v)
			}
			if strings.Contains(line, `"msg":"vidgen listening"`) {
				addr = jsonField(t, line, "addr")
				if got, want := jsonField(t, line, "public_url"), "http://"+addr; got != want {
					t.Errorf("public_url %q, want %q", got, want)
				}
				if !strings.Contains(jsonField(t, line, "public_url_from"), "-addr") {
					t.Errorf("the start-up line does not say the links come from -addr: %s", line)
				}
				metricsAt = jsonField(t, line, "metrics")
			}
		}
		if key == "" || addr == "" || metricsAddr == "" {
			return fmt.Errorf("no key, JSON start-up line or metrics line:\n%s", stderr.String())
		}
		return nil
	})
	if metricsAt != metricsAddr || !strings.HasPrefix(metricsAt, "127.0.0.1:") {
		t.Errorf("the start-up line says metrics=%q; they listen on %q", metricsAt, metricsAddr)
	}
	base := "http://" + addr
	body, ctype := multipartBody(t, map[string]string{"image": fixture(t, "img.jpg"), "audio": fixture(t, "tone.m4a")}, nil)
	resp, b := mustRequest(t, "POST", base+"/api/jobs", key, body, "Content-Type", ctype)
	sub := decodeJSON(t, resp, b)
	id, _ := sub["jobId"].(string)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("submit: %d %s", resp.StatusCode, b)
	}
	var st map[string]any
	eventually(t, renderDeadline(t), func() error {
		resp, b := mustRequest(t, "GET", base+"/api/status/"+id, key, nil)
		if st = decodeJSON(t, resp, b); st["status"] != string(StatusCompleted) && st["status"] != string(StatusFailed) {
			return fmt.Errorf("job %s did not end: %v", id, st)
		}
		return nil
	})
	video, _ := st["outputVideo"].(string)
	if !strings.HasPrefix(video, "http://"+addr+"/v/") {
		t.Fatalf("outputVideo %q is not under the listener http://%s: %v", video, addr, st)
	}
	if b, resp := download(t, video); resp.Header.Get("Content-Type") != "video/mp4" || len(b) == 0 {
		t.Errorf("video: %s, %d bytes", resp.Header.Get("Content-Type"), len(b))
	}
	share, _ := st["outputShareLink"].(string)
	if b, _ := download(t, share); !bytes.Contains(b, []byte(video)) {
		t.Errorf("the share page does not play %s", video)
	}
	// /metrics is on the metrics listener alone.
	if resp, b := mustRequest(t, "GET", "http://"+metricsAddr+"/metrics", "", nil); resp.StatusCode != 200 || metricValue(string(b), `vidgen_jobs{state="COMPLETED"}`) != "1" {
		t.Errorf("GET /metrics on -metrics-addr: %d\n%s", resp.StatusCode, b)
	}
	if resp, _ := mustRequest(t, "GET", base+"/metrics", "", nil); resp.StatusCode != 404 {
		t.Errorf("GET /metrics on -addr: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// TestLocalWebhookAnyPort: -webhook-allow-private alone lets a developer's receiver on any port get
// its webhook; without it, the refusal of a port names the setting that allows it.
func TestLocalWebhookAnyPort(t *testing.T) {
	t.Parallel()
	recv := newHookReceiver(t, nil)
	cfg := testConfig(t.TempDir())
	cfg.WebhookAllowPrivate = true // and WebhookPorts stays 443 alone
	e := newTestEnv(t, &cfg, hookTrust(recv))
	id, _ := e.finishWithHook(t, e.key, recv.url())
	reqs := recv.waitFor(t, 1)
	if !bytes.Contains(reqs[0].Body, []byte(id)) {
		t.Errorf("webhook body %s does not name job %s", reqs[0].Body, id)
	}

	strict := newTestEnv(t, nil)
	code, body := strict.submit(t, strict.key, fixture(t, "img.jpg"), fixture(t, "tone.wav"), map[string]string{"webhookUrl": "https://hooks.example.com:3000/hook"})
	msg, _ := body["error"].(string)
	if code != http.StatusBadRequest || !strings.Contains(msg, "port 443") || !strings.Contains(msg, "-webhook-ports") || !strings.Contains(msg, "-webhook-allow-private") {
		t.Errorf("port 3000 without -webhook-allow-private: %d %q", code, msg)
	}
}

// jsonField is the string field name of one JSON log line.
func jsonField(t testing.TB, line, name string) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(line), &v); err != nil {
		t.Fatalf("log line %q is not JSON: %v", line, err)
	}
	s, _ := v[name].(string)
	return s
}

// TestProxyBodyLimits: the reverse proxies in deploy/ pass every submission vidgen itself accepts,
// so that vidgen, not the proxy's plain-text page, answers one that is too large.
func TestProxyBodyLimits(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		file string
		re   string
		unit int64
	}{
		{"deploy/nginx.conf", `client_max_body_size (\d+)m;`, 1 << 20}, // nginx's m is MiB
		{"deploy/Caddyfile", `max_size (\d+)MiB`, 1 << 20},
	} {
		m := regexp.MustCompile(c.re).FindSubmatch(readFile(t, c.file))
		if m == nil {
			t.Errorf("%s: no %s", c.file, c.re)
			continue
		}
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		if n*c.unit < maxBodySize {
			t.Errorf("%s lets %d bytes through; vidgen accepts %d", c.file, n*c.unit, maxBodySize)
		}
	}
}
