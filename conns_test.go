package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// budgetConns is a test's set of connections in an fdBudget: each one's close records that it was
// cut, and in which order, and gives back what it holds as a real connection's close does.
type budgetConns struct {
	b     *fdBudget
	cut   map[*fdConn]bool
	order []*fdConn
}

// waiting accepts a connection that has sent no request yet.
func (bc *budgetConns) waiting(t testing.TB) *fdConn {
	t.Helper()
	var c *fdConn
	c, ok := bc.b.accept(func() error {
		bc.cut[c] = true
		bc.order = append(bc.order, c)
		c.release()
		return nil
	})
	if !ok {
		t.Fatalf("a connection refused with %d of %d descriptors in use", bc.b.inUse(), bc.b.max)
	}
	return c
}

// state moves c to state, as the HTTP server reports it.
func (bc *budgetConns) state(c *fdConn, state http.ConnState) {
	bc.b.connState(&countedConn{fds: c}, state)
}

// active accepts a connection whose request's headers were read.
func (bc *budgetConns) active(t testing.TB) *fdConn {
	t.Helper()
	c := bc.waiting(t)
	bc.state(c, http.StateActive)
	return c
}

// download accepts a connection and starts a download on it, its file taken from the budget.
func (bc *budgetConns) download(t testing.TB) *fdConn {
	t.Helper()
	c := bc.active(t)
	if _, ok := bc.b.take(c, 1, fdDownload); !ok {
		t.Fatalf("a download refused with %d of %d descriptors in use", bc.b.inUse(), bc.b.max)
	}
	c.setDownloading(true)
	return c
}

// TestFDBudget: downloads fill their share and no more; a connection whose route is not known and
// an upload may still reach into the reserve; when room is needed the download idle for longest
// is cut first (never one whose client keeps reading, nor one idle for less than downloadIdle),
// then the keep-alive connection idle for longest; what a cut connection held comes back once,
// however its close and its file's are ordered.
func TestFDBudget(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Date(2026, 5, 7, 12, 0, 0, 0, time.UTC)}
	const limit, reserve = 120, 20 // 100 for connections: 68 for downloads
	b := newFDBudget(limit, reserve, clk.Now)
	bc := &budgetConns{b: b, cut: map[*fdConn]bool{}}
	if b.max != limit-reserve || b.low() {
		t.Fatalf("budget %d of a limit of %d, low %v", b.max, limit, b.low())
	}
	share := b.max - fdVital

	// Downloads, each a socket and a file, started a millisecond apart: the first is the oldest.
	var downloads []*fdConn
	for range share / 2 {
		downloads = append(downloads, bc.download(t))
		clk.Advance(time.Millisecond)
	}
	if got := b.inUse(); got != share {
		t.Fatalf("%d downloads hold %d descriptors, want %d", len(downloads), got, share)
	}
	// One more is refused: none has been idle for downloadIdle yet. Its connection, whose route
	// was not known when it came, was taken from the reserve.
	extra := bc.active(t)
	if _, ok := b.take(extra, 1, fdDownload); ok {
		t.Fatal("a download past the downloads' share was taken")
	}
	if len(bc.cut) != 0 {
		t.Fatalf("%d cut before any was idle for %s", len(bc.cut), downloadIdle)
	}
	// An upload's file may reach into the reserve, up to half of it.
	var gives []func()
	for b.inUse() < b.max-fdVital/2 {
		give, ok := b.take(extra, 1, fdUpload)
		if !ok {
			t.Fatalf("an upload refused at %d of %d", b.inUse(), b.max-fdVital/2)
		}
		gives = append(gives, give)
	}
	if _, ok := b.take(extra, 1, fdUpload); ok {
		t.Fatal("an upload took the last half of the reserve")
	}
	for _, give := range gives {
		give()
	}
	extra.release()

	// Time passes; the first two downloads' clients take bytes now, the others took none.
	clk.Advance(downloadIdle)
	downloads[0].progress()
	downloads[1].progress()
	// Room for three connections: the third and fourth downloads, idle for longest, are cut, each
	// giving back its socket and its file.
	for range 3 {
		bc.active(t)
	}
	for i, d := range downloads {
		if want := i == 2 || i == 3; bc.cut[d] != want {
			t.Errorf("download %d cut %v, want %v", i, bc.cut[d], want)
		}
	}
	if got := b.inUse(); got != share-4+3 {
		t.Errorf("%d in use after two downloads were cut for three connections, want %d", got, share-1)
	}
	// A cut download's handler gives its file back as it returns, and the server closes its
	// connection again: both were counted already.
	b.give(downloads[2], 1)
	if got := b.inUse(); got != share-1 {
		t.Errorf("%d in use after the cut download's file closed, want %d", got, share-1)
	}
	downloads[2].release()
	if got := b.inUse(); got != share-1 {
		t.Errorf("%d in use after the cut download's connection closed again, want %d", got, share-1)
	}

	// The other downloads end, as their handlers do (the file is given back), and their connections
	// wait for another request, the fifth download's for longest. They are cut, oldest first, only
	// once no idle download is left.
	for _, d := range downloads[4:] {
		clk.Advance(time.Millisecond)
		d.setDownloading(false)
		b.give(d, 1)
		bc.state(d, http.StateIdle)
	}
	stalled := bc.download(t)
	clk.Advance(downloadIdle)
	downloads[0].progress()
	downloads[1].progress()
	for b.inUse() < share {
		bc.active(t)
	}
	before := len(bc.cut)
	bc.active(t)
	if len(bc.cut) != before+1 || !bc.cut[stalled] {
		t.Errorf("with a download idle for %s and keep-alive connections: cut %d, the download %v", downloadIdle, len(bc.cut)-before, bc.cut[stalled])
	}
	bc.active(t)
	bc.active(t)
	if !bc.cut[downloads[4]] {
		t.Error("the keep-alive connection idle for longest was not cut")
	}
	if bc.cut[downloads[len(downloads)-1]] {
		t.Error("the keep-alive connection idle for least was cut before older ones")
	}
	// A connection that is in a request again may not be cut.
	bc.state(downloads[len(downloads)-1], http.StateActive)
	for b.inUse() < b.max {
		bc.active(t)
	}
	if bc.cut[downloads[len(downloads)-1]] {
		t.Error("a connection in a request was cut")
	}
	// With the whole budget spent and nothing idle, a new connection is refused.
	if _, ok := b.accept(func() error { return nil }); ok {
		t.Errorf("a connection taken with %d of %d in use", b.inUse(), b.max)
	}
}

