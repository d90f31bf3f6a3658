package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docPages is the documentation a user reads: the README and the pages of docs/.
func docPages(t testing.TB) []string {
	t.Helper()
	pages, err := filepath.Glob("docs/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("docs/*.md: %v, %d pages", err, len(pages))
	}
	return append([]string{"README.md"}, pages...)
}

// shBlocks returns the lines of the ```sh blocks of a Markdown text, in order.
func shBlocks(text string) []string {
	var lines []string
	in := false
	for _, l := range strings.Split(text, "\n") {
		switch {
		case l == "```sh":
			in = true
		case l == "```":
			in = false
		case in:
			lines = append(lines, l)
		}
	}
	return lines
}

// shCommands splits a shell line into the programs it runs: its comment dropped, split on
// &&, ||, | and ;, outside quotes. An assignment alone (NAME=value) runs nothing and is left out.
func shCommands(line string) []string {
	var cmds []string
	var cur strings.Builder
	var quote rune
	flush := func() {
		if f := strings.Fields(cur.String()); len(f) > 0 && !regexp.MustCompile(`^[A-Za-z_]+=`).MatchString(f[0]) {
			cmds = append(cmds, f[0])
		}
		cur.Reset()
	}
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'':
			quote = r
		case r == '#' && (i == 0 || rs[i-1] == ' '):
			flush()
			return cmds
		case r == '&' || r == '|' || r == ';':
			flush()
			if i+1 < len(rs) && rs[i+1] == r {
				i++
			}
			continue
		}
		cur.WriteRune(r)
	}
	flush()
	return cmds
}

func TestShCommands(t *testing.T) {
	t.Parallel()
	for line, want := range map[string][]string{
		"install -d /etc/vidgen && install -m 0600 a b":   {"install", "install"},
		`curl -s http://x/api/health   # {"status":"ok"}`: {"curl"},
		`sqlite3 db ".backup /b/db" | tee x; rm -f y`:     {"sqlite3", "tee", "rm"},
		`DOMAIN=video.example.com    # your domain`:       nil,
		"# a comment":                       nil,
		`sed "s/a#b/c/g" x > y || editor y`: {"sed", "editor"},
	} {
		if got := shCommands(line); !slices.Equal(got, want) {
			t.Errorf("shCommands(%q) = %q, want %q", line, got, want)
		}
	}
}

// TestDeployCommandsChecked: deploy/check.sh (make check-deploy) runs the ```sh blocks of
// docs/deploy.md, and every program they name is one the script runs as it is (real_tools) or
// stands in for with a check of its own (a function of deploy_commands): a command added to the
// page that the script cannot run fails here, not on a user's server.
func TestDeployCommandsChecked(t *testing.T) {
	t.Parallel()
	script := string(readFile(t, "deploy/check.sh"))
	if !strings.Contains(script, "awk '/^```sh$/ { on = 1; next } /^```$/ { on = 0 } on' docs/deploy.md") ||
		!regexp.MustCompile(`(?m)^  deploy_commands$`).MatchString(script) {
		t.Fatal("deploy/check.sh does not run the sh blocks of docs/deploy.md")
	}
	covered := map[string]string{}
	m := regexp.MustCompile(`(?m)^real_tools="([^"]*)"$`).FindStringSubmatch(script)
	if m == nil {
		t.Fatal(`deploy/check.sh has no real_tools="…" line`)
	}
	for _, tool := range strings.Fields(m[1]) {
		covered[tool] = "run as it is"
	}
	for _, f := range regexp.MustCompile(`(?m)^  ([a-z][a-z-]*)\(\) \{`).FindAllStringSubmatch(script, -1) {
		covered[f[1]] = "stood in for"
	}
	lines := shBlocks(string(readFile(t, "docs/deploy.md")))
	if len(lines) < 20 {
		t.Fatalf("docs/deploy.md has %d lines of sh, want the install, HTTPS, backup and upgrade steps", len(lines))
	}
	seen := map[string]bool{}
	for _, l := range lines {
		for _, c := range shCommands(l) {
			seen[c] = true
			if covered[c] == "" {
				t.Errorf("docs/deploy.md runs %q (%q), which deploy/check.sh neither runs (real_tools) nor stands in for", c, l)
			}
		}
	}
	for _, c := range []string{"apt-get", "install", "useradd", "vidgen", "systemctl", "curl", "journalctl", "sqlite3", "cp"} {
		if !seen[c] {
			t.Errorf("docs/deploy.md no longer runs %s: is its step gone?", c)
		}
	}
	// The page's commands are for root: a fresh Debian server has no sudo (its prose says how a
	// sudo user runs them).
	for _, c := range []string{"sudo", "su"} {
		if seen[c] {
			t.Errorf("docs/deploy.md runs %s in a command meant for root", c)
		}
	}
}

// TestDocsLinks: every relative link and picture of the README and of docs/ names a file that is
// there, and every #anchor a heading of its page (as GitHub makes them).
func TestDocsLinks(t *testing.T) {
	t.Parallel()
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	anchors := map[string]map[string]bool{}
	anchorsOf := func(page string) map[string]bool {
		if a, ok := anchors[page]; ok {
			return a
		}
		a := map[string]bool{}
		in := false
		for _, l := range strings.Split(string(readFile(t, page)), "\n") {
			if strings.HasPrefix(l, "```") {
				in = !in
			}
			if in || !strings.HasPrefix(l, "#") {
				continue
			}
			h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(l, "#")))
			h = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(h, "")
			a[strings.ReplaceAll(h, " ", "-")] = true
		}
		anchors[page] = a
		return a
	}
	for _, page := range docPages(t) {
		for _, m := range link.FindAllStringSubmatch(string(readFile(t, page)), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join(filepath.Dir(page), file)
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s links to %s: %v", page, target, err)
					continue
				}
			}
			if anchor != "" && !anchorsOf(path)[anchor] {
				t.Errorf("%s links to %s: %s has no heading #%s", page, target, path, anchor)
			}
		}
	}
}

// TestReadmeShort: the README starts with the two commands a new user runs, stays about two
// screens long, and links the deployment guide before its quick start.
func TestReadmeShort(t *testing.T) {
	t.Parallel()
	readme := string(readFile(t, "README.md"))
	lines := strings.Split(readme, "\n")
	if len(lines) > 150 {
		t.Errorf("README.md has %d lines, want at most 150 (the rest belongs in docs/)", len(lines))
	}
	if len(lines) < 5 || lines[2] != "```sh" || !strings.HasPrefix(lines[3], "make run ") || !strings.HasPrefix(lines[4], "make test ") {
		t.Errorf("README.md does not start with make run and make test: %q", lines[:min(5, len(lines))])
	}
	deploy, quick := strings.Index(readme, "](docs/deploy.md)"), strings.Index(readme, "## Quick start")
	if deploy < 0 || quick < 0 || deploy > quick {
		t.Errorf("README.md links docs/deploy.md at %d, its quick start at %d: want the link first", deploy, quick)
	}
}
