package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// dockerInstr is one instruction of a Dockerfile: its keyword in upper case, the rest of it with
// continuation lines joined, and the line it starts on.
type dockerInstr struct {
	Cmd, Args string
	Line      int
}

// dockerStage is one FROM and the instructions under it.
type dockerStage struct {
	From, Name string
	Instrs     []dockerInstr
}

// dockerInstructions are every instruction Docker 28's Dockerfile frontend knows (MAINTAINER, long
// deprecated, is left out on purpose).
var dockerInstructions = []string{"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
	"LABEL", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}

// parseDockerfile reads a Dockerfile as Docker's parser does for what this project uses: comment
// lines (also inside a continued instruction), backslash continuations and blank lines; no heredocs.
func parseDockerfile(t testing.TB, path string) []dockerStage {
	t.Helper()
	var stages []dockerStage
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(rest)
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		in := dockerInstr{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start}
		cur.Reset()
		if !slices.Contains(dockerInstructions, in.Cmd) {
			t.Errorf("%s:%d: %q is not a Dockerfile instruction", path, in.Line, cmd)
		}
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			st := dockerStage{From: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.Name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.Cmd != "ARG" {
				t.Errorf("%s:%d: %s before the first FROM", path, in.Line, in.Cmd)
			}
			continue
		}
		stages[len(stages)-1].Instrs = append(stages[len(stages)-1].Instrs, in)
	}
	if cur.Len() > 0 {
		t.Errorf("%s ends inside a continued instruction", path)
	}
	return stages
}

// all is every instruction of the stage with keyword cmd.
func (s dockerStage) all(cmd string) []dockerInstr {
	var out []dockerInstr
	for _, in := range s.Instrs {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// only is the stage's one instruction with keyword cmd; none or several is an error.
func (s dockerStage) only(t testing.TB, cmd string) dockerInstr {
	t.Helper()
	all := s.all(cmd)
	if len(all) != 1 {
		t.Fatalf("stage %s: %d %s instructions, want 1", s.From, len(all), cmd)
	}
	return all[0]
}

// execForm is an instruction's JSON array form (CMD ["vidgen","serve"]), which Docker runs without a
// shell, so the program is PID 1 and gets STOPSIGNAL itself.
func execForm(t testing.TB, in dockerInstr) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(in.Args), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("line %d: %s %s is not in exec form (a JSON array): %v", in.Line, in.Cmd, in.Args, err)
	}
	return argv
}

// dockerEnv is the variables a stage's ENV instructions set (the key=value form).
func dockerEnv(t testing.TB, s dockerStage) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, in := range s.all("ENV") {
		for _, kv := range strings.Fields(in.Args) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("line %d: ENV %s: write KEY=VALUE", in.Line, in.Args)
			}
			env[k] = v
		}
	}
	return env
}

