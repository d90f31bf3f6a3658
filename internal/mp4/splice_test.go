package mp4

import (
	"fmt"
	"testing"

	"vidgen/internal/h264"
)

// TestSplicedKeyframes checks that the track of a clip with keyframes inside it (h264.Splice's)
// marks each as a sync sample in every repeat of the clip, and no other frame.
func TestSplicedKeyframes(t *testing.T) {
	t.Parallel()
	still, err := h264.NewStillClip(readTestdata(t, "../h264/testdata/clip.h264"), 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	spliced := *still
	spliced.Keyframes = []int{0, 3}
	for _, c := range []struct {
		clip   *h264.StillClip
		frames int
		want   string
	}{
		{still, 12, "[1 6 11]"},
		{&spliced, 5, "[1 4]"},
		{&spliced, 12, "[1 4 6 9 11]"},
	} {
		if got := fmt.Sprint(StillTrack(c.clip, c.frames).Keyframes); got != c.want {
			t.Errorf("keyframes %v of %d frames: sync samples %s, want %s", c.clip.Keyframes, c.frames, got, c.want)
		}
	}
}
