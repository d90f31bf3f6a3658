package main

// Fuzz targets for the code that reads what clients send. Seeds are in testdata/fuzz/<Name>/ (Go's
// corpus format) besides the f.Add calls; `make fuzz` runs each for FUZZTIME executions (10000x
// unless given), as CI does.

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"vidgen/internal/media"
)

// FuzzUpload sends arbitrary multipart bodies to POST /api/jobs. Whatever arrives, the answer is a
// JSON 2xx or 4xx (never a 5xx), and nothing a refused request wrote stays on disk.
func FuzzUpload(f *testing.F) {
	f.Add("multipart/form-data; boundary=X", []byte("--X\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\x89PNG\r\n\x1a\n\r\n--X--\r\n"))
	f.Add("multipart/form-data; boundary=X", []byte("--X\r\nContent-Disposition: form-data; name=\"webhookUrl\"\r\n\r\nhttps://example.com/h\r\n--X\r\nContent-Disposition: form-data; name=\"audio\"\r\n\r\nRIFF\x00\x00\x00\x00WAVEfmt \r\n--X--\r\n"))
	f.Add("multipart/form-data; boundary=X", []byte("--X\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--X\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n2\r\n--X\r\nContent-Disposition: form-data; name=\"c\"\r\n\r\n3\r\n--X\r\nContent-Disposition: form-data; name=\"d\"\r\n\r\n4\r\n--X\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n5\r\n--X--\r\n"))
	f.Add("multipart/form-data", []byte("--\r\n"))
	f.Add("text/plain", []byte("hello"))

	cfg := *hangConfig(f, 1)
	s, err := newServer(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.store.Close() })
	k, apiKey, err := createKey(context.Background(), s.store, "fuzz", s.rand, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	s.hooks.lookup = func(context.Context, string) ([]netip.Addr, error) { // no DNS in a fuzz run
		return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
	}
	h := s.routes()
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		req := httptest.NewRequest("POST", "/api/jobs", strings.NewReader(string(body)))
		req.RemoteAddr = "198.51.100.1:1234"
		req.Header.Set("X-API-Key", apiKey)
		req.Header.Set("Content-Type", ctype)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%d %s: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
		}
		if w.Code == 201 {
			// Free the key for the next input; the cancel deletes the inputs, as the API does.
			list, _ := s.store.ListJobs(context.Background(), k.ID, JobFilter{Status: StatusPending, Limit: 10})
			for _, j := range list {
				s.jobs.cancel(context.Background(), k.ID, j.ID)
			}
		}
		for _, sub := range []string{"tmp", "inputs"} {
			if files := dirFiles(t, filepath.Join(cfg.DataDir, sub)); len(files) != 0 {
				t.Fatalf("%d left files in %s: %v", w.Code, sub, files)
			}
		}
	})
}

// FuzzDescribe feeds arbitrary bytes to the naming of a refused file's contents: it never panics
// and always names something (the sniffing it builds on is fuzzed by media.FuzzSniff).
func FuzzDescribe(f *testing.F) {
	for _, seed := range []string{"\xff\xd8\xff\xe0", "\x00\x00\x00\x20ftypM4A ", "ID3\x04", "%PDF-1.4", "caf\xc3\xa9", ""} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		if describe(head) == "" {
			t.Fatal("describe is empty")
		}
	})
}

// FuzzParseListQuery checks GET /api/jobs's parameters: either a 400 or values that are safe to
// hand to the database.
func FuzzParseListQuery(f *testing.F) {
	for _, seed := range []string{"", "limit=10", "limit=0", "limit=101", "limit=+5", "limit=1e2", "limit=5&limit=6",
		"cursor=c0mx1lxt7f9t05cuqeg43v99d", "cursor=nope", "cursor=C0MX1LXT7F9T05CUQEG43V99D", "status=FAILED", "status=failed",
		"status=PENDING&limit=100&cursor=c0000000000000000000000000", "limit=%00", "cursor=c0mx1lxt7f9t05cuqeg43v99%27", "x=1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		f, err := parseListQuery(q)
		if err != nil {
			if kindOf(err) != kindInvalid {
				t.Fatalf("%q: error %v is not a 400", raw, err)
			}
			return
		}
		if f.Limit < 1 || f.Limit > 100 {
			t.Fatalf("%q: limit %d", raw, f.Limit)
		}
		if f.Before != "" && !isJobID(f.Before) {
			t.Fatalf("%q: cursor %q", raw, f.Before)
		}
		if f.Status != "" && !slices.Contains(jobStatuses, f.Status) {
			t.Fatalf("%q: status %q", raw, f.Status)
		}
	})
}

