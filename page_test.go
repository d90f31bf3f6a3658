package main

import (
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"slices"
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

// TestPageOffersEveryField: the try-it page has a control for every field a submission takes, tied
// to a label, and its script sends the field by its name; a select of names offers exactly the
// values the API takes, in its order. A field the API gains without a control on the page fails here.
func TestPageOffersEveryField(t *testing.T) {
	t.Parallel()
	page := string(indexHTML)
	script := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindStringSubmatch(page)[1]
	// controls are the control that sets each field, by id, and for a select of the API's own
	// names those names (the others map the page's choices to values, as a colour picker does).
	controls := map[string]struct {
		id     string
		values []string
	}{
		"image": {"image", nil}, "imageUrl": {"image-url", nil}, "audio": {"audio", nil}, "audioUrl": {"audio-url", nil},
		"captions": {"captions", nil}, "captionsUrl": {"captions-url", nil}, "webhookUrl": {"webhook", nil},
		"size": {"size", sizeNames}, "sizes": {"more-sizes", nil}, "background": {"background", nil},
		"waveform": {"waveform", waveformNames}, "waveformColor": {"waveform-colour", nil}, "loudness": {"loudness", nil},
		"title": {"title", nil}, "titlePosition": {"title-position", titlePositions}, "titleSize": {"title-size", titleSizes},
		"titleColor": {"title-colour", colourNameList()}, "progressBar": {"progress-bar", nil},
	}
	fields := []string{"image", "audio", "captions"}
	for name := range textFields {
		fields = append(fields, name)
	}
	slices.Sort(fields)
	if len(fields) != len(controls) {
		t.Errorf("the API takes %d fields, the test knows the page's controls of %d: %v", len(fields), len(controls), fields)
	}
	// The script sends a field with form.append('name', …), or an input as its file or its URL with
	// sendInput(form, 'name', 'nameUrl').
	sent := map[string]bool{}
	for _, m := range regexp.MustCompile(`form\.append\('(\w+)'|sendInput\(form, '(\w+)', '(\w+)'\)`).FindAllStringSubmatch(script, -1) {
		for _, name := range m[1:] {
			sent[name] = true
		}
	}
	for _, field := range fields {
		c, ok := controls[field]
		if !ok {
			t.Errorf("the page has no control for the field %s", field)
			continue
		}
		tag := regexp.MustCompile(`<[a-z]+ [^>]*id="` + c.id + `"[^>]*>`).FindString(page)
		switch {
		case tag == "":
			t.Errorf("%s: the page has no control id=%q", field, c.id)
			continue
		case !strings.Contains(page, `<label for="`+c.id+`">`) && !strings.Contains(tag, `aria-label="`):
			t.Errorf("%s: the control %s has no label", field, tag)
		}
		if !sent[field] {
			t.Errorf("the page's script never sends the field %s", field)
		}
		if c.values == nil {
			continue
		}
		var offered []string
		if m := regexp.MustCompile(`(?s)<select id="` + c.id + `"[^>]*>(.*?)</select>`).FindStringSubmatch(page); m != nil {
			for _, o := range regexp.MustCompile(`<option value="([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
				offered = append(offered, o[1])
			}
		}
		if !slices.Equal(offered, c.values) {
			t.Errorf("%s: the select %s offers %v, the API takes %v", field, c.id, offered, c.values)
		}
	}
}
