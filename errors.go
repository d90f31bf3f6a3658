package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"vidgen/internal/ffmpeg"
)

// errorKind says whose problem an error is and so which status code the client gets. Only
// writeError turns a kind into a status code.
type errorKind uint8

const (
	kindInternal         errorKind = iota // the service's fault: logged, the client sees a bare 500
	kindInvalid                           // the request or an uploaded file is malformed (400)
	kindUnauthorized                      // no key, or one that does not work (401)
	kindNotFound                          // no such job or route, or not the caller's (404)
	kindMethodNotAllowed                  // the route exists, the method does not (405)
	kindConflict                          // the job's or the key's state forbids it now (409)
	kindTimeout                           // the client sent too slowly (408)
	kindGone                              // it existed and was deleted (410)
	kindTooLarge                          // an upload over its cap (413)
	kindBadRange                          // a byte range past the end of a file (416)
	kindUnsupported                       // a file of a type vidgen does not take (415)
	kindRateLimited                       // the client's bucket is empty (429)
	kindUnavailable                       // the service cannot take it right now (503)
	kindNoSpace                           // the disk is nearly full (507)
	kindClientGone                        // the client closed the request before its answer (499, as nginx logs it)
	kindUnprocessable                     // well-formed, but it contradicts what the service holds (422)
)

// Error is every error vidgen reports to a client: a kind and a message the client can act on.
// Err, when set, is the cause, for the log only.
type Error struct {
	Kind errorKind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// toolFailed is an ffmpeg, ffprobe or heif-convert that could not be started (a binary removed by
// an upgrade, no processes left under the unit's TasksMax): the server's trouble, never the file's,
// so the client is told to try again and the operator gets the cause in the log.
func toolFailed(name string, err error) *Error {
	return &Error{Kind: kindUnavailable, Msg: "The server cannot process files right now; try again in a minute",
		Err: fmt.Errorf("start %s: %w", name, err)}
}

// toolKilled is an ffmpeg or ffprobe checking an upload that a signal ended (the kernel's OOM killer
// under the unit's MemoryMax, an operator): nothing is known of the file, so it is a 503 like
// toolFailed, never "damaged". The trade-off: a file whose decode alone takes more than the unit
// allows is killed the same way and gets a 503 on each try, where -child-memory (when below the
// unit's limit) would have made it the 400 it is; the picture budget keeps other decodes out of
// its way.
func toolKilled(name string, err error) *Error {
	return &Error{Kind: kindUnavailable, Msg: "The server cannot process files right now; try again in a minute",
		Err: fmt.Errorf("%s killed: %w", name, err)}
}

// toolTrouble is the error of an upload's check by the tool name (ffprobe) that failed for the
// server, not the file: it did not start (toolFailed, which names the file that did not start) or
// a signal from outside killed it (toolKilled). nil for any other failure, the file's or its
// context's.
func toolTrouble(name string, err error) error {
	var fe *ffmpeg.Error
	if !errors.As(err, &fe) {
		return nil
	}
	switch fe.Reason {
	case ffmpeg.NotStarted:
		return toolFailed(fe.Tool, fe.Err)
	case ffmpeg.Killed:
		return toolKilled(name, fe.Err)
	}
	return nil
}

// lowDisk is the 507 of a server whose data disk is (nearly) full; cause, when set, is for the log.
func lowDisk(cause error) *Error {
	return &Error{Kind: kindNoSpace, Msg: "The server is low on disk space and cannot take new jobs right now; try again later", Err: cause}
}

// errorf returns an *Error of kind with a formatted message for the client.
func errorf(kind errorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Errors that more than one layer returns and matches with errors.Is. The store returns them at its
// boundary; their messages are what the API answers.
var (
	ErrNotFound      = errorf(kindNotFound, "Not found")
	ErrJobNotFound   = errorf(kindNotFound, "Job not found")
	ErrActiveJob     = errorf(kindConflict, "You already have an active job (PENDING or PROCESSING); wait for it to finish or cancel it first")
	ErrNotCancelable = errorf(kindConflict, "Job is not in a cancellable state: only PENDING jobs can be cancelled")
	ErrNotFinal      = errorf(kindConflict, "Job has not finished yet; webhooks are sent when it reaches COMPLETED or FAILED")
	ErrNoWebhook     = errorf(kindConflict, "Job has no webhookUrl")
	ErrNameTaken     = errorf(kindConflict, "Name already taken")
	ErrMissingKey    = errorf(kindUnauthorized, "Missing X-API-Key header")
	ErrBadKey        = errorf(kindUnauthorized, "API key not recognized or has been deactivated")
	ErrExpired       = errorf(kindGone, "This video has expired and was deleted")
)

// apiKeyChallenge is the WWW-Authenticate header of every 401 (HTTP requires a challenge there). The
// API takes its key in X-API-Key, not Authorization, so the challenge says that rather than Bearer,
// which would send clients to the wrong header.
const apiKeyChallenge = `ApiKey realm="vidgen", header="X-API-Key"`

// statusCode is the HTTP status for an error of kind k.
func (k errorKind) statusCode() int {
	switch k {
	case kindInvalid:
		return http.StatusBadRequest
	case kindUnauthorized:
		return http.StatusUnauthorized
	case kindNotFound:
		return http.StatusNotFound
	case kindMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case kindConflict:
		return http.StatusConflict
	case kindTimeout:
		return http.StatusRequestTimeout
	case kindGone:
		return http.StatusGone
	case kindTooLarge:
		return http.StatusRequestEntityTooLarge
	case kindUnsupported:
		return http.StatusUnsupportedMediaType
	case kindRateLimited:
		return http.StatusTooManyRequests
	case kindUnavailable:
		return http.StatusServiceUnavailable
	case kindNoSpace:
		return http.StatusInsufficientStorage
	case kindBadRange:
		return http.StatusRequestedRangeNotSatisfiable
	case kindClientGone:
		return 499
	case kindUnprocessable:
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// kindOf returns the kind of err: that of the first *Error in its chain, else kindInternal.
func kindOf(err error) errorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return kindInternal
}

// maxQuoted is the most of a client's own text an error message quotes back.
const maxQuoted = 64

// quotable makes client-supplied text safe to quote in an error message: at most maxQuoted runes, every
// control or invalid character replaced, so a megabyte of junk yields a short, printable message.
func quotable(s string) string {
	var b strings.Builder
	n := 0
	for i, r := range s {
		if n == maxQuoted {
			b.WriteString("…")
			break
		}
		if r == utf8.RuneError && len(s[i:]) > 0 {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				r = '?'
			}
		}
		if !unicode.IsPrint(r) {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
