package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"vidgen/internal/captions"
	"vidgen/internal/media"
)

const (
	// maxFileSize is the most one uploaded file may hold: 50 MB, counted in MiB.
	maxFileSize = 50 << 20
	// maxBodySize is the most a submission's body may hold: two full files and the captions plus
	// room for the small parts and the multipart framing.
	maxBodySize = 2*maxFileSize + captions.MaxSize + 1<<20
)

// maxParts bounds the multipart parts read from one request: the three files and every text field
// (webhookUrl and the options), with room for a client's extra field or two.
var maxParts = 3 + len(textFields) + 2

// upload is one file part, streamed to a temporary file in the data directory.
type upload struct {
	path string
	size int64
	head []byte
}

// handleSubmit implements POST /api/jobs. The body is streamed part by part to disk, so memory
// stays flat whatever the upload's size, and every file is checked from its bytes before the job
// exists. Nothing a rejected request wrote stays behind.
func (s *server) handleSubmit(w http.ResponseWriter, r *http.Request) {
	key := keyFrom(r)
	idemKey, err := idempotencyKeyOf(r.Header)
	if err != nil {
		s.refuseUpload(w, r, err)
		return
	}
	// A retry of a submission already answered is read (to compare it with the first) but makes no
	// job: replay holds the first answer.
	var replay *storedResponse
	var claimOwner string
	if idemKey != "" {
		if claimOwner, err = s.idempotencyClaimOwner(); err == nil {
			replay, err = s.store.ClaimIdempotencyKey(r.Context(), key.ID, idemKey, claimOwner, s.now())
		}
		if err != nil {
			s.refuseUpload(w, r, err)
			return
		}
		if replay == nil {
			defer s.releaseIdempotencyKey(r, key.ID, idemKey, claimOwner)
		}
	}
	// Answer 409 (or 507) before reading 100 MB that would be thrown away; CreateJob enforces the
	// one-active-job rule for real. A replay's job is the active one, and it needs no disk.
	if replay == nil {
		if err := s.checkCanSubmit(r, key); err != nil {
			s.refuseUpload(w, r, err)
			return
		}
	}
	// Each upload holds a socket, a temp file and a share of the disk's bandwidth while it lasts:
	// one address may have a few under way, the service a bounded number.
	client := s.clients.key(r)
	if ok, overall := s.uploads.acquire(client, false); !ok {
		w.Header().Set("Retry-After", "5")
		err := errorf(kindRateLimited, "Too many uploads at once from one address; at most %d", maxUploadsPerClient)
		if overall {
			err = errorf(kindUnavailable, "The server is receiving as many uploads as it can; try again in a few seconds")
		}
		s.refuseUpload(w, r, err)
		return
	}
	defer s.uploads.release(client)
	// Its temporary file is counted in the descriptor budget; a submission may reach into the part
	// kept from downloads, so that it is taken while downloads hold all the rest.
	giveFD, ok := s.fds.take(fdConnOf(r), 1, fdUpload)
	if !ok {
		w.Header().Set("Retry-After", "5")
		s.refuseUpload(w, r, errorf(kindUnavailable, "The server has as many connections and files open as it can; try again in a few seconds"))
		return
	}
	defer giveFD()
	// The server reads other requests within requestReadTimeout; an upload gets time for its size on
	// a slow link, and no more, and must keep arriving at uploadMinRate on average once uploadGrace
	// has passed, so a client trickling its body cannot hold the connection and a temp file for long.
	// (A ResponseRecorder in tests does not support deadlines; that is fine.)
	rc := http.NewResponseController(w)
	d := uploadDeadline(r.ContentLength)
	now := time.Now()
	body := &rateReader{ReadCloser: r.Body, rc: rc, start: now, grace: s.uploadGrace, minRate: s.uploadMinRate, deadline: now.Add(d)}
	r.Body = body
	rc.SetWriteDeadline(now.Add(d + 5*time.Minute))
	files := map[string]*upload{}
	var placed []string // keys of uploads in the file store, deleted if the job is refused
	defer func() {
		for _, u := range files {
			os.Remove(u.path)
		}
		for _, key := range placed {
			s.files.Delete(context.WithoutCancel(r.Context()), key)
		}
	}()
	var fp requestFingerprint
	fields, err := s.readParts(w, r, files, &fp, replay != nil)
	if err != nil && body.cut {
		// The connection closed mid-body: nobody reads the answer, and the log and metrics say 499,
		// not a client's malformed request.
		err = &Error{Kind: kindClientGone, Msg: "Client closed the request", Err: err}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if replay != nil {
		s.replayIdempotent(w, r, replay, fp.sum())
		return
	}
	job, err := s.validateSubmission(r.Context(), files, fields)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	job.KeyID = key.ID
	if job.ID, err = newJobID(s.now(), s.rand); err != nil {
		s.writeError(w, r, err)
		return
	}
	job.CreatedAt = s.now().UTC()
	job.TraceID = traceID(r)
	// The files are in place (durably) before the job's row is committed; a crash in between
	// leaves only orphans, which the start-up sweep deletes.
	for name, u := range files {
		key := inputKey(job.ID, inputKind(name))
		placed = append(placed, key)
		if err := s.files.Place(r.Context(), key, u.path); err != nil {
			s.writeError(w, r, fmt.Errorf("place upload: %w", err))
			return
		}
	}
	// The answer is made before the job is stored: a submission with an Idempotency-Key stores it
	// with the job, for its retries.
	answer, err := json.Marshal(map[string]string{"message": "Job created", "jobId": job.ID})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	answer = append(answer, '\n')
	if idemKey != "" {
		err = s.store.CreateJobIdempotent(r.Context(), job, idemKey, claimOwner, storedResponse{Fingerprint: fp.sum(), StatusCode: http.StatusCreated, Body: answer})
	} else {
		err = s.store.CreateJob(r.Context(), job)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	clear(files)
	placed = nil
	s.renderer.Notify()
	s.log.Info("job created", job.logAttrs("key", key.ID, "audio", job.AudioType, "image", job.ImageType, "duration", job.AudioDuration,
		"options", job.Options)...)
	w.Header().Set("Location", "/api/status/"+job.ID)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusCreated)
	w.Write(answer)
}

// checkCanSubmit refuses a submission that cannot succeed whatever its files: the key already has
// an active job, or the disk is nearly full.
func (s *server) checkCanSubmit(r *http.Request, key Key) error {
	active, err := s.store.HasActiveJob(r.Context(), key.ID)
	if err != nil {
		return err
	}
	if active {
		return ErrActiveJob
	}
	return s.checkDiskSpace()
}

// earlyRefusalDrain is how much of a refused upload's body is read after the answer, so that a
// client still sending it gets the answer instead of a broken connection.
const earlyRefusalDrain = 8 << 20

// refuseUpload answers a submission with err before its body is read. A client that is still
// writing the body when the connection closes under it sees a broken pipe instead of the answer
// (Go's client and others), so after the answer the rest of a small body is read and thrown away;
// a large one is cut. A client that sent Expect: 100-continue sends no body at all.
func (s *server) refuseUpload(w http.ResponseWriter, r *http.Request, err error) {
	s.writeError(w, r, err)
	if r.Header.Get("Expect") != "" || r.ContentLength > earlyRefusalDrain {
		return
	}
	rc := http.NewResponseController(w)
	rc.Flush()
	rc.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, io.LimitReader(r.Body, earlyRefusalDrain))
}

