package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// dataDir is the data directory, the one place that knows its layout:
//
//	vidgen.db, vidgen.lock     the database (SQLite only: none with -database) and the lock a
//	                           running serve holds
//	node-id                    the name this node claims jobs under (loadNodeID)
//	inputs/JOBID.image|.audio|.captions  a job's uploads, until the job ends
//	outputs/TOKEN.mp4|.jpg     a finished job's video and poster
//	tmp/upload-*               an upload being received (uploadScratch); heif-convert's
//	                           pictures of one go in a directory beside it (convertHEIF)
//	tmp/render-JOBID-*/        one render's intermediate files (renderScratch)
//
// Nothing in the database names a path: every file is found from a job's id or output token, so
// the directory can be moved, copied or restored from a backup and every job in it still renders.
// With -files s3://… the inputs and outputs live in a bucket under the same keys (inputKey,
// outputKey) and the directory keeps the database and tmp/, the scratch of uploads and renders.
type dataDir struct{ root string }

// inputKind names one of a job's uploads.
type inputKind string

const (
	inputImage    inputKind = "image"
	inputAudio    inputKind = "audio"
	inputCaptions inputKind = "captions" // only when the job has captions
)

func (d dataDir) db() string      { return filepath.Join(d.root, "vidgen.db") }
func (d dataDir) nodeID() string  { return filepath.Join(d.root, "node-id") }
func (d dataDir) tmp() string     { return filepath.Join(d.root, "tmp") }
func (d dataDir) inputs() string  { return filepath.Join(d.root, "inputs") }
func (d dataDir) outputs() string { return filepath.Join(d.root, "outputs") }

// folders are the directories inside the root that the service works in.
func (d dataDir) folders() []string { return []string{d.tmp(), d.inputs(), d.outputs()} }

// inputKey is the key of a job's upload in the fileStore, and its path under the data directory.
func inputKey(jobID string, kind inputKind) string { return "inputs/" + jobID + "." + string(kind) }

// outputKey is the key of a finished job's file (ext: one of outputExts) in the fileStore, and its
// path under the data directory.
func outputKey(token, ext string) string { return "outputs/" + token + "." + ext }

func (d dataDir) input(jobID string, kind inputKind) string {
	return filepath.Join(d.root, filepath.FromSlash(inputKey(jobID, kind)))
}
func (d dataDir) output(token, ext string) string {
	return filepath.Join(d.root, filepath.FromSlash(outputKey(token, ext)))
}

// check reports whether the directory is still the one the service opened: its database the file
// db was at start (not deleted, moved away or replaced by a restore while the service runs) and
// its folders in place. SQLite goes on writing to a deleted database through its open handle, so
// a service whose directory was removed would accept jobs it can never keep.
func (d dataDir) check(db os.FileInfo) error {
	if db != nil { // nil when the database is not the directory's SQLite file
		fi, err := os.Stat(d.db())
		if err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		if !os.SameFile(fi, db) {
			return fmt.Errorf("data directory: %s was replaced while the service ran; restart it", d.db())
		}
	}
	for _, dir := range d.folders() {
		fi, err := os.Stat(dir)
		if err == nil && !fi.IsDir() {
			err = fmt.Errorf("%s is not a directory", dir)
		}
		if err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
	}
	return nil
}

// outputExts are the files a finished job publishes under its token.
var outputExts = []string{"mp4", "jpg"}

// openDataDir is openDataDirFor a service whose store is the directory's SQLite file.
func openDataDir(path string) (dataDir, error) { return openDataDirFor(path, "") }

// openDataDirFor makes path absolute and creates the directory's layout, with the SQLite database
// file only when database (the Postgres URL of -database) is "": an empty vidgen.db beside a
// Postgres store is one a keys command would take for the service's. The directory holds webhook
// secrets and users' uploads, so it is private to the service's user (0700, the database 0600),
// and tightened if an earlier version or an operator left it looser.
func openDataDirFor(path, database string) (dataDir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return dataDir{}, fmt.Errorf("data directory: %w", err)
	}
	d := dataDir{root: abs}
	if err := d.checkAccess(); err != nil {
		return dataDir{}, err
	}
	for _, dir := range append([]string{d.root}, d.folders()...) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return dataDir{}, fmt.Errorf("data directory: %w", err)
		}
		if err := tighten(dir, 0o700); err != nil {
			return dataDir{}, err
		}
	}
	if database != "" {
		return d, nil
	}
	// SQLite gives the -wal and -shm files the database file's mode, so creating that one 0600
	// before SQLite first opens it covers all three.
	f, err := os.OpenFile(d.db(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return dataDir{}, fmt.Errorf("data directory: %w", err)
	}
	f.Close()
	for _, f := range []string{d.db(), d.db() + "-wal", d.db() + "-shm"} {
		if err := tighten(f, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return dataDir{}, err
		}
	}
	return d, nil
}

