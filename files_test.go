package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testS3Env names the S3-compatible server the S3 tests use, as
// http://KEY:SECRET@HOST:PORT/BUCKET?region=REGION (scripts/s3-test.sh sets it; `make test-s3`).
// Without it those tests are skipped and the disk's run alone.
const testS3Env = "VIDGEN_TEST_S3"

// testS3Settings returns the bucket VIDGEN_TEST_S3 names, with a prefix of the test's own so tests
// sharing the bucket never see each other's files, or skips the test when it names none.
func testS3Settings(t testing.TB) s3Settings {
	t.Helper()
	v := os.Getenv(testS3Env)
	if v == "" {
		t.Skipf("%s names no S3-compatible server (make test-s3 starts one)", testS3Env)
	}
	u, err := url.Parse(v)
	if err != nil || u.User == nil || strings.Trim(u.Path, "/") == "" {
		t.Fatalf("%s=%q: want http://KEY:SECRET@HOST:PORT/BUCKET?region=REGION", testS3Env, v)
	}
	secret, _ := u.User.Password()
	return s3Settings{
		Bucket: strings.Trim(u.Path, "/"), Prefix: "t-" + randomTestHex(t) + "/",
		Endpoint: u.Scheme + "://" + u.Host, Region: u.Query().Get("region"), PathStyle: true,
		AccessKeyID: u.User.Username(), SecretAccessKey: secret,
	}
}

