package main

import (
	"os"
	"path/filepath"
	"regexp"
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