// checkAccess fails, saying which file, whose it is and the command that fixes it, when a file of
// the directory that exists is not this process's to write: most often a database that a keys
// command run as root by an older vidgen made root's, which the service's user then cannot open
// (SQLite's own error would only say "unable to open database file").
func (d dataDir) checkAccess() error {
	for _, p := range []string{d.root, d.tmp(), d.inputs(), d.outputs(), d.db(), d.db() + "-wal", d.db() + "-shm", filepath.Join(d.root, "vidgen.lock")} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if errors.Is(err, fs.ErrPermission) { // the directory itself cannot be searched
			p, fi, err = d.root, nil, nil
			if fi, err = os.Stat(d.root); err != nil {
				return fmt.Errorf("data directory: %w", err)
			}
		}
		if err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		want := uint32(6) // read and write
		if fi.IsDir() {
			want = 7 // and search
		}
		if err := syscall.Access(p, want); errors.Is(err, fs.ErrPermission) {
			owner, me := ownerOf(fi), accountOf(os.Getuid(), os.Getgid())
			return fmt.Errorf("data directory: vidgen runs as %s and cannot write %s, which belongs to %s:%s (mode %04o); give the directory back "+
				"to %s with `chown -R %s:%s %s` (as root), then start vidgen again", me.name, p, owner.name, owner.group, fi.Mode().Perm(),
				me.name, me.name, me.group, d.root)
		}
	}
	return nil
}

// tighten removes every permission bit of path outside mode.
func tighten(path string, mode os.FileMode) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&^mode != 0 {
		if err := os.Chmod(path, fi.Mode().Perm()&mode); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
	}
	return nil
}

// errDataDirInUse is a data directory a running serve holds.
var errDataDirInUse = errors.New("another vidgen serve is using the data directory")

// lock takes an exclusive lock on the directory for as long as serve runs: a second serve on the
// same directory would put the first one's running jobs back to PENDING and empty its tmp/. The
// kernel drops the lock when the process dies, even by kill -9. Serve takes it before it opens the
// database, so that only the serve that will run migrates it. Keys commands hold a shared lock
// while they open the database (see share), usually for milliseconds, longer when they migrate a
// large one: lock waits for them (up to a minute), and fails after heldGrace when a serve holds it.
func (d dataDir) lock() (unlock func(), err error) {
	start := time.Now()
	for deadline := start.Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		unlock, err = d.flock(syscall.LOCK_EX)
		if !errors.Is(err, errDataDirInUse) {
			return unlock, err
		}
		// A shared lock is to be had only when no serve holds the directory: keys commands do.
		shared, serr := d.flock(syscall.LOCK_SH)
		if serr != nil {
			if time.Since(start) < heldGrace {
				continue
			}
			return nil, err
		}
		shared()
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("vidgen keys commands have held the data directory %s for a minute", d.root)
		}
	}
}

// heldGrace is how long an exclusive lock on the directory must last before lock or share take it
// for a serve's. A lock outlives its holder's release for as long as a process it was starting
// (ffmpeg, another command) is between fork and exec with a copy of the lock's descriptor: a
// vidgen that had just stopped would otherwise read as one still running.
const heldGrace = time.Second

// share takes a shared lock on the directory, or fails with errDataDirInUse when a serve holds it
// (for heldGrace). Keys commands take it to create or migrate the database when no serve runs;
// several of them may hold it together (SQLite serialises their migrations).
func (d dataDir) share() (unlock func(), err error) {
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		unlock, err = d.flock(syscall.LOCK_SH)
		if !errors.Is(err, errDataDirInUse) || time.Since(start) >= heldGrace {
			return unlock, err
		}
	}
}

func (d dataDir) flock(how int) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(d.root, "vidgen.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w %s", errDataDirInUse, d.root)
		}
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	return func() { f.Close() }, nil
}

// uploadScratch creates a new, empty file in tmp/ for an upload being received. The caller closes
// it and moves it to the job's inputs or removes it; one a crash leaves is emptyTmp's.
func (d dataDir) uploadScratch() (*os.File, error) { return os.CreateTemp(d.tmp(), "upload-*") }

// renderScratch creates a new, empty directory in tmp/ for one render of job jobID, whose
// intermediate files the render names inside it; the job's id in its name says whose it is. The
// caller removes it; one a crash leaves is emptyTmp's.
func (d dataDir) renderScratch(jobID string) (string, error) {
	return os.MkdirTemp(d.tmp(), "render-"+jobID+"-")
}

// emptyTmp deletes everything in tmp/: partial uploads and renders of a process that died. It runs
// at start-up, under the lock, before anything can write there.
func (d dataDir) emptyTmp() error {
	entries, err := os.ReadDir(d.tmp())
	if err != nil {
		return err
	}
	for _, e := range entries {
		os.RemoveAll(filepath.Join(d.tmp(), e.Name()))
	}
	return nil
}
