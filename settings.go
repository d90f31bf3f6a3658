package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"vidgen/internal/captions"
)

// opsConfig is the part of serve's configuration that concerns operating the service: logs,
// metrics, and where its links point.
type opsConfig struct {
	// LogFormat is "text" or "json" once parsed; "auto" is resolved by resolveLogFormat.
	LogFormat string
	// MetricsAddr is the address of the metrics listener, the only one that serves GET /metrics;
	// "" (-metrics-addr off) serves no metrics at all. The main listener never has /metrics.
	MetricsAddr string
	// NotifySocket is NOTIFY_SOCKET, where systemd (Type=notify) hears READY=1 once vidgen listens
	// and STOPPING=1 when it begins to shut down; "" when not started so.
	NotifySocket string
	// WatchdogEvery is how often to send WATCHDOG=1 (the unit's WatchdogSec, halved); 0 for never.
	WatchdogEvery time.Duration
}

// defaultMetricsAddr is where the metrics listen unless -metrics-addr says otherwise: loopback, so a
// proxy on the main address, even one that forwards raw TCP and adds no header, cannot reach them.
const defaultMetricsAddr = "127.0.0.1:9464"

// metricsOff is the -metrics-addr value that serves no metrics (an empty flag value does too; an
// empty variable, like any empty VIDGEN_* variable, leaves the default).
const metricsOff = "off"

// usageText lists the commands; `vidgen -h` and `vidgen help` print it before serve's flags.
const usageText = `vidgen turns one still image and one audio file into an MP4 through an HTTP API.

Usage:
  vidgen [serve] [flags]                      run the HTTP API, the renderer and the webhook sender
  vidgen render -image F -audio F -o OUT.mp4  render one video here, no server ('vidgen render -h')
  vidgen keys create -name NAME [-json]       make an API key (printed once) and its webhook secret
  vidgen keys list [-json]                    list the keys
  vidgen keys deactivate ID_OR_NAME           stop a key at once
  vidgen keys rotate-secret ID_OR_NAME [-json]  a new webhook secret (the old one signs for 24 h more)
  vidgen migrate-files -files s3://BUCKET/PREFIX  copy the uploads and outputs to a bucket (serve stopped)
  vidgen migrate-store -from DATA/vidgen.db -to postgres://…
                                              move jobs and keys into Postgres (serve stopped)
  vidgen health [-addr ADDR]                  exit 0 if the serve on ADDR (VIDGEN_ADDR) answers /api/health
  vidgen version (or -version)                vidgen's version and the ffmpeg it finds
  vidgen help                                 this text

Every command takes -data DIR (or VIDGEN_DATA), and -database URL (or VIDGEN_DATABASE_URL)
when jobs and keys live in Postgres.
`

// serveUsageHeader opens `vidgen serve -h`, with the captions' limits as `vidgen -h` gives them; the
// flag list follows it.
func serveUsageHeader() string {
	return "Usage: vidgen serve [flags]\n\n" +
		"Each flag can also be set by the environment variable in brackets; a flag beats its variable.\n" +
		captionsUsage() + "\n"
}

// captionsUsage is the line of the usage texts that gives the captions' limits.
func captionsUsage() string { return fmt.Sprintf("Captions: %s.\n", captions.Limits()) }

// printUsage writes the command list and then serve's flags to w.
func printUsage(w io.Writer) {
	fmt.Fprint(w, usageText)
	fmt.Fprint(w, captionsUsage())
	fmt.Fprint(w, "\nserve flags:\n\n")
	// Parsing -h prints serve's flag list (with each flag's variable) and nothing else.
	parseServeFlags([]string{"-h"}, func(string) string { return "" }, &withoutServeHeader{w: w})
}

// withoutServeHeader passes serve's usage on to w less its own header, so the flags nest under
// printUsage's heading.
type withoutServeHeader struct {
	w       io.Writer
	started bool
}

