package bench

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// loadSpec is the shape of the load, independent of what each request does.
type loadSpec struct {
	Concurrency int
	Rate        float64 // > 0: open loop
	Duration    time.Duration
	Warmup      time.Duration
	MaxRequests int64
	Interval    time.Duration
	Seed        uint64
}

// TimelinePoint is one interval of the measured phase.
type TimelinePoint struct {
	T          float64 `json:"t_s"`        // end of the interval, seconds since the measured phase began
	Seconds    float64 `json:"duration_s"` // interval length
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	Throughput float64 `json:"throughput_rps"`
	P50        int64   `json:"p50_us"`
	P99        int64   `json:"p99_us"`
	Max        int64   `json:"max_us"`
}

// progress is a live view for the progress line.
type progress struct {
	Elapsed  time.Duration // since the run (warmup included) began
	Total    time.Duration // warmup + duration
	Warmup   bool
	Requests int64 // completed, warmup included
	Errors   int64
	Rate     float64 // requests/s over the last interval
}

// runOutput is the raw result of runLoad.
type runOutput struct {
	Total     *interval
	Timeline  []TimelinePoint
	Elapsed   time.Duration // measured phase, until the last request finished
	Stopped   string        // why the run ended before --duration, if it did
	Cancelled bool
}

// runLoad applies spec's load with sc until the duration ends, the request
// bound is reached, the scenario says stop, or ctx is cancelled. Requests
// in flight when the run ends are allowed to finish (bounded by the client
// timeout); their results are kept. Requests cut short by ctx cancellation
// are dropped.
func runLoad(ctx context.Context, spec loadSpec, sc Scenario, onProgress func(progress)) *runOutput {
	rec := newRecorder(min(spec.Concurrency, 4*runtime.GOMAXPROCS(0), 64))
	start := time.Now()
	measureStart := start.Add(spec.Warmup)
	end := measureStart.Add(spec.Duration)

	var (
		claimed  atomic.Int64 // measured requests claimed
		stopOnce sync.Once
		stopCh   = make(chan struct{})
		stopWhy  string
	)
	stop := func(why string) {
		stopOnce.Do(func() { stopWhy = why; close(stopCh) })
	}
	stopped := func() bool {
		select {
		case <-stopCh:
			return true
		default:
			return ctx.Err() != nil
		}
	}
	// claim reserves one measured request under the bound.
	claim := func() bool {
		if claimed.Add(1) > spec.MaxRequests {
			stop("request bound (--requests) reached")
			return false
		}
		return true
	}
	finish := func(w *worker, o outcome, lat time.Duration, measured bool) bool {
		if ctx.Err() != nil {
			return false
		}
		if o.stop {
			stop("the pre-issued token pool is used up (each revoke consumes one token; raise --tokens)")
			return false
		}
		rec.record(w.id, o, lat, measured)
		return true
	}

	closed := func(w *worker) {
		for !stopped() {
			t0 := time.Now()
			if !t0.Before(end) {
				return
			}
			measured := !t0.Before(measureStart)
			if measured && !claim() {
				return
			}
			o := sc.Do(ctx, w)
			if !finish(w, o, time.Since(t0), measured) {
				return
			}
		}
	}

	var seq atomic.Int64
	nsPerReq := float64(time.Second) / max(spec.Rate, 1e-9)
	open := func(w *worker) {
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for !stopped() {
			i := seq.Add(1) - 1
			intended := start.Add(time.Duration(float64(i) * nsPerReq))
			if !intended.Before(end) {
				return
			}
			measured := !intended.Before(measureStart)
			if measured && !claim() {
				return
			}
			if d := time.Until(intended); d > 0 {
				timer.Reset(d)
				select { // a claimed request is sent even if the run is stopping
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			o := sc.Do(ctx, w)
			// Latency from the intended send time: no coordinated omission.
			if !finish(w, o, time.Since(intended), measured) {
				return
			}
		}
	}

	var wg sync.WaitGroup
	for i := 0; i < spec.Concurrency; i++ {
		w := newWorker(i, spec.Seed)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if spec.Rate > 0 {
				open(w)
			} else {
				closed(w)
			}
		}()
	}
	workersDone := make(chan struct{})
	go func() { wg.Wait(); close(workersDone) }()

	out := &runOutput{Total: newInterval()}
	lastTick := measureStart
	var lastDone int64
	lastProgress := start
	collect := func(now time.Time, edge bool) {
		iv := rec.drain()
		if edge { // the measured phase begins: nothing to plot yet
			lastTick = now
		} else if now.After(measureStart) {
			secs := now.Sub(lastTick).Seconds()
			all := iv.all()
			if n := len(out.Timeline); n > 0 && secs < spec.Interval.Seconds()/2 {
				// A short final sliver (stragglers after the last tick) is
				// folded into the previous point rather than plotted as a spike.
				p := &out.Timeline[n-1]
				p.Seconds = round3(p.Seconds + secs)
				p.T = round3(now.Sub(measureStart).Seconds())
				p.Requests += all.TotalCount()
				p.Errors += iv.errorCount()
				p.Throughput = round3(float64(p.Requests) / p.Seconds)
				p.Max = max(p.Max, all.Max())
			} else if secs > 0 {
				out.Timeline = append(out.Timeline, TimelinePoint{
					T:          round3(now.Sub(measureStart).Seconds()),
					Seconds:    round3(secs),
					Requests:   all.TotalCount(),
					Errors:     iv.errorCount(),
					Throughput: round3(float64(all.TotalCount()) / secs),
					P50:        all.ValueAtPercentile(50),
					P99:        all.ValueAtPercentile(99),
					Max:        all.Max(),
				})
			}
			lastTick = now
		}
		out.Total.merge(iv)
		if onProgress != nil {
			done := rec.done.Load()
			secs := now.Sub(lastProgress).Seconds()
			rate := 0.0
			if secs > 0 {
				rate = float64(done-lastDone) / secs
			}
			lastDone, lastProgress = done, now
			onProgress(progress{
				Elapsed: now.Sub(start), Total: spec.Warmup + spec.Duration,
				Warmup: now.Before(measureStart), Requests: done,
				Errors: rec.failed.Load(), Rate: rate,
			})
		}
	}

	tick := time.NewTicker(spec.Interval)
	defer tick.Stop()
	// The first measured interval starts exactly at measureStart.
	warm := time.NewTimer(time.Until(measureStart))
	defer warm.Stop()
	measuring := false
	for running := true; running; {
		select {
		case now := <-warm.C:
			measuring = true
			collect(now, true)
			tick.Reset(spec.Interval)
		case now := <-tick.C:
			collect(now, !measuring)
		case <-workersDone:
			running = false
		}
	}
	now := time.Now()
	collect(now, false)
	if now.After(measureStart) {
		out.Elapsed = now.Sub(measureStart)
	}
	out.Cancelled = ctx.Err() != nil
	select {
	case <-stopCh:
		out.Stopped = stopWhy
	default:
	}
	return out
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }
