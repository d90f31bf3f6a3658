package main

import (
	"errors"
	"os"
	"path/filepath"

	"vidgen/internal/captions"
)

// Captions: an SRT or WebVTT file uploaded with a job, checked at upload and burned into the video
// with libass (internal/captions reads, checks and writes it), in a font shipped inside the binary
// so the picture does not depend on the host.

// invalidCaptions is a captions file's refusal by the captions package as the 400 users read, its
// message the package's own ("captions: line 4: …"); any other error is returned as it is.
func invalidCaptions(err error) error {
	if ce := (*captions.Error)(nil); errors.As(err, &ce) {
		return errorf(kindInvalid, "%s", ce)
	}
	return err
}

// captionLayout is where captions go in a frame of size f: the font size and the margin under the
// text, in pixels. They sit in the lower third, above the waveform when there is one and above a
// title at the bottom (its first line), in a font sized to the frame's short side so a phone's 9:16
// frame gets the same text as a 16:9 one.
func captionLayout(f frameSize, o Options) captions.Box {
	marginV := f.H * 8 / 100
	if o.waveform() {
		top, _ := waveformBand(f)
		marginV = f.H - top + f.H*3/100
	}
	if o.Title != "" && o.TitlePosition == "bottom" {
		marginV = max(marginV, titleMarginV(f, o)+titleFontSize(f, o)*8/5+f.H*2/100)
	}
	return captions.Box{W: f.W, H: f.H, MarginV: marginV, MarginH: f.W * 6 / 100,
		FontSize: max(8, min(f.W, f.H)*11/200)} // 59 px in a 1080 px side
}

// writeASS writes cues, and the job's title when it has one, as an ASS script for a frame of size f
// (captionLayout, titleLayout) to path.
func writeASS(path string, cues []captions.Cue, f frameSize, job Job) error {
	var titles []captions.Title
	if job.Options.Title != "" {
		titles = append(titles, titleLayout(f, job))
	}
	return os.WriteFile(path, captions.Script(cues, captionLayout(f, job.Options), titles...), 0o600)
}

// writeCaptionFont writes the captions' font into the directory fonts/ under dir (made when missing;
// a captioned still that falls back to the moving picture's encode writes it twice) and returns
// that directory, given to libass as its fonts directory so it draws with that font whatever the
// host has.
func writeCaptionFont(dir string) (string, error) {
	fonts := filepath.Join(dir, "fonts")
	if err := os.MkdirAll(fonts, 0o700); err != nil {
		return "", err
	}
	return fonts, os.WriteFile(filepath.Join(fonts, captions.FontFile), captions.Font(), 0o600)
}