func (i *withoutServeHeader) Write(p []byte) (int, error) {
	if !i.started {
		i.started = true
		if rest, ok := strings.CutPrefix(string(p), serveUsageHeader()); ok {
			_, err := io.WriteString(i.w, rest)
			return len(p), err
		}
	}
	return i.w.Write(p)
}

// isHelpArg reports whether arg asks for help rather than naming a command or a flag.
func isHelpArg(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// addOpsFlags registers the operations flags on serve's flag set.
func addOpsFlags(fs *flag.FlagSet, cfg *config) {
	fs.StringVar(&cfg.LogFormat, "log-format", "auto", "text, json, or auto: JSON when standard error is the systemd journal, else text")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", defaultMetricsAddr, "serve GET /metrics on this address (keep it private: loopback or an internal network), never on -addr; off for no metrics")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsageHeader())
		fs.PrintDefaults()
	}
}

// badSetting is the start-up error for a bad value of serve's flag flagName: it names the flag and
// its variable, so a bad unit file or .env line is found at once.
func badSetting(flagName, format string, args ...any) error {
	return fmt.Errorf("serve: -%s (%s): %s", flagName, envName(flagName), fmt.Sprintf(format, args...))
}

// malformed is a value that a flag of serve, or its variable, could not take.
type malformed struct{ flag, value, hint string }

// err names the setting the way it was given (the variable first when the value came from it),
// with the other name beside it, and what was expected.
func (m *malformed) err(fromEnv bool) error {
	if fromEnv {
		return fmt.Errorf("serve: %s (-%s): %q is %s", envName(m.flag), m.flag, m.value, m.hint)
	}
	return fmt.Errorf("serve: -%s (%s): %q is %s", m.flag, envName(m.flag), m.value, m.hint)
}

// hintMalformed makes a malformed value of f, a flag of a duration, a number or a boolean, say what
// is expected ("5" for -shutdown-grace is "not a duration like 20s, 90m or 720h"), where the flag
// package says only "parse error"; the value is recorded in *last.
func hintMalformed(f *flag.Flag, last **malformed) {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return
	}
	h := hinted{Value: f.Value, name: f.Name, last: last}
	switch g.Get().(type) {
	case time.Duration:
		h.hint = "not a duration like 20s, 90m or 720h"
	case int, int64:
		h.hint = "not a whole number"
	case bool:
		h.hint = "not true or false"
		f.Value = hintedBool{h}
		return
	default:
		return
	}
	f.Value = h
}

// hinted is a flag value whose malformed values get hint as their error and are recorded in *last.
type hinted struct {
	flag.Value
	name, hint string
	last       **malformed
}

// hintedBool is a hinted boolean, which keeps "-flag" alone meaning true.
type hintedBool struct{ hinted }

func (hintedBool) IsBoolFlag() bool { return true }

// String is the wrapped value's, and a zero boolean's ("false") for the flag package's look at the
// zero value, so that -h prints no "(default false)".
func (h hintedBool) String() string {
	if h.Value == nil {
		return "false"
	}
	return h.Value.String()
}

// String is the wrapped value's. The flag package also calls it on a zero hinted, which wraps
// nothing, to learn whether a default is worth printing in -h.
func (h hinted) String() string {
	if h.Value == nil {
		return ""
	}
	return h.Value.String()
}

func (h hinted) Set(s string) error {
	if err := h.Value.Set(s); err != nil {
		*h.last = &malformed{flag: h.name, value: s, hint: h.hint}
		return errors.New(h.hint)
	}
	return nil
}

