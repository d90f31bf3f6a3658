package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// secretOverlap is how long a rotated-out webhook secret keeps signing deliveries beside the new one.
const secretOverlap = 24 * time.Hour

const base36 = "0123456789abcdefghijklmnopqrstuvwxyz"

// randomString returns n characters drawn uniformly from alphabet using bytes from r.
func randomString(r io.Reader, n int, alphabet string) (string, error) {
	limit := 256 - 256%len(alphabet) // reject bytes past the last whole multiple, so there is no bias
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("random: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}

// newJobID returns "c" + 9 base-36 digits of the unix millisecond + 15 random base-36 characters:
// 25 characters that sort roughly by creation time and carry about 77 bits of randomness.
func newJobID(now time.Time, r io.Reader) (string, error) {
	ts := strings.Repeat("0", 9) + strconv.FormatInt(now.UnixMilli(), 36)
	rnd, err := randomString(r, 15, base36)
	if err != nil {
		return "", err
	}
	return "c" + ts[len(ts)-9:] + rnd, nil
}

// isJobID reports whether s has the shape of a job id, so malformed ids never reach the database.
func isJobID(s string) bool {
	if len(s) != 25 || s[0] != 'c' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !strings.ContainsRune(base36, rune(s[i])) {
			return false
		}
	}
	return true
}

func randomHex(r io.Reader, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// newWebhookSecret returns a secret in the Standard Webhooks form: "whsec_" + base64 of 24 bytes.
func newWebhookSecret(r io.Reader) (string, error) {
	b := make([]byte, 24)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b), nil
}

// newDeliveryID names a webhook delivery: the webhook-id header, the same on every retry.
func newDeliveryID(r io.Reader) (string, error) {
	id, err := randomString(r, 24, base36)
	return "msg_" + id, err
}

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// createKey makes a new account named name and returns it with its API key, which exists nowhere
// else afterwards: the store keeps only its hash.
func createKey(ctx context.Context, st *Store, name string, r io.Reader, now time.Time) (Key, string, error) {
	secretPart, err := randomHex(r, 20)
	if err != nil {
		return Key{}, "", err
	}
	idPart, err := randomHex(r, 6)
	if err != nil {
		return Key{}, "", err
	}
	secret, err := newWebhookSecret(r)
	if err != nil {
		return Key{}, "", err
	}
	apiKey := "vg_" + secretPart
	k := Key{ID: "key_" + idPart, Name: name, Prefix: apiKey[:10], WebhookSecret: secret, Active: true, CreatedAt: now.UTC()}
	if err := st.CreateKey(ctx, k, hashKey(apiKey)); err != nil {
		return Key{}, "", err
	}
	return k, apiKey, nil
}

// maxKeyName bounds a key's name: it is typed on command lines and shown in a table.
const maxKeyName = 64

// checkKeyName refuses a name that deactivate and rotate-secret could not tell from an ID (they
// take either), one too long for keys list's table, or one with characters a terminal would act on.
func checkKeyName(name string) error {
	switch {
	case name == "":
		return errors.New("-name is required")
	case strings.HasPrefix(name, "key_"):
		return fmt.Errorf("-name %q: names may not start with key_, as IDs do", name)
	case strings.HasPrefix(name, "-"):
		return fmt.Errorf("-name %q: names may not start with -, which reads as a flag", name)
	case utf8.RuneCountInString(name) > maxKeyName:
		return fmt.Errorf("-name: %d characters; at most %d", utf8.RuneCountInString(name), maxKeyName)
	case strings.TrimSpace(name) != name || strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) || !utf8.ValidString(name):
		return fmt.Errorf("-name %q: printable characters only, without spaces at either end", name)
	}
	return nil
}
