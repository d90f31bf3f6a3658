package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	webhookTimeout   = 15 * time.Second
	webhookMaxRead   = 64 << 10
	webhookInFlight  = 8 // deliveries sent at once
	webhookPerKey    = 2 // of which for one account: a slow receiver holds no more than these
	webhookUserAgent = "vidgen-webhook/1"
)

// blockedNets are the address ranges a webhook may never reach: everything that is not the public
// internet, including ranges that embed an IPv4 address (NAT64, 6to4) and could smuggle a private one.
var blockedNets = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		// ::/96 also holds the deprecated IPv4-compatible form (::127.0.0.1), ::ffff:0:0:0/96 the
		// IPv4-translated one; ::ffff:0:0/96 (IPv4-mapped) is unmapped and checked as IPv4.
		"::/96", "::1/128", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/32",
		"2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// isBlockedAddr reports whether a webhook must not connect to ip.
func isBlockedAddr(ip netip.Addr) bool {
	// A zoned address (fe80::1%eth0) is link-scoped, never public; netip.Prefix.Contains is false
	// for every zoned address, so without this check it would pass as public.
	if !ip.IsValid() || ip.Zone() != "" {
		return true
	}
	ip = ip.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	for _, p := range blockedNets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// webhookSender delivers the outbox: each pending delivery, signed, with retries on the schedule.
type webhookSender struct {
	store        *Store
	log          *slog.Logger
	now          func() time.Time
	publicURL    string         // base of the output URLs in the bodies it sends
	jitter       func() float64 // in [0,1); injectable so tests can pin the schedule
	allowPrivate bool
	ports        map[string]bool // ports a webhook URL may name
	// lookup resolves a host to addresses; injectable so tests can play DNS rebinding.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// blocked is the address rule, isBlockedAddr; injectable so tests can let one loopback address
	// stand for the public internet and keep every other rule.
	blocked func(netip.Addr) bool
	client  *http.Client
	wake    chan struct{}
	// observe, when set, is told the state each recorded attempt moved its delivery to (metrics).
	observe func(state DeliveryState)
	// claim, when set, takes a due delivery for an attempt by this node and reports whether it got
	// it, and the lease owner the attempt is recorded under: nodes sharing a database never send
	// the same attempt (lifecycle.claimDelivery).
	claim func(ctx context.Context, id string, now time.Time) (owner string, ok bool, err error)

	// Attempts under way, counted in all and per account under mu. When one ends, gen grows, cond
	// is broadcast and ended gets a signal (for Run).
	mu       sync.Mutex
	cond     *sync.Cond
	inFlight map[string]bool // delivery ids
	perKey   map[string]int
	total    int
	gen      uint64
	ended    chan struct{}
	// held is when each delivery whose attempt could not be recorded (a full disk, a lock held
	// too long) may be tried again: it is still due in the database, and without a pause the
	// receiver would get the same request as fast as it answers.
	held map[string]time.Time
}

// unrecordedHold is how long a delivery whose attempt could not be recorded waits to be tried again.
const unrecordedHold = 30 * time.Second

func newWebhookSender(st *Store, log *slog.Logger, now func() time.Time, publicURL string, allowPrivate bool, ports []string, roots *tls.Config) *webhookSender {
	ws := &webhookSender{
		store: st, log: log, now: now, publicURL: publicURL, allowPrivate: allowPrivate,
		jitter: rand.Float64,
		ports:  map[string]bool{},
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
		blocked:  isBlockedAddr,
		wake:     make(chan struct{}, 1),
		inFlight: map[string]bool{},
		perKey:   map[string]int{},
		ended:    make(chan struct{}, 1),
		held:     map[string]time.Time{},
	}
	ws.cond = sync.NewCond(&ws.mu)
	for _, p := range ports {
		ws.ports[p] = true
	}
	transport := &http.Transport{
		Proxy:                 nil, // never HTTPS_PROXY: the address checks must see the real peer
		DialContext:           ws.dial,
		TLSClientConfig:       roots,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: webhookTimeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	ws.client = &http.Client{
		Transport: transport,
		Timeout:   webhookTimeout,
		// A redirect is a failed delivery, never followed: it could point anywhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return ws
}

// errAddrRefused is a connection the webhook rules forbid: a port not allowed, or an address that
// is not public.
var errAddrRefused = errors.New("address refused")

// addrAllowed is the one rule every connection passes: a public address on an allowed port. With
// allowPrivate (local development) every address and every port is allowed.
func (ws *webhookSender) addrAllowed(ip netip.Addr, port string) error {
	if !ws.allowPrivate && !ws.ports[port] {
		return fmt.Errorf("%w: port %s is not allowed for webhooks", errAddrRefused, port)
	}
	if !ws.allowPrivate && ws.blocked(ip) {
		return fmt.Errorf("%w: %s is not a public address", errAddrRefused, ip)
	}
	return nil
}

// dial resolves the host itself, skips every address the rule refuses, and checks again, on the
// socket, the address actually connected to; so DNS rebinding between look-ups gains nothing.
func (ws *webhookSender) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, err := ws.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		return ws.addrAllowed(ap.Addr(), strconv.Itoa(int(ap.Port())))
	}}
	var lastErr error = fmt.Errorf("%s has no address", host)
	for _, ip := range ips {
		if lastErr = ws.addrAllowed(ip, port); lastErr != nil {
			continue
		}
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// resolve is host's addresses: itself when it is an address, written with a final dot or not (as
// checkURL reads it, and browsers do), otherwise what ws.lookup gives.
func (ws *webhookSender) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(strings.TrimSuffix(host, ".")); err == nil {
		return []netip.Addr{ip}, nil
	}
	return ws.lookup(ctx, host)
}

// CheckURL validates a webhook URL at submission: https, a port allowed, and a host that is a public
// IP address or a name that does not resolve only to non-public ones (one that does not resolve at
// all is accepted; the dial checks again). Errors are 400s for the client.
func (ws *webhookSender) CheckURL(ctx context.Context, raw string) error {
	return ws.checkURL(ctx, "webhookUrl", raw)
}

// checkURL is CheckURL for any URL the service calls or fetches under the webhooks' address rules
// (an input's URL too); field names it in the errors.
func (ws *webhookSender) checkURL(ctx context.Context, field, raw string) error {
	u, err := validURLSyntax(field, raw)
	if err != nil {
		return err
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	// A receiver on a laptop listens on 3000 or 8443: -webhook-allow-private allows any port, and
	// the refusal names the settings, since the operator and the user are often the same person.
	if !ws.allowPrivate && !ws.ports[port] {
		allowed := slices.Sorted(maps.Keys(ws.ports))
		return errorf(kindInvalid, "%s must use port %s (the server's -webhook-ports setting allows others; -webhook-allow-private allows any, for local development)", field, strings.Join(allowed, " or "))
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if ws.allowPrivate {
		return nil
	}
	refused := errorf(kindInvalid, "%s must point to a public internet address", field)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return refused
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ws.blocked(ip) {
			return refused
		}
		return nil
	}
	// A last label of digits (or 0x...) is an IPv4 address in a legacy spelling (127.1, 0177.0.0.1,
	// 2130706433, 0x7f.1) that some resolvers accept; no real domain ends that way.
	labels := strings.Split(host, ".")
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" || strings.HasPrefix(last, "0x") {
		return refused
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ips, err := ws.lookup(lctx, host)
	if err != nil || len(ips) == 0 {
		// A name that does not resolve now (a DNS hiccup, a receiver not yet deployed, the docs'
		// own https://your.app example) is accepted: the dial checks every address it gets later.
		return nil
	}
	for _, ip := range ips {
		if !ws.blocked(ip) {
			return nil
		}
	}
	return refused
}

// Notify wakes the sender: a delivery is waiting.
func (ws *webhookSender) Notify() {
	select {
	case ws.wake <- struct{}{}:
	default:
	}
}

// Run delivers due deliveries until ctx is done. Deliveries survive restarts in the outbox, so
// stopping mid-way loses nothing: an interrupted attempt is not recorded and is made again.
func (ws *webhookSender) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		_, blocked, _, err := ws.dispatch(ctx, &wg, nil)
		if err != nil && ctx.Err() == nil {
			ws.log.Error("webhook deliveries", "err", err)
		}
		wait := time.Minute
		if next, err := ws.store.NextDeliveryAt(ctx); err == nil && !next.IsZero() {
			wait = min(wait, next.Sub(ws.now()))
		}
		if blocked || wait <= 0 {
			// Due deliveries wait for a free slot, or are the ones in flight: an attempt that ends
			// wakes the loop. A second is the fallback when an attempt could not be recorded (and
			// its delivery is held, see unrecordedHold).
			wait = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-ws.wake:
		case <-ws.ended:
		case <-t.C:
		}
		t.Stop()
	}
}

