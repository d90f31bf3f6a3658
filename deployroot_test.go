package main

import (
	"context"
	"strings"
	"testing"
)

// TestToolsFixWithoutSudo: the fix serve prints for a missing ffmpeg is a command a root login can
// run: a stock Debian server has no sudo.
func TestToolsFixWithoutSudo(t *testing.T) {
	t.Parallel()
	_, err := checkTools(context.Background(), config{FFmpeg: t.TempDir() + "/missing", FFprobe: "ffprobe"})
	if err == nil || !strings.Contains(err.Error(), "`apt-get install -y ffmpeg`") || strings.Contains(err.Error(), "sudo") {
		t.Errorf("missing ffmpeg: %v, want the apt-get command without sudo", err)
	}
}