// FuzzWebhookURL checks the webhook URL rule with a fake resolver: an accepted URL is https on port
// 443, has no credentials, is one Go's client can request, and never names a loopback, private or
// otherwise blocked address, whether as a literal or through DNS.
func FuzzWebhookURL(f *testing.F) {
	for _, seed := range []string{"https://example.com/hook", "http://example.com/", "https://127.0.0.1/", "https://[::1]/",
		"https://[::ffff:127.0.0.1]/", "https://0x7f.1/", "https://2130706433/", "https://localhost./", "https://a.localhost/",
		"https://user:pw@example.com/", "https://example.com:8443/", "https://example.com:443/", "https://[fe80::1%25eth0]/",
		"https://10.0.0.1/", "https://169.254.169.254/latest", "https://example.com:/", "https:///x", "//example.com", "https://ex ample.com/",
		"HTTPS://EXAMPLE.COM/", "https://example.com#frag", "https://[64:ff9b::7f00:1]/", "https://0177.0.0.1/"} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, raw string, resolvesPrivate bool) {
		ws := newWebhookSender(nil, log, time.Now, "", false, []string{"443"}, nil)
		ws.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			if resolvesPrivate {
				return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.1.2.3")}, nil
			}
			return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
		}
		err := ws.CheckURL(context.Background(), raw)
		_, synErr := validURLSyntax("webhookUrl", raw)
		if err != nil {
			if kindOf(err) != kindInvalid {
				t.Fatalf("%q: error %v is not a 400", raw, err)
			}
			return
		}
		if synErr != nil {
			t.Fatalf("%q: CheckURL accepts what validURLSyntax refuses: %v", raw, synErr)
		}
		u, _ := url.Parse(raw)
		if u.Scheme != "https" || u.User != nil || (u.Port() != "" && u.Port() != "443") {
			t.Fatalf("%q accepted: scheme %q, user %v, port %q", raw, u.Scheme, u.User, u.Port())
		}
		host := strings.TrimSuffix(u.Hostname(), ".") // "1.0.0.0." is an address, as browsers read it
		if ip, err := netip.ParseAddr(host); err == nil && isBlockedAddr(ip) {
			t.Fatalf("%q accepted: %s is blocked", raw, ip)
		} else if err != nil && resolvesPrivate {
			t.Fatalf("%q accepted though %q resolves only to private addresses", raw, host)
		}
		if _, err := http.NewRequest("POST", raw, nil); err != nil {
			t.Fatalf("%q accepted but cannot be requested: %v", raw, err)
		}
	})
}