// randomTestHex is 16 random hex digits, to keep apart the names (buckets, prefixes, sockets) of
// tests run side by side.
func randomTestHex(t testing.TB) string {
	t.Helper()
	h, err := randomHex(rand.Reader, 8)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// eachFileStore runs test, in parallel, on each backend of the contract: the disk always, S3 when
// VIDGEN_TEST_S3 names a server (skipped otherwise). dirs is the data directory the backend works
// beside, for its scratch.
func eachFileStore(t *testing.T, test func(t *testing.T, name string, files fileStore, dirs dataDir)) {
	t.Run("disk", func(t *testing.T) {
		t.Parallel()
		dirs := testDataDir(t)
		test(t, "disk", diskFiles{dirs}, dirs)
	})
	t.Run("s3", func(t *testing.T) {
		t.Parallel()
		f, err := newS3Files(t.Context(), testS3Settings(t))
		if err != nil {
			t.Fatal(err)
		}
		test(t, "s3", f, testDataDir(t))
	})
}

func testDataDir(t testing.TB) dataDir {
	t.Helper()
	dirs, err := openDataDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// TestFilesContract: what the service relies on from a file backend, on each: a file put with its
// size known or not (larger than a multipart part) reads back whole, from any offset and to its end
// as a range; Place moves a local file in, small or larger than a part; Local gives a local file with the content; a missing key
// is fs.ErrNotExist to every reader and to Delete; List sees only the prefix asked; a file put again
// is the new content.
func TestFilesContract(t *testing.T) {
	t.Parallel()
	eachFileStore(t, func(t *testing.T, name string, files fileStore, dirs dataDir) {
		ctx := t.Context()
		big := make([]byte, s3PartSize*2+12345) // three parts when the size is unknown
		rand.Read(big)
		small := []byte("a poster's bytes")

		if err := files.Put(ctx, outputKey("aa", "mp4"), io.MultiReader(bytes.NewReader(big)), -1); err != nil {
			t.Fatalf("put, size unknown: %v", err)
		}
		if err := files.Put(ctx, outputKey("aa", "jpg"), bytes.NewReader(small), int64(len(small))); err != nil {
			t.Fatalf("put, size known: %v", err)
		}
		checkStored(t, files, outputKey("aa", "mp4"), big)
		checkStored(t, files, outputKey("aa", "jpg"), small)

		// Place: the local file goes in and is gone from where it was.
		local := filepath.Join(dirs.tmp(), "upload-x")
		if err := os.WriteFile(local, small[:7], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := files.Place(ctx, inputKey("job1", inputImage), local); err != nil {
			t.Fatalf("place: %v", err)
		}
		if _, err := os.Stat(local); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the placed file is still at %s: %v", local, err)
		}
		checkStored(t, files, inputKey("job1", inputImage), small[:7])
		// A rendered video larger than a part: a multipart upload from the file, on S3.
		if err := os.WriteFile(local, big, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := files.Place(ctx, outputKey("cc", "mp4"), local); err != nil {
			t.Fatalf("place of %d bytes: %v", len(big), err)
		}
		checkStored(t, files, outputKey("cc", "mp4"), big)

		// Local: a file ffmpeg can read; on disk the stored file itself (no copy).
		scratch, err := dirs.renderScratch("job1")
		if err != nil {
			t.Fatal(err)
		}
		p, err := files.Local(ctx, inputKey("job1", inputImage), scratch)
		if err != nil {
			t.Fatalf("local: %v", err)
		}
		if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, small[:7]) {
			t.Errorf("local copy %s: %q, %v", p, b, err)
		}
		if name == "disk" && p != dirs.input("job1", inputImage) {
			t.Errorf("disk's local path %s, want the stored file %s", p, dirs.input("job1", inputImage))
		}

		// A file put again is the new content.
		if err := files.Put(ctx, outputKey("aa", "jpg"), strings.NewReader("new"), -1); err != nil {
			t.Fatal(err)
		}
		checkStored(t, files, outputKey("aa", "jpg"), []byte("new"))

		got, err := files.List(ctx, "outputs/")
		if err != nil {
			t.Fatal(err)
		}
		if keys := entryKeys(got); !slices.Equal(keys, []string{"outputs/aa.jpg", "outputs/aa.mp4", "outputs/cc.mp4"}) {
			t.Errorf("list outputs/: %v", keys)
		}
		for _, e := range got {
			if e.Key == "outputs/aa.mp4" && (e.Size != int64(len(big)) || time.Since(e.ModTime) > time.Hour || time.Since(e.ModTime) < -time.Hour) {
				t.Errorf("list: %+v, want size %d and a modification time of now", e, len(big))
			}
		}
		if got, err := files.List(ctx, "inputs/job1."); err != nil || !slices.Equal(entryKeys(got), []string{"inputs/job1.image"}) {
			t.Errorf("list inputs/job1.: %v, %v", entryKeys(got), err)
		}
		if got, err := files.List(ctx, "inputs/job2"); err != nil || len(got) != 0 {
			t.Errorf("list of a prefix nothing has: %v, %v", entryKeys(got), err)
		}

		// Delete, then every reader finds nothing, and a second Delete says so.
		if err := files.Delete(ctx, outputKey("aa", "mp4")); err != nil {
			t.Fatalf("delete: %v", err)
		}
		missing := outputKey("aa", "mp4")
		if _, err := files.Stat(ctx, missing); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat of a deleted file: %v", err)
		}
		if _, err := files.Open(ctx, missing); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("open of a deleted file: %v", err)
		}
		if _, err := files.Local(ctx, missing, scratch); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("local of a deleted file: %v", err)
		}
		if err := files.Delete(ctx, missing); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("second delete: %v, want fs.ErrNotExist", err)
		}
		if n, err := removeOutputs(ctx, files, "aa"); n != 1 || err != nil {
			t.Errorf("removeOutputs: %d, %v; want the poster alone deleted", n, err)
		}
	})
}

