package main

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// specPatterns is every `pattern` of openapi.yaml, unquoted. Each is written as a double-quoted YAML
// string; a pattern written another way fails the test, so none escapes the checks below.
func specPatterns(t testing.TB, spec []byte) []string {
	t.Helper()
	quoted := regexp.MustCompile(`\bpattern: ("(?:[^"\\]|\\.)*")`)
	var out []string
	for _, m := range quoted.FindAllSubmatch(spec, -1) {
		p, err := strconv.Unquote(string(m[1]))
		if err != nil {
			t.Fatalf("pattern %s: %v", m[1], err)
		}
		out = append(out, p)
	}
	if all := regexp.MustCompile(`\bpattern:`).FindAll(spec, -1); len(all) != len(out) || len(out) == 0 {
		t.Fatalf("openapi.yaml has %d patterns, %d of them double-quoted: write each as pattern: \"…\"", len(all), len(out))
	}
	return out
}

// notECMAScript names the constructs of Go's regexp syntax (RE2) that ECMAScript regular expressions,
// and so Ajv, browsers and most JSON Schema validators, reject or read differently.
var notECMAScript = []struct{ re, why string }{
	{`\(\?[a-zA-Z-]+[:)]`, "flag groups like (?i:…) are Go syntax (ECMAScript 2024 has none): spell the cases out, [Bb][Ll]…"},
	{`\(\?P<`, "named groups are (?<name>…) in ECMAScript"},
	{`\\[AzZQE]`, `\A, \z, \Q…\E are Go syntax: use ^ and $`},
	{`\[\[:[a-z]+:\]`, "POSIX classes like [[:alpha:]] are Go syntax"},
	{`\\[pP][A-Za-z]`, `one-letter Unicode classes (\pL) need braces: \p{L}`},
}

// TestOpenAPIPatternsECMAScript: every pattern in openapi.yaml is one that JavaScript validators
// accept with the meaning Go gives it: none of Go's own constructs, each compiles under Go, and, where
// Node.js is installed, each compiles as new RegExp(p, 'u') (Unicode mode, the strictest, which
// JSON Schema's "ECMA-262 dialect" means for Ajv) and means the same on examples of what it must
// and must not match.
func TestOpenAPIPatternsECMAScript(t *testing.T) {
	t.Parallel()
	patterns := specPatterns(t, openapiYAML)
	for _, p := range patterns {
		if _, err := regexp.Compile(p); err != nil {
			t.Errorf("pattern %q does not compile in Go: %v", p, err)
		}
		for _, bad := range notECMAScript {
			if regexp.MustCompile(bad.re).MatchString(p) {
				t.Errorf("pattern %q: %s", p, bad.why)
			}
		}
	}
	// The colour options' patterns match what the service accepts, in JavaScript as in Go.
	options := map[string]string{}
	samples := map[string]map[string]bool{}
	for field, accepts := range colourOptions {
		m := regexp.MustCompile(`\n {16}` + field + `:\s+type: string\s+pattern: ("[^"]*")`).FindSubmatch(openapiYAML)
		if m == nil {
			t.Fatalf("no pattern for the %s option in openapi.yaml", field)
		}
		options[field], _ = strconv.Unquote(string(m[1]))
		re := regexp.MustCompile(options[field])
		samples[field] = map[string]bool{}
		for _, v := range colourSamples {
			_, want := accepts(v)
			samples[field][v] = want
			if re.MatchString(v) != want {
				t.Errorf("in Go the %s pattern %q decides %q unlike the service (%v)", field, options[field], v, want)
			}
		}
	}
	if !samples["background"]["Blur"] || samples["background"]["blurry"] || !samples["titleColor"]["#0a0B0c"] || samples["titleColor"]["crimson"] {
		t.Fatalf("the samples are wrong: the service says %v", samples)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Logf("node is not installed: the patterns were checked against Go's constructs only")
		return
	}
	in, _ := json.Marshal(map[string]any{"patterns": patterns, "options": options, "samples": samples})
	script := `
const {patterns, options, samples} = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = {failed: [], wrong: []};
for (const p of patterns) { try { new RegExp(p, 'u'); } catch (e) { out.failed.push(p + ': ' + e.message); } }
for (const [field, p] of Object.entries(options)) {
  try {
    const re = new RegExp(p, 'u');
    for (const [v, want] of Object.entries(samples[field])) { if (re.test(v) !== want) out.wrong.push(field + ' ' + JSON.stringify(v)); }
  } catch (e) { out.wrong.push(field); }
}
console.log(JSON.stringify(out));`
	cmd := exec.Command(node, "-e", script)
	cmd.Stdin = strings.NewReader(string(in))
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var out struct{ Failed, Wrong []string }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("node printed %q: %v", b, err)
	}
	for _, f := range out.Failed {
		t.Errorf("JavaScript rejects the pattern %s", f)
	}
	for _, v := range out.Wrong {
		t.Errorf("in JavaScript the pattern of %s decides unlike the service", v)
	}
	if len(patterns) < 10 {
		t.Errorf("only %d patterns found", len(patterns))
	}
}

