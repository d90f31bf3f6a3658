package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// s3Settings say where the bucket of -files s3://… is and how to reach it.
type s3Settings struct {
	Bucket, Prefix string // from s3://BUCKET/PREFIX; Prefix is "" or ends in "/"
	Endpoint       string // -s3-endpoint: an S3-compatible server's URL; "" for AWS
	Region         string // -s3-region; "" for the AWS configuration's, else us-east-1
	PathStyle      bool   // -s3-path-style: http://host/bucket/key rather than http://bucket.host/key
	// AccessKeyID and SecretAccessKey come from VIDGEN_S3_ACCESS_KEY_ID and
	// VIDGEN_S3_SECRET_ACCESS_KEY (never a flag: a command line is visible to every user); without
	// them the AWS SDK's own chain applies (AWS_* variables, ~/.aws, an instance's role).
	AccessKeyID, SecretAccessKey string
}

// bucketName is what S3 accepts as a bucket's name (the strictest common rules).
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// parseFilesURL reads -files: "" is the data directory; s3://BUCKET[/PREFIX] a bucket.
func parseFilesURL(v string) (bucket, prefix string, err error) {
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "s3" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%q is not s3://BUCKET or s3://BUCKET/PREFIX (leave it empty for the data directory)", v)
	}
	if !bucketName.MatchString(u.Host) {
		return "", "", fmt.Errorf("%q is not a bucket name (3-63 lower-case letters, digits, dots and hyphens)", u.Host)
	}
	prefix = strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	return u.Host, prefix, nil
}

// s3Files is a bucket as a fileStore: the key K is the object PREFIX+K. Uploads larger than a part
// go up as multipart uploads, parts from the local file without a copy in memory.
type s3Files struct {
	client   *s3.Client
	presign  *s3.PresignClient
	uploader *manager.Uploader
	bucket   string
	prefix   string
	// opTimeout bounds each call to the bucket (s3OpTimeout), plus a file's size at minRate bytes a
	// second for a call that moves one: a bucket that hangs (a stopped server, a link that drops
	// every packet) fails the request or the render instead of holding it for ever.
	opTimeout time.Duration
	minRate   float64
	// health is the bucket's check as /health asks it, cached for a few seconds.
	health *cachedCheck
}

// s3OpTimeout and s3MinRate are opTimeout and minRate: a bucket answers a small call within
// seconds, and a bucket's link (a datacenter's) moves far more than 1 MB/s, so a 50 MB upload is
// given 80 s.
const (
	s3OpTimeout = 30 * time.Second
	s3MinRate   = 1 << 20
)

// bounded is ctx with the deadline of a call to the bucket that moves size bytes (0 for none).
func (f *s3Files) bounded(ctx context.Context, size int64) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, f.opTimeout+time.Duration(float64(max(size, 0))/f.minRate*float64(time.Second)))
}

// s3PartSize is the part of a multipart upload: an 8 MB part is read from its file as it is sent.
const s3PartSize = 8 << 20

// newS3Files connects to the bucket st names and checks that it answers, so a wrong endpoint,
// bucket or key stops serve at start rather than failing every upload.
func newS3Files(ctx context.Context, st s3Settings) (*s3Files, error) {
	f, err := newS3Client(ctx, st)
	if err != nil {
		return nil, err
	}
	if err := f.check(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// newS3Client is the bucket st names, unchecked.
func newS3Client(ctx context.Context, st s3Settings) (*s3Files, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if st.Region != "" {
		opts = append(opts, awsconfig.WithRegion(st.Region))
	}
	if st.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(st.AccessKeyID, st.SecretAccessKey, "")))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("files on S3: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1" // what S3-compatible servers expect when they ignore regions
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if st.Endpoint != "" {
			o.BaseEndpoint = aws.String(st.Endpoint)
		}
		o.UsePathStyle = st.PathStyle
		// Checksums only where S3 requires them: many S3-compatible servers refuse or mangle the
		// trailing checksums the SDK would otherwise add to every upload.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	f := &s3Files{client: client, presign: s3.NewPresignClient(client), bucket: st.Bucket, prefix: st.Prefix,
		uploader:  manager.NewUploader(client, func(u *manager.Uploader) { u.PartSize, u.Concurrency = s3PartSize, 2 }),
		opTimeout: s3OpTimeout, minRate: s3MinRate}
	f.health = newCachedCheck(f.check, s3HealthTTL, time.Now)
	return f, nil
}

