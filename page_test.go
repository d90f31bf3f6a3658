package main

import (
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
)

// TestPageServedWithStrictCSP: GET / is the embedded page, under a policy that runs only its own
// inline script and style (by hash), connects only to this origin and loads nothing from elsewhere.
func TestPageServedWithStrictCSP(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	resp, b := e.do(t, "GET", "/", "", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	page := string(b)
	for _, want := range []string{`id="key"`, `type="file"`, "localStorage", "XMLHttpRequest", "upload.addEventListener('progress'", "/api/status/", "/api/jobs?limit=", "<video", "outputShareLink"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	csp := resp.Header.Get("Content-Security-Policy")
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	hashOf := func(tag string) string {
		m := regexp.MustCompile(`(?s)<` + tag + `>(.*?)</` + tag + `>`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no <%s> in the page", tag)
		}
		sum := sha256.Sum256([]byte(m[1]))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	want := map[string]string{
		"default-src":     "'none'",
		"script-src":      hashOf("script"),
		"style-src":       hashOf("style"),
		"connect-src":     "'self'",
		"media-src":       "'self' " + e.srv.cfg.PublicURL,
		"base-uri":        "'none'",
		"form-action":     "'none'",
		"frame-ancestors": "'none'",
	}
	for name, v := range want {
		if directives[name] != v {
			t.Errorf("CSP %s = %q, want %q (policy %q)", name, directives[name], v, csp)
		}
	}
	if strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") {
		t.Errorf("CSP allows too much: %q", csp)
	}
	if strings.Count(page, "<script") != 1 || strings.Contains(page, "<script src") || strings.Contains(page, " style=\"") || regexp.MustCompile(` on[a-z]+=`).MatchString(page) {
		t.Error("the page has script or style the policy would block (a second or external <script>, a style attribute or an inline handler)")
	}
	// No request leaves this server: every URL in the page is relative.
	if m := regexp.MustCompile(`(?:src|href|action)=["']?(?:https?:)?//`).FindString(page); m != "" {
		t.Errorf("the page refers to another origin: %s", m)
	}
	if m := regexp.MustCompile(`fetch\(['"]https?:|open\(['"][A-Z]+['"], *['"]https?:`).FindString(page); m != "" {
		t.Errorf("the page's script calls another origin: %s", m)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("headers: %v", resp.Header)
	}
	// HEAD answers like GET, without the body.
	if resp, b := e.do(t, "HEAD", "/", "", nil); resp.StatusCode != 200 || len(b) != 0 || resp.Header.Get("Content-Security-Policy") != csp {
		t.Errorf("HEAD /: %d, %d bytes", resp.StatusCode, len(b))
	}
}

// TestOpenAPIServed: the document is served without a key, as YAML, byte for byte the embedded one.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	resp, b := e.do(t, "GET", "/api/openapi.yaml", "", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/yaml") || string(b) != string(openapiYAML) {
		t.Errorf("GET /api/openapi.yaml: %d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(b))
	}
	if !strings.HasPrefix(string(b), "openapi: 3.1.0\n") {
		t.Errorf("not an OpenAPI 3.1 document: %.40s", b)
	}
}

// TestShareSecureURL: og:video:secure_url is given only for a video served over HTTPS.
func TestShareSecureURL(t *testing.T) {
	t.Parallel()
	j := Job{ID: "c0", Status: StatusCompleted, OutputToken: "tok", AudioDuration: 2}
	for base, secure := range map[string]bool{"https://v.example.com": true, "http://localhost:8080": false} {
		var b strings.Builder
		if err := shareTmpl.Execute(&b, sharePage(j, base)); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(b.String(), `og:video:secure_url" content="`+base+`/v/tok.mp4"`); got != secure {
			t.Errorf("%s: secure_url given %v, want %v", base, got, secure)
		}
	}
}
