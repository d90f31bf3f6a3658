package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ---- receivers ----

// hookRequest is one webhook a receiver got.
type hookRequest struct {
	Header http.Header
	Body   []byte
}

// hookReceiver is a real HTTPS endpoint (httptest's TLS server) that records every request and
// answers as respond says (200 when respond is nil); n counts the requests before this one.
type hookReceiver struct {
	ts      *httptest.Server
	mu      sync.Mutex
	reqs    []hookRequest
	respond func(w http.ResponseWriter, r *http.Request, n int)
}

func newHookReceiver(t testing.TB, respond func(w http.ResponseWriter, r *http.Request, n int)) *hookReceiver {
	t.Helper()
	hr := &hookReceiver{respond: respond}
	hr.ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hr.mu.Lock()
		n := len(hr.reqs)
		hr.reqs = append(hr.reqs, hookRequest{r.Header.Clone(), body})
		respond := hr.respond
		hr.mu.Unlock()
		if respond == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		respond(w, r, n)
	}))
	t.Cleanup(hr.ts.Close)
	return hr
}

func (hr *hookReceiver) url() string { return hr.ts.URL + "/hooks/vidgen" }

func (hr *hookReceiver) port() string {
	_, port, _ := net.SplitHostPort(hr.ts.Listener.Addr().String())
	return port
}

func (hr *hookReceiver) setRespond(f func(w http.ResponseWriter, r *http.Request, n int)) {
	hr.mu.Lock()
	defer hr.mu.Unlock()
	hr.respond = f
}

func (hr *hookReceiver) requests() []hookRequest {
	hr.mu.Lock()
	defer hr.mu.Unlock()
	return append([]hookRequest(nil), hr.reqs...)
}

// waitFor waits (briefly, in real time) until the receiver has n requests: for deliveries the
// running service makes on its own.
func (hr *hookReceiver) waitFor(t testing.TB, n int) []hookRequest {
	t.Helper()
	var reqs []hookRequest
	eventually(t, 15*time.Second, func() error {
		if reqs = hr.requests(); len(reqs) < n {
			return fmt.Errorf("receiver got %d requests, want %d", len(reqs), n)
		}
		return nil
	})
	return reqs
}

// hookAnswer answers with code and, when given, header name/value pairs.
func hookAnswer(code int, header ...string) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
	}
}

// hookHang answers nothing until the client gives up. It never answers at all: returning from the
// handler would send a 200, which a sender starved of CPU past its own timeout could still read
// as a delivery.
func hookHang(w http.ResponseWriter, r *http.Request, _ int) {
	select {
	case <-r.Context().Done():
	case <-time.After(time.Minute):
	}
	hookDrop(w, r, 0)
}

// hookDrop closes the connection without a response: a network error for the sender.
func hookDrop(w http.ResponseWriter, _ *http.Request, _ int) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

// hookConfig is a test config whose webhooks may reach the receivers on 127.0.0.1 (allow-private,
// their ports allowed), as a developer would run vidgen against a local receiver.
func hookConfig(dataDir string, recv ...*hookReceiver) *config {
	cfg := testConfig(dataDir)
	cfg.WebhookAllowPrivate = true
	for _, r := range recv {
		cfg.WebhookPorts = append(cfg.WebhookPorts, r.port())
	}
	return &cfg
}

// hookTrustPool makes the webhook sender trust pool's certificates, and only them.
func hookTrustPool(pool *x509.CertPool) func(*server) {
	return func(s *server) {
		s.hooks.client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
	}
}

// hookTrust makes the sender trust the receivers' test certificates.
func hookTrust(recv ...*hookReceiver) func(*server) {
	pool := x509.NewCertPool()
	for _, r := range recv {
		pool.AddCert(r.ts.Certificate())
	}
	return hookTrustPool(pool)
}

// newHookClock starts at t, to the second (the API shows milliseconds, Retry-After dates seconds).
func newHookClock(t time.Time) *fakeClock { return &fakeClock{t: t.Round(0).Truncate(time.Second)} }

// install gives the sender this clock and no jitter (0.5 maps to ±0), so the schedule is exact.
func (c *fakeClock) install(s *server) {
	s.hooks.now = c.Now
	s.hooks.jitter = func() float64 { return 0.5 }
}

// ---- env helpers ----