// DeliverDue makes one attempt at every delivery due now and returns how many it made, once every
// attempt under way (its own and the Run loop's) has been recorded.
func (ws *webhookSender) DeliverDue(ctx context.Context) (int, error) {
	var wg sync.WaitGroup
	tried := map[string]bool{}
	total := 0
	for {
		n, blocked, gen, err := ws.dispatch(ctx, &wg, tried)
		total += n
		ws.mu.Lock()
		if err != nil || (n == 0 && !blocked) {
			for ws.total > 0 {
				ws.cond.Wait()
			}
			ws.mu.Unlock()
			wg.Wait()
			return total, err
		}
		if n == 0 {
			for ws.gen == gen { // every slot is taken: wait until an attempt ends
				ws.cond.Wait()
			}
		}
		ws.mu.Unlock()
	}
}

// dispatch starts an attempt at each due delivery it has room for: webhookInFlight at once in all
// and webhookPerKey for one account, taking the accounts in turn, so one account's slow receivers
// never hold every worker and another account's webhook goes out at once. Deliveries in tried are
// skipped and those started are added to it (when it is not nil). blocked says a due delivery
// waits for a slot; gen is the count of ended attempts when dispatch returned.
func (ws *webhookSender) dispatch(ctx context.Context, wg *sync.WaitGroup, tried map[string]bool) (started int, blocked bool, gen uint64, err error) {
	var due []Delivery
	for {
		// An attempt that ends between the query and the lock below was recorded after the query
		// read its delivery as due: query again, or it would be attempted twice.
		ws.mu.Lock()
		before := ws.gen
		ws.mu.Unlock()
		if due, err = ws.store.DueDeliveries(ctx, ws.now(), 256); err != nil {
			return 0, false, 0, err
		}
		ws.mu.Lock()
		if ws.gen == before {
			break
		}
		ws.mu.Unlock()
	}
	defer ws.mu.Unlock()
	var keys []string
	queue := map[string][]Delivery{}
	now := ws.now()
	for id, until := range ws.held {
		if !now.Before(until) {
			delete(ws.held, id)
		}
	}
	for _, d := range due {
		if _, held := ws.held[d.ID]; held || tried[d.ID] {
			continue
		}
		if queue[d.KeyID] == nil {
			keys = append(keys, d.KeyID)
		}
		queue[d.KeyID] = append(queue[d.KeyID], d)
	}
	for more := true; more; {
		more = false
		for _, k := range keys {
			q := queue[k]
			for len(q) > 0 && ws.inFlight[q[0].ID] {
				q = q[1:] // the other loop has it under way
			}
			queue[k] = q
			if len(q) == 0 {
				continue
			}
			if ws.total >= webhookInFlight || ws.perKey[k] >= webhookPerKey {
				blocked = true
				continue
			}
			d := q[0]
			queue[k] = q[1:]
			ws.inFlight[d.ID], ws.perKey[k], ws.total = true, ws.perKey[k]+1, ws.total+1
			if tried != nil {
				tried[d.ID] = true
			}
			started++
			more = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				ws.attempt(ctx, d)
				ws.mu.Lock()
				delete(ws.inFlight, d.ID)
				ws.perKey[k]--
				if ws.perKey[k] == 0 {
					delete(ws.perKey, k)
				}
				ws.total--
				ws.gen++
				ws.cond.Broadcast()
				ws.mu.Unlock()
				select {
				case ws.ended <- struct{}{}:
				default:
				}
			}()
		}
	}
	return started, blocked, ws.gen, nil
}

