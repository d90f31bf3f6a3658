package main

import (
	"context"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"vidgen/internal/media"
)

// This file bounds the memory that decoding pictures takes across uploads and renders. A picture's
// decode is the one step whose memory grows with the input: ~10 bytes a pixel in ffmpeg or ffprobe,
// so a 100-megapixel photo takes about 1 GB where a phone's 12-megapixel one takes under 200 MB.
// Counting submissions and renders alone would let a burst of large photos ask the machine for
// several times its memory and wake the kernel's OOM killer.

// memoryGate admits work by its expected memory: the costs of the work it admits sum to at most its
// budget, except that work costing more than the whole budget is admitted alone. Waiters are served
// in turn, so a large picture is not starved by a stream of small ones.
type memoryGate struct {
	mu      sync.Mutex
	budget  int64
	used    int64
	waiters []*memoryWaiter
}

// memoryWaiter is one acquire waiting its turn.
type memoryWaiter struct {
	cost  int64
	ready chan struct{} // closed when admitted
}

// newMemoryGate returns a gate admitting work whose costs sum to at most budget.
func newMemoryGate(budget int64) *memoryGate { return &memoryGate{budget: budget} }

// acquire waits until cost fits and returns the function that gives it back, or ctx's error if ctx
// ends first (nothing is then held).
func (g *memoryGate) acquire(ctx context.Context, cost int64) (release func(), err error) {
	g.mu.Lock()
	if len(g.waiters) == 0 && g.fits(cost) {
		g.used += cost
		g.mu.Unlock()
		return g.releaser(cost), nil
	}
	w := &memoryWaiter{cost: cost, ready: make(chan struct{})}
	g.waiters = append(g.waiters, w)
	g.mu.Unlock()
	select {
	case <-w.ready:
		return g.releaser(cost), nil
	case <-ctx.Done():
		g.mu.Lock()
		select {
		case <-w.ready: // admitted meanwhile: hand it back
			g.mu.Unlock()
			g.releaser(cost)()
		default:
			for i, o := range g.waiters {
				if o == w {
					g.waiters = append(g.waiters[:i], g.waiters[i+1:]...)
					break
				}
			}
			// The head of the queue may have been waiting behind this one.
			g.admit()
			g.mu.Unlock()
		}
		return nil, ctx.Err()
	}
}

// fits says whether cost may start now; g.mu is held.
func (g *memoryGate) fits(cost int64) bool { return g.used == 0 || g.used+cost <= g.budget }

// admit starts the waiters at the head of the queue that fit; g.mu is held.
func (g *memoryGate) admit() {
	for len(g.waiters) > 0 && g.fits(g.waiters[0].cost) {
		w := g.waiters[0]
		g.waiters[0] = nil // not kept reachable by the slice's array
		g.waiters = g.waiters[1:]
		g.used += w.cost
		close(w.ready)
	}
}

// releaser returns the function that gives cost back and admits whoever then fits; calling it again
// gives back nothing more.
func (g *memoryGate) releaser(cost int64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.used -= cost
			g.admit()
			g.mu.Unlock()
		})
	}
}

// waiting is the number of waiters, for tests.
func (g *memoryGate) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiters)
}

// Expected memory of a picture's decode, measured with ffmpeg 5.1 on 24-megapixel pictures (peak
// RSS of the render's picture step: JPEG 268 MB, PNG 307 MB, 16-bit PNG 377 MB; the upload's
// decode check takes less) and rounded up.
const (
	pictureBaseCost  = 64 << 20 // the process, x264 and the scaled frames
	pictureByteCost  = 10       // a pixel at 8 bits a channel
	pictureDeepCost  = 14       // a pixel at 16 bits a channel
	largestPicture   = pictureBaseCost + maxPixels*pictureDeepCost
	defaultMemBudget = 1 << 30 // when the service's memory cannot be read

	// A byte of a PNG file: ffmpeg's png_pipe reads the file whole into one packet, and its
	// decoder copies text chunks into the frame's metadata, which the filters copy again. A 50 MB
	// PNG of one pixel took 346 MB to render when its bytes were a text chunk, 192 MB when they
	// were empty image data chunks, against 141 MB for a tiny PNG.
	pngFileCost = 4
)

// pictureCost is the expected memory of decoding the image at path, of type typ: from its header's
// size (and a PNG's file size), or the largest accepted picture's when the header cannot be read.
func pictureCost(path, typ string) int64 {
	w, h, deep, err := imageSize(path, typ)
	if err != nil {
		return largestPicture
	}
	return headerCost(imageHeader{w: w, h: h, deep: deep}, path, typ)
}

// headerCost is pictureCost of the image at path whose header hdr was read already (inspectImage).
func headerCost(hdr imageHeader, path, typ string) int64 {
	if hdr.w <= 0 || hdr.h <= 0 {
		return largestPicture
	}
	per := int64(pictureByteCost)
	if hdr.deep {
		per = pictureDeepCost
	}
	cost := pictureBaseCost + int64(hdr.w)*int64(hdr.h)*per
	if fi, err := os.Stat(path); err == nil && typ == media.PNG {
		cost += pngFileCost * fi.Size()
	}
	return cost
}

// memoryBudget is how much memory the picture steps may expect to use at once: half of what the
// service may use, the tightest limit of its cgroup and the cgroups above it (cgroupMemoryLimit: the
// systemd unit's MemoryHigh or MemoryMax, a container's limit) or else the machine's memory. The other half is the
// service itself, its audio encodes and the page cache its files pass through.
func memoryBudget() int64 {
	limit := int64(0)
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		limit = int64(si.Totalram) * int64(si.Unit)
	}
	if c, ok := cgroupMemoryLimit(); ok && (limit == 0 || c < limit) {
		limit = c
	}
	if limit <= 0 {
		return defaultMemBudget
	}
	return limit / 2
}

// cgroupMemoryLimit reads the tightest memory limit on the way from this process's cgroup up to the
// root: memory.max or memory.high (where the kernel starts reclaiming hard: the unit's MemoryHigh)
// under cgroup v2, Debian's default; memory.limit_in_bytes under v1. ok is false when there is
// none; v1's "unlimited" is a huge number, which the machine's memory then bounds.
func cgroupMemoryLimit() (int64, bool) {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	return cgroupLimit(os.DirFS("/sys/fs/cgroup"), string(self))
}

// cgroupLimit is cgroupMemoryLimit for the cgroup file system cgroups (mounted at /sys/fs/cgroup) and
// self, the contents of /proc/self/cgroup.
func cgroupLimit(cgroups fs.FS, self string) (int64, bool) {
	var least int64
	for _, line := range strings.Split(self, "\n") {
		// hierarchy-ID:controllers:path; v2's line is "0::path".
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		root, files := ".", []string{"memory.max", "memory.high"}
		if parts[1] != "" {
			if !slices.Contains(strings.Split(parts[1], ","), "memory") {
				continue
			}
			root, files = "memory", []string{"memory.limit_in_bytes"}
		}
		for dir := path.Clean("/" + parts[2]); ; dir = path.Dir(dir) {
			for _, file := range files {
				b, err := fs.ReadFile(cgroups, path.Join(root, dir, file))
				// "max" (v2) is no limit, and fails to parse.
				if n, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && perr == nil && n > 0 && (least == 0 || n < least) {
					least = n
				}
			}
			if dir == "/" {
				break
			}
		}
	}
	return least, least > 0
}