// check reports whether the bucket answers to the service's credentials.
func (f *s3Files) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := f.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &f.bucket}); err != nil {
		return fmt.Errorf("files on S3: bucket %s: %w", f.bucket, err)
	}
	return nil
}

func (*s3Files) Kind() string { return "s3" }

func (f *s3Files) Check(ctx context.Context) error { return f.health.do(ctx) }

func (f *s3Files) object(key string) *string { return aws.String(f.prefix + key) }

// notFound turns S3's answer for a missing object into fs.ErrNotExist (a missing bucket stays what
// it is: the operator's mistake, not a lost file).
func notFound(op, key string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
		return err
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() == 404 {
		return &fs.PathError{Op: op, Path: key, Err: fs.ErrNotExist}
	}
	return err
}

func (f *s3Files) Place(ctx context.Context, key, path string) error {
	defer os.Remove(path)
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return err
	}
	return f.Put(ctx, key, file, fi.Size())
}

// Put sends r as one PUT when it is smaller than a part, else as a multipart upload; S3 shows the
// object only once the upload completes, and the uploader aborts one that fails.
func (f *s3Files) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	in := &s3.PutObjectInput{Bucket: &f.bucket, Key: f.object(key), Body: r}
	if size >= 0 {
		in.ContentLength = aws.Int64(size)
	} else {
		size = 100 * s3PartSize // not used by the service, which always knows the size
	}
	ctx, cancel := f.bounded(ctx, size)
	defer cancel()
	_, err := f.uploader.Upload(ctx, in)
	return err
}

func (f *s3Files) Stat(ctx context.Context, key string) (int64, error) {
	ctx, cancel := f.bounded(ctx, 0)
	defer cancel()
	out, err := f.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &f.bucket, Key: f.object(key)})
	if err != nil {
		return 0, notFound("stat", key, err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

func (f *s3Files) Open(ctx context.Context, key string) (fileReader, error) {
	hctx, cancel := f.bounded(ctx, 0)
	defer cancel()
	out, err := f.client.HeadObject(hctx, &s3.HeadObjectInput{Bucket: &f.bucket, Key: f.object(key)})
	if err != nil {
		return nil, notFound("open", key, err)
	}
	return &s3Reader{ctx: ctx, f: f, key: key, size: aws.ToInt64(out.ContentLength), etag: aws.ToString(out.ETag)}, nil
}

// Local fetches the object into dir, under the key's base name.
func (f *s3Files) Local(ctx context.Context, key, dir string) (string, error) {
	// The size is known once the GET answers: the deadline then grows to fit it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deadline := time.AfterFunc(f.opTimeout, cancel)
	defer deadline.Stop()
	out, err := f.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &f.bucket, Key: f.object(key)})
	if err != nil {
		return "", notFound("fetch", key, err)
	}
	defer out.Body.Close()
	deadline.Reset(f.opTimeout + time.Duration(float64(aws.ToInt64(out.ContentLength))/f.minRate*float64(time.Second)))
	p := filepath.Join(dir, path.Base(key))
	file, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(file, out.Body)
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", key, err)
	}
	return p, nil
}

// Delete asks first whether the object is there: S3 deletes a missing object without a word.
func (f *s3Files) Delete(ctx context.Context, key string) error {
	if _, err := f.Stat(ctx, key); err != nil {
		return err
	}
	ctx, cancel := f.bounded(ctx, 0)
	defer cancel()
	_, err := f.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &f.bucket, Key: f.object(key)})
	return err
}

