package bench

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestSummaryPercentiles(t *testing.T) {
	h := newHist()
	for v := 1; v <= 10000; v++ {
		recordLatency(h, time.Duration(v)*time.Microsecond)
	}
	s := summarize(h)
	within := func(name string, got, want int64) {
		if math.Abs(float64(got-want)) > float64(want)*0.001+1 {
			t.Errorf("%s = %d, want %d (±0.1%%)", name, got, want)
		}
	}
	if s.Count != 10000 {
		t.Fatalf("count %d", s.Count)
	}
	within("min", s.Min, 1)
	within("p50", s.P50, 5000)
	within("p90", s.P90, 9000)
	within("p99", s.P99, 9900)
	within("p99.9", s.P999, 9990)
	within("max", s.Max, 10000)
	if math.Abs(s.Mean-5000.5) > 5 {
		t.Errorf("mean %v", s.Mean)
	}
	if (summarize(newHist()) != LatencySummary{}) {
		t.Errorf("empty histogram should summarize to zeros")
	}
}

func TestRecordLatencyClamps(t *testing.T) {
	h := newHist()
	recordLatency(h, 0)
	recordLatency(h, 10*time.Minute)
	if h.TotalCount() != 2 {
		t.Fatalf("out-of-range values dropped: %d", h.TotalCount())
	}
	if h.Max() < histHighest {
		t.Fatalf("max %d, want the clamp at %d", h.Max(), histHighest)
	}
}

func TestPercentileCurve(t *testing.T) {
	h := newHist()
	for v := 1; v <= 100000; v++ {
		recordLatency(h, time.Duration(v)*time.Microsecond)
	}
	c := percentileCurve(h)
	if c[0].Percentile != 0 || c[len(c)-1].Percentile != 100 || c[len(c)-1].LatencyUS != h.Max() {
		t.Fatalf("curve ends: %v ... %v", c[0], c[len(c)-1])
	}
	for i := 1; i < len(c); i++ {
		if c[i].Percentile <= c[i-1].Percentile || c[i].LatencyUS < c[i-1].LatencyUS {
			t.Fatalf("curve not monotonic at %d: %v %v", i, c[i-1], c[i])
		}
	}
	// 100k samples resolve the tail to 99.999 %.
	if p := c[len(c)-2].Percentile; p < 99.99 || p > 99.9991 {
		t.Fatalf("deepest resolved percentile %v", p)
	}
	if percentileCurve(newHist()) != nil {
		t.Fatal("empty histogram has a curve")
	}
}

func TestRecorderShardsMergeAndDrain(t *testing.T) {
	rec := newRecorder(4)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				o := outcome{kind: "a"}
				if i%100 == 0 {
					o.class = "503"
				}
				if i%2 == 0 {
					o.kind = "b"
				}
				rec.record(w, o, time.Duration(i)*time.Microsecond, i >= 10) // first 10: warmup
			}
		}()
	}
	wg.Wait()
	iv := rec.drain()
	if got := iv.count(); got != 16*990 {
		t.Fatalf("measured count %d, want %d", got, 16*990)
	}
	if iv.kinds["a"].TotalCount() != 16*495 || iv.kinds["b"].TotalCount() != 16*495 {
		t.Fatalf("per-kind counts %d %d", iv.kinds["a"].TotalCount(), iv.kinds["b"].TotalCount())
	}
	if iv.errs["503"] != 16*9 || iv.kindErrs["b"] != 16*9 { // i = 100..900, all even
		t.Fatalf("errors %v", iv.errs)
	}
	if rec.done.Load() != 16000 || rec.failed.Load() != 16*10 {
		t.Fatalf("progress counters %d %d", rec.done.Load(), rec.failed.Load())
	}
	if again := rec.drain(); again.count() != 0 || len(again.errs) != 0 {
		t.Fatalf("drain did not reset: %d %v", again.count(), again.errs)
	}
	total := newInterval()
	total.merge(iv)
	total.merge(iv)
	if total.count() != 2*16*990 || total.errs["503"] != 2*16*9 {
		t.Fatalf("merge: %d %v", total.count(), total.errs)
	}
}
