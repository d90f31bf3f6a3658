package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// tcpForwarder is a proxy on this machine that forwards raw TCP to target and adds no header, as
// HAProxy in TCP mode, an SSH tunnel or socat do; it returns its address.
func tcpForwarder(t testing.TB, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String()
}

// TestMetricsNeverOnPublicListener: the public listener answers /metrics with the 404 of an unknown
// route, to a loopback client with no forwarding header too, which is what a TCP proxy on the same
// machine looks like; the metrics listener serves them.
func TestMetricsNeverOnPublicListener(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	// One connection a request: the forwarder's goroutines end with the test's requests.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, b, err := request(client, "GET", e.hs.URL+"/no-such-route", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	unknown := errorBody(t, resp, b, http.StatusNotFound)

	proxied := "http://" + tcpForwarder(t, e.hs.Listener.Addr().String())
	headers := [][]string{nil, {"X-Forwarded-For", "198.51.100.7"}, {"Forwarded", "for=198.51.100.7"}, {"X-Real-Ip", "198.51.100.7"}}
	for _, base := range []string{e.hs.URL, proxied} {
		for _, h := range headers {
			for _, method := range []string{"GET", "HEAD"} {
				resp, b, err := request(client, method, base+"/metrics", "", nil, h...)
				if err != nil {
					t.Fatalf("%s %s/metrics %v: %v", method, base, h, err)
				}
				if resp.StatusCode != http.StatusNotFound || strings.Contains(string(b), "vidgen_") {
					t.Errorf("%s %s/metrics %v: %d %.200s, want the 404 of an unknown route", method, base, h, resp.StatusCode, b)
					continue
				}
				if method == "GET" {
					if msg := errorBody(t, resp, b, http.StatusNotFound); msg != unknown {
						t.Errorf("%s/metrics %v: %q, want %q as for any unknown route", base, h, msg, unknown)
					}
				}
			}
		}
	}

	metrics := metricsListener(t, e)
	if text := scrape(t, metrics); !strings.Contains(text, "vidgen_build_info{") {
		t.Errorf("the metrics listener's /metrics has no vidgen_build_info:\n%.500s", text)
	}
	if resp, b := mustRequest(t, "GET", metrics+"/api/jobs", e.key, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the metrics listener serves /api/jobs: %d %.200s", resp.StatusCode, b)
	}
}

// TestMetricsAddrSetting: the metrics listen on loopback port 9464 unless -metrics-addr (or its
// variable) says otherwise, and off (or an empty flag) serves none. An empty variable is unset, as
// for every VIDGEN_* variable, so it keeps the default.
func TestMetricsAddrSetting(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		env  map[string]string
		want string // "" for no metrics listener
	}{
		{nil, nil, "127.0.0.1:9464"},
		{[]string{"-metrics-addr", "off"}, nil, ""},
		{[]string{"-metrics-addr", ""}, nil, ""},
		{[]string{"-metrics-addr="}, nil, ""},
		{nil, map[string]string{"VIDGEN_METRICS_ADDR": "off"}, ""},
		{nil, map[string]string{"VIDGEN_METRICS_ADDR": ""}, "127.0.0.1:9464"},
		{nil, map[string]string{"VIDGEN_METRICS_ADDR": "[::1]:9500"}, "[::1]:9500"},
		{[]string{"-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0"}, nil, "127.0.0.1:0"},
		{[]string{"-metrics-addr", "off"}, map[string]string{"VIDGEN_METRICS_ADDR": "127.0.0.1:9500"}, ""},
		{[]string{"-metrics-addr", "127.0.0.1:9500"}, map[string]string{"VIDGEN_METRICS_ADDR": "off"}, "127.0.0.1:9500"},
	}
	for _, c := range cases {
		cfg, err := parseServeFlags(c.args, func(k string) string { return c.env[k] }, io.Discard)
		if err != nil || cfg.MetricsAddr != c.want {
			t.Errorf("%q %v: metrics at %q (%v), want %q", c.args, c.env, cfg.MetricsAddr, err, c.want)
		}
	}
	// -h says so.
	var help strings.Builder
	printUsage(&help)
	_, usage, _ := strings.Cut(help.String(), "-metrics-addr string\n")
	usage, _, _ = strings.Cut(usage, "\n")
	if !strings.Contains(usage, "off for no metrics") || !strings.HasSuffix(usage, `(default "127.0.0.1:9464")`) {
		t.Errorf("-h does not give -metrics-addr's default and off:\n%s", help.String())
	}
}

// TestMetricsAddrInUse: a serve whose metrics address is taken, by a second vidgen on the same
// machine say, stops at start-up with one line that names the setting and the fix.
func TestMetricsAddrInUse(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// A serve that started anyway is stopped, and fails the test, rather than hang it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"serve", "-data", t.TempDir(), "-addr", "127.0.0.1:0", "-min-free", "0", "-metrics-addr", taken.Addr().String()}
	var stderr syncBuffer
	err = run(ctx, args, func(string) string { return "" }, io.Discard, &stderr)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("serve with its metrics address taken: %v, want a start-up error\n%s", err, stderr.String())
	}
	msg := err.Error()
	for _, want := range []string{"-metrics-addr (VIDGEN_METRICS_ADDR)", taken.Addr().String() + " is in use", "another vidgen", "or off for no metrics"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error %q is more than one line", msg)
	}
	if strings.Contains(stderr.String(), "vidgen listening") {
		t.Errorf("serve said it was listening before it failed:\n%s", stderr.String())
	}
}
