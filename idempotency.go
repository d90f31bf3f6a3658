package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// A submission may carry an Idempotency-Key (the IETF HTTP API working group's header): a retry
// of it with the same key and the same request gets the first answer again, the same job, instead
// of a second job or a 409 for the job the first one made. The key is the client's, scoped to its
// account, and remembered for idempotencyTTL.

// maxIdempotencyKey is the longest Idempotency-Key accepted; a UUID is 36 characters.
const maxIdempotencyKey = 255

// idempotencyKeyChars are the characters an Idempotency-Key may hold: those of UUIDs, ULIDs and
// base64, none of which need quoting anywhere.
const idempotencyKeyChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:~+/="

// idempotencyKeyOf returns the request's Idempotency-Key, "" when it has none. The draft writes
// the key as a Structured Field string ("…", in double quotes); a bare key is accepted as well.
func idempotencyKeyOf(h http.Header) (string, error) {
	vs := h.Values("Idempotency-Key")
	if len(vs) == 0 {
		return "", nil
	}
	bad := errorf(kindInvalid, "Idempotency-Key must be one header of 1 to %d characters from A-Z, a-z, 0-9 and - _ . : ~ + / =, "+
		"optionally in double quotes (a UUID fits)", maxIdempotencyKey)
	if len(vs) > 1 {
		return "", bad
	}
	v := strings.TrimSpace(vs[0])
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if v == "" || len(v) > maxIdempotencyKey || strings.Trim(v, idempotencyKeyChars) != "" {
		return "", bad
	}
	return v, nil
}

// requestFingerprint hashes the parts of a submission that vidgen reads, as they stream in: two
// requests have the same fingerprint when they send the same parts with the same bytes, in any
// order and whatever their multipart framing.
type requestFingerprint struct {
	parts []string // "name:sha256", one per part read
}

// tee returns r, whose bytes are hashed as the part name's while they are read; end records the
// part, once it has been read.
func (f *requestFingerprint) tee(name string, r io.Reader) (tee io.Reader, end func()) {
	h := sha256.New()
	return io.TeeReader(r, h), func() { f.parts = append(f.parts, name+":"+hex.EncodeToString(h.Sum(nil))) }
}

// sum is the fingerprint of the parts recorded so far.
func (f *requestFingerprint) sum() string {
	parts := slices.Clone(f.parts)
	slices.Sort(parts)
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// replayIdempotent answers a retry of a submission whose answer is stored: the same status and
// body when the request is the same (fingerprint), a 422 when the key was used for another.
func (s *server) replayIdempotent(w http.ResponseWriter, r *http.Request, stored *storedResponse, fingerprint string) {
	if stored.Fingerprint != fingerprint {
		s.writeError(w, r, errorf(kindUnprocessable,
			"This Idempotency-Key was used for a different request (other files or fields) in the last %d hours; use a new key for a new job",
			int(idempotencyTTL.Hours())))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Location", "/api/status/"+stored.JobID)
	h.Set("Idempotent-Replayed", "true")
	w.WriteHeader(stored.StatusCode)
	w.Write(stored.Body)
}

// idempotencyClaimOwner names a request's claim on an Idempotency-Key: this node's id and one of
// its own (NODE/CLAIM), so that this node's next start releases it and no other request can
// complete or release it.
func (s *server) idempotencyClaimOwner() (string, error) {
	claim, err := randomString(s.rand, 12, base36)
	return s.jobs.leases.node + "/" + claim, err
}

// releaseIdempotencyKey gives up the request's claim (owner's) on key unless it was answered with
// a job, even when the client has gone.
func (s *server) releaseIdempotencyKey(r *http.Request, keyID, key, owner string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if err := s.store.ReleaseIdempotencyKey(ctx, keyID, key, owner); err != nil {
		// The claim stays until the next start-up or a day has passed: retries get 409 meanwhile.
		s.log.Error("release idempotency key", "key", keyID, "err", err, "request_id", requestIDFrom(r))
	}
}
