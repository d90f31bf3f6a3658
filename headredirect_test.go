package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

// TestFilesS3RedirectHead: with -files-redirect, a HEAD on a video or a poster is answered by
// vidgen with the object's type and size (a presigned URL is signed for GET alone: following a 302
// with HEAD got 403), while a GET still redirects.
func TestFilesS3RedirectHead(t *testing.T) {
	t.Parallel()
	e, _ := s3TestEnv(t, true)
	id := e.mustSubmit(t, e.key, fixture(t, "img.jpg"), fixture(t, "tone.mp3"))
	st := e.wait(t, e.key, id, StatusCompleted)
	for _, c := range []struct{ field, ext, ctype string }{{"outputVideo", "mp4", "video/mp4"}, {"outputThumbnail", "jpg", "image/jpeg"}} {
		u, _ := st[c.field].(string)
		token := strings.TrimSuffix(u[strings.LastIndex(u, "/")+1:], "."+c.ext)
		size, err := e.srv.files.Stat(context.Background(), outputKey(token, c.ext))
		if err != nil {
			t.Fatal(err)
		}
		resp, _ := mustRequest(t, "HEAD", u, "", nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.ctype || resp.Header.Get("Content-Length") != strconv.FormatInt(size, 10) {
			t.Errorf("HEAD %s: %d %q, Content-Length %q; want 200 %s, %d", c.field, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Length"), c.ctype, size)
		}
	}
}
