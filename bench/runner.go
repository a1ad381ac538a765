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
	r := newLoadRun(ctx, spec, sc)
	workersDone := r.startWorkers()
	c := &collector{
		r: r, out: &runOutput{Total: newInterval()}, onProgress: onProgress,
		lastTick: r.measureStart, lastProgress: r.start,
	}
	c.untilDone(workersDone)
	now := time.Now()
	c.collect(now, false)
	out := c.out
	if now.After(r.measureStart) {
		out.Elapsed = now.Sub(r.measureStart)
	}
	out.Cancelled = ctx.Err() != nil
	out.Stopped = r.stopReason()
	return out
}

// loadRun is the state that runLoad's workers share.
type loadRun struct {
	ctx  context.Context
	spec loadSpec
	sc   Scenario
	rec  *recorder

	start        time.Time // the run (warmup included) begins
	measureStart time.Time // the measured phase begins
	end          time.Time // no request starts (or is scheduled) from here on

	claimed  atomic.Int64 // measured requests claimed
	seq      atomic.Int64 // open loop: index of the next request in the schedule
	nsPerReq float64      // open loop: the schedule's spacing
	stopOnce sync.Once
	stopCh   chan struct{}
	stopWhy  string
}

func newLoadRun(ctx context.Context, spec loadSpec, sc Scenario) *loadRun {
	rec := newRecorder(min(spec.Concurrency, 4*runtime.GOMAXPROCS(0), 64))
	start := time.Now()
	measureStart := start.Add(spec.Warmup)
	return &loadRun{
		ctx: ctx, spec: spec, sc: sc, rec: rec,
		start: start, measureStart: measureStart, end: measureStart.Add(spec.Duration),
		nsPerReq: float64(time.Second) / max(spec.Rate, 1e-9),
		stopCh:   make(chan struct{}),
	}
}

// startWorkers starts spec.Concurrency workers, open loop when a rate is
// set and closed loop otherwise; the channel is closed when all are done.
func (r *loadRun) startWorkers() <-chan struct{} {
	var wg sync.WaitGroup
	for i := 0; i < r.spec.Concurrency; i++ {
		w := newWorker(i, r.spec.Seed)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.close()
			if r.spec.Rate > 0 {
				r.openLoop(w)
			} else {
				r.closedLoop(w)
			}
		}()
	}
	workersDone := make(chan struct{})
	go func() { wg.Wait(); close(workersDone) }()
	return workersDone
}

// stop ends the run for why; the first reason given is kept.
func (r *loadRun) stop(why string) {
	r.stopOnce.Do(func() { r.stopWhy = why; close(r.stopCh) })
}

func (r *loadRun) stopped() bool {
	select {
	case <-r.stopCh:
		return true
	default:
		return r.ctx.Err() != nil
	}
}

// stopReason is why the run was stopped, or "" if it was not.
func (r *loadRun) stopReason() string {
	select {
	case <-r.stopCh:
		return r.stopWhy
	default:
		return ""
	}
}

// claim reserves one measured request under the bound.
func (r *loadRun) claim() bool {
	if r.claimed.Add(1) > r.spec.MaxRequests {
		r.stop("request bound (--requests) reached")
		return false
	}
	return true
}

// finish records one request's outcome; false means the worker stops.
func (r *loadRun) finish(w *worker, o outcome, lat time.Duration, measured bool) bool {
	if r.ctx.Err() != nil {
		return false
	}
	if o.stop {
		r.stop("the pre-issued token pool is used up (each revoke consumes one token; raise --tokens)")
		return false
	}
	r.rec.record(w.id, o, lat, measured)
	return true
}

// closedLoop sends one request after another, each as soon as the last
// one finished.
func (r *loadRun) closedLoop(w *worker) {
	for !r.stopped() {
		t0 := time.Now()
		if !t0.Before(r.end) {
			return
		}
		measured := !t0.Before(r.measureStart)
		if measured && !r.claim() {
			return
		}
		o := r.sc.Do(r.ctx, w)
		if !r.finish(w, o, time.Since(t0), measured) {
			return
		}
	}
}

