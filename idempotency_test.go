package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// specCheckerFor checks requests to e, and their responses, against openapi.yaml.
func specCheckerFor(t testing.TB, e *testEnv) *specChecker {
	t.Helper()
	h := e.srv.routes().(routedHandler)
	return &specChecker{doc: loadSpec(t), name: routeNamer(h.router), base: e.hs.URL, seen: map[string]bool{}, ctx: context.Background()}
}

// submission is a multipart body of files (part name → path) and fields, read whole, with its
// Content-Type.
func submission(t testing.TB, files, fields map[string]string) ([]byte, string) {
	t.Helper()
	body, ctype := multipartBody(t, files, fields)
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return b, ctype
}

// TestIdempotencyKey: a retry with the same Idempotency-Key and the same request gets the first
// answer (status, body, Location) and makes no second job; the same key with another request is a
// 422; the key is per account; a key in the draft's quoted form is the same key; a malformed key
// is a 400 that says what is accepted; a refused submission frees its key.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, hangConfig(t, 1)) // jobs stay active: without the key, a retry is a 409
	c := specCheckerFor(t, e)
	files := map[string]string{"image": fixture(t, "img.jpg"), "audio": fixture(t, "tone.wav")}
	body, ctype := submission(t, files, map[string]string{"size": "square"})
	const key = "3f2b8c1e-9d4a-4e7b-8a6c-1b2d3e4f5a6b"

	first, firstBody := c.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype, "Idempotency-Key", key)
	if first.StatusCode != http.StatusCreated {
		t.Fatalf("first: %d %s", first.StatusCode, firstBody)
	}
	id := decodeJSON(t, first, firstBody)["jobId"].(string)
	// The same request with its parts framed anew (another boundary) and in another order is the
	// same request.
	reframed, ctype2 := submission(t, map[string]string{"audio": files["audio"], "image": files["image"]}, map[string]string{"size": "square"})
	if bytes.Equal(reframed, body) {
		t.Fatal("the reframed body is the same bytes")
	}
	for _, retry := range []struct {
		body  []byte
		ctype string
		key   string
	}{{body, ctype, key}, {reframed, ctype2, key}, {body, ctype, `"` + key + `"`}} {
		resp, b := c.do(t, "POST", "/api/jobs", e.key, retry.body, "Content-Type", retry.ctype, "Idempotency-Key", retry.key)
		if resp.StatusCode != first.StatusCode || !bytes.Equal(b, firstBody) || resp.Header.Get("Location") != first.Header.Get("Location") {
			t.Errorf("retry with key %s: %d %s (Location %q), want %d %s (Location %q)", retry.key, resp.StatusCode, b,
				resp.Header.Get("Location"), first.StatusCode, firstBody, first.Header.Get("Location"))
		}
		if resp.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("retry with key %s: Idempotent-Replayed %q", retry.key, resp.Header.Get("Idempotent-Replayed"))
		}
	}
	jobs, err := e.srv.store.ListJobs(t.Context(), e.accountOf(t, e.key).ID, JobFilter{Limit: 10})
	if err != nil || len(jobs) != 1 || jobs[0].ID != id {
		t.Fatalf("the account has jobs %v (%v), want only %s", jobs, err, id)
	}
	// Without the key, the same request is a second job, refused while the first is active.
	resp, b := c.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype)
	errorBody(t, resp, b, http.StatusConflict)
	// The same key with another request: a field changed, a part left out, another file.
	for name, other := range map[string][]string{
		"another size":  {"size", "portrait"},
		"a field added": {"waveform", "bars"},
	} {
		fields := map[string]string{"size": "square", other[0]: other[1]}
		b2, ct := submission(t, files, fields)
		resp, b := c.do(t, "POST", "/api/jobs", e.key, b2, "Content-Type", ct, "Idempotency-Key", key)
		if msg := errorBody(t, resp, b, http.StatusUnprocessableEntity); !strings.Contains(msg, "Idempotency-Key") {
			t.Errorf("%s: %q", name, msg)
		}
	}
	b3, ct3 := submission(t, map[string]string{"image": fixture(t, "img.png"), "audio": files["audio"]}, map[string]string{"size": "square"})
	resp, b = c.do(t, "POST", "/api/jobs", e.key, b3, "Content-Type", ct3, "Idempotency-Key", key)
	errorBody(t, resp, b, http.StatusUnprocessableEntity)

	// Another account's key of the same spelling is its own.
	other := e.newKey(t, "other")
	resp, b = c.do(t, "POST", "/api/jobs", other, body, "Content-Type", ctype, "Idempotency-Key", key)
	if resp.StatusCode != http.StatusCreated || decodeJSON(t, resp, b)["jobId"] == id {
		t.Errorf("another account's first use of the key: %d %s", resp.StatusCode, b)
	}

	// Malformed keys: 400, whatever the body.
	for _, bad := range []string{"", `""`, "has space", "ünï", strings.Repeat("k", maxIdempotencyKey+1), "a,b", `"unclosed`, "semi;colon"} {
		resp, b := c.refused(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype, "Idempotency-Key", bad)
		if msg := errorBody(t, resp, b, http.StatusBadRequest); !strings.Contains(msg, "Idempotency-Key must be") {
			t.Errorf("key %q: %q", bad, msg)
		}
	}
	req, _ := http.NewRequest("POST", e.hs.URL+"/api/jobs", bytes.NewReader(body))
	req.Header.Set("X-API-Key", e.key)
	req.Header.Set("Content-Type", ctype)
	req.Header.Add("Idempotency-Key", "one")
	req.Header.Add("Idempotency-Key", "two")
	two, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(two.Body)
	two.Body.Close()
	errorBody(t, two, b, http.StatusBadRequest)
	if n := strings.Count(string(b), "Idempotency-Key"); n == 0 {
		t.Errorf("two keys: %s", b)
	}

	// A submission refused with an error keeps nothing: the key's next use is processed afresh.
	fresh := e.newKey(t, "fresh")
	textImage, ct4 := submission(t, map[string]string{"image": writeFixture(t, "notes.txt", []byte("not a picture, just words")), "audio": files["audio"]}, nil)
	resp, b = c.do(t, "POST", "/api/jobs", fresh, textImage, "Content-Type", ct4, "Idempotency-Key", key)
	errorBody(t, resp, b, http.StatusUnsupportedMediaType)
	resp, b = c.do(t, "POST", "/api/jobs", fresh, body, "Content-Type", ctype, "Idempotency-Key", key)
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("after a refused submission, the key's next use: %d %s", resp.StatusCode, b)
	}
}

