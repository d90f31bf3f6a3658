// Package mediatest is what the tests of vidgen's packages share to check media with the real
// ffmpeg. Only tests import it.
package mediatest

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// FrameHashes decodes with ffmpeg the video that args name (its inputs and their options, and
// output options such as -frames:v), with stdin, when not nil, as ffmpeg's standard input
// ("pipe:"), and returns each frame's MD5. Any decoding error fails the test: ffmpeg stops at the
// first (-xerror), and says nothing otherwise.
func FrameHashes(t testing.TB, stdin []byte, args ...string) []string {
	t.Helper()
	cmd := exec.Command("ffmpeg", append(append([]string{"-v", "error", "-xerror"}, args...), "-map", "0:v:0", "-f", "framemd5", "-")...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("decode: %v\n%s", err, stderr.Bytes())
	}
	var hashes []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(line, "#") {
			hashes = append(hashes, f[len(f)-1])
		}
	}
	return hashes
}