// openLoop sends the requests of a fixed schedule (spec.Rate per second,
// shared by all workers), each at its intended time or as soon after as
// the worker is free.
func (r *loadRun) openLoop(w *worker) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for !r.stopped() {
		i := r.seq.Add(1) - 1
		intended := r.start.Add(time.Duration(float64(i) * r.nsPerReq))
		if !intended.Before(r.end) {
			return
		}
		measured := !intended.Before(r.measureStart)
		if measured && !r.claim() {
			return
		}
		if d := time.Until(intended); d > 0 {
			timer.Reset(d)
			select { // a claimed request is sent even if the run is stopping
			case <-timer.C:
			case <-r.ctx.Done():
				return
			}
		}
		o := r.sc.Do(r.ctx, w)
		// Latency from the intended send time: no coordinated omission.
		if !r.finish(w, o, time.Since(intended), measured) {
			return
		}
	}
}

// collector drains the recorder every interval into the timeline, the
// total and the progress line.
type collector struct {
	r          *loadRun
	out        *runOutput
	onProgress func(progress)

	lastTick     time.Time // end of the last timeline point
	lastDone     int64     // requests done at the last progress report
	lastProgress time.Time // time of the last progress report
}

// untilDone collects every spec.Interval until the workers are done.
func (c *collector) untilDone(workersDone <-chan struct{}) {
	tick := time.NewTicker(c.r.spec.Interval)
	defer tick.Stop()
	// The first measured interval starts exactly at measureStart.
	warm := time.NewTimer(time.Until(c.r.measureStart))
	defer warm.Stop()
	measuring := false
	for running := true; running; {
		select {
		case now := <-warm.C:
			measuring = true
			c.collect(now, true)
			tick.Reset(c.r.spec.Interval)
		case now := <-tick.C:
			c.collect(now, !measuring)
		case <-workersDone:
			running = false
		}
	}
}

// collect drains the recorder at now. edge is true at the start of the
// measured phase (and for ticks before it).
func (c *collector) collect(now time.Time, edge bool) {
	iv := c.r.rec.drain()
	if edge { // the measured phase begins: nothing to plot yet
		c.lastTick = now
	} else if now.After(c.r.measureStart) {
		c.addPoint(now, iv)
		c.lastTick = now
	}
	c.out.Total.merge(iv)
	if c.onProgress != nil {
		c.report(now)
	}
}

// addPoint adds the interval from lastTick to now to the timeline.
func (c *collector) addPoint(now time.Time, iv *interval) {
	measureStart := c.r.measureStart
	secs := now.Sub(c.lastTick).Seconds()
	all := iv.all()
	if n := len(c.out.Timeline); n > 0 && secs < c.r.spec.Interval.Seconds()/2 {
		// A short final sliver (stragglers after the last tick) is
		// folded into the previous point rather than plotted as a spike.
		p := &c.out.Timeline[n-1]
		p.Seconds = round3(p.Seconds + secs)
		p.T = round3(now.Sub(measureStart).Seconds())
		p.Requests += all.TotalCount()
		p.Errors += iv.errorCount()
		p.Throughput = round3(float64(p.Requests) / p.Seconds)
		p.Max = max(p.Max, all.Max())
	} else if secs > 0 {
		c.out.Timeline = append(c.out.Timeline, TimelinePoint{
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
}

// report calls onProgress with the state at now.
func (c *collector) report(now time.Time) {
	r := c.r
	done := r.rec.done.Load()
	secs := now.Sub(c.lastProgress).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(done-c.lastDone) / secs
	}
	c.lastDone, c.lastProgress = done, now
	c.onProgress(progress{
		Elapsed: now.Sub(r.start), Total: r.spec.Warmup + r.spec.Duration,
		Warmup: now.Before(r.measureStart), Requests: done,
		Errors: r.rec.failed.Load(), Rate: rate,
	})
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }
