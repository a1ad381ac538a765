package chaos

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseMetrics(t *testing.T) {
	body := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 16
go_memstats_heap_inuse_bytes 2.2454272e+07
tokend_http_requests_total{code="200"} 5
process_resident_memory_bytes 6.1554688e+07
tokend_live_tokens 0
`
	m, err := parseMetrics([]byte(body), sampledMetrics)
	if err != nil {
		t.Fatal(err)
	}
	if m[mGoroutines] != 16 || m[mHeapInuse] != 22454272 || m[mRSS] != 61554688 || m[mLiveTokens] != 0 {
		t.Fatalf("parsed %v", m)
	}
	if _, ok := m[mPurged]; ok {
		t.Fatalf("a metric that is not there was parsed: %v", m)
	}
	if _, err := parseMetrics([]byte("go_goroutines many\n"), sampledMetrics); err == nil {
		t.Fatal("a value that is not a number was accepted")
	}
}

// fakeSampler holds a synthetic hour for one node: flat memory, or memory
// growing by leak bytes per hour. With proc, the RSS is split into an
// anonymous part (which leaks) and a file-backed part growing by file
// bytes per hour (the Raft log's memory map, the executable's pages).
func fakeSampler(leak, file, purged float64, proc bool) (*sampler, []*node) {
	growing := 0.0
	if purged < 0 { // purges that keep up with only part of the expiries
		growing, purged = 5, 1e5
	}
	nd := &node{id: "node1"}
	s := &sampler{c: &cluster{nodes: []*node{nd}}, byNode: map[string]series{"node1": {}}}
	const MiB = 1 << 20
	anon := rssLike(11, time.Hour, 20*MiB, 3*MiB, 1*MiB, 0, leak)
	heap := rssLike(12, time.Hour, 10*MiB, 3*MiB, 0.5*MiB, 0, leak)
	for i, p := range anon {
		ser := s.byNode["node1"]
		f := 20*MiB + file*p.t/3600
		ser[mRSS] = append(ser[mRSS], point{p.t, p.v + f})
		if proc {
			ser[mRSSAnon] = append(ser[mRSSAnon], p)
			ser[mRSSFile] = append(ser[mRSSFile], point{p.t, f})
		}
		ser[mHeapInuse] = append(ser[mHeapInuse], heap[i])
		ser[mGoroutines] = append(ser[mGoroutines], point{p.t, 40})
		// A saw-tooth like a soak's: each segment seeds 2 000 tokens at
		// once, purges remove them again.
		ser[mLiveTokens] = append(ser[mLiveTokens], point{p.t, 2800 + 2000*math.Mod(-p.t, 60)/60 + growing*p.t})
		ser[mPurged] = append(ser[mPurged], point{p.t, purged * p.t / 3600})
		term := 2.0
		if p.t > 1800 {
			term = 3 // one election half-way
		}
		ser[mTerm] = append(ser[mTerm], point{p.t, term})
	}
	return s, []*node{nd}
}

func TestSoakJudge(t *testing.T) {
	cfg := DefaultSoakConfig(time.Hour)
	ok := benchTotals{Segments: 60, Requests: 1_000_000}
	cases := []struct {
		name       string
		leak, file float64
		purged     float64
		proc       bool
		bench      benchTotals
		want       string // a problem that must be reported; "" for a pass
	}{
		{"flat, purged, no errors", 0, 0, 1e5, true, ok, ""},
		{"flat without /proc", 0, 0, 1e5, false, ok, ""},
		{"leaking", 64 << 20, 0, 1e5, true, ok, "anonymous RSS grew"},
		{"leaking without /proc", 64 << 20, 0, 1e5, false, ok, "node1: RSS grew"},
		{"file-backed pages paged in", 0, 32 << 20, 1e5, true, ok, ""},
		{"file-backed growth without /proc", 0, 32 << 20, 1e5, false, ok, "node1: RSS grew"},
		{"errors", 0, 0, 1e5, true, benchTotals{Segments: 60, Requests: 1_000_000, Errors: 3, ErrorsBy: map[string]int64{"500": 3}}, "3 errors: 500=3 (the Raft term went from 2 to 3"},
		{"nothing purged", 0, 0, 0, true, ok, "no expired token was purged"},
		{"live tokens growing", 0, 0, -1, true, ok, "live tokens grew"},
		{"a segment failed", 0, 0, 1e5, true, benchTotals{Segments: 60, Requests: 1_000_000, Failed: []string{"segment 7: exit status 1"}}, "segment 7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			smp, nodes := fakeSampler(c.leak, c.file, c.purged, c.proc)
			res := SoakResult{Bench: c.bench, Elapsed: time.Hour}
			res.judge(cfg, smp, nodes)
			sum := res.Summary()
			if c.want == "" {
				if !res.OK() {
					t.Fatalf("failed: %v\n%s", res.Problems, sum)
				}
				if !strings.HasPrefix(sum, "soak PASS") || !strings.Contains(sum, "node1: RSS") {
					t.Fatalf("summary:\n%s", sum)
				}
				return
			}
			if res.OK() || !strings.Contains(strings.Join(res.Problems, "\n"), c.want) {
				t.Fatalf("problems %q, want one saying %q", res.Problems, c.want)
			}
			if !strings.HasPrefix(sum, "soak FAIL") {
				t.Fatalf("summary:\n%s", sum)
			}
		})
	}
}

func TestParseProcStatus(t *testing.T) {
	b := []byte("Name:\ttokend\nVmRSS:\t   38364 kB\nRssAnon:\t   15312 kB\nRssFile:\t   23052 kB\nRssShmem:\t       0 kB\n")
	anon, file, err := parseProcStatus(b)
	if err != nil || anon != 15312*1024 || file != 23052*1024 {
		t.Fatalf("anon %v file %v err %v", anon, file, err)
	}
	if _, _, err := parseProcStatus([]byte("VmRSS:\t 1 kB\n")); err == nil {
		t.Fatal("a status without RssAnon was accepted")
	}
}

func TestSoakTooShort(t *testing.T) {
	cfg := DefaultSoakConfig(2 * time.Minute)
	cfg.Tokend, cfg.Bench = "tokend", "tokend-bench"
	if _, err := Soak(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Fatalf("a 2-minute soak: %v, want too short", err)
	}
}