// TestFDBudgetNoLimit: a process without a descriptor limit counts, never refuses.
func TestFDBudgetNoLimit(t *testing.T) {
	t.Parallel()
	b := newFDBudget(0, fdReserve(1, 2), time.Now)
	for range 1000 {
		if _, ok := b.take(nil, 1, fdDownload); !ok {
			t.Fatalf("refused at %d without a limit", b.inUse())
		}
	}
	if b.inUse() != 1000 || b.low() {
		t.Errorf("%d in use, low %v", b.inUse(), b.low())
	}
	if small := newFDBudget(100, fdReserve(1, 2), time.Now); !small.low() || small.max != 2*fdVital {
		t.Errorf("a limit of 100: budget %d, low %v", small.max, small.low())
	}
}

// TestDownloadsOverBudget: with the downloads' share of the descriptors spent, a download is
// refused with a 503 that says to retry, Retry-After, and its connection closed, while a
// submission, which may reach into the reserve, is still taken.
func TestDownloadsOverBudget(t *testing.T) {
	t.Parallel()
	var fds *fdBudget
	e := newTestEnv(t, hangConfig(t, 1), func(s *server) {
		fds = newFDBudget(fdReserve(1, 2)+4*fdVital, fdReserve(1, 2), time.Now)
		s.fds = fds
	})
	if _, ok := fds.take(nil, fds.share(fdDownload), fdDownload); !ok {
		t.Fatal("could not spend the downloads' share")
	}
	// The budget is asked before the output is looked up: no job is needed.
	token := strings.Repeat("0f", 16)
	for _, path := range []string{"/v/" + token + ".mp4", "/s/" + token} {
		resp, b := e.do(t, "GET", path, "", nil)
		msg := errorBody(t, resp, b, http.StatusServiceUnavailable)
		if !strings.Contains(msg, "as many downloads as it can; try again") || resp.Header.Get("Retry-After") == "" || !resp.Close {
			t.Errorf("GET %s: %q, Retry-After %q, closed %v", path, msg, resp.Header.Get("Retry-After"), resp.Close)
		}
	}
	resp, _ := e.do(t, "GET", "/api/health", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("health: %d", resp.StatusCode)
	}
	if code, body := e.submit(t, e.key, fixture(t, "img.png"), fixture(t, "tone.wav"), nil); code != http.StatusCreated {
		t.Errorf("a submission with the downloads' share spent: %d %v", code, body)
	}
	// With the reserve's half that uploads may take spent too, a submission is refused the same way.
	if _, ok := fds.take(nil, fds.share(fdUpload)-fds.inUse(), fdUpload); !ok {
		t.Fatal("could not spend the uploads' share")
	}
	third := e.newKey(t, "carol")
	code, body := e.submit(t, third, fixture(t, "img.png"), fixture(t, "tone.wav"), nil)
	if msg, _ := body["error"].(string); code != http.StatusServiceUnavailable || !strings.Contains(msg, "try again in a few seconds") {
		t.Errorf("a submission with the uploads' share spent: %d %v", code, body)
	}
}

