package main

// The keys command: `vidgen keys create|list|deactivate|rotate-secret`, run beside a serve or without one.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"
)

// runKeys implements `vidgen keys ...`, on the data directory keysDataDir finds, as the account
// actAsOwnerOf chooses (become switches to the directory's owner when run as root).
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string, r io.Reader, now func() time.Time, become becomeOwner) error {
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
	dataFlag := fs.String("data", "", "data directory (default: VIDGEN_DATA, else that of the installed vidgen.service)")
	database := fs.String("database", envOr(env, envName("database"), ""), "the Postgres URL serve uses, if any ("+envName("database")+")")
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
	var st *Store
	if *database != "" {
		// Keys on Postgres are shared by every node: no data directory is involved.
		if !isPostgresURL(*database) {
			return fmt.Errorf("keys %s: -database (%s) is not a postgres:// URL", sub, envName("database"))
		}
		st, err = openKeysPostgres(ctx, *database, now)
	} else {
		st, err = openKeysDataStore(ctx, sub, args, *dataFlag, env, stderr, now, become)
	}
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
		return waitForSchema(func() (*Store, error) { return OpenStoreAsIs(ctx, dirs.db(), now) }, wait)
	default:
		return nil, err
	}
}

// waitForSchema opens a store as it is with open, trying again for up to wait while its schema is
// behind this binary's: a serve starting this moment brings it up to date. A Postgres database is
// always opened so by the keys commands, since some node's serve may run on it: only a serve
// creates or migrates it.
func waitForSchema(open func() (*Store, error), wait time.Duration) (*Store, error) {
	for deadline := time.Now().Add(wait); ; time.Sleep(100 * time.Millisecond) {
		st, err := open()
		if !errors.Is(err, errSchemaBehind) || time.Now().After(deadline) {
			return st, err
		}
	}
}

// openKeysPostgres opens the Postgres database at url for a keys command, as it is: only a serve
// creates or migrates it, so a starting one is waited for (see waitForSchema).
func openKeysPostgres(ctx context.Context, url string, now func() time.Time) (*Store, error) {
	return waitForSchema(func() (*Store, error) { return OpenPostgresStoreAsIs(ctx, url, now) }, keysWaitForServe)
}

// openKeysDataStore opens the SQLite database of the data directory the keys command sub (run with
// args) is meant for: -data (dataFlag), else the service's, found by keysDataDir; as root, it first
// becomes the directory's owner, so that every file it writes stays the service's.
func openKeysDataStore(ctx context.Context, sub string, args []string, dataFlag string, env func(string) string,
	stderr io.Writer, now func() time.Time, become becomeOwner) (*Store, error) {
	dataPath, from, err := keysDataDir(dataFlag, env)
	if err != nil {
		return nil, fmt.Errorf("keys %s: %w", sub, err)
	}
	if dataFlag == "" && from != "VIDGEN_DATA" {
		fmt.Fprintf(stderr, "vidgen keys: data directory %s (from %s)\n", dataPath, from)
	}
	// The service of this directory may keep its keys in Postgres: its unit says so, or its
	// directory has a node id (a serve ran there) and no vidgen.db (which serve makes only for SQLite).
	pgURL, unit := unitDatabase(dataPath, env)
	usesPostgres := fmt.Sprintf("the service on %s keeps its keys in Postgres, not in this directory: pass -database (or %s) with the URL vidgen serve uses",
		dataPath, envName("database"))
	if pgURL != "" {
		if from != "the unit "+unit {
			return nil, fmt.Errorf("keys %s: %s (%s sets it)", sub, usesPostgres, unit)
		}
		if !isPostgresURL(pgURL) {
			return nil, fmt.Errorf("keys %s: %s in %s is not a postgres:// URL", sub, envName("database"), unit)
		}
		fmt.Fprintf(stderr, "vidgen keys: database %s (from the unit %s)\n", redactURL(pgURL), unit)
		return openKeysPostgres(ctx, pgURL, now)
	}
	dirs := dataDir{root: dataPath}
	if _, err := os.Stat(dirs.db()); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(dirs.nodeID()); err == nil {
			return nil, fmt.Errorf("keys %s: %s", sub, usesPostgres)
		}
		// Only create may start a database (before the first serve, as a script does), in a
		// directory that exists: a list or a deactivation pointed at a mistyped -data must not
		// answer from a new, empty database.
		if sub != "create" {
			return nil, fmt.Errorf("keys %s: no vidgen database at %s; pass the -data (or VIDGEN_DATA) that vidgen serve uses", sub, dirs.db())
		}
	}
	// The command as typed, with the directory it found, for a message that says how to run it.
	typed := append([]string{"vidgen", "keys", sub}, args...)
	if dataFlag == "" {
		typed = append(typed, "-data", dataPath)
	}
	if err := actAsOwnerOf(dataPath, typed, become); err != nil {
		return nil, fmt.Errorf("keys %s: %w", sub, err)
	}
	return openKeysStore(ctx, dataPath, now, keysWaitForServe)
}
