package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
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

// runKeys implements `vidgen keys ...`.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string, r io.Reader, now func() time.Time) error {
	usage := "usage: vidgen keys create -name NAME [-json] | list [-json] | deactivate ID_OR_NAME | rotate-secret ID_OR_NAME [-json]"
	if len(args) == 0 {
		return errors.New(usage)
	}
	sub, args := args[0], args[1:]
	if isHelpArg(sub) {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	switch sub {
	case "create", "list", "deactivate", "rotate-secret":
	default:
		return errors.New(usage) // before openData: a typo must not create a data directory
	}
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataPath := fs.String("data", envOr(env, "VIDGEN_DATA", "./data"), "data directory (VIDGEN_DATA)")
	asJSON := fs.Bool("json", false, "print JSON")
	name := fs.String("name", "", "name of the new key (create)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	wantArgs := 0
	if sub == "deactivate" || sub == "rotate-secret" {
		wantArgs = 1
	}
	if len(pos) != wantArgs {
		return errors.New(usage)
	}
	// A name given to list or deactivate reads as a filter or a target, and would be ignored.
	if sub != "create" && *name != "" {
		return fmt.Errorf("keys %s: -name is only for keys create\n%s", sub, usage)
	}
	// Only create may start a data directory (before the first serve, as a script does): a list or
	// a deactivation pointed at a mistyped -data must not answer from a new, empty database.
	if db := (dataDir{root: *dataPath}).db(); sub != "create" {
		if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("keys %s: no vidgen database at %s; pass the -data (or VIDGEN_DATA) that vidgen serve uses", sub, db)
		}
	}
	st, err := openKeysStore(ctx, *dataPath, now, keysWaitForServe)
	if err != nil {
		return err
	}
	defer st.Close()

	switch sub {
	case "create":
		if err := checkKeyName(*name); err != nil {
			return fmt.Errorf("keys create: %w", err)
		}
		k, apiKey, err := createKey(ctx, st, *name, r, now())
		if errors.Is(err, ErrNameTaken) {
			return fmt.Errorf("keys create: a key named %q already exists", *name)
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(map[string]string{"id": k.ID, "name": k.Name, "apiKey": apiKey, "webhookSecret": k.WebhookSecret})
		}
		fmt.Fprintf(stdout, "id:             %s\nname:           %s\napi key:        %s\nwebhook secret: %s\n\nThe API key is shown only now; vidgen keeps only its hash.\n", k.ID, k.Name, apiKey, k.WebhookSecret)
		return nil
	case "list":
		keys, err := st.ListKeys(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			type item struct {
				ID        string `json:"id"`
				Name      string `json:"name"`
				Prefix    string `json:"prefix"`
				Active    bool   `json:"active"`
				CreatedAt string `json:"createdAt"`
			}
			items := []item{}
			for _, k := range keys {
				items = append(items, item{k.ID, k.Name, k.Prefix, k.Active, apiTime(k.CreatedAt)})
			}
			return json.NewEncoder(stdout).Encode(items)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tACTIVE\tCREATED")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%s…\t%v\t%s\n", k.ID, k.Name, k.Prefix, k.Active, apiTime(k.CreatedAt))
		}
		return tw.Flush()
	case "deactivate":
		k, err := findKey(ctx, st, pos[0])
		if err != nil {
			return err
		}
		if err := st.DeactivateKey(ctx, k.ID); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deactivated %s (%s)\n", k.ID, k.Name)
		return nil
	case "rotate-secret":
		k, err := findKey(ctx, st, pos[0])
		if err != nil {
			return err
		}
		secret, err := newWebhookSecret(r)
		if err != nil {
			return err
		}
		if err := st.RotateSecret(ctx, k.ID, secret, now().Add(secretOverlap)); err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(map[string]string{"id": k.ID, "name": k.Name, "webhookSecret": secret})
		}
		fmt.Fprintf(stdout, "new webhook secret for %s (%s): %s\nThe previous secret also signs deliveries for the next 24 hours.\n", k.ID, k.Name, secret)
		return nil
	}
	return errors.New(usage)
}

func findKey(ctx context.Context, st *Store, idOrName string) (Key, error) {
	k, err := st.FindKey(ctx, idOrName)
	if errors.Is(err, ErrNotFound) {
		return Key{}, fmt.Errorf("no key with id or name %q", idOrName)
	}
	return k, err
}

// parseInterleaved parses flags that may come before or after positional arguments
// (`keys deactivate NAME -data DIR`), returning the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// keysWaitForServe is how long a keys command waits for a starting serve to bring the database to
// its schema: past busy_timeout (10 s), which one migration may spend waiting for SQLite's lock.
const keysWaitForServe = 15 * time.Second

// openKeysStore opens the data directory's database for a keys command. With no serve running it
// holds the directory's shared lock while it opens the database, so it may create or migrate it
// (a script makes the first key before the first start). Beside a serve it opens the database as
// it is, waiting up to wait for a starting serve to bring it to this binary's schema, and then
// refuses one it would have to migrate: that is the new serve's job, after the old one stopped.
func openKeysStore(ctx context.Context, path string, now func() time.Time, wait time.Duration) (*Store, error) {
	dirs, err := openDataDir(path)
	if err != nil {
		return nil, err
	}
	unlock, err := dirs.share()
	switch {
	case err == nil:
		defer unlock()
		return OpenStore(ctx, dirs.db(), now)
	case errors.Is(err, errDataDirInUse):
		// The serve may be starting, and migrating (or creating) the database this moment: give it
		// longer than one migration may wait for SQLite's lock before calling the database old.
		for deadline := time.Now().Add(wait); ; time.Sleep(100 * time.Millisecond) {
			st, err := OpenStoreAsIs(ctx, dirs.db(), now)
			if !errors.Is(err, errSchemaBehind) || time.Now().After(deadline) {
				return st, err
			}
		}
	default:
		return nil, err
	}
}
