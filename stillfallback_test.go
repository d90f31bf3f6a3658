package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// refusedClipFFmpeg writes into dir a stand-in for ffmpeg that runs the real one, except that the
// clip step's x264 (the only run whose -x264-params sets rc-lookahead, see clipArgs) encodes
// interlaced: a stream h264.NewStillClip refuses, as it would one from an x264 with other
// defaults.
func refusedClipFFmpeg(t testing.TB, dir string) string {
	t.Helper()
	real, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ffmpeg")
	script := fmt.Sprintf("#!/bin/sh\nfor a do\n  shift\n  case $a in *rc-lookahead=*) a=\"$a:interlaced=1\";; esac\n  set -- \"$@\" \"$a\"\ndone\nexec %q \"$@\"\n", real)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestStillClipFallback renders still pictures while the clip step's x264 makes a stream the clip
// writer refuses, on both still paths (the audio encoded beside the clip, and copied under it): each
// job completes by the plain encode of every frame, with the output every render has (H.264 yuv420p
// progressive, BT.709, square pixels, the audio's duration, the index first, the poster), and the
// log says once, with the job, why the writer refused the stream.
func TestStillClipFallback(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.FFmpeg = refusedClipFFmpeg(t, t.TempDir())
	e := newTestEnv(t, &cfg)
	keys, ids := map[string]string{}, map[string]string{}
	for _, audio := range []string{"tone.mp3", "tone.m4a"} {
		keys[audio] = e.newKey(t, audio) // one active job a key
		ids[audio] = e.mustSubmit(t, keys[audio], fixture(t, "img.png"), fixture(t, audio))
	}
	for audio, id := range ids {
		st := e.wait(t, keys[audio], id, StatusCompleted)
		video, _ := download(t, st["outputVideo"].(string))
		p := checkVideo(t, video, fixture(t, audio))
		if p.Width != 320 || p.Height != 240 || p.ColorSpace != "bt709" {
			t.Errorf("%s: %dx%d in %q, want the image's 320x240 in bt709", audio, p.Width, p.Height, p.ColorSpace)
		}
		path := writeFixture(t, "fallback.mp4", video)
		out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=field_order",
			"-of", "csv=p=0", path).Output()
		if err != nil {
			t.Fatal(err)
		}
		if fo := strings.TrimSpace(string(out)); fo != "progressive" && fo != "" && fo != "unknown" {
			t.Errorf("%s: field order %q: the refused clip stream was published", audio, fo)
		}
		checkPoster(t, st["outputThumbnail"].(string), 320, 240)

		var warns []string
		for line := range strings.Lines(e.logs.String()) {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "job="+id) {
				warns = append(warns, line)
			}
		}
		if len(warns) != 1 || !strings.Contains(warns[0], "encoding every frame") || !strings.Contains(warns[0], "interlaced") {
			t.Errorf("%s: want one WARN line for job %s saying the writer refused the interlaced stream, got %q", audio, id, warns)
		}
	}
}