// TestFDBudgetWaiting: connections that have sent no request (silent ones, and slowloris clients
// whose headers trickle in, which the server still reports as new) and keep-alive connections
// between requests are cut for a newcomer, the one that has waited longest first, once it has
// waited waitGrace; a newcomer finds no room while every such connection is younger, and a
// connection in a request is never cut for one.
func TestFDBudgetWaiting(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 7, 12, 0, 0, 0, time.UTC)
	clk := &fakeClock{t: t0}
	at := func(ms int) { clk.Set(t0.Add(time.Duration(ms) * time.Millisecond)) }
	b := newFDBudget(120, 20, clk.Now) // 100 for connections, 68 once something waits to be cut
	bc := &budgetConns{b: b, cut: map[*fdConn]bool{}}
	names := map[*fdConn]string{}

	// A request in progress from the start, and a keep-alive connection that answers one and waits
	// for the next from 205 ms; the rest of the budget, connections that send nothing, one every
	// 10 ms from 0 to 970 ms.
	busy, kept := bc.active(t), bc.active(t)
	names[busy], names[kept] = "the connection in a request", "the keep-alive connection"
	var silent []*fdConn
	for i := 0; b.inUse() < b.max; i++ {
		at(10 * i)
		c := bc.waiting(t)
		names[c] = fmt.Sprintf("silent %d", i)
		silent = append(silent, c)
		if i == 20 {
			at(205)
			bc.state(kept, http.StateIdle)
		}
	}
	order := func() (got []string) {
		for _, c := range bc.order {
			got = append(got, names[c])
		}
		return got
	}

	if len(bc.order) != 0 {
		t.Fatalf("filling the budget within 970 ms cut %q: none had waited %s", order(), waitGrace)
	}
	// Nothing has waited a second yet: the newcomer is refused, and nothing cut.
	at(975)
	if _, ok := b.accept(func() error { return nil }); ok || len(bc.order) != 0 {
		t.Fatalf("with %d of %d in use, none waiting for %s: newcomer taken %v, cut %v", b.inUse(), b.max, waitGrace, ok, order())
	}
	// At 1,045 ms the five oldest have waited a second: all five are cut, the oldest first, and
	// the newcomer is taken.
	at(1045)
	newcomer := bc.waiting(t)
	names[newcomer] = "the newcomer"
	var want []string
	for i := range 5 {
		want = append(want, names[silent[i]])
	}
	if got := order(); !slices.Equal(got, want) {
		t.Fatalf("cut for a newcomer at 1,045 ms: %q, want %q", got, want)
	}
	// At 1,325 ms, 29 of those that have waited a second are cut to leave the reserve free, in the
	// order they began to wait: the keep-alive connection between silent 20 and silent 21.
	at(1325)
	late := bc.waiting(t)
	names[late] = "the later newcomer"
	for i := 5; i <= 32; i++ {
		want = append(want, names[silent[i]])
		if i == 20 {
			want = append(want, names[kept])
		}
	}
	if got := order(); !slices.Equal(got, want) {
		t.Fatalf("cut for a newcomer at 1,325 ms:\n%q\nwant\n%q", got, want)
	}
	if got := b.inUse(); got != b.share(fdDownload) {
		t.Errorf("%d in use after the cuts, want %d", got, b.share(fdDownload))
	}

	// The silent connections left and the first newcomer send their requests; however long those
	// take, none is cut as more come in: only the later newcomer, still silent, is. With the whole
	// budget spent, a newcomer is refused.
	for _, c := range append([]*fdConn{newcomer}, silent[33:]...) {
		bc.state(c, http.StateActive)
	}
	clk.Advance(time.Hour)
	cut := len(bc.order)
	for b.inUse() < b.max {
		bc.active(t)
	}
	if got := order()[cut:]; !slices.Equal(got, []string{names[late]}) {
		t.Errorf("filling the budget with requests an hour later cut %q, want only %s", got, names[late])
	}
	for _, c := range append([]*fdConn{busy, newcomer}, silent[33:]...) {
		if bc.cut[c] {
			t.Errorf("%s was cut", names[c])
		}
	}
	if _, ok := b.accept(func() error { return nil }); ok {
		t.Errorf("a connection taken with %d of %d in use, in requests", b.inUse(), b.max)
	}
}