// TestIdempotencyKeyExpires: a key is remembered for a day from its first use, not longer: after
// that, its next use is a new submission (here a 409, the first job being still active), not a 422.
func TestIdempotencyKeyExpires(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Now()}
	e := newTestEnv(t, hangConfig(t, 1), func(s *server) { s.now = clock.Now })
	files := map[string]string{"image": fixture(t, "img.jpg"), "audio": fixture(t, "tone.wav")}
	body, ctype := submission(t, files, nil)
	resp, b := e.do(t, "POST", "/api/jobs", e.key, bytes.NewReader(body), "Content-Type", ctype, "Idempotency-Key", "k1")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("first: %d %s", resp.StatusCode, b)
	}
	other, ct := submission(t, files, map[string]string{"size": "portrait"})
	clock.Advance(idempotencyTTL - time.Minute)
	resp, b = e.do(t, "POST", "/api/jobs", e.key, bytes.NewReader(other), "Content-Type", ct, "Idempotency-Key", "k1")
	errorBody(t, resp, b, http.StatusUnprocessableEntity)
	clock.Advance(2 * time.Minute)
	resp, b = e.do(t, "POST", "/api/jobs", e.key, bytes.NewReader(other), "Content-Type", ct, "Idempotency-Key", "k1")
	if msg := errorBody(t, resp, b, http.StatusConflict); !strings.Contains(msg, "active job") {
		t.Errorf("after a day: %q", msg)
	}
	// The hourly sweep deletes keys past their day (k1's last use was refused, which kept nothing).
	if _, err := e.srv.store.db.Exec(`INSERT INTO idempotency_keys (key_id, idem_key, created_at) VALUES (?, 'old', ?)`,
		e.accountOf(t, e.key).ID, ms(clock.Now().Add(-idempotencyTTL-time.Hour))); err != nil {
		t.Fatal(err)
	}
	if n, err := e.srv.store.PruneIdempotencyKeys(t.Context(), clock.Now().Add(-idempotencyTTL)); err != nil || n != 1 {
		t.Errorf("pruned %d keys (%v), want 1", n, err)
	}
}

