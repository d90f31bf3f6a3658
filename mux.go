package main

import (
	"errors"
	"fmt"
	"os"

	"vidgen/internal/h264"
	"vidgen/internal/mp4"
)

// vidgen writes a still picture's video itself (internal/mp4): the clip's frames over and over and
// the audio's AAC frames, each by copy. Starting ffmpeg to do it cost ~0.3 s of a job's 2 s, and
// the Go writer takes a few milliseconds. The service decides which clip and sound go where, and
// for how long.

// stillVideoFrames is the number of frames of a still picture's video under sound lasting seconds
// at fps: those that start within clipMillis, as ffmpeg counted them when it repeated the clip.
func stillVideoFrames(seconds float64, fps int) int {
	return int((clipMillis(seconds, fps)*int64(fps) + 999) / 1000)
}

// writeStillVideo writes to path the video of a still picture: clip's frames repeated for
// seconds, under the AAC audio of the ADTS stream at audio (an encoder's, priming first).
func writeStillVideo(path string, clip *h264.StillClip, audio string, seconds float64) error {
	f, err := os.Open(audio)
	if err != nil {
		return fmt.Errorf("mux: %w", err)
	}
	defer f.Close()
	sound, err := mp4.AACTrack(f, seconds)
	if err != nil {
		return fmt.Errorf("mux: audio: %w", err)
	}
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("mux: %w", err)
	}
	err = mp4.WriteMovie(out, mp4.StillTrack(clip, stillVideoFrames(seconds, clip.FPS)), sound)
	if err = errors.Join(err, out.Close()); err != nil {
		return fmt.Errorf("mux: %w", err)
	}
	return nil
}
