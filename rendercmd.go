package main

// The render command: `vidgen render -image … -audio … -o …`, one video made on this machine with
// the service's checks, options and pipeline, without a server or a database.

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"vidgen/internal/ffmpeg"
)

// The exit codes of `vidgen render`, for scripts (docs/operations.md lists them).
const (
	exitUsage       = 2   // a flag is missing, unknown or malformed
	exitBadInput    = 3   // a file or an option is refused, with the message the API would give
	exitRenderFail  = 4   // the inputs were accepted but the render failed (ffmpeg, disk, memory)
	exitInterrupted = 130 // SIGINT or SIGTERM: nothing is left at -o
)

// exitError is an error that ends the program with its own exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// exitCode is the process's exit code for run's error: the exitError's, else 1.
func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

const renderUsage = "usage: vidgen render -image FILE -audio FILE [-captions FILE] [options] -o OUT.mp4"

// renderSizesUsage is how -h tells where the files of several sizes go.
const renderSizesUsage = `With -sizes a,b: -o OUT.mp4 gets a's video and OUT.b.mp4 b's, -poster P.jpg a's poster and P.b.jpg
b's: a further size's name goes before the extension, whatever -o is named (-o q.square.mp4
-sizes x,square writes x to q.square.mp4, square to q.square.square.mp4). Every file written must
be a file of its own, not an input nor another file written: this is checked before rendering.`

// renderConfig is what `vidgen render` was asked to do.
type renderConfig struct {
	image, audio, captions string
	out, poster            string
	fields                 map[string]string // the API's option fields that were given
	progress               string            // auto, bar, lines or none
	spliceWaveforms        bool              // -splice-waveforms: see renderer.spliceWaveforms
	verbose                bool              // -v: the renderer's INFO lines too, not only WARN and ERROR
	maxDuration            time.Duration
	tools                  ffmpeg.Tools
}

// parseRenderFlags reads the render command's flags; a mistake is an exitUsage error.
func parseRenderFlags(args []string, stderr io.Writer) (renderConfig, error) {
	c := renderConfig{fields: map[string]string{}}
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.image, "image", "", "the picture (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC or AVIF)")
	fs.StringVar(&c.audio, "audio", "", "the sound ("+audioTypes+")")
	fs.StringVar(&c.captions, "captions", "", "captions to burn in (SRT or WebVTT), optional")
	fs.StringVar(&c.out, "o", "", "the MP4 to write (replaced if it exists); with -sizes, the first size's")
	fs.StringVar(&c.poster, "poster", "", "also write the poster JPEG here, optional; with -sizes, the first size's")
	fs.StringVar(&c.progress, "progress", "auto", "auto (a bar on a terminal, else lines), bar, lines or none")
	fs.BoolVar(&c.verbose, "v", false, "also say what the render did (a waveform spliced or why not, the loudness measured), besides its warnings")
	fs.BoolVar(&c.spliceWaveforms, "splice-waveforms", true, "encode only a waveform's band where the picture allows, false to encode every frame")
	fs.DurationVar(&c.maxDuration, "max-duration", time.Hour, "longest audio accepted, 0 for no limit")
	fs.StringVar(&c.tools.FFmpeg, "ffmpeg", "ffmpeg", "path of ffmpeg")
	fs.StringVar(&c.tools.FFprobe, "ffprobe", "ffprobe", "path of ffprobe")
	fs.StringVar(&c.tools.HeifConvert, "heif-convert", "heif-convert", "path of heif-convert, for HEIC/AVIF images; optional")
	fs.String("data", "", "accepted, as by every command; render keeps no data")
	for _, f := range optionFields {
		fs.Func(f.Name, f.Usage+" (the API's "+f.Name+")", func(v string) error { c.fields[f.Name] = v; return nil })
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\n\n%s\n\nExit codes: 0 done, %d usage or an output path refused, %d input refused, %d render failed, %d interrupted.\n\n",
			renderUsage, renderSizesUsage, exitUsage, exitBadInput, exitRenderFail, exitInterrupted)
		fs.PrintDefaults()
	}
	usage := func(err error) error { return &exitError{exitUsage, err} }
	// A mistake is one line, not the whole flag list after it; -h alone prints the list.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.Usage()
			return c, err
		}
		return c, usage(fmt.Errorf("render: %w; run 'vidgen render -h' for every flag", err))
	}
	if fs.NArg() > 0 {
		return c, usage(fmt.Errorf("render: unexpected argument %q\n%s", fs.Arg(0), renderUsage))
	}
	for _, f := range []struct{ flag, v string }{{"-image", c.image}, {"-audio", c.audio}, {"-o", c.out}} {
		if f.v == "" {
			return c, usage(fmt.Errorf("render: %s is missing\n%s", f.flag, renderUsage))
		}
	}
	if err := checkRenderOutputs(c, renderDests(c, renderFlagSizes(c.fields))); err != nil {
		return c, usage(err)
	}
	if !oneOfNames(c.progress, "auto", "bar", "lines", "none") {
		return c, usage(fmt.Errorf("render: -progress %q: use auto, bar, lines or none", c.progress))
	}
	c.tools.Memory = defaultChildMemory
	return c, nil
}

