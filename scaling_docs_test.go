package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestScalingCommandsChecked: deploy/check-scaling.sh (make test-backends) runs every ```sh block of
// docs/scaling.md against a real PostgreSQL, bucket and nginx, and every program those blocks name
// is one the script runs as it is (real_tools) or stands in for with a function of its own; the
// page has no other fenced block but the one nginx site the script loads. A command added to the
// page that no check runs fails here.
func TestScalingCommandsChecked(t *testing.T) {
	t.Parallel()
	script := string(readFile(t, "deploy/check-scaling.sh"))
	if !strings.Contains(script, "awk '/^## / { n++ } /^```sh$/ { on = 1; next } /^```$/ { on = 0 } on { print n \"\\t\" $0 }' docs/scaling.md") ||
		!strings.Contains(script, `source "$tmp/s$section.sh"`) ||
		!strings.Contains(script, "awk '/^```nginx$/ { on = 1; next } /^```$/ { on = 0 } on' docs/scaling.md") {
		t.Fatal("deploy/check-scaling.sh does not run the sh blocks and load the nginx block of docs/scaling.md")
	}
	if !regexp.MustCompile(`(?m)^test-backends:.*\n(\t.*\n)*\t.*bash deploy/check-scaling\.sh`).MatchString(string(readFile(t, "Makefile"))) {
		t.Error("make test-backends does not run deploy/check-scaling.sh")
	}
	covered := map[string]bool{}
	m := regexp.MustCompile(`(?m)^real_tools="([^"]*)"$`).FindStringSubmatch(script)
	if m == nil {
		t.Fatal(`deploy/check-scaling.sh has no real_tools="…" line`)
	}
	for _, tool := range strings.Fields(m[1]) {
		covered[tool] = true
	}
	for _, f := range regexp.MustCompile(`(?m)^([a-z][a-z-]*)\(\) \{`).FindAllStringSubmatch(script, -1) {
		covered[f[1]] = true
	}

	page := string(readFile(t, "docs/scaling.md"))
	fences := regexp.MustCompile("(?m)^```(.*)$").FindAllStringSubmatch(page, -1)
	nginx := 0
	for i := 0; i < len(fences); i += 2 {
		switch fences[i][1] {
		case "sh":
		case "nginx":
			nginx++
		default:
			t.Errorf("docs/scaling.md has a ```%s block, which no check runs: make it ```sh (or the one ```nginx site)", fences[i][1])
		}
	}
	if nginx != 1 {
		t.Errorf("docs/scaling.md has %d nginx blocks, want the one site deploy/check-scaling.sh loads", nginx)
	}

	seen := map[string]bool{}
	var heredoc string
	for _, l := range joinContinued(shBlocks(page)) {
		if heredoc != "" { // a here-document's lines are data, not commands
			if l == heredoc {
				heredoc = ""
			}
			continue
		}
		if h := regexp.MustCompile(`<<-?'?([A-Z]+)'?`).FindStringSubmatch(l); h != nil {
			heredoc = h[1]
		}
		for _, c := range shCommands(l) {
			seen[c] = true
			if !covered[c] {
				t.Errorf("docs/scaling.md runs %q (%q), which deploy/check-scaling.sh neither runs (real_tools) nor stands in for", c, l)
			}
		}
	}
	for _, c := range []string{"psql", "createdb", "curl", "vidgen", "systemctl", "nginx"} {
		if !seen[c] {
			t.Errorf("docs/scaling.md no longer runs %s: is its step gone?", c)
		}
	}
}

// joinContinued joins the shell lines that end in a backslash with the lines that continue them.
func joinContinued(lines []string) []string {
	var out []string
	cont := false
	for _, l := range lines {
		if cont {
			out[len(out)-1] += " " + strings.TrimSpace(l)
		} else {
			out = append(out, l)
		}
		cont = strings.HasSuffix(out[len(out)-1], `\`)
		if cont {
			out[len(out)-1] = strings.TrimSuffix(out[len(out)-1], `\`)
		}
	}
	return out
}