// textFields are the submission's plain parts and the most bytes each may hold.
var textFields = func() map[string]int {
	m := map[string]int{"webhookUrl": 2048, "imageUrl": 2048, "audioUrl": 2048, "captionsUrl": 2048}
	for _, f := range optionFields {
		m[f.Name] = f.Limit
	}
	return m
}()

// readParts streams the multipart body: image, audio and captions to temporary files (recorded in
// files), webhookUrl and the options into the returned fields. Other parts are read and ignored.
// Every part it reads is added to fp as it streams. With discard, the files are checked for size
// and thrown away, not saved (the upload in files has no path).
func (s *server) readParts(w http.ResponseWriter, r *http.Request, files map[string]*upload, fp *requestFingerprint, discard bool) (map[string]string, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return nil, errorf(kindInvalid, "Send the job as multipart/form-data with the parts image and audio")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodySize)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, multipartError(err)
	}
	fields := map[string]string{}
	for n := 0; ; n++ {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, multipartError(err)
		}
		if n >= maxParts {
			return nil, errorf(kindInvalid, "Too many parts: send image (or imageUrl), audio (or audioUrl) and optionally captions (or captionsUrl), webhookUrl and the options (%s)", optionNames())
		}
		name := p.FormName()
		switch limit, text := textFields[name]; {
		case name == "image" || name == "audio" || name == "captions":
			if files[name] != nil {
				return nil, errorf(kindInvalid, "The %s part was sent twice", name)
			}
			src, end := fp.tee(name, p)
			save := s.saveUpload
			if discard {
				save = countUpload
			}
			u, err := save(src, name)
			if u != nil {
				files[name] = u
			}
			if err != nil {
				return nil, err
			}
			end()
		case text:
			if _, ok := fields[name]; ok {
				return nil, errorf(kindInvalid, "The %s part was sent twice", name)
			}
			src, end := fp.tee(name, p)
			b, err := io.ReadAll(io.LimitReader(src, int64(limit)+1))
			if err != nil {
				return nil, multipartError(err)
			}
			end()
			if len(b) > limit {
				return nil, errorf(kindInvalid, "%s is longer than %d characters", name, limit)
			}
			fields[name] = strings.TrimSpace(string(b))
		default:
			if _, err := io.Copy(io.Discard, p); err != nil {
				return nil, multipartError(err)
			}
		}
	}
	for _, name := range []string{"image", "audio", "captions"} {
		switch byURL := fields[name+"Url"] != ""; {
		case files[name] != nil && byURL:
			return nil, errorf(kindInvalid, "Send the %s either as a file part or as %sUrl, not both", name, name)
		case files[name] == nil && !byURL && name != "captions":
			return nil, errorf(kindInvalid, "Missing file part %q", name)
		}
	}
	return fields, nil
}

