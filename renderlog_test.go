package main

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// terminalRows is what a terminal shows once s is written to it: its rows, each carriage return
// moving back to the row's start so that what follows overwrites it, trailing spaces trimmed.
func terminalRows(s string) []string {
	var rows []string
	for line := range strings.SplitSeq(strings.TrimSuffix(s, "\n"), "\n") {
		var row []byte
		col := 0
		for _, c := range []byte(line) {
			switch {
			case c == '\r':
				col = 0
				continue
			case col < len(row):
				row[col] = c
			default:
				row = append(row, c)
			}
			col++
		}
		rows = append(rows, strings.TrimRight(string(row), " "))
	}
	return rows
}

// TestRenderStderrBar: a line written while the bar is drawn takes a row of its own, with nothing of
// the bar left on it (even of a longer bar drawn before on the same row), and the bar goes on below
// it; lines without a bar are plain lines.
func TestRenderStderrBar(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	out := &renderStderr{w: &b}
	out.Line("progress 0%")
	out.Bar("[##....] 40%  0:01:00 left")
	out.Bar("[###...] 50%")
	out.Line("vidgen: warning: short")
	out.Bar("[####..] 60%")
	out.Line("vidgen: a line longer than any bar drawn so far")
	out.EndBar()
	out.Line("vidgen: wrote")
	want := []string{"progress 0%", "vidgen: warning: short", "vidgen: a line longer than any bar drawn so far", "[####..] 60%", "vidgen: wrote"}
	if got := terminalRows(b.String()); !slices.Equal(got, want) {
		t.Errorf("the terminal shows %q, want %q (written: %q)", got, want, b.String())
	}
}

// TestRenderLogLines: the render command's log is one short line a record, WARN and ERROR by
// default and INFO too when verbose, the cause after the message and the other attributes in
// parentheses, without the job's ID and trace; a cause of several lines stays on one.
func TestRenderLogLines(t *testing.T) {
	t.Parallel()
	for _, verbose := range []bool{false, true} {
		var b bytes.Buffer
		log := newRenderLog(&renderStderr{w: &b}, verbose)
		job := Job{ID: "j1", TraceID: "t1"}
		log.Debug("never shown")
		log.Info("the waveform's band was spliced into the picture", job.logAttrs("smooth", "0.012")...)
		log.With("true_peak_db", -1.5).Info("loudness measured", job.logAttrs("lufs", -16.1)...)
		log.Warn("the band cannot be spliced, encoding every frame instead", job.logAttrs("err", errors.New("splice: one slice\nsecond line"), "smooth", "0.300")...)
		log.Error("record render outcome", "err", errors.New("disk full"))
		want := "vidgen: warning: the band cannot be spliced, encoding every frame instead: splice: one slice; second line (smooth 0.300)\n" +
			"vidgen: error: record render outcome: disk full\n"
		if verbose {
			want = "vidgen: the waveform's band was spliced into the picture (smooth 0.012)\n" +
				"vidgen: loudness measured (true peak db -1.5, lufs -16.1)\n" + want
		}
		if b.String() != want {
			t.Errorf("verbose %v:\n%s\nwant:\n%s", verbose, b.String(), want)
		}
	}
}
