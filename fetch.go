package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"vidgen/internal/captions"
)

// Inputs by URL: a submission may give its image, audio or captions as imageUrl, audioUrl or
// captionsUrl instead of a file part. The submission checks the URL's form and the address rules
// and answers at once; the file is fetched in the job's time, when a renderer has claimed it and
// before the render, and must then pass every check an upload passes (its size while it streams,
// its type from its bytes, its contents), on the same code. A fetch that fails ends the job FAILED
// with a message that names the URL, without its query string, and what went wrong.

const (
	// maxInputRedirects is how many redirects a fetch follows, each checked as a submitted URL is.
	maxInputRedirects = 5
	// inputFetchTimeout bounds one input's fetch, body included: a 50 MB file at 512 kbit/s, the
	// slowest link an upload is waited for, takes about 14 minutes; a server that slow is given 10.
	inputFetchTimeout = 10 * time.Minute
	// fetchShare is the part of the progress bar the fetches stand for.
	fetchShare = 5
	// inputUserAgent names vidgen to the servers it fetches from.
	inputUserAgent = "vidgen-fetch/1"
)

// errTooManyRedirects is a fetch redirected more than maxInputRedirects times.
var errTooManyRedirects = fmt.Errorf("more than %d redirects", maxInputRedirects)

// redirectRefused is a redirect to a URL the address rules refuse.
type redirectRefused struct{ err *Error }

func (e *redirectRefused) Error() string { return "redirect refused: " + e.err.Msg }

// newInputClient is the client that fetches inputs: the webhooks' transport, whose dial refuses
// every address and port the webhook rules refuse (after DNS, and again on the socket), with its
// timeouts, a deadline of its own for the whole fetch, and redirects followed up to
// maxInputRedirects, each checked as a submitted URL is.
func newInputClient(ws *webhookSender) *http.Client {
	return &http.Client{
		Transport: ws.client.Transport,
		Timeout:   inputFetchTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxInputRedirects {
				return errTooManyRedirects
			}
			if err := ws.checkURL(req.Context(), "a redirect", req.URL.String()); err != nil {
				var e *Error
				if errors.As(err, &e) {
					return &redirectRefused{e}
				}
				return err
			}
			return nil
		},
	}
}

// safeURL is raw as a job's message and the log may show it: without userinfo, query string and
// fragment, which may hold secrets (signed URLs carry their signature in the query).
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a malformed URL)"
	}
	return quotable(u.Scheme + "://" + u.Host + u.EscapedPath())
}

// urlKinds are the inputs that may be given by URL, in the order they are fetched.
var urlKinds = []inputKind{inputImage, inputAudio, inputCaptions}

