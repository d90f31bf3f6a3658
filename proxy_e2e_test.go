//go:build e2e

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mathrand "math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proxyDomain is the domain of the example configurations in deploy/.
const proxyDomain = "video.example.com"

// TestE2EProxyUploads runs deploy/nginx.conf and deploy/Caddyfile in the real nginx and Caddy (each
// skipped, and said so, where it is not installed: make check-deploy installs both as root) in front
// of vidgen, on loopback with a certificate made here, and sends what curl -F sends: a submission at
// vidgen's limits (two files of 50 MiB) is created; one file over its limit, under the proxy's, gets
// vidgen's own JSON 413; a body over the proxy's own limit gets a JSON 413 too, from the proxy, never
// its HTML page or a reset connection.
func TestE2EProxyUploads(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := proxyCertificate(t, dir)
	image := bigBMP(t, filepath.Join(dir, "at-limit.bmp"), maxFileSize)
	audio := silentWAV(t, filepath.Join(dir, "at-limit.wav"), maxFileSize)
	over := filepath.Join(dir, "over.bin") // a BMP's start, past the cap: vidgen stops reading at the cap
	if err := os.WriteFile(over, append(readFile(t, image)[:64], make([]byte, maxFileSize+1<<20)...), 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.bin") // with the audio, past the proxies' 104 MiB
	if err := os.WriteFile(huge, append(readFile(t, image)[:64], make([]byte, 60<<20)...), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, proxy := range []struct {
		name  string
		start func(t testing.TB, dir, upstream, cert, key string) string
	}{{"nginx", startNginx}, {"caddy", startCaddy}} {
		t.Run(proxy.name, func(t *testing.T) {
			if _, err := exec.LookPath(proxy.name); err != nil {
				t.Skipf("%s is not installed (make check-deploy installs it, as root)", proxy.name)
			}
			c := testConfig(t.TempDir())
			c.TrustProxy = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
			e := newTestEnv(t, &c)
			addr := proxy.start(t, t.TempDir(), e.hs.Listener.Addr().String(), cert, key)
			for _, h2 := range []bool{false, true} {
				client := &http.Client{Transport: &http.Transport{
					TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: proxyDomain},
					ForceAttemptHTTP2: h2,
					DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
						return (&net.Dialer{}).DialContext(ctx, network, addr)
					},
				}}
				via := proxy.name + map[bool]string{false: " over HTTP/1.1", true: " over HTTP/2"}[h2]
				proxyUploads(t, e, via, client, image, audio, over, huge)
			}
		})
	}
}

// proxyUploads sends the three submissions of TestE2EProxyUploads through client, each with a key
// of its own (a key has one active job at a time); proxy names the way in for the messages.
func proxyUploads(t *testing.T, e *testEnv, proxy string, client *http.Client, image, audio, over, huge string) {
	submit := func(key string, parts ...[2]string) (*http.Response, []byte) {
		t.Helper()
		body, ctype, n := multipartFiles(t, parts...)
		req, err := http.NewRequest("POST", "https://"+proxyDomain+"/api/jobs", body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = n
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("X-API-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST /api/jobs of %d bytes through %s: %v", n, proxy, err)
		}
		if want := map[bool]int{false: 1, true: 2}[strings.HasSuffix(proxy, "HTTP/2")]; resp.ProtoMajor != want {
			t.Errorf("through %s the answer came over %s", proxy, resp.Proto)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	resp, b := submit(e.newKey(t, proxy+" at the limits"), [2]string{"image", image}, [2]string{"audio", audio})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("a submission at vidgen's limits through %s: %d %s", proxy, resp.StatusCode, b)
	}
	resp, b = submit(e.newKey(t, proxy+" over the file cap"), [2]string{"image", over}, [2]string{"audio", audio})
	if msg := errorBody(t, resp, b, http.StatusRequestEntityTooLarge); !strings.Contains(msg, "larger than 50 MB") {
		t.Errorf("an image over vidgen's cap through %s: %d %q, want vidgen's 413 naming the cap", proxy, resp.StatusCode, msg)
	}
	resp, b = submit(e.newKey(t, proxy+" over the proxy's limit"), [2]string{"image", huge}, [2]string{"audio", audio})
	if msg := errorBody(t, resp, b, http.StatusRequestEntityTooLarge); !strings.Contains(msg, "MiB") && !strings.Contains(msg, "MB") {
		t.Errorf("a body over %s's limit: %d %q, want a 413 that names the limit", proxy, resp.StatusCode, msg)
	}
}

// multipartFiles is what curl -F NAME=@FILE sends for parts: a multipart body streamed from the
// files, its content type and its length.
func multipartFiles(t testing.TB, parts ...[2]string) (io.Reader, string, int64) {
	t.Helper()
	var frame strings.Builder
	w := multipart.NewWriter(&frame)
	var readers []io.Reader
	var n int64
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%s"; filename="%s"`, p[0], filepath.Base(p[1])))
		h.Set("Content-Type", "application/octet-stream")
		if _, err := w.CreatePart(h); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p[1])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		fi, _ := f.Stat()
		readers = append(readers, strings.NewReader(frame.String()), f)
		n += int64(frame.Len()) + fi.Size()
		frame.Reset()
	}
	w.Close()
	readers = append(readers, strings.NewReader(frame.String()))
	return io.MultiReader(readers...), w.FormDataContentType(), n + int64(frame.Len())
}