func oneOfNames(v string, names ...string) bool {
	for _, n := range names {
		if v == n {
			return true
		}
	}
	return false
}

// runRender implements `vidgen render`: the inputs are checked as an upload is (the same limits
// and messages), rendered as a job is, and the video is moved to -o whole, so -o never holds a part
// of a video. The scratch directory sits beside -o and is removed however the command ends (short
// of SIGKILL or a second signal).
func runRender(ctx context.Context, args []string, stderr io.Writer) error {
	c, err := parseRenderFlags(args, stderr)
	if err != nil {
		return err
	}
	start := time.Now()
	noHugePagesForChildren()
	if _, err := checkTools(ctx, config{FFmpeg: c.tools.FFmpeg, FFprobe: c.tools.FFprobe}); err != nil {
		return &exitError{exitRenderFail, fmt.Errorf("render: %w", err)}
	}
	// The scratch directory is the render's own: a message names the directory the user gave.
	noScratch := func(err error) error {
		return &exitError{exitRenderFail, fmt.Errorf("render: could not work in %s, beside -o: %v", filepath.Dir(c.out), pathCause(err))}
	}
	scratch, err := os.MkdirTemp(filepath.Dir(c.out), ".vidgen-render-")
	if err != nil {
		return noScratch(err)
	}
	defer os.RemoveAll(scratch)
	dirs := dataDir{root: scratch}
	for _, d := range dirs.folders() {
		if err := os.Mkdir(d, 0o700); err != nil {
			return noScratch(err)
		}
	}
	// The renderer's warnings (a fallback to the full encode and why) are the user's to read, as
	// the server's are its operator's; the progress display shares the same stream.
	out := &renderStderr{w: stderr}
	log := newRenderLog(out, c.verbose)
	s := &server{cfg: config{MaxDuration: c.maxDuration}, log: log, now: time.Now, rand: rand.Reader, dirs: dirs, files: diskFiles{dirs}, tools: c.tools,
		validations: make(chan struct{}, 1), goDecodes: newDecodeGate(), pictures: newMemoryGate(memoryBudget())}
	job, err := checkRenderInputs(ctx, s, c)
	if err != nil {
		return renderExit(ctx, err)
	}
	rd := &renderer{dirs: dirs, files: s.files, log: log, now: time.Now, rand: rand.Reader, tools: c.tools, pictures: s.pictures, diskFree: diskFree,
		spliceWaveforms: c.spliceWaveforms, audioCores: runtime.NumCPU(), progress: map[string]*jobProgress{job.ID: {started: time.Now()}}}
	done := make(chan struct{})
	shown := make(chan struct{})
	var rendered bool // written before done is closed, read after
	go func() {
		showProgress(out, c.progress, rd, job.ID, done, func() bool { return rendered })
		close(shown)
	}()
	token, reached, err := rd.renderFiles(ctx, job)
	rendered = err == nil
	job.LoudnessReached = loudnessShort(job.Options.Loudness, reached)
	close(done)
	<-shown
	if err != nil {
		return renderExit(ctx, err)
	}
	// Every size is rendered: only now is a file moved into place, each size's video before its
	// poster, so a poster that cannot be written does not lose the render. Each video written is
	// named, so a user finds the further sizes too.
	took := time.Since(start).Seconds()
	names := outputNames(token, job.Options.Sizes)
	var written []string
	for _, d := range renderDests(c, job.Options.sizes()) {
		if d.flag == "-poster" {
			err = copyPoster(dirs.output(names[d.index], "jpg"), d.path)
		} else {
			err = moveFile(dirs.output(names[d.index], "mp4"), d.path)
		}
		if err != nil {
			return &exitError{exitRenderFail, notWritten(d.path, err, written)}
		}
		written = append(written, d.path)
		if d.flag == "-o" {
			var size int64
			if fi, err := os.Stat(d.path); err == nil {
				size = fi.Size()
			}
			fmt.Fprintf(stderr, "vidgen: wrote %s (%.1f MB, %s) in %.1f s\n", d.path, float64(size)/1e6, fmtDuration(job.AudioDuration), took)
		}
	}
	for _, w := range jobWarnings(job) {
		fmt.Fprintf(stderr, "vidgen: warning: %s\n", w)
	}
	return nil
}