// accountOf returns the account behind an API key, with its webhook secrets.
func (e *testEnv) accountOf(t testing.TB, apiKey string) Key {
	t.Helper()
	k, err := e.srv.store.KeyByHash(context.Background(), hashKey(apiKey))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// finishWithHook submits a job with webhookUrl and waits until it is COMPLETED.
func (e *testEnv) finishWithHook(t testing.TB, key, url string) (string, map[string]any) {
	t.Helper()
	code, body := e.submit(t, key, fixture(t, "img.jpg"), fixture(t, "tone.wav"), map[string]string{"webhookUrl": url})
	if code != http.StatusCreated {
		t.Fatalf("submit with webhook %s: %d %v", url, code, body)
	}
	id := body["jobId"].(string)
	return id, e.wait(t, key, id, StatusCompleted)
}

// endWithHook ends a job of key's with webhookUrl url as a successful render ends one, without
// the upload and the render: the job is stored PROCESSING, as a worker holds it, and the lifecycle
// ends it COMPLETED under a new output token (the state change and its delivery in one
// transaction, the sender woken). It returns the id and the status body. For the tests of the
// deliveries themselves, to which finishWithHook's two probes and three ffmpeg runs add seconds of
// CPU and nothing they check; TestWebhookHTTPSReceiver keeps the real path.
func (e *testEnv) endWithHook(t testing.TB, key, url string) (string, map[string]any) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	id, err := newJobID(now, e.srv.rand)
	if err != nil {
		t.Fatal(err)
	}
	token, err := randomHex(e.srv.rand, 16)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.store.db.ExecContext(ctx, `INSERT INTO jobs (id, key_id, status, image_type, audio_type,
		audio_codec, audio_duration, webhook_url, retries, created_at, updated_at)
		VALUES (?, ?, 'PROCESSING', 'jpeg', 'wav', 'pcm_s16le', 2.5, ?, 0, ?, ?)`,
		id, e.accountOf(t, key).ID, url, now.UnixMilli(), now.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.jobs.finish(ctx, id, "", StatusProcessing, Outcome{Status: StatusCompleted, OutputToken: token}); err != nil {
		t.Fatal(err)
	}
	return id, e.status(t, key, id)
}

// settle runs the sender once: every due delivery gets its attempt, and an attempt the running
// sender had in flight is recorded by the time it returns.
func (e *testEnv) settle(t testing.TB) {
	t.Helper()
	if _, err := e.srv.hooks.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// cloneJob stores a copy of finished job id under a new id, without its output, and returns the id.
func (e *testEnv) cloneJob(t testing.TB, id string) string {
	t.Helper()
	clone, err := newJobID(time.Now(), e.srv.rand)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.srv.store.db.Exec(`INSERT INTO jobs (id, key_id, status, image_type, audio_type, audio_codec, audio_duration,
		webhook_url, error_message, retries, created_at, updated_at, finished_at)
		SELECT ?, key_id, status, image_type, audio_type, audio_codec, audio_duration,
		webhook_url, error_message, retries, created_at, updated_at, finished_at FROM jobs WHERE id = ?`, clone, id)
	if err != nil {
		t.Fatal(err)
	}
	return clone
}

// giveUp marks every pending delivery of a job given up, as the end of the retry schedule would,
// so that the next redelivery is not refused for one still queued.
func (e *testEnv) giveUp(t testing.TB, jobID string) {
	t.Helper()
	if _, err := e.srv.store.db.Exec(`UPDATE webhook_deliveries SET state = 'failed', next_attempt_at = NULL
		WHERE job_id = ? AND state = 'pending'`, jobID); err != nil {
		t.Fatal(err)
	}
}

// redeliver queues a fresh delivery through the API and returns its id.
func (e *testEnv) redeliver(t testing.TB, key, jobID string) string {
	t.Helper()
	resp, b := e.do(t, "POST", "/api/jobs/"+jobID+"/deliveries/redeliver", key, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("redeliver: %d %s", resp.StatusCode, b)
	}
	id, _ := decodeJSON(t, resp, b)["deliveryId"].(string)
	if !strings.HasPrefix(id, "msg_") {
		t.Fatalf("redeliver: %s", b)
	}
	return id
}

// apiDelivery is one entry of GET /api/jobs/:jobId/deliveries.
type apiDelivery struct {
	ID            string  `json:"id"`
	URL           string  `json:"url"`
	State         string  `json:"state"`
	CreatedAt     string  `json:"createdAt"`
	NextAttemptAt *string `json:"nextAttemptAt"`
	Attempts      []struct {
		At         string  `json:"at"`
		StatusCode *int    `json:"statusCode"`
		Error      *string `json:"error"`
	} `json:"attempts"`
}

func (e *testEnv) deliveries(t testing.TB, key, jobID string) []apiDelivery {
	t.Helper()
	resp, b := e.do(t, "GET", "/api/jobs/"+jobID+"/deliveries", key, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("deliveries: %d %s", resp.StatusCode, b)
	}
	var v struct {
		JobID      string        `json:"jobId"`
		Deliveries []apiDelivery `json:"deliveries"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.JobID != jobID || v.Deliveries == nil {
		t.Fatalf("deliveries body %s (%v)", b, err)
	}
	return v.Deliveries
}

func (e *testEnv) delivery(t testing.TB, key, jobID, id string) apiDelivery {
	t.Helper()
	for _, d := range e.deliveries(t, key, jobID) {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("no delivery %s for job %s", id, jobID)
	return apiDelivery{}
}

func hookAPITime(t testing.TB, s string) time.Time {
	t.Helper()
	at, err := time.Parse("2006-01-02T15:04:05.000Z", s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// code is an attempt's HTTP status, 0 when none came.
func (d apiDelivery) code(i int) int {
	if i >= len(d.Attempts) || d.Attempts[i].StatusCode == nil {
		return 0
	}
	return *d.Attempts[i].StatusCode
}

// ---- a receiver's checks, written independently of webhook.go ----

// docsVerify is the API document's Express check in Go: X-Webhook-Signature is the hex HMAC-SHA256 of the
// body, keyed with the secret string as it is.
func docsVerify(secret string, h http.Header, body []byte) bool {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal([]byte(h.Get("X-Webhook-Signature")), []byte(hex.EncodeToString(mac.Sum(nil))))
}

// standardVerify is the Standard Webhooks check docs/api.md shows: a timestamp within 5 minutes of
// now, and one v1 signature that is the base64 HMAC-SHA256 of "id.timestamp.body" keyed with the
// base64-decoded secret after "whsec_".
func standardVerify(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad timestamp %q", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s is %v from now", ts, d)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, sig, _ := strings.Cut(s, ",")
		if got, err := base64.StdEncoding.DecodeString(sig); version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

// ---- tests ----

// TestWebhookHTTPSReceiver delivers to a real HTTPS receiver that checks both signature schemes,
// lists the attempts, redelivers, and signs with both secrets during a rotation.
func TestWebhookHTTPSReceiver(t *testing.T) {
	t.Parallel()
	recv := newHookReceiver(t, nil)
	dir := t.TempDir()
	e := newTestEnv(t, hookConfig(dir, recv), hookTrust(recv))
	if !strings.Contains(e.logs.String(), "webhook-allow-private") {
		t.Errorf("-webhook-allow-private is not logged:\n%s", e.logs.String())
	}
	if tr := e.srv.hooks.client.Transport.(*http.Transport); tr.Proxy != nil {
		t.Error("the webhook client uses a proxy (HTTPS_PROXY): the address checks would see the proxy, not the receiver")
	}
	if e.srv.hooks.client.Timeout != 15*time.Second {
		t.Errorf("attempt timeout %v, want 15s", e.srv.hooks.client.Timeout)
	}
	secret := e.accountOf(t, e.key).WebhookSecret
	id, st := e.finishWithHook(t, e.key, recv.url())

	// The running service sends at once: nothing here calls DeliverDue first.
	r := recv.waitFor(t, 1)[0]
	e.settle(t)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var event map[string]any
	if err := json.Unmarshal(r.Body, &event); err != nil {
		t.Fatalf("body %s: %v", r.Body, err)
	}
	if !reflect.DeepEqual(event, st) {
		t.Errorf("webhook body\n%v\nis not the status body\n%v", event, st)
	}
	if !docsVerify(secret, r.Header, r.Body) {
		t.Errorf("X-Webhook-Signature %q does not verify", r.Header.Get("X-Webhook-Signature"))
	}
	if err := standardVerify(secret, r.Header, r.Body, time.Now()); err != nil {
		t.Errorf("webhook-signature: %v (headers %v)", err, r.Header)
	}
	// What a receiver must reject: a changed body, another secret, a replay after 5 minutes.
	forged := bytes.Replace(r.Body, []byte(`"COMPLETED"`), []byte(`"FAILED"`), 1)
	other := "whsec_" + base64.StdEncoding.EncodeToString([]byte("another account's secret"))
	if docsVerify(secret, r.Header, forged) || standardVerify(secret, r.Header, forged, time.Now()) == nil {
		t.Error("a changed body verifies")
	}
	if docsVerify(other, r.Header, r.Body) || standardVerify(other, r.Header, r.Body, time.Now()) == nil {
		t.Error("another secret verifies")
	}
	if standardVerify(secret, r.Header, r.Body, time.Now().Add(6*time.Minute)) == nil {
		t.Error("a replay 6 minutes later verifies")
	}

	ds := e.deliveries(t, e.key, id)
	if len(ds) != 1 {
		t.Fatalf("deliveries: %+v", ds)
	}
	d := ds[0]
	if d.ID != r.Header.Get("webhook-id") || d.URL != recv.url() || d.State != "delivered" || d.NextAttemptAt != nil ||
		len(d.Attempts) != 1 || d.Attempts[0].StatusCode == nil || *d.Attempts[0].StatusCode != 200 || d.Attempts[0].Error != nil {
		t.Errorf("delivery %+v, webhook-id %q", d, r.Header.Get("webhook-id"))
	}
	bob := e.newKey(t, "bob")
	for _, req := range [][2]string{{"GET", "/api/jobs/" + id + "/deliveries"}, {"POST", "/api/jobs/" + id + "/deliveries/redeliver"}} {
		resp, b := e.do(t, req[0], req[1], bob, nil)
		errorBody(t, resp, b, http.StatusNotFound)
	}

	// Redeliver: a fresh delivery with its own id and the same final status.
	again := e.redeliver(t, e.key, id)
	r2 := recv.waitFor(t, 2)[1]
	if r2.Header.Get("webhook-id") != again || again == d.ID || !bytes.Equal(r2.Body, r.Body) {
		t.Errorf("redelivery: id %q (queued %q, first %q), body %s", r2.Header.Get("webhook-id"), again, d.ID, r2.Body)
	}
	if !docsVerify(secret, r2.Header, r2.Body) || standardVerify(secret, r2.Header, r2.Body, time.Now()) != nil {
		t.Error("redelivery does not verify")
	}

	// `vidgen keys rotate-secret`, run beside the server: for 24 hours both secrets sign the Standard
	// Webhooks header; the API document's header uses the new one.
	var out, errOut bytes.Buffer
	env := func(name string) string {
		if name == "VIDGEN_DATA" {
			return dir
		}
		return ""
	}
	if err := run(context.Background(), []string{"keys", "rotate-secret", e.accountOf(t, e.key).ID, "-json"}, env, &out, &errOut); err != nil {
		t.Fatalf("rotate-secret: %v %s", err, errOut.String())
	}
	var rotated map[string]string
	if err := json.Unmarshal(out.Bytes(), &rotated); err != nil || !strings.HasPrefix(rotated["webhookSecret"], "whsec_") {
		t.Fatalf("rotate-secret printed %q", out.String())
	}
	newSecret := rotated["webhookSecret"]
	e.settle(t) // the redelivery recorded: another is refused while it is pending
	e.redeliver(t, e.key, id)
	r3 := recv.waitFor(t, 3)[2]
	if !docsVerify(newSecret, r3.Header, r3.Body) || docsVerify(secret, r3.Header, r3.Body) {
		t.Error("after rotation X-Webhook-Signature is not signed with the new secret")
	}
	if sigs := strings.Fields(r3.Header.Get("webhook-signature")); len(sigs) != 2 {
		t.Errorf("webhook-signature during rotation: %q, want two", r3.Header.Get("webhook-signature"))
	}
	for _, s := range []string{newSecret, secret} {
		if err := standardVerify(s, r3.Header, r3.Body, time.Now()); err != nil {
			t.Errorf("during rotation, a receiver with %s...: %v", s[:10], err)
		}
	}
	e.settle(t)
	// 24 hours on, only the new secret signs.
	k := e.accountOf(t, e.key)
	if d := time.Until(k.PrevUntil); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("previous secret kept until %v, want 24h from now", k.PrevUntil)
	}
	later := k.PrevUntil.Add(time.Second)
	h := signatures(k, "msg_x", later, r3.Body)
	if sigs := strings.Fields(h.Get("webhook-signature")); len(sigs) != 1 || standardVerify(newSecret, h, r3.Body, later) != nil {
		t.Errorf("after the overlap: %q", h.Get("webhook-signature"))
	}
}

// TestWebhookFailedJob: a FAILED job is delivered too, with its errorMessage, signed.
func TestWebhookFailedJob(t *testing.T) {
	t.Parallel()
	recv := newHookReceiver(t, nil)
	cfg := hookConfig(t.TempDir(), recv)
	cfg.FFmpeg, _ = filepath.Abs("testdata/ffmpeg-crash")
	e := newTestEnv(t, cfg, hookTrust(recv))
	code, body := e.submit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.wav"), map[string]string{"webhookUrl": recv.url()})
	if code != http.StatusCreated {
		t.Fatalf("submit: %d %v", code, body)
	}
	st := e.wait(t, e.key, body["jobId"].(string), StatusFailed)
	e.settle(t)
	reqs := recv.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests", len(reqs))
	}
	var event map[string]any
	json.Unmarshal(reqs[0].Body, &event)
	if !reflect.DeepEqual(event, st) || event["errorMessage"] == nil {
		t.Errorf("webhook %v, status %v", event, st)
	}
	if secret := e.accountOf(t, e.key).WebhookSecret; !docsVerify(secret, reqs[0].Header, reqs[0].Body) ||
		standardVerify(secret, reqs[0].Header, reqs[0].Body, time.Now()) != nil {
		t.Error("FAILED webhook does not verify")
	}
}

// expressReceiver is the API document's Express snippet, unchanged between the markers, with only what it
// needs around it to run: express, an HTTPS server on the test's certificate, and a log line per
// request so the test can see what the snippet answered.
const expressReceiver = `import express from 'express';
import https from 'https';
import fs from 'fs';

const app = express();
app.use((req, res, next) => {
  res.on('finish', () => console.log(JSON.stringify({ id: req.header('webhook-id') || '', status: res.statusCode })));
  next();
});

// ---- the API document's snippet ----
// Node.js / Express
import crypto from 'crypto';

app.post('/hooks/vidgen', express.raw({ type: 'application/json' }), (req, res) => {
  const got = req.header('X-Webhook-Signature') || '';
  const expected = crypto
    .createHmac('sha256', process.env.WEBHOOK_SECRET)
    .update(req.body)
    .digest('hex');

  if (got.length !== expected.length ||
      !crypto.timingSafeEqual(Buffer.from(got), Buffer.from(expected))) {
    return res.status(401).end();
  }

  const event = JSON.parse(req.body.toString());
  // event.status, event.outputVideo, …
  res.sendStatus(200);
});
// ---- end of the API document's snippet ----

const server = https.createServer({ key: fs.readFileSync(process.argv[2]), cert: fs.readFileSync(process.argv[3]) }, app);
server.listen(0, '127.0.0.1', () => console.log('listening ' + server.address().port));
`

// docsSnippet is the snippet as the public API document prints it (its line breaks lost in the
// copy); expressReceiver must hold the same code, token for token.
const docsSnippet = `// Node.js / Express import crypto from 'crypto'; app.post('/hooks/vidgen', express.raw({ type: 'application/json' }), (req, res) => { const got = req.header('X-Webhook-Signature') || ''; const expected = crypto .createHmac('sha256', process.env.WEBHOOK_SECRET) .update(req.body) .digest('hex'); if (got.length !== expected.length || !crypto.timingSafeEqual(Buffer.from(got), Buffer.from(expected))) { return res.status(401).end(); } const event = JSON.parse(req.body.toString()); // event.status, event.outputVideo, … res.sendStatus(200); });`

func TestExpressReceiverIsTheDocsSnippet(t *testing.T) {
	t.Parallel()
	_, rest, _ := strings.Cut(expressReceiver, "// ---- the API document's snippet ----")
	snippet, _, ok := strings.Cut(rest, "// ---- end of the API document's snippet ----")
	if !ok || strings.Join(strings.Fields(snippet), " ") != docsSnippet {
		t.Errorf("the Express receiver's snippet differs from the API document's:\n%s", snippet)
	}
}

// hookTestCert makes a self-signed certificate for 127.0.0.1 and returns it and its key as PEM, and a
// pool that trusts it.
func hookTestCert(t testing.TB) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vidgen test receiver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), pool
}

// TestWebhookRetrySchedule fails every attempt, in every way there is, and moves an injected clock
// along the schedule: each retry comes exactly when due (jitter pinned to 0), not a millisecond
// early, with the same webhook-id and a fresh, valid signature; after the tenth attempt, none.
func TestWebhookRetrySchedule(t *testing.T) {
	t.Parallel()
	target := newHookReceiver(t, nil) // where the redirects point: never to be reached
	failures := []func(http.ResponseWriter, *http.Request, int){
		hookAnswer(500), hookAnswer(404), hookAnswer(302, "Location", target.url()), hookAnswer(401), hookAnswer(502),
		hookHang, hookDrop, hookAnswer(503), hookAnswer(308, "Location", target.url()), hookAnswer(400),
	}
	recv := newHookReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) { failures[n%len(failures)](w, r, n) })
	clock := newHookClock(time.Now().Add(time.Hour))
	e := newTestEnv(t, hookConfig(t.TempDir(), recv, target), hookTrust(recv, target), clock.install,
		func(s *server) { s.hooks.client.Timeout = 3 * time.Second }) // a hang is a timeout; an answer under load is not
	id, _ := e.endWithHook(t, e.key, recv.url())
	e.settle(t) // the first attempt: at once

	if len(retrySchedule)+1 != 10 {
		t.Fatalf("%d attempts in the schedule, want 10", len(retrySchedule)+1)
	}
	for i, wait := range retrySchedule {
		d := e.deliveries(t, e.key, id)[0]
		if len(d.Attempts) != i+1 || d.State != "pending" || d.NextAttemptAt == nil {
			t.Fatalf("after attempt %d: %+v", i+1, d)
		}
		at, next := hookAPITime(t, d.Attempts[i].At), hookAPITime(t, *d.NextAttemptAt)
		if !at.Equal(clock.Now()) || next.Sub(at) != wait {
			t.Errorf("attempt %d at %v (clock %v), next after %v, want %v", i+1, at, clock.Now(), next.Sub(at), wait)
		}
		clock.Set(next.Add(-time.Millisecond))
		e.settle(t)
		if n := len(e.deliveries(t, e.key, id)[0].Attempts); n != i+1 {
			t.Fatalf("retry %d came early: %d attempts", i+1, n)
		}
		clock.Set(next)
		e.settle(t)
	}
	d := e.deliveries(t, e.key, id)[0]
	if d.State != "failed" || d.NextAttemptAt != nil || len(d.Attempts) != 10 {
		t.Fatalf("after the schedule: %+v", d)
	}
	wantErr := []string{"HTTP 500", "HTTP 404", "HTTP 302", "HTTP 401", "HTTP 502", "timeout", "connection failed", "HTTP 503", "HTTP 308", "HTTP 400"}
	for i, a := range d.Attempts {
		code := 0
		if a.StatusCode != nil {
			code = *a.StatusCode
		}
		if a.Error == nil || *a.Error != wantErr[i] || (code != 0) != strings.HasPrefix(wantErr[i], "HTTP") {
			t.Errorf("attempt %d: status %d error %v, want %s", i+1, code, a.Error, wantErr[i])
		}
	}
	clock.Set(clock.Now().Add(72 * time.Hour))
	e.settle(t)
	reqs := recv.requests()
	if len(reqs) != 10 {
		t.Errorf("receiver got %d requests, want 10", len(reqs))
	}
	secret := e.accountOf(t, e.key).WebhookSecret
	for i, r := range reqs {
		at := hookAPITime(t, d.Attempts[i].At)
		if r.Header.Get("webhook-id") != d.ID || r.Header.Get("webhook-timestamp") != strconv.FormatInt(at.Unix(), 10) {
			t.Errorf("attempt %d: webhook-id %q timestamp %q, want %s at %d", i+1, r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), d.ID, at.Unix())
		}
		if !bytes.Equal(r.Body, reqs[0].Body) || !docsVerify(secret, r.Header, r.Body) || standardVerify(secret, r.Header, r.Body, at) != nil {
			t.Errorf("attempt %d does not verify", i+1)
		}
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("a redirect was followed: the target got %d requests", n)
	}
}