// TestIdempotencyRacingRetry: a retry sent while the first request with its key is still being
// received gets a 409 that says so, and makes no job; once the first is answered, a retry gets
// its answer.
func TestIdempotencyRacingRetry(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, hangConfig(t, 1))
	c := specCheckerFor(t, e)
	body, ctype := submission(t, map[string]string{"image": fixture(t, "img.jpg"), "audio": fixture(t, "tone.wav")}, nil)
	const key = "racing-1"

	// The first request sends half its body and waits.
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	var first *http.Response
	var firstBody []byte
	var firstErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		first, firstBody, firstErr = request(nil, "POST", e.hs.URL+"/api/jobs", e.key, pr, "Content-Type", ctype, "Idempotency-Key", key)
	}()
	if _, err := pw.Write(body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	// The claim is taken when the request's headers are in, before its body is read.
	eventually(t, 10*time.Second, func() error {
		var n int
		if err := e.srv.store.db.QueryRow(`SELECT count(*) FROM idempotency_keys WHERE idem_key = ? AND status_code IS NULL`, key).Scan(&n); err != nil || n != 1 {
			return io.ErrUnexpectedEOF
		}
		return nil
	})
	resp, b := c.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype, "Idempotency-Key", key)
	if msg := errorBody(t, resp, b, http.StatusConflict); !strings.Contains(msg, "still being received") {
		t.Errorf("racing retry: %q", msg)
	}
	if _, err := pw.Write(body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	wg.Wait()
	if firstErr != nil || first.StatusCode != http.StatusCreated {
		t.Fatalf("first: %v %v %s", firstErr, first, firstBody)
	}
	resp, b = c.do(t, "POST", "/api/jobs", e.key, body, "Content-Type", ctype, "Idempotency-Key", key)
	if resp.StatusCode != http.StatusCreated || !bytes.Equal(b, firstBody) {
		t.Errorf("retry after the answer: %d %s, want 201 %s", resp.StatusCode, b, firstBody)
	}
	// A claim left by a process that died mid-request is released at the next start.
	if _, err := e.srv.store.db.Exec(`INSERT INTO idempotency_keys (key_id, idem_key, created_at) VALUES (?, 'dead', ?)`,
		e.accountOf(t, e.key).ID, ms(time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.store.ReleaseAbandonedIdempotencyKeys(t.Context(), e.srv.jobs.leases.node+"/"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := e.srv.store.db.QueryRow(`SELECT count(*) FROM idempotency_keys`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d keys left (%v), want 1 (the answered one)", n, err)
	}
}

// FuzzIdempotencyKey: whatever the header holds, a key accepted is 1 to maxIdempotencyKey
// characters of idempotencyKeyChars, the header's value or that value between double quotes.
func FuzzIdempotencyKey(f *testing.F) {
	for _, s := range []string{"3f2b8c1e-9d4a-4e7b-8a6c-1b2d3e4f5a6b", `"abc"`, `""`, "a b", "\x00", strings.Repeat("x", 300), `"a"b"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{}
		h.Set("Idempotency-Key", v)
		key, err := idempotencyKeyOf(h)
		if err != nil {
			if kindOf(err) != kindInvalid {
				t.Fatalf("%q: %v is not a 400", v, err)
			}
			return
		}
		if key == "" || len(key) > maxIdempotencyKey || strings.Trim(key, idempotencyKeyChars) != "" {
			t.Fatalf("%q: accepted key %q", v, key)
		}
		if trimmed := strings.TrimSpace(v); trimmed != key && trimmed != `"`+key+`"` {
			t.Fatalf("%q: key %q is not the header's value", v, key)
		}
	})
}
