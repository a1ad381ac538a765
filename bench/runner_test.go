package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func sleepScenario(d time.Duration, calls *atomic.Int64) Scenario {
	return Scenario{Name: "sleep", Do: func(ctx context.Context, w *worker) outcome {
		calls.Add(1)
		time.Sleep(d)
		return outcome{kind: "sleep"}
	}}
}

func TestClosedLoopRespectsDurationAndWarmup(t *testing.T) {
	var calls atomic.Int64
	spec := loadSpec{Concurrency: 4, Duration: 400 * time.Millisecond, Warmup: 200 * time.Millisecond,
		MaxRequests: 1 << 40, Interval: 100 * time.Millisecond}
	var progressCalls atomic.Int64
	out := runLoad(context.Background(), spec, sleepScenario(2*time.Millisecond, &calls), func(progress) { progressCalls.Add(1) })
	n := out.Total.count()
	if n == 0 || n >= calls.Load() {
		t.Fatalf("measured %d of %d calls: warmup must be excluded", n, calls.Load())
	}
	if out.Elapsed < 400*time.Millisecond || out.Elapsed > 1200*time.Millisecond {
		t.Fatalf("elapsed %v", out.Elapsed)
	}
	if len(out.Timeline) < 3 || len(out.Timeline) > 6 {
		t.Fatalf("timeline has %d points for 400ms at 100ms intervals: %+v", len(out.Timeline), out.Timeline)
	}
	var sum int64
	for _, p := range out.Timeline {
		sum += p.Requests
		if p.Throughput <= 0 {
			t.Fatalf("empty interval %+v", p)
		}
	}
	if sum != n {
		t.Fatalf("timeline sums to %d, total %d", sum, n)
	}
	if progressCalls.Load() < 4 {
		t.Fatalf("progress called %d times", progressCalls.Load())
	}
}

func TestRequestBound(t *testing.T) {
	var calls atomic.Int64
	spec := loadSpec{Concurrency: 8, Duration: 10 * time.Second, MaxRequests: 100, Interval: time.Second}
	out := runLoad(context.Background(), spec, sleepScenario(time.Millisecond, &calls), nil)
	if out.Total.count() != 100 {
		t.Fatalf("recorded %d, want exactly 100", out.Total.count())
	}
	if out.Stopped == "" || out.Elapsed >= spec.Duration {
		t.Fatalf("request bound did not end the run before its duration (%v, %q)", out.Elapsed, out.Stopped)
	}
}

func TestOpenLoopRequestBoundAndRate(t *testing.T) {
	var calls atomic.Int64
	spec := loadSpec{Concurrency: 4, Rate: 500, Duration: 10 * time.Second, MaxRequests: 200, Interval: time.Second}
	out := runLoad(context.Background(), spec, sleepScenario(0, &calls), nil)
	if out.Total.count() != 200 {
		t.Fatalf("recorded %d", out.Total.count())
	}
	// 200 requests at 500/s take at least 0.4 s when paced (a busy
	// machine can only make it slower, so only the lower bound is checked).
	if out.Elapsed < 350*time.Millisecond {
		t.Fatalf("open loop did not pace: %v", out.Elapsed)
	}
}

func TestScenarioStop(t *testing.T) {
	var left atomic.Int64
	left.Store(50)
	sc := Scenario{Name: "finite", Do: func(ctx context.Context, w *worker) outcome {
		if left.Add(-1) < 0 {
			return outcome{kind: "x", stop: true}
		}
		return outcome{kind: "x"}
	}}
	out := runLoad(context.Background(), loadSpec{Concurrency: 4, Duration: 10 * time.Second, MaxRequests: 1 << 40, Interval: time.Second}, sc, nil)
	if out.Total.count() != 50 || out.Stopped == "" {
		t.Fatalf("count %d stopped %q", out.Total.count(), out.Stopped)
	}
}

func TestCancelEndsRun(t *testing.T) {
	var calls atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel)
	spec := loadSpec{Concurrency: 2, Duration: time.Minute, MaxRequests: 1 << 40, Interval: time.Second}
	out := runLoad(ctx, spec, sleepScenario(time.Millisecond, &calls), nil)
	if !out.Cancelled || out.Elapsed >= spec.Duration {
		t.Fatalf("cancel did not end the run before its duration: %v, cancelled=%v", out.Elapsed, out.Cancelled)
	}
}

// stallScenario answers in 1 ms, except that the first measured call
// stalls for stall. Only one request is in flight at a time.
func stallScenario(stall time.Duration) Scenario {
	var once sync.Once
	return Scenario{Name: "stall", Do: func(ctx context.Context, w *worker) outcome {
		d := time.Millisecond
		once.Do(func() { d = stall })
		time.Sleep(d)
		return outcome{kind: "stall"}
	}}
}

// TestOpenLoopAvoidsCoordinatedOmission: with one worker and a 300 ms
// stall, a closed loop records a single slow request; the open loop at
// 200/s records every request that was due during the stall as late, so
// its p90 shows the stall.
func TestOpenLoopAvoidsCoordinatedOmission(t *testing.T) {
	base := loadSpec{Concurrency: 1, Duration: 700 * time.Millisecond, MaxRequests: 1 << 40, Interval: time.Second}

	closed := runLoad(context.Background(), base, stallScenario(300*time.Millisecond), nil)
	ch := closed.Total.all()
	if ch.Max() < 300_000 {
		t.Fatalf("closed loop max %dµs, the stall was not recorded", ch.Max())
	}
	if p := ch.ValueAtPercentile(90); p > 50_000 {
		t.Fatalf("closed loop p90 %dµs: expected the stall to be hidden (one sample)", p)
	}

	open := base
	open.Rate = 200
	oo := runLoad(context.Background(), open, stallScenario(300*time.Millisecond), nil)
	oh := oo.Total.all()
	// ~60 requests were due during the stall, out of ~140 in total.
	if oh.TotalCount() < 100 {
		t.Fatalf("open loop sent only %d requests", oh.TotalCount())
	}
	if p := oh.ValueAtPercentile(75); p < 50_000 {
		t.Fatalf("open loop p75 %dµs: requests queued behind the stall were not charged for it", p)
	}
}