// colourOptions are the service's own verdicts on each colour option's value, and colourSamples
// values to ask them about: the spellings of blur, of #RRGGBB and of the names, and near misses.
var (
	colourOptions = map[string]func(string) (string, bool){
		"background": blurOrColour, "waveformColor": parseColour, "titleColor": parseTitleColour, "progressBar": parseProgressBar,
	}
	colourSamples = []string{"blur", "BLUR", "Blur", "blurry", "#0a0B0c", "#FFFFFF", "#12345", "#1234567", "123456", "#GGGGGG",
		"red", "Yellow", "GREEN", "bLuE", "crimson", "redd", "true", "Off", "no", "white#FFFFFF"}
)

// sniffedNames is how openapi.yaml and docs/api.md name each type internal/media recognises, image or
// audio; a constant added there without an entry here fails TestOpenAPIFormats.
var sniffedNames = map[string]struct{ part, name string }{
	"JPEG": {"image", "JPEG"}, "PNG": {"image", "PNG"}, "WebP": {"image", "WebP"}, "GIF": {"image", "GIF"},
	"BMP": {"image", "BMP"}, "TIFF": {"image", "TIFF"}, "HEIC": {"image", "HEIC"}, "AVIF": {"image", "AVIF"},
	"MP3": {"audio", "MP3"}, "WAV": {"audio", "WAV"}, "M4A": {"audio", "M4A"}, "Ogg": {"audio", "Ogg"},
	"FLAC": {"audio", "FLAC"}, "AIFF": {"audio", "AIFF"}, "AAC": {"audio", "ADTS AAC"}, "Matroska": {"audio", "WebM/Matroska"},
}

// TestOpenAPIFormats: the upload parts of POST /api/jobs are binary (format: binary, so generated
// clients type them as files), and their descriptions, like docs/api.md, name every type that
// internal/media sniffs, read from its source.
func TestOpenAPIFormats(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "internal/media/sniff.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var consts []string
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
			for _, s := range g.Specs {
				for _, n := range s.(*ast.ValueSpec).Names {
					if n.Name != "SniffLen" {
						consts = append(consts, n.Name)
					}
				}
			}
		}
	}
	if len(consts) < len(sniffedNames) {
		t.Fatalf("internal/media/sniff.go declares %v: fewer types than this test knows", consts)
	}
	schema := loadSpec(t).Paths.Find("/api/jobs").Post.RequestBody.Value.Content.Get("multipart/form-data").Schema.Value
	for _, part := range []string{"image", "audio", "captions"} {
		if p := schema.Properties[part]; p == nil || p.Value.Format != "binary" {
			t.Errorf("the %s part is not format: binary", part)
		}
	}
	api := string(readFile(t, "docs/api.md"))
	for _, c := range consts {
		n, ok := sniffedNames[c]
		if !ok {
			t.Errorf("internal/media sniffs %s: name it in openapi.yaml, docs/api.md and sniffedNames", c)
			continue
		}
		if desc := schema.Properties[n.part].Value.Description; !strings.Contains(desc, n.name) {
			t.Errorf("openapi.yaml's %s part does not name %s: %q", n.part, n.name, desc)
		}
		if !strings.Contains(api, n.name) {
			t.Errorf("docs/api.md does not name %s", n.name)
		}
	}
}