// fetchInputs fetches the inputs of job (PROCESSING) given by URL that are not fetched yet, checks
// them as uploads are checked, puts them in place and records what they are; it returns the job
// as it is to be rendered. A failure the job's URL is at fault for (or the files it serves) is a
// final renderFailure naming the URL; the server's own trouble (no ffprobe, the database) is
// returned as it is, and the job is tried again.
func (s *server) fetchInputs(ctx context.Context, job Job) (Job, error) {
	var kinds []inputKind
	var need int64
	for _, kind := range urlKinds {
		if job.InputURLs[kind] != "" && !s.fetched(job, kind) {
			kinds = append(kinds, kind)
			need += uploadLimit(string(kind))
		}
	}
	if len(kinds) == 0 {
		return job, nil
	}
	// A fetched input takes the disk an upload would: refused, like a render, when the most it may
	// hold would leave less than -min-free.
	if err := s.renderer.checkFree(job, need, "Fetching the job's inputs needs up to %d MB of disk"); err != nil {
		return job, err
	}
	s.renderer.startStep(job.ID, 0, fetchShare, 2)
	files := map[inputKind]*upload{}
	defer func() {
		for _, u := range files {
			os.Remove(u.path)
		}
	}()
	for i, kind := range kinds {
		u, err := s.fetchInput(ctx, job, kind, i, len(kinds))
		if u != nil {
			files[kind] = u
		}
		if err != nil {
			return job, s.fetchFailed(job, kind, err)
		}
	}
	// The same checks as a submission's, one input at a time so that a refusal names its URL.
	for _, kind := range []inputKind{inputImage, inputAudio} {
		if files[kind] == nil {
			continue
		}
		img, aud := files[kind], (*upload)(nil)
		if kind == inputAudio {
			img, aud = nil, files[kind]
		}
		m, err := s.checkMedia(ctx, img, aud)
		if err != nil {
			return job, s.fetchFailed(job, kind, err)
		}
		if kind == inputImage {
			job.ImageType = m.imageType
		} else {
			job.AudioType, job.AudioCodec, job.AudioDuration = m.audioType, audioCodecTag(m.audio), m.audio.Duration
		}
	}
	if job.Options.Captions && (files[inputCaptions] != nil || files[inputAudio] != nil) {
		blame := inputAudio // uploaded captions that do not fit the fetched audio
		var b []byte
		var err error
		if c := files[inputCaptions]; c != nil {
			blame = inputCaptions
			b, err = os.ReadFile(c.path)
		} else {
			b, err = readStored(ctx, s.files, inputKey(job.ID, inputCaptions), captions.MaxSize)
		}
		if err != nil {
			return job, fmt.Errorf("read captions: %w", err)
		}
		cues, err := parseCaptions(b)
		if err == nil {
			_, err = captions.Fit(cues, job.AudioDuration)
			err = invalidCaptions(err)
		}
		if err != nil {
			return job, s.fetchFailed(job, blame, err)
		}
	}
	for _, kind := range kinds {
		if err := s.files.Place(ctx, inputKey(job.ID, kind), files[kind].path); err != nil {
			return job, fmt.Errorf("place fetched %s: %w", kind, err)
		}
		delete(files, kind)
	}
	if err := s.store.RecordFetchedInputs(ctx, job); err != nil {
		return job, err
	}
	s.log.Info("inputs fetched", job.logAttrs("inputs", kinds, "image", job.ImageType, "audio", job.AudioType, "duration", job.AudioDuration)...)
	return job, nil
}

// fetched says whether the input kind of job, given by URL, was fetched and recorded by an earlier
// attempt at the job.
func (s *server) fetched(job Job, kind inputKind) bool {
	switch kind {
	case inputImage:
		return job.ImageType != ""
	case inputAudio:
		return job.AudioType != ""
	}
	// Captions have no type to record: they were fetched when their file is in place, which it is
	// only once checked.
	_, err := s.files.Stat(context.Background(), inputKey(job.ID, kind))
	return err == nil
}

// fetchInput fetches job's input kind (the n-th of all fetches) to a temporary file, with an
// upload's size limit enforced while it streams.
func (s *server) fetchInput(ctx context.Context, job Job, kind inputKind, n, all int) (*upload, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, job.InputURLs[kind], nil)
	if err != nil {
		return nil, errorf(kindInvalid, "not a URL that can be fetched")
	}
	req.Header.Set("User-Agent", inputUserAgent)
	resp, err := s.inputClient.Do(req)
	if err != nil {
		return nil, fetchError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errorf(kindInvalid, "the server answered HTTP %d; it must answer 200 with the file", resp.StatusCode)
	}
	limit := uploadLimit(string(kind))
	if resp.ContentLength > limit {
		return nil, checkUploadSize(string(kind), resp.ContentLength)
	}
	body := &fetchBody{r: resp.Body, size: resp.ContentLength, progress: func(frac float64) {
		s.renderer.stepDone(job.ID, (float64(n)+frac)/float64(all))
	}, now: s.now, start: s.now(), grace: s.fetchGrace, minRate: s.fetchMinRate, cut: cancel}
	u, err := s.saveUpload(body, string(kind))
	if body.err != nil {
		if errors.Is(context.Cause(ctx), errFetchTooSlow) {
			body.err = errFetchTooSlow
		}
		return u, fetchError(body.err)
	}
	return u, err
}

// errFetchTooSlow is a fetched body that fell behind the minimum average rate.
var errFetchTooSlow = errors.New("the server sent the file too slowly")

