package fsm

import (
	"bufio"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkRSSPerToken measures what a node's token state costs in resident
// memory, not just live heap: it builds TOKEND_BENCH_TOKENS tokens (default
// 1,000,000; half access, half refresh) through Apply in a fresh process,
// reads VmRSS, then takes a snapshot and streams it to io.Discard while
// tracking the peak (VmHWM, reset just before). TOKEND_BENCH_MEMLIMIT
// (bytes, or with a KiB/MiB/GiB suffix) sets debug.SetMemoryLimit first, as
// tokend serve --memory-limit does. TOKEND_BENCH_APPLY_DURING=1 keeps
// issuing and revoking grants through Apply while the image streams (the
// token count stays put), the worst case for copy-on-write: every shard is
// written to, so every table is copied once.
// Run it alone, once per process:
//
//	TOKEND_BENCH_TOKENS=10000000 go test -run '^$' -bench RSSPerToken -benchtime 1x -timeout 60m ./fsm/
func BenchmarkRSSPerToken(b *testing.B) {
	tokens := 1_000_000
	if v := os.Getenv("TOKEND_BENCH_TOKENS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		tokens = n
	}
	if v := os.Getenv("TOKEND_BENCH_MEMLIMIT"); v != "" {
		n, err := parseBenchSize(v)
		if err != nil {
			b.Fatal(err)
		}
		debug.SetMemoryLimit(n)
	}
	for b.Loop() {
		rss0 := procStatus(b, "VmRSS")
		s := buildState(tokens/2, false)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rss := procStatus(b, "VmRSS")
		// Reset VmHWM so the peak below is the snapshot's.
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		snap := s.f.Snapshot()
		pause := time.Since(start)
		start = time.Now()
		var size int64
		var err error
		if os.Getenv("TOKEND_BENCH_APPLY_DURING") == "1" {
			size, err = writeWhileApplying(s, snap)
		} else {
			size, err = snap.WriteTo(io.Discard)
		}
		if err != nil {
			b.Fatal(err)
		}
		write := time.Since(start)
		peak := procStatus(b, "VmHWM")
		if r, ok := any(snap).(interface{ Release() }); ok {
			r.Release()
		}
		n := float64(s.f.LiveTokens())
		b.ReportMetric(float64(rss)/n, "rss-B/token")
		b.ReportMetric(float64(peak)/n, "snap-peak-rss-B/token")
		b.ReportMetric(float64(ms.HeapAlloc)/n, "heap-B/token")
		b.ReportMetric(float64(rss0)/1e6, "rss0-MB")
		b.ReportMetric(n, "tokens")
		b.ReportMetric(s.build.Seconds(), "build-s")
		b.ReportMetric(pause.Seconds(), "pause-s")
		b.ReportMetric(write.Seconds(), "write-s")
		b.ReportMetric(float64(size)/n, "image-B/token")
		b.ReportMetric(float64(ms.NumGC), "gcs")
		runtime.KeepAlive(s)
	}
}

// writeWhileApplying streams snap to io.Discard while issuing and
// revoking grants in s's FSM on this goroutine until the write is done.
func writeWhileApplying(s *bigState, snap *Snapshot) (int64, error) {
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := snap.WriteTo(io.Discard)
		done <- result{n, err}
	}()
	var seed [32]byte
	seed[0] = 9
	rng := mrand.NewChaCha8(seed)
	idx := s.f.AppliedIndex()
	for {
		select {
		case r := <-done:
			return r.n, r.err
		default:
		}
		var a, r Hash
		rng.Read(a[:])
		rng.Read(r[:])
		idx++
		res := s.f.Apply(idx, Encode(&IssueGrant{ClientID: "client-000", Scope: "read", IssuedAt: t0,
			Access: TokenSpec{a, t0 + accessL}, Refresh: TokenSpec{r, t0 + refresL}}))
		if res.Outcome != OK {
			return 0, res.Err()
		}
		idx++
		if res = s.f.Apply(idx, Encode(&RevokeToken{Token: a})); res.Outcome != OK {
			return 0, res.Err()
		}
	}
}

// procStatus reads a "kB" field of /proc/self/status, in bytes.
func procStatus(b *testing.B, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), ":")
		if ok && name == field {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}

func parseBenchSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q: %w", s, err)
	}
	return n * mult, nil
}
