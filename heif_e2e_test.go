//go:build e2e

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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

	stop := make(chan struct{})
	var wg sync.WaitGroup
	peaks := map[int]int64{} // child pid: its VmHWM, in bytes
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			for _, c := range descendants(pid) {
				if hwm := procStatusBytes(c, "VmHWM"); hwm > peaks[c] {
					peaks[c] = hwm
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	body, ctype := multipartBody(t, map[string]string{"image": lying, "audio": fixture(t, "tone.wav")}, nil)
	code, b, err := p.do("POST", "/api/jobs", key.APIKey, body, ctype)
	close(stop)
	wg.Wait()
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
	service := procStatusBytes(pid, "VmHWM")
	var children int64
	for _, hwm := range peaks {
		children += hwm
	}
	t.Logf("vidgen VmHWM %d MB, %d child processes seen, their peaks summed %d MB", service>>20, len(peaks), children>>20)
	if service == 0 || service+children > 400<<20 {
		t.Errorf("service %d MB + children %d MB, want at most 400 MB", service>>20, children>>20)
	}
}

// descendants lists the processes below pid, from /proc's children lists.
func descendants(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(append(out, c), descendants(c)...)
			}
		}
	}
	return out
}

// procStatusBytes reads a kB field of /proc/pid/status (VmHWM, VmRSS) in bytes, 0 when gone.
func procStatusBytes(pid int, field string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte(field+":")); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(rest)), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