// fetchBody is a fetched input's body, which reports its progress (when its size is known) and
// keeps its own read error apart from the disk's. Once grace has passed since start it must keep
// arriving at minRate bytes a second on average, as an upload must: a server that trickles would
// otherwise hold a render worker, which its owner cannot cancel, for the whole inputFetchTimeout.
// A read still waiting when the next byte is due is cut (cut is called with errFetchTooSlow).
type fetchBody struct {
	r        io.Reader
	size     int64
	read     int64
	progress func(frac float64)
	err      error

	now     func() time.Time
	start   time.Time
	grace   time.Duration
	minRate float64 // bytes a second; 0 for no minimum
	cut     context.CancelCauseFunc
}

func (b *fetchBody) Read(p []byte) (int, error) {
	if b.minRate > 0 {
		due := b.start.Add(b.grace + time.Duration(float64(b.read+1)/b.minRate*float64(time.Second)))
		wait := due.Sub(b.now())
		if wait <= 0 {
			b.err = errFetchTooSlow
			return 0, b.err
		}
		t := time.AfterFunc(wait, func() { b.cut(errFetchTooSlow) })
		defer t.Stop()
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	if b.size > 0 {
		b.progress(float64(b.read) / float64(b.size))
	}
	if err != nil && !errors.Is(err, io.EOF) {
		b.err = err
	}
	return n, err
}

// fetchError says, in words for the job's owner, why a fetch got no file, without the URL (a
// url.Error quotes it whole, query string and all).
func fetchError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var refused *redirectRefused
	var ne net.Error
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Kind: kindInvalid, Msg: "the server closed the connection before sending the whole file", Err: err}
	case errors.Is(err, errFetchTooSlow):
		return &Error{Kind: kindInvalid, Msg: fmt.Sprintf("the server sent the file too slowly: after the first %d s it must average at least %d KB/s",
			int(uploadGrace.Seconds()), uploadMinRate>>10), Err: err}
	case errors.As(err, &ne) && ne.Timeout():
		return &Error{Kind: kindInvalid, Msg: fmt.Sprintf("it timed out: the server must answer within %d s and send the whole file within %d minutes",
			int(webhookTimeout.Seconds()), int(inputFetchTimeout.Minutes())), Err: err}
	case errors.Is(err, errTooManyRedirects):
		return &Error{Kind: kindInvalid, Msg: "it redirects more than " + fmt.Sprint(maxInputRedirects) + " times", Err: err}
	case errors.As(err, &refused):
		return &Error{Kind: kindInvalid, Msg: "it redirects to a URL that is not allowed (" + refused.err.Msg + ")", Err: refused.err}
	case errors.Is(err, errAddrRefused):
		return &Error{Kind: kindInvalid, Msg: "unreachable: the address is not allowed (not a public address, or a port the server does not allow)", Err: err}
	}
	return &Error{Kind: kindInvalid, Msg: "unreachable (" + describeSendError(err) + ")", Err: err}
}

// fetchFailed is the error of job's input kind whose fetch or check failed with err: a final
// failure whose message names the URL, when the URL or its file is at fault; err as it is when
// the server is (a tool that did not start, a full disk, the database), so the job is tried again.
func (s *server) fetchFailed(job Job, kind inputKind, err error) error {
	var e *Error
	if !errors.As(err, &e) || e.Kind == kindInternal || e.Kind == kindUnavailable {
		return err
	}
	field := string(kind) + "Url"
	if e.Kind == kindNoSpace {
		return &renderFailure{final: true, err: fmt.Errorf("fetch %s: %w", field, e),
			msg: "The server is short of disk space for this job's inputs right now; submit the job again later"}
	}
	// The checks' messages start with the part they are about ("audio: it lasts…"), which the
	// field now names; uploaded captions that do not fit the fetched audio keep their "captions:".
	msg := strings.TrimPrefix(e.Msg, string(kind)+": ")
	return &renderFailure{final: true, err: fmt.Errorf("fetch %s: %w", field, e),
		msg: fmt.Sprintf("Could not use %s %s: %s", field, safeURL(job.InputURLs[kind]), msg)}
}