func (f *s3Files) List(ctx context.Context, prefix string) ([]fileEntry, error) {
	var out []fileEntry
	pages := s3.NewListObjectsV2Paginator(f.client, &s3.ListObjectsV2Input{Bucket: &f.bucket, Prefix: f.object(prefix)})
	for pages.HasMorePages() {
		pctx, cancel := f.bounded(ctx, 0)
		page, err := pages.NextPage(pctx)
		cancel()
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			out = append(out, fileEntry{Key: strings.TrimPrefix(aws.ToString(o.Key), f.prefix), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}

func (f *s3Files) Presign(ctx context.Context, key, ctype string, ttl time.Duration) (string, error) {
	req, err := f.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &f.bucket, Key: f.object(key), ResponseContentType: &ctype},
		s3.WithPresignExpires(ttl))
	if err != nil {
		return "", err
	}
	return req.URL, nil
}

// s3Reader reads an object through ranged GETs, from the offset a Seek set: the first GET after a
// Seek asks for s3FirstWindow bytes and each next one for s3MaxWindow. A player's short range
// costs one small GET read to its end (its connection kept for the next), and a whole video one
// large GET more for each 64 MB. If-Match on the HEAD's ETag keeps the parts of one
// response from two versions of the object.
type s3Reader struct {
	ctx    context.Context
	f      *s3Files
	key    string
	size   int64
	etag   string
	off    int64
	body   io.ReadCloser
	end    int64 // where body ends
	window int64 // the length body was asked for; 0 after a Seek
}

// The windows of s3Reader's GETs.
const (
	s3FirstWindow = 1 << 20
	s3MaxWindow   = 64 << 20
)

func (r *s3Reader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.body != nil && r.off >= r.end {
		r.body.Close()
		r.body = nil
	}
	if r.body == nil {
		// A short first window for a player's range; the rest of a long read in large ones.
		if r.window == 0 {
			r.window = s3FirstWindow
		} else {
			r.window = s3MaxWindow
		}
		r.end = min(r.off+r.window, r.size)
		in := &s3.GetObjectInput{Bucket: &r.f.bucket, Key: r.f.object(r.key), Range: aws.String(fmt.Sprintf("bytes=%d-%d", r.off, r.end-1))}
		if r.etag != "" {
			in.IfMatch = &r.etag
		}
		// The wait for the answer is bounded; its body is read at the pace of the client it is for.
		ctx, cancel := context.WithCancel(r.ctx)
		deadline := time.AfterFunc(r.f.opTimeout, cancel)
		out, err := r.f.client.GetObject(ctx, in)
		if !deadline.Stop() && err == nil {
			out.Body.Close()
			err = context.DeadlineExceeded
		}
		if err != nil {
			cancel()
			return 0, notFound("read", r.key, err)
		}
		r.body = cancelOnClose{out.Body, cancel}
	}
	n, err := r.body.Read(p)
	r.off += int64(n)
	if errors.Is(err, io.EOF) {
		if r.off < r.end {
			return n, io.ErrUnexpectedEOF
		}
		err = nil // the next Read opens the next window
	}
	return n, err
}

// cancelOnClose is a body whose request's context is released when it is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	defer c.cancel()
	return c.ReadCloser.Close()
}

func (r *s3Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	}
	if offset < 0 {
		return 0, errors.New("seek before the start")
	}
	if offset != r.off && r.body != nil {
		r.body.Close()
		r.body = nil
	}
	if offset != r.off {
		r.window = 0
	}
	r.off = offset
	return offset, nil
}

func (r *s3Reader) Close() error {
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}

// filesConfig is the part of serve's configuration that says where uploads and outputs live.
type filesConfig struct {
	Files         string // -files: "" for the data directory, or s3://BUCKET/PREFIX
	FilesRedirect bool   // -files-redirect: downloads are a 302 to a presigned URL of the bucket
	S3            s3Settings
}

// addFilesFlags registers the file backend's flags on serve's flag set.
func addFilesFlags(fs *flag.FlagSet, cfg *config) {
	fs.StringVar(&cfg.Files, "files", "", "where uploads, videos and posters live: empty for the data directory, or s3://BUCKET/PREFIX for a bucket (credentials from VIDGEN_S3_ACCESS_KEY_ID and VIDGEN_S3_SECRET_ACCESS_KEY, else the AWS_* variables)")
	fs.BoolVar(&cfg.FilesRedirect, "files-redirect", false, "with -files s3://…, answer a download with a 302 to a presigned URL of the bucket, good for "+presignTTL.String()+", instead of streaming it through vidgen")
	fs.StringVar(&cfg.S3.Endpoint, "s3-endpoint", "", "URL of an S3-compatible server, like http://127.0.0.1:7070 (default: AWS S3)")
	fs.StringVar(&cfg.S3.Region, "s3-region", "", "the bucket's region (default: AWS_REGION, else us-east-1)")
	fs.BoolVar(&cfg.S3.PathStyle, "s3-path-style", false, "address the bucket as ENDPOINT/BUCKET rather than BUCKET.ENDPOINT, as most S3-compatible servers want")
}