// signatures returns the headers that sign body for delivery id sent at ts with the account's
// secrets: the previous secret signs too while its overlap lasts.
func signatures(k Key, id string, ts time.Time, body []byte) http.Header {
	h := http.Header{}
	mac := hmac.New(sha256.New, []byte(k.WebhookSecret))
	mac.Write(body)
	h.Set("X-Webhook-Signature", hex.EncodeToString(mac.Sum(nil)))
	unix := strconv.FormatInt(ts.Unix(), 10)
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", unix)
	secrets := []string{k.WebhookSecret}
	if k.PrevSecret != "" && ts.Before(k.PrevUntil) {
		secrets = append(secrets, k.PrevSecret)
	}
	var sigs []string
	for _, s := range secrets {
		sigs = append(sigs, "v1,"+standardSignature(s, id, unix, body))
	}
	h.Set("webhook-signature", strings.Join(sigs, " "))
	return h
}

// standardSignature is the Standard Webhooks v1 signature: base64 HMAC-SHA256, keyed with the
// base64-decoded part of the secret after "whsec_", of "id.timestamp.body".
func standardSignature(secret, id, ts string, body []byte) string {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		key = []byte(secret)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// attempt makes one try at d and records the result with the next step. The body is the job's
// status as stored: a job's final state never changes, so every attempt sends the same bytes.
func (ws *webhookSender) attempt(ctx context.Context, d Delivery) {
	var owner string
	if ws.claim != nil {
		var ok bool
		var err error
		owner, ok, err = ws.claim(ctx, d.ID, ws.now())
		if err != nil {
			ws.log.Error("webhook claim", d.logAttrs("err", err)...)
			ws.hold(d.ID)
		}
		if !ok {
			return // another node sends it, or it was recorded meanwhile
		}
	}
	k, err := ws.store.KeyByID(ctx, d.KeyID)
	if err != nil {
		ws.log.Error("webhook key", d.logAttrs("err", err)...)
		ws.hold(d.ID)
		return
	}
	j, err := ws.store.JobByID(ctx, d.JobID)
	if err != nil {
		ws.log.Error("webhook job", d.logAttrs("err", err)...)
		ws.hold(d.ID)
		return
	}
	body, err := json.Marshal(statusOf(j, ws.publicURL, nil))
	if err != nil {
		ws.log.Error("webhook body", d.logAttrs("err", err)...)
		return
	}
	now := ws.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		ws.record(ctx, d, owner, j, Attempt{At: now, Error: "invalid URL"}, nil)
		return
	}
	for name, v := range signatures(k, d.ID, now, body) {
		req.Header[name] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", webhookUserAgent)
	resp, err := ws.client.Do(req)
	if ctx.Err() != nil {
		return // shutting down: the attempt is made again after the restart
	}
	if err != nil {
		ws.record(ctx, d, owner, j, Attempt{At: now, Error: describeSendError(err)}, nil)
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, webhookMaxRead))
	resp.Body.Close()
	a := Attempt{At: now, StatusCode: resp.StatusCode}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		a.Error = fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	ws.record(ctx, d, owner, j, a, resp)
}