// TestWebhookUnrecordedAttemptHeld: an attempt the database refuses to record (a full disk) leaves
// its delivery due; it is held for unrecordedHold, not sent again as fast as the receiver answers,
// and goes out once the hold is over and the database takes writes again.
func TestWebhookUnrecordedAttemptHeld(t *testing.T) {
	t.Parallel()
	recv := newHookReceiver(t, nil)
	clock := newHookClock(time.Now().Add(time.Hour)) // past the delivery's first attempt time
	e := newTestEnv(t, hookConfig(t.TempDir(), recv), hookTrust(recv), clock.install)
	full := `CREATE TRIGGER full BEFORE INSERT ON webhook_attempts BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`
	if _, err := e.srv.store.db.Exec(full); err != nil {
		t.Fatal(err)
	}
	id, _ := e.endWithHook(t, e.key, recv.url())
	recv.waitFor(t, 1)
	e.settle(t) // the attempt under way ends, unrecorded
	e.settle(t) // and its delivery, still due, is not tried again
	if n := len(recv.requests()); n != 1 {
		t.Errorf("the receiver got %d requests while the attempt could not be recorded, want 1", n)
	}
	if !strings.Contains(e.logs.String(), `msg="record webhook attempt"`) {
		t.Errorf("the refused write is not in the log:\n%s", e.logs.String())
	}
	if _, err := e.srv.store.db.Exec(`DROP TRIGGER full`); err != nil {
		t.Fatal(err)
	}
	clock.Advance(unrecordedHold)
	e.settle(t)
	if d := e.deliveries(t, e.key, id)[0]; d.State != "delivered" || len(d.Attempts) != 1 || len(recv.requests()) != 2 {
		t.Errorf("after the hold: %+v, %d requests", d, len(recv.requests()))
	}
}

