package main

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"regexp"
)

//go:embed web/index.html
var indexHTML []byte

//go:embed openapi.yaml
var openapiYAML []byte

// inlineHashes are the CSP sources of the page's one inline <script> and one <style>: the page is a
// single file, and the policy allows exactly these bytes, nothing injected beside them.
var inlineHashes = func() (h struct{ script, style string }) {
	hash := func(tag string) string {
		m := regexp.MustCompile(`(?s)<` + tag + `>(.*?)</` + tag + `>`).FindSubmatch(indexHTML)
		if m == nil {
			panic("web/index.html has no <" + tag + ">")
		}
		sum := sha256.Sum256(m[1])
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	h.script, h.style = hash("script"), hash("style")
	return h
}()

// pageCSP is the page's Content-Security-Policy: its own inline script and style by hash, requests
// to this origin only (the API), videos from here or from -public-url (and from the bucket a
// -files-redirect leads to), no frames, plugins, forms elsewhere or base changes.
func (s *server) pageCSP() string {
	media := "'self'"
	if s.cfg.PublicURL != "" {
		media += " " + s.cfg.PublicURL
	}
	media += s.redirectOrigin
	return "default-src 'none'; script-src " + inlineHashes.script + "; style-src " + inlineHashes.style +
		"; connect-src 'self'; media-src " + media + "; img-src " + media +
		"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// handlePage serves the page to try the service: plain HTML, CSS and JavaScript, no external
// requests; the API key stays in the browser's localStorage.
func (s *server) handlePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", s.pageCSP())
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	w.Write(indexHTML)
}

func (s *server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/yaml; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Access-Control-Allow-Origin", "*") // so online editors and client generators can fetch it
	w.Write(openapiYAML)
}