// checkStored reads key back: its size, the whole file, a range from the middle to the end as
// http.ServeContent reads one (Seek from the end for the size, Seek to the start of the range),
// and a read after seeking back.
func checkStored(t *testing.T, files fileStore, key string, want []byte) {
	t.Helper()
	ctx := t.Context()
	if n, err := files.Stat(ctx, key); err != nil || n != int64(len(want)) {
		t.Errorf("stat %s: %d, %v; want %d", key, n, err, len(want))
	}
	f, err := files.Open(ctx, key)
	if err != nil {
		t.Fatalf("open %s: %v", key, err)
	}
	defer f.Close()
	if b, err := io.ReadAll(f); err != nil || !bytes.Equal(b, want) {
		t.Errorf("read %s: %d bytes, %v; want %d bytes", key, len(b), err, len(want))
	}
	if size, err := f.Seek(0, io.SeekEnd); err != nil || size != int64(len(want)) {
		t.Errorf("seek to the end of %s: %d, %v", key, size, err)
	}
	mid := int64(len(want) / 2)
	if _, err := f.Seek(mid, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, min(10, len(want)-int(mid)))
	if _, err := io.ReadFull(f, part); err != nil || !bytes.Equal(part, want[mid:mid+int64(len(part))]) {
		t.Errorf("range of %s at %d: %q, %v", key, mid, part, err)
	}
	if _, err := f.Seek(1, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(f); err != nil || !bytes.Equal(rest, want[1:]) {
		t.Errorf("read %s after seeking back: %d bytes, %v", key, len(rest), err)
	}
}

func entryKeys(es []fileEntry) []string {
	var keys []string
	for _, e := range es {
		keys = append(keys, e.Key)
	}
	slices.Sort(keys)
	return keys
}

// TestFilesPresign: a bucket's presigned URL serves the file with the Content-Type asked, to a
// client without credentials; the disk has no such URLs.
func TestFilesPresign(t *testing.T) {
	t.Parallel()
	eachFileStore(t, func(t *testing.T, name string, files fileStore, _ dataDir) {
		ctx := t.Context()
		if err := files.Put(ctx, outputKey("bb", "mp4"), strings.NewReader("video bytes"), 11); err != nil {
			t.Fatal(err)
		}
		u, err := files.Presign(ctx, outputKey("bb", "mp4"), "video/mp4", time.Minute)
		if name == "disk" {
			if !errors.Is(err, errNoPresign) {
				t.Errorf("disk presign: %q, %v; want errNoPresign", u, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "video bytes" || resp.Header.Get("Content-Type") != "video/mp4" {
			t.Errorf("GET presigned: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	})
}

// TestFilesSweep: the start-up sweep deletes the files no job claims and keeps the rest; with a
// grace, as on a shared bucket, it spares young files another node may be placing.
func TestFilesSweep(t *testing.T) {
	t.Parallel()
	eachFileStore(t, func(t *testing.T, name string, files fileStore, _ dataDir) {
		ctx := t.Context()
		for _, key := range []string{inputKey("keep", inputImage), inputKey("gone", inputImage), inputKey("gone", inputAudio)} {
			if err := files.Put(ctx, key, strings.NewReader("x"), 1); err != nil {
				t.Fatal(err)
			}
		}
		keep := func(id string) bool { return id == "keep" }
		if err := sweepFiles(ctx, files, "inputs/", time.Hour, time.Now(), keep); err != nil {
			t.Fatal(err)
		}
		if got, _ := files.List(ctx, "inputs/"); len(got) != 3 {
			t.Errorf("a sweep with a grace of an hour deleted young files: %v left", entryKeys(got))
		}
		if err := sweepFiles(ctx, files, "inputs/", 0, time.Now(), keep); err != nil {
			t.Fatal(err)
		}
		if got, _ := files.List(ctx, "inputs/"); !slices.Equal(entryKeys(got), []string{"inputs/keep.image"}) {
			t.Errorf("after the sweep: %v, want inputs/keep.image alone", entryKeys(got))
		}
	})
}

// TestFilesS3Unreachable: serve refuses to start on a bucket it cannot reach, with the bucket named.
func TestFilesS3Unreachable(t *testing.T) {
	t.Parallel()
	st := testS3Settings(t)
	st.Bucket = "no-such-bucket-" + randomTestHex(t)
	_, err := newS3Files(context.Background(), st)
	if err == nil || !strings.Contains(err.Error(), st.Bucket) {
		t.Errorf("newS3Files on a missing bucket: %v", err)
	}
}

// TestFilesSettings: -files and its companions from flags and variables; each malformed setting is
// one line naming the flag and its variable, and the S3 credentials come from VIDGEN_S3_* only.
func TestFilesSettings(t *testing.T) {
	t.Parallel()
	cfg, err := parseServeFlags([]string{"-files", "s3://media.example/vidgen/prod/", "-files-redirect", "-s3-path-style"},
		func(k string) string {
			return map[string]string{"VIDGEN_S3_ENDPOINT": "http://127.0.0.1:7070", "VIDGEN_S3_REGION": "eu-west-3",
				"VIDGEN_S3_ACCESS_KEY_ID": "AK", "VIDGEN_S3_SECRET_ACCESS_KEY": "SK"}[k]
		}, io.Discard)
	want := s3Settings{Bucket: "media.example", Prefix: "vidgen/prod/", Endpoint: "http://127.0.0.1:7070", Region: "eu-west-3",
		PathStyle: true, AccessKeyID: "AK", SecretAccessKey: "SK"}
	if err != nil || cfg.S3 != want || !cfg.FilesRedirect {
		t.Errorf("config %+v, %v; want %+v", cfg.filesConfig, err, want)
	}
	if cfg, err := parseServeFlags(nil, func(string) string { return "" }, io.Discard); err != nil || cfg.S3 != (s3Settings{}) {
		t.Errorf("default: %+v, %v; want the data directory", cfg.filesConfig, err)
	}
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-files", "/srv/videos"}, nil, "serve: -files (VIDGEN_FILES): " + `"/srv/videos" is not s3://BUCKET`},
		{[]string{"-files", "s3://"}, nil, `"" is not a bucket name`},
		{[]string{"-files", "s3://My_Bucket/x"}, nil, `"My_Bucket" is not a bucket name`},
		{[]string{"-files", "s3://ab?x=1"}, nil, "is not s3://BUCKET"},
		{nil, map[string]string{"VIDGEN_FILES": "gs://bucket"}, "serve: -files (VIDGEN_FILES)"},
		{[]string{"-files-redirect"}, nil, "serve: -files-redirect (VIDGEN_FILES_REDIRECT): needs -files s3://BUCKET"},
		{[]string{"-files", "s3://bucket", "-s3-endpoint", "127.0.0.1:7070"}, nil, "serve: -s3-endpoint (VIDGEN_S3_ENDPOINT): " + `"127.0.0.1:7070" is not an http:// or https:// URL`},
		{[]string{"-files", "s3://bucket"}, map[string]string{"VIDGEN_S3_ACCESS_KEY_ID": "AK"}, "VIDGEN_S3_ACCESS_KEY_ID and VIDGEN_S3_SECRET_ACCESS_KEY go together"},
		{[]string{"-s3-path-style=maybe"}, nil, "not true or false"},
	} {
		_, err := parseServeFlags(c.args, func(k string) string { return c.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v %v: %v; want one line with %q", c.args, c.env, err, c.want)
		}
	}
}

// BenchmarkFilesDownload: a 64 MB video served by http.ServeContent from each backend's Open, as
// handleVideo serves it, and fetched over loopback: the whole file, and a 1 MB range in its middle.
//
//	scripts/s3-test.sh go test -run '^$' -bench BenchmarkFilesDownload .
func BenchmarkFilesDownload(b *testing.B) {
	video := make([]byte, 64<<20)
	rand.Read(video)
	backends := map[string]func(b *testing.B) fileStore{
		"disk": func(b *testing.B) fileStore { return diskFiles{testDataDir(b)} },
		"s3": func(b *testing.B) fileStore {
			f, err := newS3Files(context.Background(), testS3Settings(b))
			if err != nil {
				b.Fatal(err)
			}
			return f
		},
	}
	for _, name := range []string{"disk", "s3"} {
		b.Run(name, func(b *testing.B) {
			files := backends[name](b)
			key := outputKey("bench", "mp4")
			if err := files.Put(context.Background(), key, bytes.NewReader(video), int64(len(video))); err != nil {
				b.Fatal(err)
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				f, err := files.Open(r.Context(), key)
				if err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				defer f.Close()
				w.Header().Set("Content-Type", "video/mp4")
				http.ServeContent(w, r, "v.mp4", time.Time{}, f)
			}))
			defer srv.Close()
			for _, rng := range []string{"", "bytes=33554432-34603007"} {
				b.Run(map[string]string{"": "whole", "bytes=33554432-34603007": "range"}[rng], func(b *testing.B) {
					want := int64(len(video))
					if rng != "" {
						want = 1 << 20
					}
					b.SetBytes(want)
					for b.Loop() {
						req, _ := http.NewRequest("GET", srv.URL, nil)
						if rng != "" {
							req.Header.Set("Range", rng)
						}
						resp, err := http.DefaultClient.Do(req)
						if err != nil {
							b.Fatal(err)
						}
						n, err := io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if err != nil || n != want {
							b.Fatalf("%d bytes, %v; want %d", n, err, want)
						}
					}
				})
			}
		})
	}
}

// TestFilesMigrate: `vidgen migrate-files` copies a data directory's uploads and outputs into the
// bucket under the same keys, byte for byte; run again it copies nothing; and it refuses to run
// while a serve holds the directory, or without a bucket.
func TestFilesMigrate(t *testing.T) {
	t.Parallel()
	st := testS3Settings(t)
	dir := t.TempDir()
	dirs, err := openDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	video := make([]byte, s3PartSize+1)
	rand.Read(video)
	want := map[string][]byte{
		inputKey("job1", inputImage): []byte("image"), inputKey("job1", inputAudio): []byte("audio"),
		outputKey("aa", "mp4"): video, outputKey("aa", "jpg"): []byte("poster"),
	}
	for key, b := range want {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(key)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := func(k string) string {
		return map[string]string{"VIDGEN_S3_ACCESS_KEY_ID": st.AccessKeyID, "VIDGEN_S3_SECRET_ACCESS_KEY": st.SecretAccessKey,
			"VIDGEN_S3_ENDPOINT": st.Endpoint, "VIDGEN_S3_REGION": st.Region, "VIDGEN_S3_PATH_STYLE": "true"}[k]
	}
	args := []string{"migrate-files", "-data", dir, "-files", "s3://" + st.Bucket + "/" + st.Prefix}
	var out bytes.Buffer
	if err := run(t.Context(), args, env, &out, io.Discard); err != nil || !strings.Contains(out.String(), "copied 4 files") {
		t.Fatalf("migrate-files: %v\n%s", err, out.String())
	}
	bucket, err := newS3Files(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	for key, b := range want {
		if got, err := readStored(t.Context(), bucket, key, 1<<30); err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s in the bucket: %d bytes, %v; want %d", key, len(got), err, len(b))
		}
	}
	out.Reset()
	if err := run(t.Context(), args, env, &out, io.Discard); err != nil || !strings.Contains(out.String(), "copied 0 files (0 MB) to s3://"+st.Bucket+"/"+st.Prefix+"; 4 were there already") {
		t.Errorf("second migrate-files: %v\n%s", err, out.String())
	}

	unlock, err := dirs.lock()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := run(t.Context(), args, env, io.Discard, io.Discard); !errors.Is(err, errDataDirInUse) {
		t.Errorf("migrate-files beside a serve: %v, want errDataDirInUse", err)
	}
	if err := run(t.Context(), []string{"migrate-files", "-data", dir}, env, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "-files s3://BUCKET/PREFIX (or VIDGEN_FILES)") {
		t.Errorf("migrate-files without a bucket: %v", err)
	}
}
