package chaos

import (
	"fmt"
	"math"
	"time"
)

// point is one sample of a series: seconds since the run started, value.
type point struct {
	t, v float64
}

// fit is a least-squares line through a series.
type fit struct {
	Slope     float64 // units per second
	Intercept float64 // value at t = 0
	N         int
	From, To  float64 // seconds: the first and last sample's time
	Mean      float64
}

// leastSquares fits v = a + b·t. Fewer than two distinct times give a
// zero slope (nothing to fit a trend through).
func leastSquares(ps []point) fit {
	f := fit{N: len(ps)}
	if len(ps) == 0 {
		return f
	}
	var st, sv float64
	for _, p := range ps {
		st += p.t
		sv += p.v
	}
	n := float64(len(ps))
	mt, mv := st/n, sv/n
	var stt, stv float64
	for _, p := range ps {
		stt += (p.t - mt) * (p.t - mt)
		stv += (p.t - mt) * (p.v - mv)
	}
	f.From, f.To, f.Mean = ps[0].t, ps[len(ps)-1].t, mv
	if stt > 0 {
		f.Slope = stv / stt
	}
	f.Intercept = mv - f.Slope*mt
	return f
}

// Growth is what the fitted line rises over its window.
func (f fit) Growth() float64 { return f.Slope * (f.To - f.From) }

// PerHour is the slope extrapolated to an hour.
func (f fit) PerHour() float64 { return f.Slope * 3600 }

// trendLimit says how much growth a series may show over the steady-state
// window before it counts as a leak. Both limits must be exceeded: PerHour
// keeps a long run from excusing a slow leak as a small fraction, and
// Fraction keeps a short run's noise (a GC cycle or the scavenger moves RSS
// by megabytes at once, which a few minutes' slope extrapolates to an hour
// as tens of MiB) from counting as one. A short run therefore detects only
// fast leaks; the hour-long run is what bounds a slow one.
type trendLimit struct {
	// PerHour is the largest slope tolerated, extrapolated to an hour, in
	// the series' unit.
	PerHour float64
	// Fraction is the largest fitted growth over the window tolerated, as a
	// fraction of the window's mean.
	Fraction float64
	// Min is an absolute floor on the fitted growth over the window below
	// which nothing counts (for small counts such as goroutines).
	Min float64
	// Unit and Scale print the series: values are divided by Scale (0: 1).
	Unit  string
	Scale float64
}

// leaks says whether f grows beyond lim, and why.
func (lim trendLimit) leaks(f fit) (bool, string) {
	if f.N < 3 || f.Slope <= 0 {
		return false, ""
	}
	g := f.Growth()
	if f.PerHour() <= lim.PerHour || g <= lim.Fraction*math.Abs(f.Mean) || g <= lim.Min {
		return false, ""
	}
	sc := lim.Scale
	if sc == 0 {
		sc = 1
	}
	return true, fmt.Sprintf("grew %.1f%s over %s (%.1f%% of its mean %.1f%s; %.1f%s per hour extrapolated; limits %.1f%s per hour and %.0f%%)",
		g/sc, lim.Unit, time.Duration((f.To-f.From)*float64(time.Second)).Round(time.Second), 100*g/math.Abs(f.Mean), f.Mean/sc, lim.Unit,
		f.PerHour()/sc, lim.Unit, lim.PerHour/sc, lim.Unit, 100*lim.Fraction)
}

// window returns the points at or after from seconds.
func window(ps []point, from float64) []point {
	for i, p := range ps {
		if p.t >= from {
			return ps[i:]
		}
	}
	return nil
}
