package bench

import (
	"math"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histograms record microseconds from 1 µs to 60 s with three significant
// digits: 1 µs resolution below ~2 ms, 0.1 % relative error above.
const (
	histLowest  = 1
	histHighest = 60_000_000
	histDigits  = 3
)

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histDigits)
}

// recordLatency records d, clamped into the histogram's range so an
// extreme value is counted (as the maximum) rather than dropped.
func recordLatency(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	if us < histLowest {
		us = histLowest
	}
	if us > histHighest {
		us = histHighest
	}
	_ = h.RecordValue(us)
}

// LatencySummary is a histogram's headline numbers, in microseconds.
type LatencySummary struct {
	Count int64   `json:"count"`
	Min   int64   `json:"min_us"`
	Mean  float64 `json:"mean_us"`
	P50   int64   `json:"p50_us"`
	P90   int64   `json:"p90_us"`
	P99   int64   `json:"p99_us"`
	P999  int64   `json:"p99_9_us"`
	Max   int64   `json:"max_us"`
}

func summarize(h *hdrhistogram.Histogram) LatencySummary {
	if h == nil || h.TotalCount() == 0 {
		return LatencySummary{}
	}
	return LatencySummary{
		Count: h.TotalCount(),
		Min:   h.Min(),
		Mean:  math.Round(h.Mean()*10) / 10,
		P50:   h.ValueAtPercentile(50),
		P90:   h.ValueAtPercentile(90),
		P99:   h.ValueAtPercentile(99),
		P999:  h.ValueAtPercentile(99.9),
		Max:   h.Max(),
	}
}

// CurvePoint is one point of a latency-by-percentile curve.
type CurvePoint struct {
	Percentile float64 `json:"percentile"`
	LatencyUS  int64   `json:"latency_us"`
}

// percentileCurve samples h at percentiles spaced evenly on the usual
// log(1/(1-p)) axis (ten per decade: 0, 20.6, 36.9, ..., 90, ..., 99, ...),
// stopping where the sample count no longer resolves the tail, and always
// ends with the maximum (100).
func percentileCurve(h *hdrhistogram.Histogram) []CurvePoint {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	n := float64(h.TotalCount())
	var pts []CurvePoint
	for k := 0; k <= 60; k++ {
		tail := math.Pow(10, -float64(k)/10) // 1-p
		if tail*n < 1 {
			break
		}
		p := 100 * (1 - tail)
		p = math.Round(p*10000) / 10000
		pts = append(pts, CurvePoint{Percentile: p, LatencyUS: h.ValueAtPercentile(p)})
	}
	pts = append(pts, CurvePoint{Percentile: 100, LatencyUS: h.Max()})
	return pts
}

// mergeInto merges src into *dst, creating dst when nil.
func mergeInto(dst **hdrhistogram.Histogram, src *hdrhistogram.Histogram) {
	if src == nil {
		return
	}
	if *dst == nil {
		*dst = newHist()
	}
	(*dst).Merge(src)
}
