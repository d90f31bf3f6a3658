//go:build e2e

package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Memory of the real binary and its children, as the hostile tests measure it.

// treePeakRSS samples, every 10 ms until the returned stop is called, the resident memory of the
// process pid and all its descendants, and stop returns the peak of their sum in bytes.
func treePeakRSS(t testing.TB, pid int) (stop func() int64) {
	t.Helper()
	done, result := make(chan struct{}), make(chan int64, 1)
	go func() {
		var peak int64
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, treeRSS(pid))
			select {
			case <-done:
				result <- peak
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	var peak int64
	return func() int64 {
		once.Do(func() {
			close(done)
			peak = <-result
		})
		return peak
	}
}

// treeRSS is the resident memory, in bytes, of the process pid and its descendants now.
func treeRSS(pid int) int64 {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	rss := map[int]int64{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: the comm may hold spaces, so the fields follow the last ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 22 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pages, _ := strconv.ParseInt(f[21], 10, 64) // field 24 of stat: rss, in pages
		children[ppid] = append(children[ppid], n)
		rss[n] = pages * int64(os.Getpagesize())
	}
	var sum func(int) int64
	sum = func(p int) int64 {
		s := rss[p]
		for _, c := range children[p] {
			s += sum(c)
		}
		return s
	}
	return sum(pid)
}

// vmHWM is the peak resident memory, in bytes, of the process pid over its life so far.
func vmHWM(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM: %q", l)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