// TestWebhookJitter: each wait is within ±10% of the schedule, and the jitter does vary.
func TestWebhookJitter(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_800_000_000, 0)
	ws := &webhookSender{now: func() time.Time { return t0 }}
	fail := Attempt{At: t0, StatusCode: 500, Error: "HTTP 500"}
	for i, wait := range retrySchedule {
		for _, j := range []float64{0, 0.5, 0.999999} {
			ws.jitter = func() float64 { return j }
			state, next := ws.nextStep(Delivery{Attempts: i}, fail, nil)
			lo, hi := wait-wait/10-time.Millisecond, wait+wait/10+time.Millisecond
			if got := next.Sub(t0); state != "pending" || got < lo || got > hi {
				t.Errorf("retry %d, jitter %v: %s after %v, want %v±10%%", i+1, j, state, got, wait)
			}
		}
	}
	ws.jitter = newWebhookSender(nil, nil, time.Now, "", false, nil, nil).jitter
	seen := map[time.Time]bool{}
	for range 20 {
		_, next := ws.nextStep(Delivery{Attempts: 3}, fail, nil)
		seen[next] = true
	}
	if len(seen) < 2 {
		t.Error("the default jitter does not vary")
	}
}

// TestWebhookResponses sends one delivery per kind of response (through the redeliver endpoint) and
// checks what the sender makes of it: any 2xx is success; 3xx (not followed), 4xx and 5xx are
// retried on the schedule, later when Retry-After on a 429 or 503 says so; 410 stops for good.
func TestWebhookResponses(t *testing.T) {
	t.Parallel()
	target := newHookReceiver(t, nil)
	recv := newHookReceiver(t, nil)
	clock := newHookClock(time.Now().Add(time.Hour))
	e := newTestEnv(t, hookConfig(t.TempDir(), recv, target), hookTrust(recv, target), clock.install,
		func(s *server) { s.hooks.client.Timeout = 3 * time.Second }) // a hang is a timeout; an answer under load is not
	id, _ := e.endWithHook(t, e.key, recv.url())
	e.settle(t)
	now := clock.Now()
	httpDate := now.Add(time.Hour).UTC().Format(http.TimeFormat)
	big := bytes.Repeat([]byte("x"), 4<<20)
	cases := []struct {
		name    string
		respond func(http.ResponseWriter, *http.Request, int)
		state   string        // after the attempt
		wait    time.Duration // till the next attempt, when pending
		status  int           // recorded, 0 for none
	}{
		{"200", hookAnswer(200), "delivered", 0, 200},
		{"201", hookAnswer(201), "delivered", 0, 201},
		{"202", hookAnswer(202), "delivered", 0, 202},
		{"204", hookAnswer(204), "delivered", 0, 204},
		{"200 with a 4 MB body", func(w http.ResponseWriter, _ *http.Request, _ int) { w.Write(big) }, "delivered", 0, 200},
		{"301", hookAnswer(301, "Location", target.url()), "pending", 5 * time.Second, 301},
		{"302", hookAnswer(302, "Location", target.url()), "pending", 5 * time.Second, 302},
		{"307", hookAnswer(307, "Location", target.url()), "pending", 5 * time.Second, 307},
		{"308", hookAnswer(308, "Location", target.url()), "pending", 5 * time.Second, 308},
		{"400", hookAnswer(400), "pending", 5 * time.Second, 400},
		{"401", hookAnswer(401), "pending", 5 * time.Second, 401},
		{"404", hookAnswer(404), "pending", 5 * time.Second, 404},
		{"500", hookAnswer(500), "pending", 5 * time.Second, 500},
		{"502", hookAnswer(502), "pending", 5 * time.Second, 502},
		{"429 Retry-After: 120", hookAnswer(429, "Retry-After", "120"), "pending", 120 * time.Second, 429},
		{"503 Retry-After: HTTP date in 1h", hookAnswer(503, "Retry-After", httpDate), "pending", time.Hour, 503},
		{"503 Retry-After: 1 (sooner than the schedule)", hookAnswer(503, "Retry-After", "1"), "pending", 5 * time.Second, 503},
		{"429 Retry-After: 30 days (capped)", hookAnswer(429, "Retry-After", strconv.Itoa(30*86400)), "pending", 24 * time.Hour, 429},
		{"500 Retry-After: 3600 (only 429 and 503)", hookAnswer(500, "Retry-After", "3600"), "pending", 5 * time.Second, 500},
		{"503 Retry-After: garbage", hookAnswer(503, "Retry-After", "soon"), "pending", 5 * time.Second, 503},
		{"timeout", hookHang, "pending", 5 * time.Second, 0},
		{"connection dropped", hookDrop, "pending", 5 * time.Second, 0},
		{"410 Gone", hookAnswer(410), "failed", 0, 410},
	}
	var gone string
	var jobs []string
	for _, c := range cases {
		// Each case gets a finished job of its own: a job has at most one delivery queued.
		id := e.cloneJob(t, id)
		jobs = append(jobs, id)
		recv.setRespond(c.respond)
		did := e.redeliver(t, e.key, id)
		e.settle(t)
		d := e.delivery(t, e.key, id, did)
		if d.State != c.state || len(d.Attempts) != 1 {
			t.Errorf("%s: state %s, %d attempts, want %s after 1", c.name, d.State, len(d.Attempts), c.state)
			continue
		}
		a := d.Attempts[0]
		if code := a.StatusCode; (code == nil) != (c.status == 0) || (code != nil && *code != c.status) {
			t.Errorf("%s: status %v, want %d", c.name, code, c.status)
		}
		if (a.Error == nil) != (c.state == "delivered") {
			t.Errorf("%s: error %v", c.name, a.Error)
		}
		switch {
		case c.state != "pending" && d.NextAttemptAt != nil:
			t.Errorf("%s: next attempt %s, want none", c.name, *d.NextAttemptAt)
		case c.state == "pending" && (d.NextAttemptAt == nil || hookAPITime(t, *d.NextAttemptAt).Sub(now) != c.wait):
			t.Errorf("%s: next attempt %v, want in %v", c.name, d.NextAttemptAt, c.wait)
		}
		if c.state == "failed" {
			gone = did
		}
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("redirects were followed: the target got %d requests", n)
	}

	// A day and more later the receiver is fine: every retried delivery succeeds on its next attempt,
	// and the one that got 410 is never tried again.
	recv.setRespond(nil)
	clock.Set(now.Add(25 * time.Hour))
	e.settle(t)
	tries := 0
	var ds []apiDelivery
	for _, id := range jobs {
		ds = append(ds, e.deliveries(t, e.key, id)...)
	}
	for _, d := range ds {
		if d.ID == gone {
			if d.State != "failed" || len(d.Attempts) != 1 {
				t.Errorf("410 delivery after a day: %+v", d)
			}
			continue
		}
		if d.State != "delivered" {
			t.Errorf("delivery %s after a day: %s", d.ID, d.State)
		}
	}
	for _, r := range recv.requests() {
		if r.Header.Get("webhook-id") == gone {
			tries++
		}
	}
	if tries != 1 {
		t.Errorf("the 410 delivery was sent %d times, want 1", tries)
	}
}