// multipartError turns a failure to read the body into the client's error: too large past the
// size cap, invalid for a malformed body. The parser's message may quote the client's bytes, so
// only a short printable prefix of it is passed on.
func multipartError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &Error{Kind: kindTooLarge, Msg: fmt.Sprintf("Request too large: each file may be at most %d MB", maxFileSize>>20), Err: err}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{Kind: kindTimeout, Err: err, Msg: fmt.Sprintf(
			"The upload was too slow: after the first %d s it must average at least %d KB/s", int(uploadGrace.Seconds()), uploadMinRate>>10)}
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		// The connection failed; its message names the server's own address.
		return &Error{Kind: kindInvalid, Msg: "The upload's connection failed before the body was whole", Err: err}
	}
	return &Error{Kind: kindInvalid, Msg: "Malformed multipart body: " + quotable(err.Error()), Err: err}
}

// saveUpload copies one file part to a new temporary file, at most maxFileSize bytes of it
// (captions.MaxSize for captions). It returns the upload even with an error, so the caller can
// remove the file.
func (s *server) saveUpload(p io.Reader, name string) (*upload, error) {
	f, err := s.dirs.uploadScratch()
	if diskFull(err) {
		return nil, lowDisk(err) // no room, or no inode, for the file
	}
	if err != nil {
		return nil, fmt.Errorf("create upload file: %w", err)
	}
	defer f.Close()
	u := &upload{path: f.Name()}
	u.size, err = io.Copy(diskWriter{f}, io.LimitReader(p, uploadLimit(name)+1))
	if err != nil {
		return u, copyFailed(err)
	}
	if err := checkUploadSize(name, u.size); err != nil {
		return u, err
	}
	// The job's row will promise this file exists; make that true across a power cut.
	if err := f.Sync(); diskFull(err) {
		return u, lowDisk(err) // a file system that reports a full disk only when it writes back
	} else if err != nil {
		return u, fmt.Errorf("sync upload: %w", err)
	}
	u.head = make([]byte, min(u.size, media.SniffLen))
	if _, err := f.ReadAt(u.head, 0); err != nil {
		return u, fmt.Errorf("read upload: %w", err)
	}
	return u, nil
}

// countUpload reads one file part as saveUpload does, with its limits, and throws it away.
func countUpload(p io.Reader, name string) (*upload, error) {
	n, err := io.Copy(io.Discard, io.LimitReader(p, uploadLimit(name)+1))
	if err != nil {
		return nil, multipartError(err)
	}
	return &upload{size: n}, checkUploadSize(name, n)
}

// uploadLimit is the most bytes the file part name may hold: maxFileSize, captions.MaxSize for
// captions.
func uploadLimit(name string) int64 {
	if name == "captions" {
		return captions.MaxSize
	}
	return maxFileSize
}

