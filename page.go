package main

import (
	_ "embed"
	"net/http"
)

//go:embed web/index.html
var indexHTML []byte

//go:embed openapi.yaml
var openapiYAML []byte

// pageCSP allows the page nothing but itself: its own inline-free script and style, requests to this
// origin (the API, the videos), and no frames, forms elsewhere or plugins.
const pageCSP = "default-src 'none'; script-src 'self' 'sha256-PLACEHOLDER'; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// opsRoutes registers the routes for people and tools around the API: the page at /, the OpenAPI
// document, and /metrics on the main listener (loopback only) unless -metrics-addr moves it.
func (s *server) opsRoutes(get func(path string, h http.Handler)) {
	get("/", http.HandlerFunc(s.handlePage))
	get("/api/openapi.yaml", s.limitAPI(http.HandlerFunc(s.handleOpenAPI)))
	if s.cfg.MetricsAddr == "" {
		get("/metrics", s.localOnly(s.metrics.handler()))
	}
}

func (s *server) handlePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
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
