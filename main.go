// Command vidgen turns one still image and one audio file into an MP4 through a small HTTP API.
// See README.md.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"vidgen/internal/ffmpeg"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal starts a graceful shutdown; a second one kills at once (the default action).
	go func() { <-ctx.Done(); stop() }()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vidgen:", err)
		os.Exit(exitCode(err))
	}
}

// run is the whole program: it parses args (with env for the VIDGEN_* variables) and runs the
// command until ctx is done.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	err := runCommand(ctx, args, env, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h printed the usage; asking for help is not a failure
	}
	return err
}

func runCommand(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && isHelpArg(args[0]) {
		printUsage(stdout)
		return nil
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "-version" || args[0] == "--version") {
		cmd, args = "version", args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := parseServeFlags(args, env, stderr)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stderr)
	case "render":
		return runRender(ctx, args, stderr)
	case "health":
		return runHealth(ctx, args, env, http.DefaultClient, stdout, stderr)
	case "keys":
		return runKeys(ctx, args, stdout, stderr, env, rand.Reader, time.Now, switchToOwner)
	case "migrate-files":
		return runMigrateFiles(ctx, args, env, stdout, stderr)
	case "migrate-store":
		return runMigrateStore(ctx, args, stdout, stderr, env, time.Now)
	case "version":
		fs := flag.NewFlagSet("version", flag.ContinueOnError)
		fs.SetOutput(stderr)
		ffmpegPath := fs.String("ffmpeg", "ffmpeg", "path of ffmpeg")
		fs.String("data", "", "accepted, as by every command; version reads no data")
		if err := fs.Parse(args); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "vidgen %s (%s)\n", version, runtime.Version())
		if v, err := ffmpeg.Version(ctx, *ffmpegPath); err != nil {
			fmt.Fprintf(stdout, "ffmpeg: not found (%v)\n", err)
		} else {
			fmt.Fprintf(stdout, "ffmpeg: %s\n", v)
		}
		return nil
	}
	printUsage(stderr)
	return fmt.Errorf("unknown command %q (want serve, render, keys, health, migrate-files, migrate-store, version or help)", cmd)
}

// config is serve's configuration, from flags and VIDGEN_* variables.
type config struct {
	Addr                string
	DataDir             string
	PublicURL           string
	Workers             int
	FFmpeg, FFprobe     string
	HeifConvert         string // optional: HEIC/AVIF uploads are a 415 without it
	TrustProxy          []netip.Prefix
	WebhookAllowPrivate bool
	WebhookPorts        []string
	RateAPI, RateSubmit int
	RateDownload        int
	MaxDuration         time.Duration
	ShutdownGrace       time.Duration
	Retention           time.Duration
	MinFree             int64
	ChildMemory         int64 // address space each ffmpeg/ffprobe child may map, 0 for no limit
	SpliceWaveforms     bool  // encode only a waveform's band where the picture allows (waveformsplice.go)
	opsConfig
	filesConfig
	clusterConfig
}

func envOr(env func(string) string, name, def string) string {
	if v := env(name); v != "" {
		return v
	}
	return def
}