// FuzzClientIP checks that X-Forwarded-For only matters when the peer is a trusted proxy, and that
// the key is always a valid prefix of the right length.
func FuzzClientIP(f *testing.F) {
	f.Add("203.0.113.9:1", "198.51.100.1")
	f.Add("10.0.0.2:1", "6.6.6.6, 198.51.100.1")
	f.Add("10.0.0.2:1", "garbage,,, ::ffff:1.2.3.4")
	f.Add("[2001:db8::1]:1", "")
	f.Add("[fe80::1%eth0]:1", "fe80::2%eth1")
	c := clientIPs{trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	f.Fuzz(func(t *testing.T, peer, xff string) {
		r := httptest.NewRequest("GET", "/api/jobs", nil)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", xff)
		k := c.key(r)
		if k.IsValid() && k.Bits() != 32 && k.Bits() != 64 {
			t.Fatalf("peer %q xff %q: key %v", peer, xff, k)
		}
		if ap, err := netip.ParseAddrPort(peer); err == nil && !c.isTrusted(ap.Addr().Unmap()) {
			r.Header.Del("X-Forwarded-For")
			if k2 := c.key(r); k2 != k {
				t.Fatalf("untrusted peer %q: X-Forwarded-For %q changed the key from %v to %v", peer, xff, k2, k)
			}
		}
	})
}

// TestFuzzSeedsExist keeps the checked-in corpus from going missing.
func TestFuzzSeedsExist(t *testing.T) {
	for _, name := range []string{"FuzzUpload", "FuzzParseListQuery", "FuzzWebhookURL", "FuzzClientIP", "FuzzImageHeaders"} {
		if entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", name)); err != nil || len(entries) == 0 {
			t.Errorf("no seed corpus for %s: %v", name, err)
		}
	}
}

// FuzzImageHeaders feeds arbitrary bytes to the readers of image sizes and structure (WebP chunks,
// JPEG markers, the cut after a JPEG's or PNG's first image, the PNG salvage): they never panic, a
// WebP size they accept is positive and within the 14-bit fields, a trim only ever cuts the file's
// tail, and a salvaged PNG decodes in Go's strict decoder.
func FuzzImageHeaders(f *testing.F) {
	f.Add([]byte("RIFF\x26\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00\x3f\x00\x00\x3f\x00\x00VP8L\x06\x00\x00\x00\x2f\x3f\xf0\x0f\x00\x00"))
	f.Add([]byte("RIFF\x1a\x00\x00\x00WEBPVP8 \x0e\x00\x00\x00\x00\x00\x00\x9d\x01\x2a\x10\x00\x10\x00\x00\x00"))
	f.Add([]byte("\xff\xd8\xff\xe0\x00\x04ab\xff\xda\x00\x02\x01\x02\xff\xd9trailing"))
	var small bytes.Buffer
	if err := png.Encode(&small, image.NewNRGBA(image.Rect(0, 0, 3, 2))); err != nil {
		f.Fatal(err)
	}
	valid := small.Bytes()
	badCRC := bytes.Clone(valid)
	badCRC[len(badCRC)-20] ^= 0xff // inside the last IDAT or its CRC
	f.Add(valid)
	f.Add(append(bytes.Clone(valid), '\n'))
	f.Add(badCRC)
	f.Add(valid[:len(valid)-12]) // no IEND
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "img")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if fh, err := os.Open(path); err == nil {
			w, h, err := webpSize(fh)
			fh.Close()
			if err == nil && (w < 1 || h < 1 || w > 1<<24 || h > 1<<24) {
				t.Fatalf("webpSize accepted %dx%d", w, h)
			}
		}
		trimJPEGAt := func(path string) error {
			hdr, err := readJPEGHeader(path)
			if err != nil {
				return err
			}
			return trimJPEG(path, hdr)
		}
		for name, trim := range map[string]func(string) error{"trimJPEG": trimJPEGAt, "trimPNG": trimPNG} {
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := trim(path); err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.HasPrefix(b, got) {
				t.Fatalf("%s left something other than a prefix of the file: %v", name, err)
			}
		}
		checkImage(path, media.SniffImage(b))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		err := salvagePNG(path)
		if err != nil && !errors.Is(err, errUndecodable) {
			t.Errorf("salvagePNG failed on a file it read without I/O trouble, and not as undecodable: %v", err)
		}
		if err == nil {
			// A salvaged file has its header's size and decodes whole in a strict decoder.
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := png.DecodeConfig(bytes.NewReader(got))
			if err != nil {
				t.Fatalf("salvagePNG wrote a PNG without a valid header: %v", err)
			}
			if cfg.Width*cfg.Height <= 1<<20 {
				if _, err := png.Decode(bytes.NewReader(got)); err != nil {
					t.Fatalf("salvagePNG wrote a PNG that does not decode: %v", err)
				}
			}
		}
	})
}
