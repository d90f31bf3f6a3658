package main

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxBuckets bounds each policy's table of clients. Past it, idle buckets are swept first and then,
// if a flood of fresh addresses still fills it, arbitrary ones are dropped: a dropped client just
// starts again with a full bucket.
const maxBuckets = 50_000

// limitPolicy is one token bucket policy per client K (an address prefix, or an account):
// perMinute requests a minute, in bursts of as many.
type limitPolicy[K comparable] struct {
	name      string
	perMinute int
	now       func() time.Time

	mu      sync.Mutex
	buckets map[K]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimitPolicy[K comparable](name string, perMinute int, now func() time.Time) *limitPolicy[K] {
	return &limitPolicy[K]{name: name, perMinute: perMinute, now: now, buckets: map[K]*bucket{}}
}

// take spends one token of client's bucket and returns whether it was there, the tokens left, and
// the seconds until the bucket is full again (RateLimit-Reset) or, when refused, until one token is
// back (Retry-After).
func (p *limitPolicy[K]) take(client K) (ok bool, remaining int, reset, retryAfter int) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.buckets[client]
	if b == nil {
		if len(p.buckets) >= maxBuckets {
			p.sweep(now)
		}
		b = &bucket{lim: rate.NewLimiter(rate.Limit(float64(p.perMinute)/60), p.perMinute)}
		p.buckets[client] = b
	} else if now.Sub(p.swept) > time.Minute {
		p.sweep(now)
	}
	b.seen = now
	ok = b.lim.AllowN(now, 1)
	tokens := b.lim.TokensAt(now)
	perSec := float64(p.perMinute) / 60
	remaining = max(int(math.Floor(tokens)), 0)
	reset = int(math.Ceil((float64(p.perMinute) - tokens) / perSec))
	if !ok {
		retryAfter = max(int(math.Ceil((1-tokens)/perSec)), 1)
	}
	return ok, remaining, reset, retryAfter
}

// sweep drops buckets idle long enough to have refilled (forgetting them changes nothing); then, if
// the table is still at its cap, arbitrary ones down to 90% of it. Evicting a tenth at a time keeps
// a flood of fresh addresses at one pass over the table per maxBuckets/10 new clients, instead of
// one pass per request once the table is full.
func (p *limitPolicy[K]) sweep(now time.Time) {
	p.swept = now
	for k, b := range p.buckets {
		if now.Sub(b.seen) > time.Minute {
			delete(p.buckets, k)
		}
	}
	if len(p.buckets) < maxBuckets {
		return
	}
	for k := range p.buckets {
		if len(p.buckets) <= maxBuckets*9/10 {
			break
		}
		delete(p.buckets, k)
	}
}

func (p *limitPolicy[K]) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.buckets)
}

// clientIPs finds the client's address: the TCP peer, unless the peer is a trusted proxy; then the
// right-most X-Forwarded-For entry that is not a trusted proxy (the left-most are the client's to
// forge).
type clientIPs struct {
	trusted []netip.Prefix
}

func (c clientIPs) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (c clientIPs) clientAddr(r *http.Request) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		a, _ := netip.ParseAddr(host)
		return a.Unmap()
	}
	addr := peer.Addr().Unmap()
	if !c.isTrusted(addr) {
		return addr
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr // a malformed hop: trust nothing to its left
		}
		a = a.Unmap()
		if !c.isTrusted(a) {
			return a
		}
		addr = a
	}
	return addr
}

// key is the bucket a client address spends from: the address itself for IPv4, its /64 for IPv6,
// since one IPv6 user typically holds a whole /64.
func (c clientIPs) key(r *http.Request) netip.Prefix { return prefixOf(c.clientAddr(r)) }

// limit returns middleware that applies policy p (nil: no limit) per client, writing the RateLimit-*
// headers on every response it limits and a JSON 429 when the bucket is empty.
func (s *server) limit(p *limitPolicy[netip.Prefix]) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if p == nil {
			return next
		}
		// The API's responses name both of its policies; a download's names its own.
		policy := s.ratePolicyHeader
		if p == s.downloadLimit {
			policy = ratePolicy(p)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ok, remaining, reset, retryAfter := p.take(s.clients.key(r))
			h := w.Header()
			setRateHeaders(h, p.perMinute, remaining, reset, policy)
			if !ok {
				h.Set("Retry-After", strconv.Itoa(retryAfter))
				s.writeError(w, r, errorf(kindRateLimited, "Rate limit exceeded: at most %d %s a minute from one address; retry in %d s", p.perMinute, p.name, retryAfter))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// setRateHeaders writes the RateLimit-* headers of a limited response: the policy's size, what is
// left of the client's bucket, the seconds until it is full, and the policies that apply.
func setRateHeaders(h http.Header, perMinute, remaining, reset int, policy string) {
	h.Set("RateLimit-Limit", strconv.Itoa(perMinute))
	h.Set("RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("RateLimit-Reset", strconv.Itoa(reset))
	h.Set("RateLimit-Policy", policy)
}

// ratePolicy describes the policies for the RateLimit-Policy header, e.g. `600;w=60, 30;w=60`.
func ratePolicy(ps ...*limitPolicy[netip.Prefix]) string {
	var parts []string
	for _, p := range ps {
		if p != nil {
			parts = append(parts, policyItem(p.perMinute, p.name))
		}
	}
	return strings.Join(parts, ", ")
}

// policyItem is one policy of a RateLimit-Policy header.
func policyItem(perMinute int, name string) string {
	return fmt.Sprintf("%d;w=60;comment=%q", perMinute, name)
}
