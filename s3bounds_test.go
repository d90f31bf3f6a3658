package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hungBucket is a loopback address that accepts connections and never answers, as a bucket whose
// server is stopped (kill -STOP) does.
func hungBucket(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// TestS3HungBucket: against a bucket that never answers, every call of the S3 file store ends with
// an error once its bound (shortened here to 200 ms) has passed, instead of waiting for ever.
func TestS3HungBucket(t *testing.T) {
	t.Parallel()
	f, err := newS3Client(context.Background(), s3Settings{Bucket: "hung", Endpoint: hungBucket(t), PathStyle: true,
		Region: "us-east-1", AccessKeyID: "k", SecretAccessKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	f.opTimeout = 200 * time.Millisecond
	dir := t.TempDir()
	calls := map[string]func(ctx context.Context) error{
		"Stat":   func(ctx context.Context) error { _, err := f.Stat(ctx, "inputs/a.image"); return err },
		"Open":   func(ctx context.Context) error { _, err := f.Open(ctx, "inputs/a.image"); return err },
		"Put":    func(ctx context.Context) error { return f.Put(ctx, "inputs/a.image", strings.NewReader("x"), 1) },
		"Delete": func(ctx context.Context) error { return f.Delete(ctx, "inputs/a.image") },
		"List":   func(ctx context.Context) error { _, err := f.List(ctx, "inputs/"); return err },
		"Local":  func(ctx context.Context) error { _, err := f.Local(ctx, "inputs/a.image", dir); return err },
		"Read": func(ctx context.Context) error {
			r := &s3Reader{ctx: ctx, f: f, key: "outputs/a.mp4", size: 100}
			_, err := r.Read(make([]byte, 10))
			return err
		},
	}
	var wg sync.WaitGroup
	for name, call := range calls {
		wg.Go(func() {
			done := make(chan error, 1)
			go func() { done <- call(context.Background()) }()
			select {
			case err := <-done:
				if err == nil {
					t.Errorf("%s on a hung bucket: no error", name)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("%s on a hung bucket: still waiting after 30 s (its bound is 200 ms)", name)
			}
		})
	}
	wg.Wait()
}

// TestCachedCheck: callers within ttl share one check, failed or not, concurrent ones too; the
// next caller after ttl runs another.
func TestCachedCheck(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	clock := time.Unix(1e9, 0)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	broken := errors.New("bucket does not answer")
	c := newCachedCheck(func(context.Context) error { calls.Add(1); return broken }, 5*time.Second, now)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := c.do(context.Background()); !errors.Is(err, broken) {
				t.Errorf("do: %v, want the check's error", err)
			}
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("20 callers within the ttl ran %d checks, want 1", n)
	}
	mu.Lock()
	clock = clock.Add(6 * time.Second)
	mu.Unlock()
	c.do(context.Background())
	if n := calls.Load(); n != 2 {
		t.Errorf("a caller after the ttl: %d checks in all, want 2", n)
	}
}

// TestFilesS3HealthCached: /health asks the bucket at most once every s3HealthTTL, however many
// anonymous requests come (its clock frozen here); HEAD requests on the bucket are counted on a
// proxy in front of the real S3 server.
func TestFilesS3HealthCached(t *testing.T) {
	t.Parallel()
	st := testS3Settings(t)
	target, err := url.Parse(st.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var heads atomic.Int32
	proxy := httputil.NewSingleHostReverseProxy(target)
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && strings.Trim(r.URL.Path, "/") == st.Bucket {
			heads.Add(1)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(ps.Close)
	st.Endpoint = ps.URL
	cfg := testConfig(t.TempDir())
	cfg.Files, cfg.S3 = "s3://"+st.Bucket+"/"+st.Prefix, st
	var mu sync.Mutex
	clock := time.Now()
	e := newTestEnv(t, &cfg, func(s *server) {
		s.files.(*s3Files).health.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	})
	before := heads.Load()
	for range 20 {
		if resp, b := e.do(t, "GET", "/api/health", "", nil); resp.StatusCode != 200 {
			t.Fatalf("health: %d %s", resp.StatusCode, b)
		}
	}
	if n := heads.Load() - before; n != 1 {
		t.Errorf("20 health requests made %d HEAD requests on the bucket, want 1", n)
	}
	mu.Lock()
	clock = clock.Add(s3HealthTTL + time.Second)
	mu.Unlock()
	e.do(t, "GET", "/api/health", "", nil)
	if n := heads.Load() - before; n != 2 {
		t.Errorf("after the ttl: %d HEAD requests in all, want 2", n)
	}
}