// describeSendError says why no response came, in words for the job's owner, without internals.
func describeSendError(err error) string {
	var (
		ne      net.Error
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	switch {
	case errors.Is(err, errAddrRefused):
		return "address refused: not a public address or port"
	case errors.As(err, &dnsErr):
		return "host not found"
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &alert),
		errors.As(err, &unknown), errors.As(err, &host), errors.As(err, &invalid):
		return "TLS error"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "connection failed"
}

// hold keeps delivery id from being tried again for unrecordedHold.
func (ws *webhookSender) hold(id string) {
	ws.mu.Lock()
	ws.held[id] = ws.now().Add(unrecordedHold)
	ws.mu.Unlock()
}

// record stores attempt a at delivery d of job j, made under lease owner, and logs it: at WARN when
// it failed, whether another attempt follows or not, for the operator to look at the receiver.
func (ws *webhookSender) record(ctx context.Context, d Delivery, owner string, j Job, a Attempt, resp *http.Response) {
	state, next := ws.nextStep(d, a, resp)
	if err := ws.store.RecordAttempt(ctx, d.ID, owner, a, state, next); errors.Is(err, ErrLeaseLost) {
		ws.log.Warn("webhook attempt not recorded: its lease lapsed and another node has the delivery", j.logAttrs("delivery", d.ID)...)
		return
	} else if err != nil {
		ws.log.Error("record webhook attempt", d.logAttrs("err", err, "retry_in", unrecordedHold.String())...)
		ws.hold(d.ID)
		return
	}
	level := slog.LevelInfo
	if state != DeliveryDelivered {
		level = slog.LevelWarn
	}
	ws.log.Log(ctx, level, "webhook attempt", j.logAttrs("delivery", d.ID, "status", a.StatusCode, "error", a.Error, "state", state)...)
	if ws.observe != nil {
		ws.observe(state)
	}
}

// nextStep decides what follows attempt a at delivery d, as the lifecycle's schedule says, with
// this sender's jitter and the wait the receiver asked for in Retry-After, if any.
func (ws *webhookSender) nextStep(d Delivery, a Attempt, resp *http.Response) (DeliveryState, time.Time) {
	var asked time.Duration
	if resp != nil {
		asked, _ = parseRetryAfter(resp.Header.Get("Retry-After"), ws.now())
	}
	return nextDelivery(d.Attempts, a, asked, ws.jitter())
}

// parseRetryAfter reads a Retry-After header in either form: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