func parseServeFlags(args []string, env func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", ":8080", "listen address")
	fs.StringVar(&cfg.DataDir, "data", "./data", "directory for the database, uploads and outputs")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "base of the outputVideo, outputThumbnail and outputShareLink URLs (default: from -addr, like http://localhost:8080)")
	fs.IntVar(&cfg.Workers, "workers", runtime.NumCPU(), "most renders at once")
	fs.StringVar(&cfg.FFmpeg, "ffmpeg", "ffmpeg", "path of ffmpeg")
	fs.StringVar(&cfg.FFprobe, "ffprobe", "ffprobe", "path of ffprobe")
	fs.StringVar(&cfg.HeifConvert, "heif-convert", "heif-convert", "path of heif-convert (Debian: libheif-examples), for HEIC/AVIF images; optional")
	trust := fs.String("trust-proxy", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed")
	fs.BoolVar(&cfg.WebhookAllowPrivate, "webhook-allow-private", false, "allow webhooks and input URLs to loopback/private addresses, local testing only")
	ports := fs.String("webhook-ports", "443", "comma-separated ports webhook and input URLs may use")
	fs.IntVar(&cfg.RateAPI, "rate-api", 600, "requests a minute per client IP on /api/*, 0 for no limit")
	fs.IntVar(&cfg.RateSubmit, "rate-submit", 30, "submissions a minute per client IP, 0 for no limit")
	fs.IntVar(&cfg.RateDownload, "rate-download", 1200, "requests a minute per client IP for videos, posters and share pages, 0 for no limit")
	fs.DurationVar(&cfg.MaxDuration, "max-duration", time.Hour, "longest audio accepted, 0 for no limit")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", 20*time.Second, "how long running renders may finish on shutdown")
	fs.DurationVar(&cfg.Retention, "retention", 30*24*time.Hour, "how long outputs are kept, 0 for ever")
	fs.Int64Var(&cfg.MinFree, "min-free", 1<<30, "bytes of free disk below which submissions get 507")
	fs.Int64Var(&cfg.ChildMemory, "child-memory", defaultChildMemory, fmt.Sprintf("bytes of address space each ffmpeg/ffprobe process may map, 0 for no limit, else at least %d (%d GiB)", int64(minChildMemory), minChildMemory>>30))
	fs.BoolVar(&cfg.SpliceWaveforms, "splice-waveforms", true, "encode only a waveform's band where the picture allows, false to encode every frame")
	addOpsFlags(fs, &cfg)
	addFilesFlags(fs, &cfg)
	addClusterFlags(fs, &cfg)
	// Each flag can come from VIDGEN_<NAME>; the variables are applied first, so a flag on the
	// command line beats its variable, and a malformed value is an error, never a silent default.
	var envErr error
	var bad *malformed // the last value a flag refused
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		f.Usage += " [" + name + "]"
		hintMalformed(f, &bad)
		if v := env(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("serve: %s (-%s): %q: %w", name, f.Name, v, err)
				if bad != nil {
					envErr = bad.err(true)
				}
			}
		}
	})
	if envErr != nil {
		return config{}, envErr
	}
	// A mistake is one line, the error returned, not the flag package's print of it and the whole
	// list of flags after it; -h alone prints the list.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if bad != nil {
			return config{}, bad.err(false)
		}
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.Usage()
			return config{}, err
		}
		return config{}, fmt.Errorf("serve: %w; run 'vidgen serve -h' for every flag", err)
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	for _, s := range strings.Split(*trust, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, err2 := netip.ParseAddr(s)
			if err2 != nil {
				return config{}, badSetting("trust-proxy", "%q is not a CIDR", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		cfg.TrustProxy = append(cfg.TrustProxy, p.Masked())
	}
	for _, p := range strings.Split(*ports, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.WebhookPorts = append(cfg.WebhookPorts, p)
		}
	}
	if err := checkOpsConfig(&cfg, env, stderr); err != nil {
		return config{}, err
	}
	if err := checkFilesConfig(&cfg, env); err != nil {
		return config{}, err
	}
	if err := checkClusterConfig(&cfg); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// server owns everything one running vidgen has: tests start many side by side.
type server struct {
	cfg      config
	log      *slog.Logger
	now      func() time.Time
	rand     io.Reader
	dirs     dataDir
	files    fileStore   // uploads and outputs: the data directory's, or a bucket's
	dbFile   os.FileInfo // the database as opened, for the health check
	store    *Store
	jobs     *lifecycle
	renderer *renderer
	hooks    *webhookSender
	// inputClient fetches the inputs given by URL, under the webhooks' address rules (fetch.go).
	inputClient *http.Client
	clients     clientIPs
	tools       ffmpeg.Tools // ffmpeg, ffprobe and heif-convert under the memory limit

	// redirectOrigin is " " and the origin of the bucket's presigned URLs under -files-redirect,
	// where the share page's video and poster come from; "" otherwise.
	redirectOrigin string

	apiLimit, submitLimit *limitPolicy[netip.Prefix]
	downloadLimit         *limitPolicy[netip.Prefix]
	downloads, uploads    *counter      // responses and uploads under way, per client
	fds                   *fdBudget     // descriptors of connections and the files their requests hold
	validations           chan struct{} // a slot per submission decoding its files (maxValidations)
	goDecodes             decodeGate    // pictures decoded in vidgen's own memory, one at a time
	pictures              *memoryGate   // decoding pictures, in uploads and renders, by their memory
	uploadGrace           time.Duration
	uploadMinRate         float64 // bytes a second, after uploadGrace
	fetchGrace            time.Duration
	fetchMinRate          float64              // bytes a second an input by URL must average after fetchGrace
	redeliverLimit        *limitPolicy[string] // per account
	ratePolicyHeader      string
	diskFree              func(path string) (int64, error)
	headerTimeout         time.Duration // ReadHeaderTimeout; a field so tests can shorten it
	metrics               *metrics
}

// HTTP limits. A request without an upload must be read within requestReadTimeout; a submission's
// read deadline is extended by uploadDeadline, sized for its length on a slow link.
const (
	headerTimeout      = 10 * time.Second
	requestReadTimeout = 30 * time.Second
	idleTimeout        = 2 * time.Minute
	maxHeaderBytes     = 64 << 10
	// uploadMinRate is the slowest link an upload is waited for, in bytes a second (512 kbit/s):
	// a 50 MB file gets about 14 minutes, the largest submission about 27. After uploadGrace, a
	// submission must keep arriving at this average rate or it is cut.
	uploadMinRate = 64 << 10
	uploadGrace   = 15 * time.Second
	// httpDrain is how long shutdown waits for requests in flight.
	httpDrain = 10 * time.Second
)

// uploadDeadline is how long reading a submission of contentLength bytes (-1: unknown) may take.
func uploadDeadline(contentLength int64) time.Duration {
	if contentLength < 0 || contentLength > maxBodySize {
		contentLength = maxBodySize
	}
	return time.Minute + time.Duration(contentLength/uploadMinRate)*time.Second
}

func (s *server) limitAPI(h http.Handler) http.Handler    { return s.limit(s.apiLimit)(h) }
func (s *server) limitSubmit(h http.Handler) http.Handler { return s.limit(s.submitLimit)(h) }

// openData opens the data directory at path, creating its layout, and its database.
func openData(ctx context.Context, path string, now func() time.Time) (dataDir, *Store, error) {
	dirs, err := openDataDir(path)
	if err != nil {
		return dataDir{}, nil, err
	}
	st, err := OpenStore(ctx, dirs.db(), now)
	return dirs, st, err
}

// newServer opens the data directory and wires the parts together; nothing runs until start.
func newServer(ctx context.Context, cfg config, log *slog.Logger, now func() time.Time) (*server, error) {
	dirs, err := openDataDirFor(cfg.DataDir, cfg.Database)
	if err != nil {
		return nil, err
	}
	st, dbFile, err := openStoreFor(ctx, dirs, cfg.Database, now)
	if err != nil {
		return nil, err
	}
	cfg.DataDir = dirs.root
	s := &server{dbFile: dbFile, cfg: cfg, log: log, now: now, rand: rand.Reader, dirs: dirs, store: st, clients: clientIPs{trusted: cfg.TrustProxy}, diskFree: diskFree,
		headerTimeout: headerTimeout}
	s.tools = ffmpeg.Tools{FFmpeg: cfg.FFmpeg, FFprobe: cfg.FFprobe, HeifConvert: cfg.HeifConvert, Memory: cfg.ChildMemory}
	if cfg.RateAPI > 0 {
		s.apiLimit = newLimitPolicy[netip.Prefix]("requests", cfg.RateAPI, now)
	}
	if cfg.RateSubmit > 0 {
		s.submitLimit = newLimitPolicy[netip.Prefix]("submissions", cfg.RateSubmit, now)
	}
	if cfg.RateDownload > 0 {
		s.downloadLimit = newLimitPolicy[netip.Prefix]("downloads", cfg.RateDownload, now)
	}
	s.redeliverLimit = newLimitPolicy[string]("redeliveries", redeliveriesPerMinute, now)
	s.downloads = newCounter(maxDownloadsPerClient, 0)
	s.uploads = newCounter(maxUploadsPerClient, maxUploads)
	s.fds = newFDBudget(fdLimit(), fdReserve(cfg.Workers, runtime.NumCPU()), now)
	s.validations = make(chan struct{}, maxValidations)
	s.goDecodes = newDecodeGate()
	s.pictures = newMemoryGate(memoryBudget())
	s.uploadGrace, s.uploadMinRate = uploadGrace, uploadMinRate
	// Inputs by URL are held to an upload's pace.
	s.fetchGrace, s.fetchMinRate = uploadGrace, uploadMinRate
	s.ratePolicyHeader = ratePolicy(s.apiLimit, s.submitLimit)
	s.hooks = newWebhookSender(st, log, now, cfg.PublicURL, cfg.WebhookAllowPrivate, cfg.WebhookPorts, nil)
	node, err := loadNodeID(dirs, s.rand)
	if err != nil {
		st.Close()
		return nil, err
	}
	if s.files, err = openFiles(ctx, cfg, dirs); err != nil {
		st.Close()
		return nil, err
	}
	s.jobs = &lifecycle{store: st, dirs: dirs, files: s.files, now: now, hooks: s.hooks, log: log, rand: s.rand,
		leases: leasing{node: node, duration: cmp.Or(cfg.Lease, defaultLease), now: now, rand: s.rand}}
	s.jobs.sweepGrace = cfg.sweepGrace(s.files.Kind())
	if cfg.FilesRedirect {
		if s.redirectOrigin, err = presignOrigin(ctx, s.files); err != nil {
			st.Close()
			return nil, err
		}
	}
	s.renderer = &renderer{
		jobs: s.jobs, dirs: dirs, files: s.files, log: log, now: now, rand: s.rand, tools: s.tools, workers: cfg.Workers, pictures: s.pictures,
		diskFree: diskFree, minFree: cfg.MinFree, audioCores: runtime.NumCPU(), spliceWaveforms: cfg.SpliceWaveforms,
		wake: make(chan struct{}, 1), progress: map[string]*jobProgress{},
	}
	s.inputClient = newInputClient(s.hooks)
	s.renderer.fetch = s.fetchInputs
	s.metrics = newMetrics(st, now)
	s.renderer.observe, s.hooks.observe, s.jobs.observeEnd = s.metrics.renderEnded, s.metrics.webhookAttempt, s.metrics.jobEnded
	s.jobs.leases.observe = s.metrics.queueEvent
	s.hooks.claim = s.jobs.claimDelivery
	return s, nil
}

// checkDiskSpace refuses new work with 507 when the data directory's disk is nearly full, so a
// job never fails half-way for want of space.
func (s *server) checkDiskSpace() error {
	if s.cfg.MinFree <= 0 {
		return nil
	}
	free, err := s.diskFree(s.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("free disk space: %w", err)
	}
	if free < s.cfg.MinFree {
		s.log.Warn("refusing submission: low disk space", "free", free, "min", s.cfg.MinFree)
		return lowDisk(nil)
	}
	return nil
}

func diskFree(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// checkTools makes sure ffmpeg and ffprobe run and are what their flags name, with the fix in the
// error when they are not. A -ffmpeg pointed at another program (ffprobe, a wrapper that prints
// nothing, /bin/true) would otherwise start and fail every job.
func checkTools(ctx context.Context, cfg config) (string, error) {
	var v string
	for _, tool := range []struct{ path, name string }{{cfg.FFmpeg, "ffmpeg"}, {cfg.FFprobe, "ffprobe"}} {
		line, err := ffmpeg.Version(ctx, tool.path)
		if err == nil && !strings.HasPrefix(line, tool.name+" version ") {
			err = fmt.Errorf("its -version printed %q, not %q", line, tool.name+" version …")
		}
		if err != nil {
			// As root: a fresh Debian server has no sudo, and the one reading this may well be root.
			return "", fmt.Errorf("cannot run %s as %s (%v): install it as root with `apt-get install -y ffmpeg` (or point -%s at it)", tool.path, tool.name, err, tool.name)
		}
		if v == "" {
			v = line
		}
	}
	return v, nil
}

// ensureDefaultKey creates a key named "default" the first time the service starts with no keys,
// and prints it once, so the quick start needs nothing else.
func (s *server) ensureDefaultKey(ctx context.Context, stderr io.Writer) error {
	n, err := s.store.CountKeys(ctx)
	if err != nil || n > 0 {
		return err
	}
	k, apiKey, err := createKey(ctx, s.store, "default", s.rand, s.now())
	if errors.Is(err, ErrNameTaken) {
		return nil // a concurrent `keys create -name default` won
	}
	if err != nil {
		return err
	}
	// The directory in full: a keys command run elsewhere, without the unit, finds no other way to it.
	more := shellJoin([]string{"vidgen", "keys", "create", "-name", "NAME", "-data", s.cfg.DataDir})
	if s.cfg.Database != "" {
		// The keys are in Postgres; its URL holds a password, which the journal must not keep.
		more = `vidgen keys create -name NAME -database "$VIDGEN_DATABASE_URL"`
	}
	fmt.Fprintf(stderr, "\nCreated the first API key (shown only this once; vidgen keeps only its hash):\n\n  X-API-Key:      %s\n  webhook secret: %s\n\nMake more with `%s`.\n\n",
		apiKey, k.WebhookSecret, more)
	return nil
}

// start recovers from a previous run and starts the renderer, the webhook sender and the sweeper.
// The returned function stops them, renders last (see stop).
func (s *server) start(ctx context.Context) (stop func(context.Context), err error) {
	if err := s.claimSharedFiles(ctx); err != nil {
		return nil, err
	}
	if err := s.jobs.recover(ctx); err != nil {
		return nil, fmt.Errorf("recover jobs: %w", err)
	}
	if err := s.store.ReleaseAbandonedIdempotencyKeys(ctx, s.jobs.leases.node+"/"); err != nil {
		return nil, err
	}
	if s.cfg.WebhookAllowPrivate {
		s.log.Warn("webhooks may reach loopback and private addresses (-webhook-allow-private): for local development only")
	}
	s.renderer.Start()
	bg, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { s.hooks.Run(bg); done <- struct{}{} }()
	go func() { s.sweepLoop(bg); done <- struct{}{} }()
	return func(grace context.Context) {
		s.renderer.Stop(grace)
		cancel()
		<-done
		<-done
	}, nil
}

// sweepLoop deletes outputs past retention and truncates the WAL, hourly.
func (s *server) sweepLoop(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if s.cfg.Retention > 0 {
			if _, err := s.jobs.expire(ctx, s.now().Add(-s.cfg.Retention)); err != nil && ctx.Err() == nil {
				s.log.Error("expire outputs", "err", err)
			}
		}
		if _, err := s.store.PruneIdempotencyKeys(ctx, s.now().Add(-idempotencyTTL)); err != nil && ctx.Err() == nil {
			s.log.Error("prune idempotency keys", "err", err)
		}
		s.jobs.sweepLeftOrphans(ctx)
		if err := s.store.Checkpoint(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("checkpoint", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// httpServer returns the HTTP server. Clients that dawdle over their headers are cut at
// ReadHeaderTimeout (slowloris), bodies must arrive within ReadTimeout except a submission's, whose
// deadline handleSubmit extends to fit a 50 MB upload on a slow link (uploadDeadline); idle
// keep-alive connections are closed after IdleTimeout; headers are capped at MaxHeaderBytes (431).
func (s *server) httpServer() *http.Server {
	return &http.Server{
		Addr:              s.cfg.Addr,
		Handler:           s.routes(),
		ReadHeaderTimeout: s.headerTimeout,
		ReadTimeout:       requestReadTimeout,
		// Responses are small; a download extends its deadline as it goes (stallWriter) and an
		// upload sets its own.
		WriteTimeout:   2 * time.Minute,
		IdleTimeout:    idleTimeout,
		MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		// The descriptor budget follows connections between requests and gives downloads their own.
		ConnState:   s.fds.connState,
		ConnContext: withFDConn,
	}
}

func serve(ctx context.Context, cfg config, stderr io.Writer) error {
	log := newLogger(cfg.LogFormat, stderr)
	noHugePagesForChildren()
	ffv, err := checkTools(ctx, cfg)
	if err != nil {
		return err
	}
	// The lock comes before the database is opened: only the serve that runs may migrate it.
	dirs, err := openDataDirFor(cfg.DataDir, cfg.Database)
	if err != nil {
		return err
	}
	unlock, err := dirs.lock()
	if err != nil {
		return err
	}
	defer unlock()
	s, err := newServer(ctx, cfg, log, time.Now)
	if err != nil {
		return err
	}
	defer s.store.Close()
	if !cfg.API {
		return work(ctx, s, ffv)
	}
	if err := s.ensureDefaultKey(ctx, stderr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	ln = limitConns(ln, s.clients.isTrusted, s.fds)
	metricsAt, stopMetrics, err := s.startMetricsListener()
	if err != nil {
		ln.Close()
		return err
	}
	defer stopMetrics()
	// Without -public-url the links point at the listener, so a laptop setup works as it is.
	publicFrom := "-public-url"
	if s.cfg.PublicURL == "" {
		s.cfg.PublicURL, publicFrom = derivePublicURL(cfg.Addr, ln.Addr()), "-addr (set -public-url to the address people reach vidgen at)"
		s.hooks.publicURL = s.cfg.PublicURL
	}
	stop, err := s.start(ctx)
	if err != nil {
		ln.Close()
		return err
	}
	hs := s.httpServer()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("vidgen listening", "addr", ln.Addr().String(), "data", s.cfg.DataDir, "public_url", s.cfg.PublicURL, "public_url_from", publicFrom, "workers", cfg.Workers, "picture_memory_mb", s.pictures.budget>>20,
		"metrics", metricsAt, "fd_limit", s.fds.limit, "fd_budget", s.fds.max, "ffmpeg", ffv, "version", version,
		"store", s.store.Backend(), "files", s.files.Kind(), "node", s.jobs.leases.node, "lease", s.jobs.leases.duration)
	sd := notifier{socket: cfg.NotifySocket}
	// Only now: the listener accepts, the renderer and the webhook sender run, so a unit ordered
	// After=vidgen.service (or a deploy script's systemctl start) finds /api/health answering.
	if err := sd.notify("READY=1\nSTATUS=listening on " + ln.Addr().String()); err != nil {
		log.Warn("cannot tell systemd the service is ready", "err", err)
	}
	if cfg.WatchdogEvery > 0 {
		go sd.keepAlive(ctx, cfg.WatchdogEvery, s.healthy, log)
	}
	if s.fds.low() {
		log.Warn("the descriptor limit leaves connections little room; raise it (LimitNOFILE in the unit)", "fd_limit", s.fds.limit, "fd_reserve", s.fds.reserve)
	}

	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	// Shutdown, in order: HTTP first (stop taking connections, finish the requests in flight, up to
	// httpDrain); then the renderer, whose running renders get what is left of ShutdownGrace, counted
	// from the signal, before they are stopped and their jobs go back to PENDING without counting a
	// retry; then the webhook sender, whose outbox survives. No render starts once the signal came,
	// so exit comes within max(httpDrain, ShutdownGrace) plus a moment.
	log.Info("shutting down", "grace", cfg.ShutdownGrace.String())
	if err := sd.notify("STOPPING=1"); err != nil {
		log.Warn("cannot tell systemd the service is stopping", "err", err)
	}
	graceCtx, cancelGrace := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancelGrace()
	s.renderer.stopClaiming()
	shutCtx, cancel := context.WithTimeout(context.Background(), httpDrain)
	defer cancel()
	if serr := hs.Shutdown(shutCtx); serr != nil {
		hs.Close()
	}
	stop(graceCtx)
	log.Info("stopped")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
