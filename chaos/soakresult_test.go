package chaos

import (
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
// growing by leak bytes per hour.
func fakeSampler(leak float64, purged float64) (*sampler, []*node) {
	nd := &node{id: "node1"}
	s := &sampler{c: &cluster{nodes: []*node{nd}}, byNode: map[string]series{"node1": {}}}
	const MiB = 1 << 20
	rss := rssLike(11, time.Hour, 40*MiB, 3*MiB, 1*MiB, 0, leak)
	heap := rssLike(12, time.Hour, 10*MiB, 3*MiB, 0.5*MiB, 0, leak)
	for i, p := range rss {
		ser := s.byNode["node1"]
		ser[mRSS] = append(ser[mRSS], p)
		ser[mHeapInuse] = append(ser[mHeapInuse], heap[i])
		ser[mGoroutines] = append(ser[mGoroutines], point{p.t, 40})
		ser[mLiveTokens] = append(ser[mLiveTokens], point{p.t, 5000})
		ser[mPurged] = append(ser[mPurged], point{p.t, purged * p.t / 3600})
	}
	return s, []*node{nd}
}

func TestSoakJudge(t *testing.T) {
	cfg := DefaultSoakConfig(time.Hour)
	ok := benchTotals{Segments: 60, Requests: 1_000_000}
	cases := []struct {
		name   string
		leak   float64
		purged float64
		bench  benchTotals
		want   string // a problem that must be reported; "" for a pass
	}{
		{"flat, purged, no errors", 0, 1e5, ok, ""},
		{"leaking", 64 << 20, 1e5, ok, "RSS grows"},
		{"errors", 0, 1e5, benchTotals{Segments: 60, Requests: 1_000_000, Errors: 3, ErrorsBy: map[string]int64{"500": 3}}, "3 errors: 500=3"},
		{"nothing purged", 0, 0, ok, "no expired token was purged"},
		{"a segment failed", 0, 1e5, benchTotals{Segments: 60, Requests: 1_000_000, Failed: []string{"segment 7: exit status 1"}}, "segment 7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			smp, nodes := fakeSampler(c.leak, c.purged)
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
