package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestShowProgressInterrupted: a render that ends without a video (SIGINT, a failure) never shows
// 100%, in lines or as a bar; one that made its video does.
func TestShowProgressInterrupted(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"lines", "bar"} {
		for _, rendered := range []bool{false, true} {
			rd := &renderer{now: time.Now, progress: map[string]*jobProgress{"j": {started: time.Now()}}}
			done := make(chan struct{})
			close(done)
			var w bytes.Buffer
			showProgress(&renderStderr{w: &w}, mode, rd, "j", done, func() bool { return rendered })
			if got := strings.Contains(w.String(), "100%"); got != rendered {
				t.Errorf("%s, rendered %v: %q; want 100%% shown only for a video made", mode, rendered, w.String())
			}
		}
	}
}