// checkUploadSize refuses a file part name of size bytes that is empty or over uploadLimit.
func checkUploadSize(name string, size int64) error {
	limit, unit := uploadLimit(name), "MB"
	if name == "captions" {
		unit = "MB of text"
	}
	if size > limit {
		return errorf(kindTooLarge, "The %s file is larger than %d %s", name, limit>>20, unit)
	}
	if size == 0 {
		return errorf(kindInvalid, "The %s file is empty", name)
	}
	return nil
}

// diskWriter writes an upload to its file, marking the file's errors as the server's: a full disk
// is a 507 and any other failure a 500, never the client's malformed body.
type diskWriter struct{ f *os.File }

func (w diskWriter) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // without the temporary file's path, for the log as for the client
		}
		return n, &diskWriteError{err}
	}
	return n, nil
}

// diskWriteError is a failure to write an upload to disk.
type diskWriteError struct{ err error }

func (e *diskWriteError) Error() string { return "write upload: " + e.err.Error() }
func (e *diskWriteError) Unwrap() error { return e.err }

// diskFull says whether err is a write refused for want of room: the disk's (ENOSPC) or the
// service user's quota (EDQUOT).
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// copyFailed is the error of copying an upload from the request to disk: a full disk is a 507,
// another disk failure the server's, and a failure to read the body the client's (multipartError).
func copyFailed(err error) error {
	var werr *diskWriteError
	switch {
	case errors.As(err, &werr) && diskFull(werr.err):
		return lowDisk(err)
	case errors.As(err, &werr):
		return fmt.Errorf("save upload: %w", werr)
	}
	return multipartError(err)
}

// validateSubmission checks the options, the input and webhook URLs, the captions and the uploaded
// media files' types and contents, cheapest first, and returns the job they describe (without id,
// key or paths). An input given by URL is checked for form only here: its file is checked the same
// way when it is fetched, in the job's time (fetchInputs).
func (s *server) validateSubmission(ctx context.Context, files map[string]*upload, fields map[string]string) (Job, error) {
	urls := map[inputKind]string{}
	for _, kind := range []inputKind{inputImage, inputAudio, inputCaptions} {
		if raw := fields[string(kind)+"Url"]; raw != "" {
			if err := s.hooks.checkURL(ctx, string(kind)+"Url", raw); err != nil {
				return Job{}, err
			}
			urls[kind] = raw
		}
	}
	opts, err := parseOptions(fields, files["captions"] != nil || urls[inputCaptions] != "")
	if err != nil {
		return Job{}, err
	}
	var cues []captions.Cue
	if c := files["captions"]; c != nil {
		if cues, err = readCaptions(c.path); err != nil {
			return Job{}, err
		}
	}
	webhookURL := fields["webhookUrl"]
	if webhookURL != "" {
		if err := s.hooks.CheckURL(ctx, webhookURL); err != nil {
			return Job{}, err
		}
	}
	m, err := s.checkMedia(ctx, files["image"], files["audio"])
	if err != nil {
		return Job{}, err
	}
	// The captions' limits that depend on the audio's length, checked before the job is queued so
	// a file that would hold a worker for hours is a 400, not a render that times out.
	if cues != nil && files["audio"] != nil {
		if _, err := captions.Fit(cues, m.audio.Duration); err != nil {
			return Job{}, invalidCaptions(err)
		}
	}
	j := Job{ImageType: m.imageType, AudioType: m.audioType, WebhookURL: webhookURL, Options: opts, InputURLs: urls}
	if files["audio"] != nil {
		j.AudioCodec, j.AudioDuration = audioCodecTag(m.audio), m.audio.Duration
	}
	return j, nil
}

// readCaptions parses the captions file at path (at most captions.MaxSize).
func readCaptions(path string) ([]captions.Cue, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read captions: %w", err)
	}
	return parseCaptions(b)
}

// parseCaptions parses an SRT or WebVTT file's bytes, with the API's message when they are refused.
func parseCaptions(b []byte) ([]captions.Cue, error) {
	cues, err := captions.Parse(b)
	if err != nil {
		return nil, invalidCaptions(err)
	}
	return cues, nil
}

// checkedMedia is what checkMedia found in a job's image and audio.
type checkedMedia struct {
	imageType, audioType string
	audio                audioInfo
}