// TestWebhookDeliveredAfterRestart: a delivery committed with the job's end but not yet sent when
// the process stops (as after kill -9 right after the commit) is sent by the next process on the
// same data directory, with the same webhook-id; and one whose first attempt failed keeps its id and
// its history across another restart.
func TestWebhookDeliveredAfterRestart(t *testing.T) {
	t.Parallel()
	recv := newHookReceiver(t, nil)
	dir := t.TempDir()
	// The three processes serve on different ports but, like a real deployment, under one public
	// URL, so the body every attempt sends is the same bytes.
	hookConfig := func(dir string, recv ...*hookReceiver) *config {
		cfg := hookConfig(dir, recv...)
		cfg.PublicURL = "https://videos.example.com"
		return cfg
	}

	// Process 1: its sender's clock is stuck in 1970, so nothing is ever due: the delivery stays in
	// the outbox, committed, never attempted.
	e1 := newTestEnv(t, hookConfig(dir, recv), hookTrust(recv), func(s *server) { s.hooks.now = func() time.Time { return time.Unix(0, 0) } })
	key := e1.key
	id, st := e1.endWithHook(t, key, recv.url())
	e1.settle(t)
	ds := e1.deliveries(t, key, id)
	if len(ds) != 1 || ds[0].State != "pending" || len(ds[0].Attempts) != 0 || len(recv.requests()) != 0 {
		t.Fatalf("before the restart: %+v, %d requests", ds, len(recv.requests()))
	}
	msgID := ds[0].ID
	e1.close()

	// Process 2 sends it at start-up; the receiver is down for maintenance (503).
	recv.setRespond(hookAnswer(503))
	clock := newHookClock(time.Now().Add(time.Second)) // not before the delivery was queued
	e2 := newTestEnv(t, hookConfig(dir, recv), hookTrust(recv), clock.install)
	e2.settle(t)
	reqs := recv.requests()
	if len(reqs) != 1 || reqs[0].Header.Get("webhook-id") != msgID {
		t.Fatalf("after the restart: %d requests, first webhook-id %q, want %s", len(reqs), reqs[0].Header.Get("webhook-id"), msgID)
	}
	e2.close()

	// Process 3, after the retry is due: delivered, same id, same body, signatures valid.
	recv.setRespond(nil)
	clock3 := newHookClock(clock.Now().Add(10 * time.Second))
	e3 := newTestEnv(t, hookConfig(dir, recv), hookTrust(recv), clock3.install)
	e3.settle(t)
	reqs = recv.requests()
	if len(reqs) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(reqs))
	}
	r := reqs[1]
	secret := e3.accountOf(t, key).WebhookSecret
	var event map[string]any
	json.Unmarshal(r.Body, &event)
	if r.Header.Get("webhook-id") != msgID || !bytes.Equal(r.Body, reqs[0].Body) || !reflect.DeepEqual(event, st) {
		t.Errorf("redelivered id %q body %s", r.Header.Get("webhook-id"), r.Body)
	}
	if !docsVerify(secret, r.Header, r.Body) || standardVerify(secret, r.Header, r.Body, clock3.Now()) != nil {
		t.Error("the delivery after restarts does not verify")
	}
	d := e3.delivery(t, key, id, msgID)
	if d.State != "delivered" || len(d.Attempts) != 2 || d.code(0) != 503 || d.code(1) != 200 {
		t.Errorf("history across restarts: %+v", d)
	}
}