// bigBMP writes a grey 24-bit BMP of as many 4096-pixel rows as fit in size bytes.
func bigBMP(t testing.TB, path string, size int) string {
	t.Helper()
	const w, header = 4096, 54
	h := (size - header) / (w * 3)
	b := make([]byte, header+w*3*h)
	copy(b, "BM")
	binary.LittleEndian.PutUint32(b[2:], uint32(len(b)))
	binary.LittleEndian.PutUint32(b[10:], header)
	binary.LittleEndian.PutUint32(b[14:], 40)
	binary.LittleEndian.PutUint32(b[18:], w)
	binary.LittleEndian.PutUint32(b[22:], uint32(h))
	binary.LittleEndian.PutUint16(b[26:], 1)
	binary.LittleEndian.PutUint16(b[28:], 24)
	for i := header; i < len(b); i++ {
		b[i] = 0x80
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// silentWAV writes a 48 kHz stereo 16-bit WAV of silence of at most size bytes.
func silentWAV(t testing.TB, path string, size int) string {
	t.Helper()
	data := (size - 44) / 4 * 4
	b := make([]byte, 44+data)
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+data))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1)
	binary.LittleEndian.PutUint16(b[22:], 2)
	binary.LittleEndian.PutUint32(b[24:], 48000)
	binary.LittleEndian.PutUint32(b[28:], 48000*4)
	binary.LittleEndian.PutUint16(b[32:], 4)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(data))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// proxyCertificate writes a self-signed certificate for proxyDomain and its key to dir, and returns
// their paths and a pool that trusts it.
func proxyCertificate(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: proxyDomain}, DNSNames: []string{proxyDomain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
}

// freeLoopbackPort is a loopback port nothing listens on now, for a server another process starts
// on it. It is taken below the kernel's ephemeral range (as scripts/free-port.sh does): a port
// from inside it, such as Listen on port 0 gives, may become the local end of any outgoing
// connection before that server binds it.
func freeLoopbackPort(t testing.TB) string {
	t.Helper()
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				lo = n
			}
		}
	}
	for range 100 {
		port := strconv.Itoa(10000 + mathrand.IntN(lo-10000))
		if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port)); err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return ""
}

// edit applies each old → new replacement to a configuration from deploy/, failing when one finds
// nothing (the file changed, and this test must follow it).
func edit(t testing.TB, file string, repl ...string) string {
	t.Helper()
	s := string(readFile(t, file))
	for i := 0; i < len(repl); i += 2 {
		re := regexp.MustCompile(repl[i])
		if !re.MatchString(s) {
			t.Fatalf("%s has no %q any more: update TestE2EProxyUploads", file, repl[i])
		}
		s = re.ReplaceAllLiteralString(s, repl[i+1])
	}
	return s
}

// runProxy starts a proxy's command, waits until addr accepts connections, and stops it when the
// test ends.
func runProxy(t testing.TB, addr string, cmd *exec.Cmd) {
	t.Helper()
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s:\n%s", cmd.Path, out.String())
		}
	})
	eventually(t, 20*time.Second, func() error {
		select {
		case <-exited:
			t.Fatalf("%s exited: %s", cmd.Path, out.String())
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// startNginx runs deploy/nginx.conf in nginx, on loopback ports with the given certificate, in front
// of upstream, and returns its HTTPS address.
func startNginx(t testing.TB, dir, upstream, cert, key string) string {
	t.Helper()
	https := "127.0.0.1:" + freeLoopbackPort(t)
	site := edit(t, "deploy/nginx.conf",
		`(?m)^\s*listen \[::\]:.*\n`, "",
		`listen 80;`, "listen 127.0.0.1:"+freeLoopbackPort(t)+";",
		`listen 443 ssl`, "listen "+https+" ssl",
		`/etc/letsencrypt/live/video\.example\.com/fullchain\.pem`, cert,
		`/etc/letsencrypt/live/video\.example\.com/privkey\.pem`, key,
		`proxy_pass http://127\.0\.0\.1:8080;`, "proxy_pass http://"+upstream+";")
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;\n" // the workers read and write the test's 0700 folder
	}
	var temps strings.Builder
	for _, n := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "  %s_temp_path %s;\n", n, filepath.Join(dir, n))
	}
	conf := fmt.Sprintf("%sdaemon off;\npid %s;\nerror_log stderr;\nevents {}\nhttp {\n  access_log off;\n%s  include %s;\n}\n",
		user, filepath.Join(dir, "nginx.pid"), temps.String(), filepath.Join(dir, "site.conf"))
	for name, body := range map[string]string{"site.conf": site, "nginx.conf": conf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	runProxy(t, https, exec.Command("nginx", "-p", dir, "-c", filepath.Join(dir, "nginx.conf")))
	return https
}

// startCaddy runs deploy/Caddyfile in Caddy, on loopback ports with the given certificate (no ACME),
// in front of upstream, and returns its HTTPS address.
func startCaddy(t testing.TB, dir, upstream, cert, key string) string {
	t.Helper()
	port := freeLoopbackPort(t)
	global := fmt.Sprintf("{\n\tadmin off\n\tauto_https disable_redirects\n\tskip_install_trust\n\thttp_port %s\n\thttps_port %s\n\tstorage file_system %s\n}\n",
		freeLoopbackPort(t), port, filepath.Join(dir, "storage"))
	site := edit(t, "deploy/Caddyfile",
		`(?m)^video\.example\.com \{`, "video.example.com:"+port+" {\n\tbind 127.0.0.1\n\ttls "+cert+" "+key,
		`reverse_proxy 127\.0\.0\.1:8080`, "reverse_proxy "+upstream)
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(global+site), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("caddy", "run", "--config", file, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	runProxy(t, "127.0.0.1:"+port, cmd)
	return "127.0.0.1:" + port
}