// checkRenderInputs copies the inputs into the scratch directory as uploads (their size limits) and
// checks them as a submission is, returning the job to render with its files in place.
func checkRenderInputs(ctx context.Context, s *server, c renderConfig) (Job, error) {
	files := map[string]*upload{}
	for name, path := range map[string]string{"image": c.image, "audio": c.audio, "captions": c.captions} {
		if path == "" {
			continue
		}
		f, err := os.Open(path)
		if err == nil {
			if fi, serr := f.Stat(); serr == nil && fi.IsDir() {
				f.Close()
				err = errors.New("is a directory")
			}
		}
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return Job{}, &Error{Kind: kindInvalid, Msg: fmt.Sprintf("-%s %s: %v", name, path, err)}
		}
		u, err := s.saveUpload(f, name)
		f.Close()
		if err != nil {
			return Job{}, err
		}
		files[name] = u
	}
	job, err := s.validateSubmission(ctx, files, c.fields)
	if err != nil {
		return Job{}, err
	}
	if job.ID, err = newJobID(time.Now(), rand.Reader); err != nil {
		return Job{}, err
	}
	for name, u := range files {
		if err := os.Rename(u.path, s.dirs.input(job.ID, inputKind(name))); err != nil {
			return Job{}, err
		}
	}
	return job, nil
}

// renderExit turns a failure into the command's exit: interrupted when ctx was cancelled, the
// input's code and the API's message when a file or option was refused, else a failed render with
// the job's message (and the cause for the operator).
func renderExit(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return &exitError{exitInterrupted, errors.New("render: interrupted; no video was written")}
	}
	var e *Error
	if errors.As(err, &e) {
		switch e.Kind {
		case kindInvalid, kindTooLarge, kindUnsupported:
			return &exitError{exitBadInput, errors.New(e.Msg)}
		}
	}
	var rf *renderFailure
	if errors.As(err, &rf) && rf.final {
		return &exitError{exitRenderFail, fmt.Errorf("render failed: %s (%v)", rf.msg, rf.err)}
	}
	return &exitError{exitRenderFail, fmt.Errorf("render failed: %w", err)}
}

// moveFile moves src to dst, by a rename (the scratch directory is on dst's file system), so dst
// never holds part of a video.
func moveFile(src, dst string) error {
	err := os.Rename(src, dst)
	if fi, serr := os.Stat(dst); err != nil && serr == nil && fi.IsDir() {
		// os.Rename says "file exists" of a directory in the way.
		return errors.New("is a directory")
	}
	return err
}

// copyPoster writes a copy of the poster src at dst as the videos are written: into a new file in
// dst's directory (the poster may go to another file system than -o's), synced, then renamed over
// dst, so dst holds the poster it had or the whole new one, never part of one (a full disk, a kill
// mid-write), and a file linked to the old poster keeps it. The new file gets src's permissions,
// as ffmpeg gave the videos theirs.
func copyPoster(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".vidgen-poster-")
	if err != nil {
		return err
	}
	_, err = io.Copy(tmp, in)
	if err == nil {
		err = tmp.Chmod(fi.Mode().Perm())
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = moveFile(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// notWritten is the error of a render whose file path could not be written (err, from moveFile or
// copyPoster), after the files written: which are there and which one failed. It keeps of err only
// its cause: the paths it names are in the scratch directory, which is gone when the user reads it.
func notWritten(path string, err error, written []string) error {
	done := "nothing was written"
	if len(written) > 0 {
		done = "written before it: " + strings.Join(written, ", ")
	}
	return fmt.Errorf("render: could not write %s: %v; %s", path, pathCause(err), done)
}

// pathCause is err without the paths an *os.PathError or *os.LinkError names: those of files the
// render made for itself (its scratch directory, a poster being written), which the user never
// asked for and cannot find once it ends.
func pathCause(err error) error {
	var pe *os.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return pe.Err
	case errors.As(err, &le):
		return le.Err
	}
	return err
}

// showProgress reports the render's progress on out until done: a bar redrawn in place on a
// terminal, a line at every tenth elsewhere (a log, a pipe), nothing for "none". Once done, it
// shows 100% only when rendered says the video was made.
func showProgress(out *renderStderr, mode string, rd *renderer, id string, done <-chan struct{}, rendered func() bool) {
	if mode == "auto" {
		mode = "lines"
		if isTerminal(out.w) {
			mode = "bar"
		}
	}
	if mode == "none" {
		<-done
		return
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := -1
	for {
		pct, eta := rd.Progress(id)
		select {
		case <-done:
			if !rendered() {
				// Interrupted or failed: what was reached is the last word, never a 100%.
				out.EndBar()
				return
			}
			pct, eta = 100, nil
		default:
		}
		switch {
		case mode == "bar":
			out.Bar(progressBar(pct, eta, 30))
		case pct/10 > last/10 || last < 0:
			out.Line(fmt.Sprintf("progress %d%%", pct))
		}
		last = pct
		if pct == 100 {
			out.EndBar()
			return
		}
		select {
		case <-done:
		case <-tick.C:
		}
	}
}

// progressBar draws pct (0-100) as a bar width characters wide, with the time left when known.
func progressBar(pct int, eta *int, width int) string {
	n := pct * width / 100
	s := fmt.Sprintf("[%s%s] %3d%%", strings.Repeat("#", n), strings.Repeat(".", width-n), pct)
	if eta != nil {
		s += fmt.Sprintf("  %s left", fmtDuration(float64(*eta)))
	} else {
		s += strings.Repeat(" ", 15) // clears a longer line drawn before
	}
	return s
}

// isTerminal says whether w is a terminal, which gets a bar redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