// TestWebhookShutdownMidAttempt: stopping the service while an attempt is in flight records nothing,
// so the next process makes the attempt again, with the same id.
func TestWebhookShutdownMidAttempt(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	recv := newHookReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		started <- struct{}{}
		hookHang(w, r, n)
	})
	dir := t.TempDir()
	e1 := newTestEnv(t, hookConfig(dir, recv), hookTrust(recv))
	id, _ := e1.endWithHook(t, e1.key, recv.url())
	select {
	case <-started:
	case <-time.After(15 * time.Second):
		t.Fatal("no attempt started")
	}
	e1.close() // cancels the attempt in flight

	recv.setRespond(nil)
	e2 := newTestEnv(t, hookConfig(dir, recv), hookTrust(recv))
	e2.settle(t)
	reqs := recv.requests()
	if len(reqs) != 2 || reqs[0].Header.Get("webhook-id") != reqs[1].Header.Get("webhook-id") {
		t.Fatalf("requests: %d", len(reqs))
	}
	d := e2.deliveries(t, e1.key, id)[0]
	if d.State != "delivered" || len(d.Attempts) != 1 {
		t.Errorf("after the interrupted attempt: %+v", d)
	}
}

// TestWebhookDeliveriesEndpoints covers the endpoints' refusals.
func TestWebhookDeliveriesEndpoints(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	done := insertJobs(t, e, e.key, 1, StatusCompleted)[0] // no webhookUrl
	bob := e.newKey(t, "bob")
	running := insertJobs(t, e, bob, 1, StatusProcessing)[0]
	if _, err := e.srv.store.db.Exec(`UPDATE jobs SET webhook_url = 'https://hooks.example.com/' WHERE id = ?`, running); err != nil {
		t.Fatal(err)
	}

	if ds := e.deliveries(t, e.key, done); len(ds) != 0 {
		t.Errorf("deliveries of a job without webhook: %+v", ds)
	}
	cases := []struct {
		method, path, key string
		status            int
	}{
		{"POST", "/api/jobs/" + done + "/deliveries/redeliver", e.key, 409},    // no webhookUrl
		{"POST", "/api/jobs/" + running + "/deliveries/redeliver", bob, 409},   // not finished
		{"POST", "/api/jobs/" + running + "/deliveries/redeliver", e.key, 404}, // not yours
		{"GET", "/api/jobs/" + running + "/deliveries", e.key, 404},
		{"GET", "/api/jobs/cnotarealjobid00000000000/deliveries", e.key, 404},
		{"POST", "/api/jobs/cnotarealjobid00000000000/deliveries/redeliver", e.key, 404},
		{"GET", "/api/jobs/" + done + "/deliveries", "", 401},
		{"POST", "/api/jobs/" + done + "/deliveries/redeliver", "", 401},
		{"GET", "/api/jobs/" + done + "/deliveries/redeliver", e.key, 405},
	}
	for _, c := range cases {
		resp, b := e.do(t, c.method, c.path, c.key, nil)
		errorBody(t, resp, b, c.status)
	}
}

