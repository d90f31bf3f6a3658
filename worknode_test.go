package main

import (
	"io"
	"strings"
	"testing"
)

// TestRenderOnlyNodeFlags: -api=false makes a render-only node only with workers to render and the
// public URL its webhooks link to; each mistake is refused at start-up with the flag to fix.
func TestRenderOnlyNodeFlags(t *testing.T) {
	t.Parallel()
	noEnv := func(string) string { return "" }
	for _, c := range []struct {
		args []string
		want string // "" for accepted
	}{
		{[]string{"-api=false", "-public-url", "https://video.example.com"}, ""},
		{[]string{"-api=false"}, "-public-url"},
		{[]string{"-api=false", "-public-url", "https://video.example.com", "-workers", "0"}, "-workers 0"},
		{[]string{"-workers", "0"}, ""},
	} {
		cfg, err := parseServeFlags(c.args, noEnv, io.Discard)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: %v, want an error naming %s", c.args, err, c.want)
		case c.want == "" && cfg.API == (c.args[0] == "-api=false"):
			t.Errorf("%q: API %v", c.args, cfg.API)
		}
	}
	if cfg, err := parseServeFlags(nil, func(name string) string {
		return map[string]string{"VIDGEN_API": "false", "VIDGEN_PUBLIC_URL": "https://video.example.com"}[name]
	}, io.Discard); err != nil || cfg.API {
		t.Errorf("VIDGEN_API=false: API %v, %v", cfg.API, err)
	}
}
