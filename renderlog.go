package main

// What `vidgen render` tells its user on standard error besides the result: the progress display
// and the renderer's log, as short lines a person reads (what the server would log for an
// operator: a waveform not spliced and why, a fallback to the full encode).

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// renderStderr is the render command's standard error, shared by the progress display and the
// log. A line written while the progress bar is drawn (a carriage return, no newline) clears the
// bar, takes the line for itself and draws the bar again below it, so on a terminal neither is
// written into the middle of the other; the methods may be called from any goroutine.
type renderStderr struct {
	w     io.Writer
	mu    sync.Mutex
	bar   string // the bar on the last line, drawn and not yet ended; "" when none
	width int    // the widest bar drawn on that line: what a line written over it must clear
}

// Line writes s as a line of its own.
func (o *renderStderr) Line(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.bar == "" {
		io.WriteString(o.w, s+"\n")
		return
	}
	// Spaces, not a terminal's escape: a bar asked for on a pipe or a log stays plain text.
	io.WriteString(o.w, "\r"+strings.Repeat(" ", o.width)+"\r"+s+"\n"+o.bar)
	o.width = len(o.bar)
}

// Bar draws bar in place of the one drawn before on the same line.
func (o *renderStderr) Bar(bar string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	io.WriteString(o.w, "\r"+bar)
	o.bar, o.width = bar, max(o.width, len(bar))
}

// EndBar ends the bar's line, leaving the bar drawn last on it; later lines go below.
func (o *renderStderr) EndBar() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.bar != "" {
		io.WriteString(o.w, "\n")
	}
	o.bar, o.width = "", 0
}

// renderLogHandler is the slog handler of `vidgen render`: each record at level or above is one
// line on out, "vidgen: warning: MESSAGE: ERR (key value, …)" (or "vidgen: error: …", and
// "vidgen: MESSAGE …" for INFO), without the job's ID and trace, which name nothing a user of the
// command can look up. Groups are flattened.
type renderLogHandler struct {
	out   *renderStderr
	level slog.Level
	attrs []slog.Attr
}

// newRenderLog is the render command's logger: WARN and ERROR on out, INFO too when verbose.
func newRenderLog(out *renderStderr, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	return slog.New(&renderLogHandler{out: out, level: level})
}

func (h *renderLogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *renderLogHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("vidgen: ")
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	}
	b.WriteString(r.Message)
	var cause string
	var more []string
	each := func(a slog.Attr) bool {
		v := a.Value.Resolve().String()
		switch a.Key {
		case "job", "trace_id":
		case "err":
			cause = v
		default:
			more = append(more, strings.ReplaceAll(a.Key, "_", " ")+" "+v)
		}
		return true
	}
	for _, a := range h.attrs {
		each(a)
	}
	r.Attrs(each)
	if cause != "" {
		b.WriteString(": " + cause)
	}
	if len(more) > 0 {
		b.WriteString(" (" + strings.Join(more, ", ") + ")")
	}
	// One record, one line: a cause quoting a tool's output keeps its lines apart with "; ".
	h.out.Line(strings.ReplaceAll(strings.TrimRight(b.String(), "\n"), "\n", "; "))
	return nil
}

func (h *renderLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &renderLogHandler{out: h.out, level: h.level, attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], attrs...)}
}

func (h *renderLogHandler) WithGroup(string) slog.Handler { return h }
