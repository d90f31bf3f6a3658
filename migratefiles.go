package main

// The migrate-files command: `vidgen migrate-files -files s3://BUCKET/PREFIX`, which moves a
// single-box install's uploads and outputs into a bucket, with serve stopped.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// runMigrateFiles implements `vidgen migrate-files`: it copies every file of the data directory's
// inputs/ and outputs/ to the bucket -files names, under the same keys, so that a serve started
// with that -files finds every job's uploads and every link's video. A file already in the bucket
// with the same size is skipped, so a run cut short is simply run again. The data directory's own
// files stay: the operator deletes them once the service runs on the bucket.
func runMigrateFiles(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	var cfg config
	fs := flag.NewFlagSet("migrate-files", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DataDir, "data", "./data", "the data directory whose files move")
	addFilesFlags(fs, &cfg)
	// The same variables as serve's, so the unit file's environment works as it is.
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := env(envName(f.Name)); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("migrate-files: %s: %q: %w", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("migrate-files: unexpected argument %q", fs.Arg(0))
	}
	if err := checkFilesConfig(&cfg, env); err != nil {
		return err
	}
	if cfg.S3.Bucket == "" {
		return errors.New("migrate-files: -files s3://BUCKET/PREFIX (or VIDGEN_FILES) names the bucket the files go to")
	}
	dirs := dataDir{root: cfg.DataDir}
	if _, err := os.Stat(dirs.db()); err != nil {
		return fmt.Errorf("migrate-files: no vidgen database at %s; pass the -data (or VIDGEN_DATA) that vidgen serve uses", dirs.db())
	}
	// Under serve's lock: a serve running would go on writing files the copy misses.
	unlock, err := dirs.lock()
	if errors.Is(err, errDataDirInUse) {
		return fmt.Errorf("migrate-files: %w: stop it first", err)
	}
	if err != nil {
		return err
	}
	defer unlock()
	to, err := newS3Files(ctx, cfg.S3)
	if err != nil {
		return err
	}
	copied, kept, bytes, err := copyFiles(ctx, diskFiles{dirs}, to)
	fmt.Fprintf(stdout, "copied %d files (%d MB) to s3://%s/%s; %d were there already\n", copied, bytes>>20, cfg.S3.Bucket, cfg.S3.Prefix, kept)
	if err != nil {
		return fmt.Errorf("migrate-files: %w (run it again to go on)", err)
	}
	fmt.Fprintf(stdout, "start vidgen serve with -files %s; then delete %s and %s\n", cfg.Files, dirs.inputs(), dirs.outputs())
	return nil
}

// copyFiles copies every upload and output of from to to, under the same keys, skipping those
// that to holds with the same size. It returns how many it copied (and their bytes) and skipped.
func copyFiles(ctx context.Context, from, to fileStore) (copied, kept int, bytes int64, err error) {
	for _, prefix := range []string{"inputs/", "outputs/"} {
		entries, err := from.List(ctx, prefix)
		if err != nil {
			return copied, kept, bytes, err
		}
		for _, e := range entries {
			if n, err := to.Stat(ctx, e.Key); err == nil && n == e.Size {
				kept++
				continue
			}
			f, err := from.Open(ctx, e.Key)
			if err != nil {
				return copied, kept, bytes, err
			}
			err = to.Put(ctx, e.Key, f, e.Size)
			f.Close()
			if err != nil {
				return copied, kept, bytes, fmt.Errorf("copy %s: %w", e.Key, err)
			}
			copied++
			bytes += e.Size
		}
	}
	return copied, kept, bytes, nil
}