// TestDockerfile: the image recipe has the shape docs/deploy.md promises (these machines have no
// Docker engine; make check-docker runs its steps): a Go build stage with a Go at least go.mod's
// making a static binary stamped with the version, then Debian 12 slim with ffmpeg, the binary from
// the build stage, a non-root user created by the recipe, /data as the data directory and volume,
// the listening port exposed, a HEALTHCHECK through `vidgen health` and exec-form ENTRYPOINT/CMD so
// vidgen is PID 1 and gets SIGTERM; and .dockerignore keeps data and builds out of the context.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	stages := parseDockerfile(t, "Dockerfile")
	if len(stages) != 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and the image", len(stages))
	}
	build, image := stages[0], stages[1]

	m := regexp.MustCompile(`^golang:1\.(\d+)(-bookworm)?$`).FindStringSubmatch(build.From)
	gomod := regexp.MustCompile(`(?m)^go 1\.(\d+)`).FindSubmatch(readFile(t, "go.mod"))
	if m == nil || gomod == nil || build.Name == "" {
		t.Fatalf("build stage FROM %s AS %s: want golang:1.N[-bookworm] AS NAME (go.mod: %s)", build.From, build.Name, gomod)
	}
	if have, need := atoi(t, m[1]), atoi(t, string(gomod[1])); have < need {
		t.Errorf("the build stage has Go 1.%d, go.mod needs 1.%d", have, need)
	}
	builds := build.all("RUN")
	if len(builds) == 0 || !strings.Contains(builds[len(builds)-1].Args, "CGO_ENABLED=0 go build") ||
		!strings.Contains(builds[len(builds)-1].Args, "-X main.version=${VERSION}") {
		t.Errorf("the build stage does not end in a static, version-stamped go build: %v", builds)
	}
	for _, in := range build.all("COPY") {
		for _, src := range strings.Fields(in.Args)[:len(strings.Fields(in.Args))-1] {
			if src != "." {
				readFile(t, src) // a missing source fails the build
			}
		}
	}
	ignore := strings.Fields(string(readFile(t, ".dockerignore")))
	for _, want := range []string{".git", "data", "dist", "e2e/node_modules"} {
		if !slices.Contains(ignore, want) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
	for _, keep := range []string{"go.mod", "go.sum", "*.go", "web"} {
		if slices.Contains(ignore, keep) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", keep)
		}
	}

	if image.From != "debian:12-slim" {
		t.Errorf("the image is FROM %s, want debian:12-slim (ffmpeg from Debian, as docs/deploy.md installs it)", image.From)
	}
	var installs, users string
	for _, in := range image.all("RUN") {
		if strings.Contains(in.Args, "apt-get install") {
			installs = in.Args
		}
		if strings.Contains(in.Args, "useradd") {
			users = in.Args
		}
	}
	for _, want := range []string{"apt-get update", "--no-install-recommends", " ffmpeg", " ca-certificates", "rm -rf /var/lib/apt/lists"} {
		if !strings.Contains(installs, want) {
			t.Errorf("the image's apt-get RUN has no %q: %q", want, installs)
		}
	}
	user := image.only(t, "USER").Args
	made := regexp.MustCompile(`useradd --system [^&]* ` + regexp.QuoteMeta(user) + `\s*(&&|$)`)
	if user == "root" || user == "0" || !made.MatchString(users) {
		t.Errorf("USER %s: want an unprivileged user that the image's useradd --system makes (%q)", user, users)
	}
	if copies := image.only(t, "COPY").Args; !strings.HasPrefix(copies, "--from="+build.Name+" ") || !strings.HasSuffix(copies, " /usr/local/bin/vidgen") {
		t.Errorf("COPY %s: want the binary from the %s stage in /usr/local/bin/vidgen", copies, build.Name)
	}
	env := dockerEnv(t, image)
	if env["VIDGEN_DATA"] != "/data" || image.only(t, "VOLUME").Args != "/data" || image.only(t, "WORKDIR").Args != "/data" {
		t.Errorf("VIDGEN_DATA=%s, VOLUME %s, WORKDIR %s: want /data for all three", env["VIDGEN_DATA"],
			image.only(t, "VOLUME").Args, image.only(t, "WORKDIR").Args)
	}
	if !strings.Contains(users, "install -d -o "+user+" -g "+user+" -m 0700 /data") {
		t.Errorf("/data is not made 0700 for %s before the VOLUME: %q", user, users)
	}
	_, port, err := net.SplitHostPort(env["VIDGEN_ADDR"])
	if err != nil || image.only(t, "EXPOSE").Args != port {
		t.Errorf("EXPOSE %s, VIDGEN_ADDR %s: want the port vidgen listens on", image.only(t, "EXPOSE").Args, env["VIDGEN_ADDR"])
	}
	hc := image.only(t, "HEALTHCHECK")
	opts, cmd, ok := strings.Cut(hc.Args, "CMD ")
	if !ok || !slices.Equal(execForm(t, dockerInstr{Cmd: "CMD", Args: cmd, Line: hc.Line}), []string{"vidgen", "health"}) {
		t.Errorf("HEALTHCHECK %s: want CMD [\"vidgen\", \"health\"]", hc.Args)
	}
	if m := regexp.MustCompile(`--timeout=(\d+)s`).FindStringSubmatch(opts); m == nil || atoi(t, m[1]) < 5 {
		t.Errorf("HEALTHCHECK %s: want --timeout of at least vidgen health's own 5 s", opts)
	}
	if s := image.only(t, "STOPSIGNAL").Args; s != "SIGTERM" {
		t.Errorf("STOPSIGNAL %s, want SIGTERM (vidgen drains and requeues on it)", s)
	}
	argv := append(execForm(t, image.only(t, "ENTRYPOINT")), execForm(t, image.only(t, "CMD"))...)
	if !slices.Equal(argv, []string{"vidgen", "serve"}) {
		t.Errorf("ENTRYPOINT and CMD run %q, want vidgen serve", argv)
	}
	if !strings.Contains(string(readFile(t, "docs/deploy.md")), "Docker Engine 28") {
		t.Error("docs/deploy.md does not say which Docker version the Dockerfile was written for")
	}
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
