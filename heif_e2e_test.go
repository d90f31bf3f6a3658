//go:build e2e

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EHEICCodedSizeOverCap: the real binary, sent a real 10240×10240 HEIC (heif-enc) whose ispe
// claims 16×16, answers a 400 that gives the coded size, never starts heif-convert (which would
// hold a 10240×10240 picture: ~600 MB), and the service with its child processes stays under
// 400 MB: vidgen's VmHWM plus the peak of every child it ran, sampled from /proc.
func TestE2EHEICCodedSizeOverCap(t *testing.T) {
	needTools(t, "heif-enc", "heif-convert")
	dir := t.TempDir()
	src := filepath.Join(dir, "big.png")
	ffmpegMake(t, "-f", "lavfi", "-i", "color=c=0x3366cc:s=10240x10240", "-frames:v", "1", src)
	heic := filepath.Join(dir, "big.heic")
	start := time.Now()
	if out, err := exec.Command("heif-enc", "-q", "10", "-p", "preset=ultrafast", "-o", heic, src).CombinedOutput(); err != nil {
		t.Fatalf("heif-enc: %v: %s", err, out)
	}
	t.Logf("heif-enc: %v", time.Since(start).Round(time.Millisecond))
	lying := filepath.Join(dir, "lying.heic")
	if err := os.WriteFile(lying, lieISPE(t, readFile(t, heic), 16, 16), 0o644); err != nil {
		t.Fatal(err)
	}

	dataDir := t.TempDir()
	key := createKeyCLI(t, dataDir, "heif")
	wrapper := markingScript(t, dir, "heif-convert", `exec heif-convert "$@"`)
	p := startVidgen(t, dataDir, "ffmpeg", nil, "-heif-convert", wrapper)
	pid := p.cmd.Process.Pid

	stop := treePeakRSS(t, pid)
	body, ctype := multipartBody(t, map[string]string{"image": lying, "audio": fixture(t, "tone.wav")}, nil)
	code, b, err := p.do("POST", "/api/jobs", key.APIKey, body, ctype)
	tree := stop()
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	json.Unmarshal(b, &v)
	if msg, _ := v["error"].(string); code != 400 || !strings.Contains(msg, "10240×10240") {
		t.Errorf("%d %s, want a 400 naming 10240×10240", code, b)
	}
	if _, err := os.Stat(wrapper + ".ran"); err == nil {
		t.Error("heif-convert was started for a picture over the cap")
	}
	service := vmHWM(t, pid)
	t.Logf("vidgen VmHWM %d MB; vidgen with its children peaked at %d MB", service>>20, tree>>20)
	if service > 400<<20 || tree > 400<<20 {
		t.Errorf("vidgen %d MB, with its children %d MB: want at most 400 MB each", service>>20, tree>>20)
	}
}