// checkFilesConfig validates the file backend's settings and reads its credentials from env. Each
// error is one line that names the flag and its variable.
func checkFilesConfig(cfg *config, env func(string) string) error {
	if cfg.Files == "" {
		if cfg.FilesRedirect {
			return badSetting("files-redirect", "needs -files s3://BUCKET: the data directory has no URLs of its own to redirect to")
		}
		return nil
	}
	var err error
	if cfg.S3.Bucket, cfg.S3.Prefix, err = parseFilesURL(cfg.Files); err != nil {
		return badSetting("files", "%v", err)
	}
	if e := cfg.S3.Endpoint; e != "" {
		u, err := url.Parse(e)
		if err == nil && u.User != nil {
			// Without them: an error is logged, and the credentials belong in the environment.
			return badSetting("s3-endpoint", "%q must not contain credentials; use VIDGEN_S3_ACCESS_KEY_ID and VIDGEN_S3_SECRET_ACCESS_KEY",
				u.Redacted())
		}
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			if _, after, ok := strings.Cut(e, "@"); ok {
				e = "…@" + after // what may be credentials, in a URL that does not parse
			}
			return badSetting("s3-endpoint", "%q is not an http:// or https:// URL like http://127.0.0.1:7070", e)
		}
	}
	cfg.S3.AccessKeyID, cfg.S3.SecretAccessKey = env("VIDGEN_S3_ACCESS_KEY_ID"), env("VIDGEN_S3_SECRET_ACCESS_KEY")
	if (cfg.S3.AccessKeyID == "") != (cfg.S3.SecretAccessKey == "") {
		return errors.New("serve: VIDGEN_S3_ACCESS_KEY_ID and VIDGEN_S3_SECRET_ACCESS_KEY go together: set both, or neither for the AWS_* variables")
	}
	return nil
}

// presignTTL is how long a presigned download URL of -files-redirect works: long enough for a
// player to fetch the video's ranges while it plays, short enough that a leaked URL soon dies.
const presignTTL = 15 * time.Minute

// redirectOutput answers a download of the output under key with a 302 to a presigned URL of the
// bucket (-files-redirect), after a check that it is there: a file gone is 410, as when streamed.
// The redirect is not cached: the URL it names dies after presignTTL.
func (s *server) redirectOutput(w http.ResponseWriter, r *http.Request, key, ctype string) {
	_, err := s.files.Stat(r.Context(), key)
	if errors.Is(err, fs.ErrNotExist) {
		s.writeError(w, r, ErrExpired)
		return
	}
	var u string
	if err == nil {
		u, err = s.files.Presign(r.Context(), key, ctype, presignTTL)
	}
	if err != nil {
		s.writeError(w, r, fmt.Errorf("presign an output: %w", withoutName(err)))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u, http.StatusFound)
}

// presignOrigin is " " and the origin (scheme://host) of files' presigned URLs, for the share
// page's Content-Security-Policy. A presigned URL is computed, not fetched: this asks nothing of
// the bucket.
func presignOrigin(ctx context.Context, files fileStore) (string, error) {
	p, err := files.Presign(ctx, outputKey("origin", "mp4"), "video/mp4", presignTTL)
	if err != nil {
		return "", fmt.Errorf("files: presign: %w", err)
	}
	u, err := url.Parse(p)
	if err != nil {
		return "", fmt.Errorf("files: presigned URL: %w", err)
	}
	return " " + u.Scheme + "://" + u.Host, nil
}

// openFiles opens the file backend cfg names: the data directory's, or a bucket.
func openFiles(ctx context.Context, cfg config, dirs dataDir) (fileStore, error) {
	if cfg.S3.Bucket == "" {
		return diskFiles{dirs}, nil
	}
	return newS3Files(ctx, cfg.S3)
}