// envName is the variable that sets serve's flag flagName: VIDGEN_ and the name in capitals, but
// for the few in envNames.
func envName(flagName string) string {
	if name, ok := envNames[flagName]; ok {
		return name
	}
	return "VIDGEN_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// checkOpsConfig validates the settings that the flag package cannot and resolves -log-format auto.
// Each error names the flag and its variable, so a bad unit file or .env line is found at once.
func checkOpsConfig(cfg *config, env func(string) string, stderr io.Writer) error {
	cfg.NotifySocket = env("NOTIFY_SOCKET")
	cfg.WatchdogEvery = watchdogEvery(env, os.Getpid())
	switch cfg.LogFormat {
	case "text", "json":
	case "auto":
		cfg.LogFormat = resolveLogFormat(env, stderr)
	default:
		return badSetting("log-format", "%q is not text, json or auto", cfg.LogFormat)
	}
	if err := checkListenAddr(cfg.Addr); err != nil {
		return badSetting("addr", "%v", err)
	}
	if cfg.MetricsAddr == metricsOff {
		cfg.MetricsAddr = ""
	}
	if cfg.MetricsAddr != "" {
		if err := checkListenAddr(cfg.MetricsAddr); err != nil {
			return badSetting("metrics-addr", "%v, or off for no metrics", err)
		}
		if _, port, _ := net.SplitHostPort(cfg.Addr); cfg.MetricsAddr == cfg.Addr && port != "0" { // two ports of the system's choosing never meet
			return badSetting("metrics-addr", "%q is -addr's too: the metrics need an address of their own, like %s, or off", cfg.MetricsAddr, defaultMetricsAddr)
		}
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return badSetting("public-url", "%q is not an absolute http:// or https:// URL without query, like https://video.example.com", cfg.PublicURL)
		}
	}
	for _, p := range cfg.WebhookPorts {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return badSetting("webhook-ports", "%q is not a port number (1-65535)", p)
		}
	}
	for name, d := range map[string]time.Duration{"max-duration": cfg.MaxDuration, "shutdown-grace": cfg.ShutdownGrace, "retention": cfg.Retention} {
		if d < 0 {
			return badSetting(name, "may not be negative")
		}
	}
	if cfg.Workers < 0 {
		return badSetting("workers", "must be 0 (a node that only answers the API, beside others that render) or more")
	}
	for name, rate := range map[string]int{"rate-api": cfg.RateAPI, "rate-submit": cfg.RateSubmit, "rate-download": cfg.RateDownload} {
		if rate < 0 {
			return badSetting(name, "must be 0 (no limit) or more")
		}
	}
	if cfg.MinFree < 0 {
		return badSetting("min-free", "may not be negative (0 turns the check off)")
	}
	if cfg.ChildMemory != 0 && cfg.ChildMemory < minChildMemory {
		return badSetting("child-memory", "must be 0 (no limit) or at least %d (%d GiB): an ordinary render needs up to 1.4 GiB of address space", int64(minChildMemory), minChildMemory>>30)
	}
	return nil
}

// checkListenAddr accepts what net.Listen("tcp", addr) would: host:port with a numeric port.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (like :8080 or 127.0.0.1:8080)", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: the port must be a number from 0 to 65535", addr)
	}
	return nil
}

// resolveLogFormat decides -log-format auto: JSON when standard error is the systemd journal's
// stream (systemd sets JOURNAL_STREAM to that stream's device:inode), so `journalctl -o cat` yields
// one JSON object a line; text anywhere else, a terminal or a pipe included (use -log-format json
// under Docker or a log shipper).
func resolveLogFormat(env func(string) string, stderr io.Writer) string {
	js := env("JOURNAL_STREAM")
	f, ok := stderr.(*os.File)
	if js == "" || !ok {
		return "text"
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return "text"
	}
	if js == fmt.Sprintf("%d:%d", st.Dev, st.Ino) {
		return "json"
	}
	return "text"
}

// newLogger returns the service's logger in the configured format.
func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// derivePublicURL is the base of the links vidgen hands out when -public-url is not set: the host
// the operator named in -addr, or localhost when -addr names none (":9000") or an unspecified
// address, with the port actually listened on (so -addr :0 works too).
func derivePublicURL(addr string, listened net.Addr) string {
	host, _, _ := net.SplitHostPort(addr)
	_, port, _ := net.SplitHostPort(listened.String())
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}
