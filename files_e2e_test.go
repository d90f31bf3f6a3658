//go:build e2e

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EFilesS3Binary: the real binary configured as an operator would, by flags and VIDGEN_S3_*
// variables, keeps its files in the bucket: a job renders, /health says s3, the video downloads
// with a range, and after a kill -9 and a restart on the same data directory the start-up sweep
// keeps the video (a job claims it) and the link still serves it.
func TestE2EFilesS3Binary(t *testing.T) {
	t.Parallel()
	st := testS3Settings(t)
	dir := t.TempDir()
	k := createKeyCLI(t, dir, "s3")
	env := []string{"VIDGEN_S3_ACCESS_KEY_ID=" + st.AccessKeyID, "VIDGEN_S3_SECRET_ACCESS_KEY=" + st.SecretAccessKey, "VIDGEN_S3_REGION=" + st.Region}
	args := []string{"-files", "s3://" + st.Bucket + "/" + st.Prefix, "-s3-endpoint", st.Endpoint, "-s3-path-style"}
	p := startVidgen(t, dir, "ffmpeg", env, args...)
	if h := p.mustDo(t, "GET", "/health", "", nil, "", 200); h["files"] != "s3" {
		t.Errorf("health: %v", h)
	}
	id := p.submit(t, k.APIKey)
	videoURL := p.waitStatus(t, k.APIKey, id, StatusCompleted)["outputVideo"].(string)
	video, _ := download(t, videoURL)
	if left, _ := os.ReadDir(filepath.Join(dir, "outputs")); len(left) > 0 {
		t.Errorf("the data directory holds %d outputs: they belong in the bucket", len(left))
	}
	p.kill9()

	p = startVidgen(t, dir, "ffmpeg", env, args...)
	videoURL = p.url + videoURL[strings.Index(videoURL, "/v/"):] // the new process's port
	resp, part := mustRequest(t, "GET", videoURL, "", nil, "Range", "bytes=0-99")
	if resp.StatusCode != 206 || !bytes.Equal(part, video[:100]) {
		t.Errorf("range after a restart: %d, %d bytes", resp.StatusCode, len(part))
	}
}