// ---- SSRF ----

var hookPublicIP = netip.MustParseAddr("93.184.215.14") // never dialled: every test that uses it refuses first

// ssrfResolver plays DNS for the SSRF tests. Legacy numeric spellings resolve to 127.0.0.1, as
// getaddrinfo resolves them; rebind.example.com answers a public address the first time and
// 127.0.0.1 after (DNS rebinding).
type ssrfResolver struct {
	rebinds atomic.Int32
}

func (r *ssrfResolver) lookup(_ context.Context, host string) ([]netip.Addr, error) {
	a := netip.MustParseAddr
	switch host {
	case "127.1", "0177.0.0.1", "2130706433", "0x7f.0.0.1", "0x7f000001", "127.0.1":
		return []netip.Addr{a("127.0.0.1")}, nil
	case "localhost", "localhost.":
		return []netip.Addr{a("127.0.0.1"), a("::1")}, nil
	case "hooks.example.com":
		return []netip.Addr{hookPublicIP}, nil
	case "mixed.example.com":
		return []netip.Addr{a("10.0.0.1"), hookPublicIP}, nil
	case "internal.example.com":
		return []netip.Addr{a("10.1.2.3"), a("fd00::1"), a("::ffff:192.168.0.1")}, nil
	case "loopback.example.com":
		return []netip.Addr{a("127.0.0.1"), a("::1")}, nil
	case "metadata.example.com":
		return []netip.Addr{a("169.254.169.254")}, nil
	case "rebind.example.com":
		if r.rebinds.Add(1) == 1 {
			return []netip.Addr{hookPublicIP}, nil
		}
		return []netip.Addr{a("127.0.0.1")}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// TestWebhookSSRFAtSubmit: with the address rule on, a webhookUrl that is not https, names a
// non-public address however spelled, localhost, a name resolving only to such addresses, or a port
// not configured, is a 400 at submission.
func TestWebhookSSRFAtSubmit(t *testing.T) {
	t.Parallel()
	res := &ssrfResolver{}
	e := newTestEnv(t, hangConfig(t, 1), func(s *server) { s.hooks.lookup = res.lookup }) // accepted jobs never end
	refused := []string{
		"http://hooks.example.com/hook",
		"https://127.0.0.1/", "https://127.1/", "https://127.0.1/", "https://0177.0.0.1/", "https://2130706433/",
		"https://0x7f000001/", "https://0x7f.0.0.1/", "https://%31%32%37.0.0.1/", "https://127.0.0.1./",
		"https://[::ffff:127.0.0.1]/", "https://[::ffff:7f00:1]/", "https://[::127.0.0.1]/", "https://[64:ff9b::7f00:1]/",
		"https://[::1]/", "https://[::]/", "https://0.0.0.0/", "https://0/",
		"https://169.254.169.254/latest/meta-data/", "https://[::ffff:169.254.169.254]/", "https://[fe80::1]/", "https://[fe80::1%25eth0]/",
		"https://10.0.0.1/", "https://172.16.5.4/", "https://192.168.1.1/", "https://[::ffff:10.0.0.1]/", "https://[fd00::1]/",
		"https://100.64.0.1/", "https://224.0.0.1/", "https://[ff02::1]/", "https://255.255.255.255/",
		"https://localhost/", "https://LOCALHOST./", "https://api.localhost/",
		"https://loopback.example.com/", "https://internal.example.com/", "https://metadata.example.com/",
		"https://hooks.example.com:8443/", "https://hooks.example.com:80/", "https://user:pass@hooks.example.com/",
	}
	for i, u := range refused {
		// A key each, so that one wrongly accepted URL (an active job) does not mask the next.
		code, body := e.submit(t, e.newKey(t, fmt.Sprintf("ssrf-%d", i)), fixture(t, "img.jpg"), fixture(t, "tone.wav"), map[string]string{"webhookUrl": u})
		if msg, _ := body["error"].(string); code != http.StatusBadRequest || !strings.Contains(msg, "webhookUrl") {
			t.Errorf("%s: %d %v, want 400 about webhookUrl", u, code, body)
		}
	}
	// Public ones pass: one public address is enough at submission (the dial skips the others).
	for _, u := range []string{"https://hooks.example.com/hook", "https://mixed.example.com/hook", "https://nxdomain.example.com/hook", "https://93.184.215.14/hook", "https://HOOKS.example.com./x?y=1"} {
		code, body := e.submit(t, e.newKey(t, u), fixture(t, "img.jpg"), fixture(t, "tone.wav"), map[string]string{"webhookUrl": u})
		if code != http.StatusCreated {
			t.Errorf("%s: %d %v, want 201", u, code, body)
		}
	}
}

// TestWebhookSSRFAtDial: whatever got into the outbox, the dial check refuses every non-public
// address after DNS resolution, so no connection ever reaches one: a listener on every local address,
// on a port webhooks may use, counts no accept.
func TestWebhookSSRFAtDial(t *testing.T) {
	t.Parallel()
	addr, accepts := countingListener(t, ":0") // every local address
	_, port, _ := net.SplitHostPort(addr)
	res := &ssrfResolver{}
	cfg := testConfig(t.TempDir())
	cfg.WebhookPorts = []string{"443", port}
	e := newTestEnv(t, &cfg, func(s *server) { s.hooks.lookup = res.lookup })

	// DNS rebinding: public at submission, 127.0.0.1 when the sender dials.
	id, _ := e.finishWithHook(t, e.key, "https://rebind.example.com:"+port+"/hook")
	e.settle(t)
	ds := e.deliveries(t, e.key, id)
	refusal := "address refused: not a public address or port"
	// On a loaded machine the sender's retry may come before the test looks: every attempt is
	// refused the same way, each after a lookup of its own.
	if len(ds) != 1 || len(ds[0].Attempts) == 0 {
		t.Fatalf("rebinding delivery: %+v", ds)
	}
	for _, a := range ds[0].Attempts {
		if a.Error == nil || *a.Error != refusal || a.StatusCode != nil {
			t.Fatalf("rebinding delivery: attempt %+v, want refused with %q", a, refusal)
		}
	}
	if n, want := res.rebinds.Load(), int32(1+len(ds[0].Attempts)); n != want {
		t.Errorf("rebind.example.com looked up %d times, want %d (submit, and each dial)", n, want)
	}

	// URLs that never passed the submit check (stored by an older version, say): the dial check
	// alone must hold, for literal addresses in every spelling and for names.
	urls := []string{
		"127.0.0.1", "127.1", "127.0.1", "0177.0.0.1", "2130706433", "0x7f.0.0.1", "0x7f000001",
		"[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::127.0.0.1]", "[::1]", "[::]", "0.0.0.0", "[fe80::1%25lo]",
		"localhost", "loopback.example.com", "internal.example.com", "metadata.example.com",
		"169.254.169.254", "10.0.0.1", "100.64.0.1", "224.0.0.1",
	}
	for _, host := range urls {
		u := "https://" + host + ":" + port + "/hook"
		if _, err := e.srv.store.db.Exec(`UPDATE jobs SET webhook_url = ? WHERE id = ?`, u, id); err != nil {
			t.Fatal(err)
		}
		e.giveUp(t, id)
		did := e.redeliver(t, e.key, id)
		e.settle(t)
		d := e.delivery(t, e.key, id, did)
		if len(d.Attempts) != 1 || d.Attempts[0].Error == nil || *d.Attempts[0].Error != refusal || d.State != "pending" {
			t.Errorf("%s: %+v", u, d)
		}
	}
	// A public address on a port that is not configured is refused too, before any connection.
	if _, err := e.srv.store.db.Exec(`UPDATE jobs SET webhook_url = ? WHERE id = ?`, "https://93.184.215.14:8443/hook", id); err != nil {
		t.Fatal(err)
	}
	e.giveUp(t, id)
	did := e.redeliver(t, e.key, id)
	e.settle(t)
	if d := e.delivery(t, e.key, id, did); len(d.Attempts) != 1 || d.Attempts[0].Error == nil || *d.Attempts[0].Error != refusal {
		t.Errorf("port 8443: %+v", d)
	}
	if n := accepts.Load(); n != 0 {
		t.Errorf("%d connections reached the blocked listener", n)
	}
	// The listener does count: a connection of the test's own shows up.
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	eventually(t, 5*time.Second, func() error {
		if accepts.Load() == 0 {
			return errors.New("the counting listener does not count")
		}
		return nil
	})
	if n := accepts.Load(); n != 1 {
		t.Errorf("the counting listener counted %d connections, want 1", n)
	}
}

// TestBlockedAddrs is the address rule itself, for each range and the spellings that hide one.
func TestBlockedAddrs(t *testing.T) {
	t.Parallel()
	blocked := []string{
		"127.0.0.1", "127.255.255.254", "0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255",
		"192.168.0.1", "169.254.169.254", "169.254.0.1", "100.64.0.1", "100.127.255.255", "224.0.0.1", "239.255.255.250",
		"240.0.0.1", "255.255.255.255", "192.0.0.8", "192.0.2.1", "198.18.0.1", "198.51.100.1", "203.0.113.1", "192.88.99.1",
		"::", "::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:0.0.0.0", "::127.0.0.1", "::a00:1",
		"::ffff:0:7f00:1", "64:ff9b::7f00:1", "64:ff9b::808:808", "64:ff9b:1::1", "2002:7f00:1::", "2001::1", "2001:db8::1",
		"fc00::1", "fd12:3456::1", "fe80::1", "fec0::1", "feff::1", "fe80::1%eth0", "ff02::1", "100::1",
	}
	public := []string{"93.184.215.14", "8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "::ffff:8.8.8.8", "2606:4700:4700::1111", "2a00:1450:4001::1"}
	for _, s := range blocked {
		if !isBlockedAddr(netip.MustParseAddr(s)) {
			t.Errorf("%s is not blocked", s)
		}
	}
	for _, s := range public {
		if isBlockedAddr(netip.MustParseAddr(s)) {
			t.Errorf("%s is blocked", s)
		}
	}
	if !isBlockedAddr(netip.Addr{}) {
		t.Error("the zero address is not blocked")
	}
}

// TestResolveAddressWithFinalDot: a host written as an address with a final dot ("1.0.0.0.") is
// that address when the sender dials, as it is when the URL is checked, never a name for DNS to
// answer with another address.
func TestResolveAddressWithFinalDot(t *testing.T) {
	t.Parallel()
	ws := newWebhookSender(nil, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now, "", false, []string{"443"}, nil)
	ws.lookup = func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("10.1.2.3")}, nil
	}
	for host, want := range map[string]string{"1.0.0.0.": "1.0.0.0", "10.0.0.1.": "10.0.0.1", "example.com.": "10.1.2.3"} {
		got, err := ws.resolve(t.Context(), host)
		if err != nil || len(got) != 1 || got[0].String() != want {
			t.Errorf("resolve(%q) = %v, %v; want %s", host, got, err, want)
		}
	}
	if err := ws.CheckURL(t.Context(), "https://1.0.0.0./hook"); err != nil {
		t.Errorf("https://1.0.0.0./hook refused: %v", err)
	}
}