// checkMedia checks the image and the audio, either of which may be nil (not checked): their types
// from their bytes, then their contents, and the audio's length against -max-duration. The image
// may be rewritten in place (a repaired PNG, a converted HEIC) and its type changed with it.
func (s *server) checkMedia(ctx context.Context, img, aud *upload) (checkedMedia, error) {
	var m checkedMedia
	if img == nil && aud == nil {
		return m, nil // both by URL: checked when fetched
	}
	var imgHeader imageHeader
	if img != nil {
		if m.imageType = media.SniffImage(img.head); m.imageType == "" {
			return m, unsupportedMedia("image: the file is %s; send a JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC or AVIF image", describe(img.head))
		}
		var err error
		if imgHeader, err = inspectImage(img.path, m.imageType); err != nil {
			return m, err
		}
	}
	if aud != nil {
		if m.audioType = media.SniffAudio(aud.head); m.audioType == "" {
			return m, unsupportedMedia("audio: the file is %s; send %s", describe(aud.head), audioTypes)
		}
	}
	// Decoding the files is the upload's expensive part (a process each, up to a 100-megapixel
	// picture): a bounded number of submissions do it at once, whatever the number of uploads, so
	// a burst of them cannot ask the machine for more memory than it has.
	select {
	case s.validations <- struct{}{}:
		defer func() { <-s.validations }()
	case <-ctx.Done():
		return m, ctx.Err()
	}
	// Decoding the image and probing the audio are two ffprobe runs of ~0.1 s each, mostly process
	// start-up: running them side by side halves the submission's latency.
	imgErr := make(chan error, 1)
	go func() {
		var err error
		defer func() {
			// A panic here, off the request's goroutine, would take the whole service down.
			if v := recover(); v != nil {
				err = fmt.Errorf("prepare image: panic: %v", v)
			}
			imgErr <- err
		}()
		if img == nil {
			return
		}
		release, err := s.pictures.acquire(ctx, headerCost(imgHeader, img.path, m.imageType))
		if err != nil {
			return
		}
		defer release()
		m.imageType, err = prepareInspected(ctx, s.tools, s.goDecodes, img.path, m.imageType, imgHeader)
	}()
	var audErr error
	if aud != nil {
		m.audio, audErr = probeAudio(ctx, s.tools, aud.path, m.audioType)
	}
	if err := <-imgErr; err != nil {
		return m, err
	}
	if audErr != nil {
		return m, audErr
	}
	if aud != nil && s.cfg.MaxDuration > 0 && m.audio.Duration > s.cfg.MaxDuration.Seconds() {
		return m, badMedia("audio: it lasts %s; the most accepted is %s", fmtOver(m.audio.Duration), fmtLimit(s.cfg.MaxDuration.Seconds()))
	}
	return m, nil
}

func fmtDuration(sec float64) string {
	s := int(sec + 0.5)
	return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
}

// fmtOver is fmtDuration of a length over a limit, with its tenths rounded up, so that it never
// reads as the limit itself: 5.4 s over 5 s is 0:00:05.4.
func fmtOver(sec float64) string {
	return fmtTenths(int(math.Ceil(sec*10 - 1e-6))) // less floating-point noise
}

// fmtLimit is fmtDuration of a limit, with its tenths (rounded down) when it is not whole seconds, so
// that fmtOver of a length over it always reads as more: 0:00:05.6 over 0:00:05.5.
func fmtLimit(sec float64) string {
	if sec == math.Trunc(sec) {
		return fmtDuration(sec)
	}
	return fmtTenths(int(math.Floor(sec*10 + 1e-6)))
}

// fmtTenths writes tenths of a second as fmtDuration does, with the tenth: 0:00:05.4.
func fmtTenths(tenths int) string {
	s := tenths / 10
	return fmt.Sprintf("%d:%02d:%02d.%d", s/3600, s/60%60, s%60, tenths%10)
}

// validURLSyntax checks the shape of a URL the service will call or fetch, given as field:
// absolute https with a host, no credentials.
func validURLSyntax(field, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Hostname() == "" {
		return nil, errorf(kindInvalid, "%s must be an absolute https:// URL", field)
	}
	if u.User != nil {
		return nil, errorf(kindInvalid, "%s must not contain credentials", field)
	}
	if p := u.Port(); p != "" {
		if _, err := net.LookupPort("tcp", p); err != nil {
			return nil, errorf(kindInvalid, "%s has an invalid port", field)
		}
	}
	return u, nil
}
