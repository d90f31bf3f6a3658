package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// fileStore keeps a job's files: its uploads (inputKey) until the job ends, and a finished job's
// video and poster (outputKey) until they expire. The data directory is one (diskFiles, the
// default) and an S3 bucket another (s3Files); both pass the same contract (files_test.go).
//
// A key is a slash-separated name that dataDir's layout gives ("inputs/JOBID.image",
// "outputs/TOKEN.mp4"). A key that holds nothing is fs.ErrNotExist to every method that reads.
// Work in progress (an upload being received, a render's intermediate files) never goes through a
// fileStore: it stays in the data directory's tmp/, which is always local scratch.
type fileStore interface {
	// Kind names the backend, as /health reports it: "disk" or "s3".
	Kind() string
	// Check reports whether the files can be reached, for /health: always on disk (the data
	// directory's own check covers it); on S3, whether the bucket answers, asked at most every
	// s3HealthTTL, since /health takes anonymous requests and each call may be billed.
	Check(ctx context.Context) error
	// Place makes the local file at path, complete and closed, the file under key, durably (it
	// survives a power cut once Place returns), and the local file is gone afterwards. On disk it is
	// a rename: no byte is copied.
	Place(ctx context.Context, key, path string) error
	// Put stores what r yields under key; size is its length, or -1 when unknown. A reader never
	// sees a half-written file under key.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Open opens the file under key for reading, with Seek for ranges.
	Open(ctx context.Context, key string) (fileReader, error)
	// Stat returns the size of the file under key.
	Stat(ctx context.Context, key string) (int64, error)
	// Local returns the path of a local file with key's content for a program to read (ffmpeg): on
	// disk the file itself, elsewhere a copy fetched into dir, which the caller removes with dir.
	Local(ctx context.Context, key, dir string) (string, error)
	// Delete removes the file under key: fs.ErrNotExist when there was none.
	Delete(ctx context.Context, key string) error
	// List returns the files whose key starts with prefix.
	List(ctx context.Context, prefix string) ([]fileEntry, error)
	// Presign returns a URL that lets anyone GET the file under key for ttl, with ctype as its
	// Content-Type, or errNoPresign when the backend has no such URLs (disk).
	Presign(ctx context.Context, key, ctype string, ttl time.Duration) (string, error)
}

// fileReader is an open file of a fileStore.
type fileReader interface {
	io.ReadSeekCloser
}

// fileEntry is one file a fileStore lists.
type fileEntry struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// errNoPresign is a fileStore that cannot hand out URLs of its own: the node serves the file.
var errNoPresign = errors.New("this file backend has no presigned URLs")

// diskFiles is the data directory as a fileStore: each key is the file of the same relative path
// under its root.
type diskFiles struct{ dirs dataDir }

func (diskFiles) Kind() string { return "disk" }

func (diskFiles) Check(context.Context) error { return nil }

func (d diskFiles) path(key string) string {
	return filepath.Join(d.dirs.root, filepath.FromSlash(key))
}

func (d diskFiles) Place(_ context.Context, key, path string) error {
	dst := d.path(key)
	if err := syncFile(path); err != nil {
		return err
	}
	// Rename is atomic: a reader never sees a half-written file.
	if err := os.Rename(path, dst); err != nil {
		os.Remove(path)
		return err
	}
	// The rename too: after a power cut, a committed job whose upload was still in tmp/ would have
	// it deleted at start-up and fail.
	return syncDir(filepath.Dir(dst))
}

func (d diskFiles) Put(ctx context.Context, key string, r io.Reader, _ int64) error {
	f, err := d.dirs.uploadScratch()
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return d.Place(ctx, key, f.Name())
}

func (d diskFiles) Open(_ context.Context, key string) (fileReader, error) {
	return os.Open(d.path(key))
}

func (d diskFiles) Stat(_ context.Context, key string) (int64, error) {
	fi, err := os.Stat(d.path(key))
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Local is the file itself, after a check that it is there (the error names its path).
func (d diskFiles) Local(_ context.Context, key, _ string) (string, error) {
	p := d.path(key)
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

func (d diskFiles) Delete(_ context.Context, key string) error { return os.Remove(d.path(key)) }

func (d diskFiles) List(_ context.Context, prefix string) ([]fileEntry, error) {
	dir, base := pathDir(prefix)
	entries, err := os.ReadDir(d.path(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []fileEntry
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), base) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // deleted since ReadDir
		}
		out = append(out, fileEntry{Key: dir + e.Name(), Size: fi.Size(), ModTime: fi.ModTime()})
	}
	return out, nil
}

func (diskFiles) Presign(context.Context, string, string, time.Duration) (string, error) {
	return "", errNoPresign
}

// pathDir splits a key prefix into its directory, with its trailing slash ("" at the top), and
// the start of a name in it.
func pathDir(prefix string) (dir, base string) {
	i := strings.LastIndex(prefix, "/")
	return prefix[:i+1], prefix[i+1:]
}

// readStored returns the whole file under key, which may hold at most limit bytes.
func readStored(ctx context.Context, files fileStore, key string, limit int64) ([]byte, error) {
	f, err := files.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("%s: larger than %d bytes", key, limit)
	}
	return b, err
}

// removeInputs deletes a job's uploads; a file already gone is not an error.
func removeInputs(ctx context.Context, files fileStore, jobID string) error {
	var errs []error
	for _, k := range []inputKind{inputImage, inputAudio, inputCaptions} {
		if err := files.Delete(ctx, inputKey(jobID, k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeOutputs deletes a job's published files, those of every one of its sizes (Options.sizes(),
// none for a job of one size), and returns how many it deleted; a file already gone is not an error.
func removeOutputs(ctx context.Context, files fileStore, token string, sizes ...string) (int, error) {
	n := 0
	var errs []error
	for _, name := range outputNames(token, sizes) {
		for _, ext := range outputExts {
			switch err := files.Delete(ctx, outputKey(name, ext)); {
			case err == nil:
				n++
			case !errors.Is(err, fs.ErrNotExist):
				// Without the path or key, which holds the output's token, as good as its link.
				errs = append(errs, fmt.Errorf("remove %s output: %w", ext, withoutName(err)))
			}
		}
	}
	return n, errors.Join(errs...)
}

// withoutName is err less the file name a *PathError carries.
func withoutName(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// sweepFiles deletes every file under prefix whose name (the key past prefix, up to its first dot)
// keep does not claim, and that is older than grace: a shared bucket holds uploads that another
// node is placing for a job it has yet to commit.
func sweepFiles(ctx context.Context, files fileStore, prefix string, grace time.Duration, now time.Time, keep func(name string) bool) error {
	entries, err := files.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name, _, _ := strings.Cut(strings.TrimPrefix(e.Key, prefix), ".")
		if keep(name) || (grace > 0 && now.Sub(e.ModTime) < grace) {
			continue
		}
		files.Delete(ctx, e.Key)
	}
	return nil
}
