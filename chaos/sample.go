package chaos

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The /metrics series a soak samples (Prometheus text exposition; names as
// a live node serves them).
const (
	mRSS        = "process_resident_memory_bytes"
	mHeapInuse  = "go_memstats_heap_inuse_bytes"
	mGoroutines = "go_goroutines"
	mLiveTokens = "tokend_live_tokens"
	mPurged     = "tokend_purged_tokens_total"
	mTerm       = "tokend_raft_term"
	// Not in /metrics: the two parts of the RSS, from /proc (procRSS).
	mRSSAnon = "rss_anon_bytes"
	mRSSFile = "rss_file_bytes"
)

var sampledMetrics = []string{mRSS, mHeapInuse, mGoroutines, mLiveTokens, mPurged, mTerm}

// parseMetrics picks the unlabelled samples named in want out of a
// Prometheus text exposition; the others are ignored.
func parseMetrics(body []byte, want []string) (map[string]float64, error) {
	out := make(map[string]float64, len(want))
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		for _, w := range want {
			if name == w {
				v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
				if err != nil {
					return nil, fmt.Errorf("metric %s: %w", name, err)
				}
				out[name] = v
			}
		}
	}
	return out, sc.Err()
}

// series is what the sampler recorded for one node: per metric, the
// samples over time.
type series map[string][]point

// sampler scrapes every node's /metrics at a fixed interval.
type sampler struct {
	c  *cluster
	t0 time.Time

	mu     sync.Mutex
	byNode map[string]series
	errs   int // scrapes that failed (a busy node may miss the 2 s timeout)
}

func newSampler(c *cluster, t0 time.Time) *sampler {
	s := &sampler{c: c, t0: t0, byNode: map[string]series{}}
	for _, nd := range c.nodes {
		s.byNode[nd.id] = series{}
	}
	return s
}

// run samples every interval until ctx ends.
func (s *sampler) run(ctx context.Context, interval time.Duration) {
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		s.sampleAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}

func (s *sampler) sampleAll(ctx context.Context) {
	for _, nd := range s.c.nodes {
		code, body, err := s.c.get(ctx, nd, "/metrics", false)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("/metrics %d", code)
		}
		var m map[string]float64
		if err == nil {
			m, err = parseMetrics(body, sampledMetrics)
		}
		if pid, ok := nd.pid(); ok && err == nil {
			if anon, file, perr := procRSS(pid); perr == nil {
				m[mRSSAnon], m[mRSSFile] = anon, file
			}
		}
		t := time.Since(s.t0).Seconds()
		s.mu.Lock()
		if err != nil {
			if ctx.Err() == nil {
				s.errs++
			}
		} else {
			for k, v := range m {
				s.byNode[nd.id][k] = append(s.byNode[nd.id][k], point{t, v})
			}
		}
		s.mu.Unlock()
	}
}

// pid is the node's process id while it runs.
func (n *node) pid() (int, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil || isClosed(n.exited) {
		return 0, false
	}
	return n.cmd.Process.Pid, true
}

// dataDir is the node's --data-dir.
func (n *node) dataDir() string {
	for i, a := range n.args {
		if a == "--data-dir" && i+1 < len(n.args) {
			return n.args[i+1]
		}
	}
	return ""
}

// get returns a copy of node id's samples of metric name.
func (s *sampler) get(id, name string) []point {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]point(nil), s.byNode[id][name]...)
}

func (s *sampler) failures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errs
}

// latest is a progress note: each node's last RSS and live tokens.
func (s *sampler) latest() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for _, nd := range s.c.nodes {
		ser := s.byNode[nd.id]
		rss, live := ser[mRSS], ser[mLiveTokens]
		if len(rss) == 0 || len(live) == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s RSS %.1f MiB, %d live tokens", nd.id, rss[len(rss)-1].v/mib, int64(live[len(live)-1].v)))
	}
	return strings.Join(parts, "; ")
}

// writeCSV writes every sample as node,metric,seconds,value lines, for a
// later look at a run's shape (docs/RELIABILITY.md, Soak).
func (s *sampler) writeCSV(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	b.WriteString("node,metric,seconds,value\n")
	for _, nd := range s.c.nodes {
		for _, m := range append(sampledMetrics, mRSSAnon, mRSSFile) {
			for _, p := range s.byNode[nd.id][m] {
				fmt.Fprintf(&b, "%s,%s,%.1f,%g\n", nd.id, m, p.t, p.v)
			}
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// parseProcStatus reads RssAnon and RssFile out of a /proc/<pid>/status.
func parseProcStatus(b []byte) (anon, file float64, err error) {
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "RssAnon" && k != "RssFile") {
			continue
		}
		f := strings.Fields(v) // "15312 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("/proc status %s: %q", k, v)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc status %s: %w", k, err)
		}
		if k == "RssAnon" {
			anon = float64(n) * 1024
		} else {
			file = float64(n) * 1024
		}
		seen++
	}
	if seen != 2 {
		return 0, 0, fmt.Errorf("/proc status: RssAnon and RssFile not both found")
	}
	return anon, file, sc.Err()
}
