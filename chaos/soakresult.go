package chaos

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// SoakResult is what a soak found.
type SoakResult struct {
	Bench benchTotals
	Nodes []NodeTrend
	// SteadyFrom is where the fitted window starts, since the load began.
	SteadyFrom time.Duration
	// ScrapeFailures counts /metrics requests that failed.
	ScrapeFailures int
	// TermStart and TermEnd are the Raft term seen first and last: a soak
	// injects no faults, so a change means a leader lost its quorum on its
	// own (on a starved machine, a stall longer than the 500 ms leader
	// lease), and clients see 503 while a new one is elected.
	TermStart, TermEnd float64
	// Problems are the reasons the soak failed; empty when it passed.
	Problems []string
	Elapsed  time.Duration
	// Dir is where the nodes' logs and the bench's reports are, when kept.
	Dir string
}

// NodeTrend is one node's measurements.
type NodeTrend struct {
	ID                             string
	RSSStart, RSSEnd               float64 // bytes, first and last sample
	RSS, Heap, Goroutines          fit     // over the steady window
	GoroutinesStart, GoroutinesEnd float64
	LiveMin, LiveMax, LiveEnd      float64 // tokend_live_tokens over the window
	Purged                         float64 // tokend_purged_tokens_total at the end
	// Anon and File fit the two parts of the RSS (Linux only; N is 0
	// elsewhere). Anon is what the memory verdict judges where it exists.
	Anon, File                  fit
	AnonStart, AnonEnd, FileEnd float64
	// DataBytes is the size of the node's data directory at the end.
	DataBytes int64
}

// OK says whether the soak passed.
func (r SoakResult) OK() bool { return len(r.Problems) == 0 }

// judge fits the trends of every node over the steady window and records
// each way the soak failed.
func (r *SoakResult) judge(cfg SoakConfig, smp *sampler, nodes []*node) {
	r.ScrapeFailures = smp.failures()
	// The population is steady once the first tokens have expired and a
	// purge or two has run, and not before SteadyAfter of the run.
	from := max(cfg.SteadyAfter*r.Elapsed.Seconds(), (cfg.AccessTTL + 2*cfg.PurgeInterval).Seconds())
	r.SteadyFrom = time.Duration(from * float64(time.Second)).Round(time.Second)
	for _, nd := range nodes {
		rss, heap, gor := smp.get(nd.id, mRSS), smp.get(nd.id, mHeapInuse), smp.get(nd.id, mGoroutines)
		live, purged := window(smp.get(nd.id, mLiveTokens), from), smp.get(nd.id, mPurged)
		if len(rss) < 2 || len(window(rss, from)) < 3 {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: too few samples (%d) to fit a trend", nd.id, len(rss)))
			continue
		}
		t := NodeTrend{ID: nd.id, RSSStart: rss[0].v, RSSEnd: rss[len(rss)-1].v,
			RSS: leastSquares(window(rss, from)), Heap: leastSquares(window(heap, from)),
			Goroutines: leastSquares(window(gor, from))}
		if len(gor) > 0 {
			t.GoroutinesStart, t.GoroutinesEnd = gor[0].v, gor[len(gor)-1].v
		}
		if len(live) > 0 {
			t.LiveMin, t.LiveMax = slices.MinFunc(live, byV).v, slices.MaxFunc(live, byV).v
			t.LiveEnd = live[len(live)-1].v
		}
		if len(purged) > 0 {
			t.Purged = purged[len(purged)-1].v
		}
		if term := smp.get(nd.id, mTerm); len(term) > 0 {
			if r.TermStart == 0 || term[0].v < r.TermStart {
				r.TermStart = term[0].v
			}
			r.TermEnd = max(r.TermEnd, term[len(term)-1].v)
		}
		mem := []judged{{"heap in use", t.Heap, cfg.Memory}, {"goroutines", t.Goroutines, cfg.Goroutines},
			{"live tokens", leastSquares(live), cfg.LiveTokens}}
		if anon, file := smp.get(nd.id, mRSSAnon), smp.get(nd.id, mRSSFile); len(window(anon, from)) >= 3 && len(file) > 0 {
			t.Anon, t.File = leastSquares(window(anon, from)), leastSquares(window(file, from))
			t.AnonStart, t.AnonEnd, t.FileEnd = anon[0].v, anon[len(anon)-1].v, file[len(file)-1].v
			mem = append(mem, judged{"anonymous RSS", t.Anon, cfg.Memory})
		} else {
			mem = append(mem, judged{"RSS", t.RSS, cfg.Memory})
		}
		t.DataBytes = dirSize(nd.dataDir())
		for _, c := range mem {
			if bad, why := c.lim.leaks(c.f); bad {
				r.Problems = append(r.Problems, fmt.Sprintf("%s: %s %s", nd.id, c.what, why))
			}
		}
		r.Nodes = append(r.Nodes, t)
	}
	r.judgeLoad(cfg)
}

// judged is one series the verdict checks.
type judged struct {
	what string
	f    fit
	lim  trendLimit
}

// dirSize is the total size of the files under dir (0 when unreadable).
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func byV(a, b point) int {
	switch {
	case a.v < b.v:
		return -1
	case a.v > b.v:
		return 1
	}
	return 0
}

// judgeLoad fails the soak on any client error (a soak injects no faults,
// so there is no transient class to excuse), on a bench segment that did
// not complete, and when nothing was purged although tokens expired.
func (r *SoakResult) judgeLoad(cfg SoakConfig) {
	if r.Bench.Errors > 0 {
		why := ""
		if r.TermEnd > r.TermStart {
			why = fmt.Sprintf(" (the Raft term went from %.0f to %.0f: leaders stepped down unprompted)", r.TermStart, r.TermEnd)
		}
		r.Problems = append(r.Problems, fmt.Sprintf("tokend-bench saw %d errors: %s%s", r.Bench.Errors, fmtCounts(r.Bench.ErrorsBy), why))
	}
	r.Problems = append(r.Problems, r.Bench.Failed...)
	if r.Bench.Requests == 0 {
		r.Problems = append(r.Problems, "no request completed")
	}
	if r.Elapsed > cfg.AccessTTL+3*cfg.PurgeInterval {
		var most float64
		for _, t := range r.Nodes {
			most = max(most, t.Purged)
		}
		if most == 0 && len(r.Nodes) > 0 {
			r.Problems = append(r.Problems, "no expired token was purged")
		}
	}
}

func fmtCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

const mib = 1 << 20

// Summary is the report: a headline, then one line per node.
func (r SoakResult) Summary() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "soak %s: %s of tokend-bench mixed on 3 nodes, %d requests (%.0f/s) in %d segments, %d errors%s; trends fitted from %s on\n",
		verdict, r.Elapsed.Round(time.Second), r.Bench.Requests, float64(r.Bench.Requests)/max(r.Elapsed.Seconds(), 1),
		r.Bench.Segments, r.Bench.Errors, errSuffix(r.Bench.ErrorsBy), r.SteadyFrom)
	for _, t := range r.Nodes {
		fmt.Fprintf(&b, "  %s: RSS %.1f -> %.1f MiB, slope %+.1f MiB/h (%+.2f MiB over the window)", t.ID, t.RSSStart/mib, t.RSSEnd/mib, t.RSS.PerHour()/mib, t.RSS.Growth()/mib)
		if t.Anon.N > 0 {
			fmt.Fprintf(&b, "; anonymous %.1f -> %.1f MiB, slope %+.1f MiB/h (%+.2f MiB); file-backed %.1f MiB at the end, slope %+.1f MiB/h",
				t.AnonStart/mib, t.AnonEnd/mib, t.Anon.PerHour()/mib, t.Anon.Growth()/mib, t.FileEnd/mib, t.File.PerHour()/mib)
		}
		fmt.Fprintf(&b, "\n      heap in use mean %.1f MiB, slope %+.1f MiB/h (%+.2f MiB); goroutines %.0f -> %.0f, slope %+.1f/h; live tokens %.0f..%.0f (end %.0f); purged %.0f; data dir %.1f MiB\n",
			t.Heap.Mean/mib, t.Heap.PerHour()/mib, t.Heap.Growth()/mib, t.GoroutinesStart, t.GoroutinesEnd, t.Goroutines.PerHour(),
			t.LiveMin, t.LiveMax, t.LiveEnd, t.Purged, float64(t.DataBytes)/mib)
	}
	if r.TermEnd > r.TermStart {
		fmt.Fprintf(&b, "  Raft term %.0f -> %.0f: leader elections without a fault\n", r.TermStart, r.TermEnd)
	}
	if r.ScrapeFailures > 0 {
		fmt.Fprintf(&b, "  /metrics scrapes that failed: %d\n", r.ScrapeFailures)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  problem: %s\n", p)
	}
	if r.Dir != "" {
		fmt.Fprintf(&b, "  node logs, data and bench reports: %s\n", r.Dir)
	}
	return b.String()
}

func errSuffix(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	return " (" + fmtCounts(m) + ")"
}
