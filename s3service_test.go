package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// s3TestEnv starts a vidgen whose files live in the bucket VIDGEN_TEST_S3 names (under a prefix of
// its own), with redirect for -files-redirect.
func s3TestEnv(t *testing.T, redirect bool) (*testEnv, s3Settings) {
	t.Helper()
	st := testS3Settings(t)
	cfg := testConfig(t.TempDir())
	cfg.Files, cfg.FilesRedirect, cfg.S3 = "s3://"+st.Bucket+"/"+st.Prefix, redirect, st
	return newTestEnv(t, &cfg), st
}

// TestFilesS3Service: the real handler with its files in a bucket takes a job, renders it from the
// bucket's uploads, and serves the video through the node with ranges (Range, If-Range on its
// Last-Modified), its poster and its share page; the uploads and the outputs are in the bucket, the
// data directory keeps none of them, the uploads are deleted once the job ends, and /health names
// the backend.
func TestFilesS3Service(t *testing.T) {
	t.Parallel()
	e, _ := s3TestEnv(t, false)
	if resp, b := e.do(t, "GET", "/health", "", nil); resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"files":"s3","status":"ok","store":"sqlite"}` {
		t.Errorf("health: %d %s", resp.StatusCode, b)
	}
	id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.mp3"))
	st := e.wait(t, e.key, id, StatusCompleted)
	videoURL := st["outputVideo"].(string)
	video, _ := download(t, videoURL)
	checkVideo(t, video, fixture(t, "tone.mp3"))

	ctx := context.Background()
	token := strings.TrimSuffix(videoURL[strings.LastIndex(videoURL, "/")+1:], ".mp4")
	if n, err := e.srv.files.Stat(ctx, outputKey(token, "mp4")); err != nil || n != int64(len(video)) {
		t.Errorf("the video in the bucket: %d bytes, %v; downloaded %d", n, err, len(video))
	}
	if got, err := e.srv.files.List(ctx, "inputs/"); err != nil || len(got) != 0 {
		t.Errorf("uploads left in the bucket after the job ended: %v, %v", entryKeys(got), err)
	}
	for _, dir := range []string{"inputs", "outputs"} {
		if left, _ := os.ReadDir(filepath.Join(e.srv.cfg.DataDir, dir)); len(left) > 0 {
			t.Errorf("the data directory's %s/ holds %d files: they belong in the bucket", dir, len(left))
		}
	}

	resp, part := mustRequest(t, "GET", videoURL, "", nil, "Range", "bytes=100-199")
	if resp.StatusCode != 206 || !bytes.Equal(part, video[100:200]) || resp.Header.Get("Content-Range") != "bytes 100-199/"+itoa(len(video)) {
		t.Errorf("range: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Range"), len(part))
	}
	lastMod := resp.Header.Get("Last-Modified")
	if lastMod == "" {
		t.Fatal("no Last-Modified on the video")
	}
	resp, part = mustRequest(t, "GET", videoURL, "", nil, "Range", "bytes=-50", "If-Range", lastMod)
	if resp.StatusCode != 206 || !bytes.Equal(part, video[len(video)-50:]) {
		t.Errorf("If-Range with the Last-Modified: %d, %d bytes", resp.StatusCode, len(part))
	}
	resp, part = mustRequest(t, "GET", videoURL, "", nil, "Range", "bytes=0-9", "If-Range", "Mon, 02 Jan 2006 15:04:05 GMT")
	if resp.StatusCode != 200 || !bytes.Equal(part, video) {
		t.Errorf("If-Range with another date: %d, %d bytes; want the whole video", resp.StatusCode, len(part))
	}
	checkPoster(t, st["outputThumbnail"].(string), 320, 240)
	page, presp := download(t, st["outputShareLink"].(string))
	if !strings.HasPrefix(presp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(page), `content="`+videoURL+`"`) {
		t.Errorf("share page: %q, names the video: %v", presp.Header.Get("Content-Type"), strings.Contains(string(page), videoURL))
	}

	// Retention deletes the video and the poster from the bucket (a cutoff past the job's end, as if
	// -retention had passed): both objects gone, and the link 410 as on disk.
	if n, err := e.srv.jobs.expire(ctx, time.Now().Add(time.Minute)); n != 2 || err != nil {
		t.Fatalf("expire: %d files deleted, %v; want the video and the poster", n, err)
	}
	if got, err := e.srv.files.List(ctx, "outputs/"); err != nil || len(got) != 0 {
		t.Errorf("outputs left in the bucket after expiry: %v, %v", entryKeys(got), err)
	}
	if resp, _ := mustRequest(t, "GET", videoURL, "", nil); resp.StatusCode != http.StatusGone {
		t.Errorf("an expired video: %d, want 410", resp.StatusCode)
	}

	// A bucket that stops answering makes /health 503, so a load balancer takes the node out, once
	// the last answer it keeps has aged (s3HealthTTL).
	b := e.srv.files.(*s3Files)
	b.bucket = "gone-" + randomTestHex(t)
	b.health.now = func() time.Time { return time.Now().Add(s3HealthTTL) }
	if resp, b := e.do(t, "GET", "/health", "", nil); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "cannot reach its bucket") {
		t.Errorf("health with the bucket gone: %d %s", resp.StatusCode, b)
	}
}

// TestFilesS3Redirect: with -files-redirect a download is a 302, never cached, to a presigned URL
// that serves the video with its type and its ranges; a video gone from the bucket is 410.
func TestFilesS3Redirect(t *testing.T) {
	t.Parallel()
	e, _ := s3TestEnv(t, true)
	id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.mp3"))
	st := e.wait(t, e.key, id, StatusCompleted)
	videoURL := st["outputVideo"].(string)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(videoURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.Contains(loc, "X-Amz-Signature=") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("download: %d Location %q Cache-Control %q", resp.StatusCode, loc, resp.Header.Get("Cache-Control"))
	}
	video, vresp := download(t, videoURL) // followed
	if vresp.Header.Get("Content-Type") != "video/mp4" {
		t.Errorf("presigned video's Content-Type %q", vresp.Header.Get("Content-Type"))
	}
	checkVideo(t, video, fixture(t, "tone.mp3"))
	// A browser applies the share page's policy to where the 302 leads: the bucket's origin.
	_, presp := download(t, st["outputShareLink"].(string))
	origin := loc[:strings.Index(loc[len("http://"):], "/")+len("http://")]
	page, _ := mustRequest(t, "GET", e.hs.URL+"/", "", nil) // the page to try the service plays the video too
	for name, csp := range map[string]string{"share page": presp.Header.Get("Content-Security-Policy"), "page": page.Header.Get("Content-Security-Policy")} {
		if !strings.Contains(csp, "media-src 'self' "+e.srv.cfg.PublicURL+" "+origin+";") || !strings.Contains(csp, "img-src 'self' "+e.srv.cfg.PublicURL+" "+origin+";") {
			t.Errorf("the %s's Content-Security-Policy %q does not let the video and poster come from %s", name, csp, origin)
		}
	}
	req, _ := http.NewRequest("GET", loc, nil)
	req.Header.Set("Range", "bytes=10-19")
	rresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(rresp.Body)
	rresp.Body.Close()
	if rresp.StatusCode != 206 || !bytes.Equal(part, video[10:20]) {
		t.Errorf("range on the presigned URL: %d, %d bytes", rresp.StatusCode, len(part))
	}
	token := strings.TrimSuffix(videoURL[strings.LastIndex(videoURL, "/")+1:], ".mp4")
	if _, err := removeOutputs(context.Background(), e.srv.files, token); err != nil {
		t.Fatal(err)
	}
	if resp, _ := mustRequest(t, "GET", videoURL, "", nil); resp.StatusCode != http.StatusGone {
		t.Errorf("a deleted video with -files-redirect: %d, want 410", resp.StatusCode)
	}
}

// TestFilesS3RefusedUploads: submissions racing for one key's slot each place their uploads in the
// bucket before the database refuses all but one; the refused ones' objects are deleted, so the
// bucket holds the accepted job's image and audio alone.
func TestFilesS3RefusedUploads(t *testing.T) {
	t.Parallel()
	st := testS3Settings(t)
	cfg := hangConfig(t, 1) // the accepted job stays active, its uploads in the bucket
	cfg.TrustProxy = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cfg.Files, cfg.S3 = "s3://"+st.Bucket+"/"+st.Prefix, st
	e := newTestEnv(t, cfg)
	if count := raceSubmissions(t, e, 4); count[201] != 1 {
		t.Fatalf("got %v, want one 201", count)
	}
	got, err := e.srv.files.List(context.Background(), "inputs/")
	if err != nil {
		t.Fatal(err)
	}
	if keys := entryKeys(got); len(keys) != 2 || !strings.HasSuffix(keys[0], ".audio") || !strings.HasSuffix(keys[1], ".image") ||
		strings.TrimSuffix(keys[0], ".audio") != strings.TrimSuffix(keys[1], ".image") {
		t.Errorf("the bucket's uploads: %v; want one job's audio and image", keys)
	}
}
