package bench

import (
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// interval is what was recorded between two drains: latency per operation
// kind, errors by class, and visibility counts.
type interval struct {
	kinds    map[string]*hdrhistogram.Histogram
	errs     map[string]int64 // by class
	kindErrs map[string]int64 // by operation kind
	checks   int64
	stale    int64
}

func newInterval() *interval {
	return &interval{kinds: map[string]*hdrhistogram.Histogram{}, errs: map[string]int64{}, kindErrs: map[string]int64{}}
}

// merge adds o into iv.
func (iv *interval) merge(o *interval) {
	for k, h := range o.kinds {
		dst := iv.kinds[k]
		mergeInto(&dst, h)
		iv.kinds[k] = dst
	}
	for k, n := range o.errs {
		iv.errs[k] += n
	}
	for k, n := range o.kindErrs {
		iv.kindErrs[k] += n
	}
	iv.checks += o.checks
	iv.stale += o.stale
}

// all merges every kind into one histogram.
func (iv *interval) all() *hdrhistogram.Histogram {
	h := newHist()
	for _, k := range iv.kinds {
		h.Merge(k)
	}
	return h
}

func (iv *interval) count() int64 {
	var n int64
	for _, h := range iv.kinds {
		n += h.TotalCount()
	}
	return n
}

func (iv *interval) errorCount() int64 {
	var n int64
	for _, c := range iv.errs {
		n += c
	}
	return n
}

// shard is one mutex-guarded slice of the recorder; a worker always uses
// the same shard, so the lock is nearly uncontended.
type shard struct {
	mu sync.Mutex
	iv *interval
	_  [40]byte // keep shards on separate cache lines
}

// recorder collects outcomes from all workers. Measured outcomes go to the
// shards and are drained once per interval; every outcome (warmup included)
// also bumps the atomic progress counters.
type recorder struct {
	shards []*shard
	done   atomic.Int64 // completed requests, warmup included
	failed atomic.Int64 // failed requests, warmup included
}

func newRecorder(nshards int) *recorder {
	if nshards < 1 {
		nshards = 1
	}
	r := &recorder{shards: make([]*shard, nshards)}
	for i := range r.shards {
		r.shards[i] = &shard{iv: newInterval()}
	}
	return r
}

func (r *recorder) record(worker int, o outcome, lat time.Duration, measured bool) {
	r.done.Add(1)
	if o.class != "" {
		r.failed.Add(1)
	}
	if !measured {
		return
	}
	s := r.shards[worker%len(r.shards)]
	s.mu.Lock()
	h := s.iv.kinds[o.kind]
	if h == nil {
		h = newHist()
		s.iv.kinds[o.kind] = h
	}
	recordLatency(h, lat)
	if o.class != "" {
		s.iv.errs[o.class]++
		s.iv.kindErrs[o.kind]++
	}
	s.iv.checks += int64(o.checks)
	s.iv.stale += int64(o.stale)
	s.mu.Unlock()
}

// drain returns everything recorded since the last drain and resets the
// shards. Shard histograms are reset in place so steady state allocates
// nothing.
func (r *recorder) drain() *interval {
	out := newInterval()
	for _, s := range r.shards {
		s.mu.Lock()
		for k, h := range s.iv.kinds {
			if h.TotalCount() == 0 {
				continue
			}
			dst := out.kinds[k]
			mergeInto(&dst, h)
			out.kinds[k] = dst
			h.Reset()
		}
		for k, n := range s.iv.errs {
			out.errs[k] += n
			delete(s.iv.errs, k)
		}
		for k, n := range s.iv.kindErrs {
			out.kindErrs[k] += n
			delete(s.iv.kindErrs, k)
		}
		out.checks += s.iv.checks
		out.stale += s.iv.stale
		s.iv.checks, s.iv.stale = 0, 0
		s.mu.Unlock()
	}
	return out
}
