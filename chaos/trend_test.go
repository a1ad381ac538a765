package chaos

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestLeastSquaresLine(t *testing.T) {
	var ps []point
	for i := 0; i < 10; i++ {
		ps = append(ps, point{float64(i), 3 + 2*float64(i)})
	}
	f := leastSquares(ps)
	if math.Abs(f.Slope-2) > 1e-9 || math.Abs(f.Intercept-3) > 1e-9 {
		t.Fatalf("fit of v = 3 + 2t: slope %v intercept %v", f.Slope, f.Intercept)
	}
	if g := f.Growth(); math.Abs(g-18) > 1e-9 {
		t.Fatalf("growth over t 0..9: %v, want 18", g)
	}
	if f := leastSquares([]point{{5, 1}, {5, 2}}); f.Slope != 0 {
		t.Fatalf("slope through one instant: %v, want 0", f.Slope)
	}
	if f := leastSquares(nil); f.N != 0 || f.Slope != 0 {
		t.Fatalf("empty fit: %+v", f)
	}
}

// rssLike is a synthetic RSS series sampled every 5 s for d: a base, a
// garbage collector's sawtooth (the heap grows by amp, then drops), random
// noise of ±noise, an optional scavenger step down of drop at 60 % of the
// run, and a steady growth of leak bytes per hour.
func rssLike(seed uint64, d time.Duration, base, amp, noise, drop, leak float64) []point {
	rng := rand.New(rand.NewPCG(seed, 1))
	var ps []point
	end := d.Seconds()
	for s := 0.0; s <= end; s += 5 {
		v := base + amp*math.Mod(s, 40)/40 + noise*(2*rng.Float64()-1) + leak*s/3600
		if drop > 0 && s > 0.6*end {
			v -= drop
		}
		ps = append(ps, point{s, v})
	}
	return ps
}

func TestTrendLimitMemory(t *testing.T) {
	lim := DefaultSoakConfig(time.Hour).Memory
	const MiB = 1 << 20
	cases := []struct {
		name  string
		d     time.Duration
		ps    []point
		leaks bool
	}{
		// The shapes of a soak's nodes (docs/RELIABILITY.md, Soak): anonymous
		// RSS about 17 MiB, heap in use about 10 MiB swinging by 4 MiB
		// between collections.
		{"hour flat noisy", time.Hour, rssLike(1, time.Hour, 10*MiB, 4*MiB, 1*MiB, 0, 0), false},
		{"hour flat with a scavenger drop", time.Hour, rssLike(2, time.Hour, 17*MiB, 3*MiB, 1*MiB, 4*MiB, 0), false},
		{"hour slow drift under the limit", time.Hour, rssLike(3, time.Hour, 17*MiB, 3*MiB, 1*MiB, 0, 8*MiB), false},
		{"hour leak of 32 MiB/h", time.Hour, rssLike(4, time.Hour, 17*MiB, 3*MiB, 1*MiB, 0, 32*MiB), true},
		{"hour leak of 20 MiB/h", time.Hour, rssLike(5, time.Hour, 10*MiB, 4*MiB, 1*MiB, 0, 20*MiB), true},
		{"5 min flat noisy", 5 * time.Minute, rssLike(6, 5*time.Minute, 10*MiB, 4*MiB, 1*MiB, 0, 0), false},
		{"5 min leak of 200 MiB/h", 5 * time.Minute, rssLike(7, 5*time.Minute, 17*MiB, 3*MiB, 1*MiB, 0, 200*MiB), true},
		{"5 min drift of 30 MiB/h", 5 * time.Minute, rssLike(9, 5*time.Minute, 17*MiB, 3*MiB, 1*MiB, 0, 30*MiB), false},
		{"5 min shrinking", 5 * time.Minute, rssLike(8, 5*time.Minute, 17*MiB, 3*MiB, 1*MiB, 0, -100*MiB), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := leastSquares(window(c.ps, 0.4*c.d.Seconds()))
			bad, why := lim.leaks(f)
			if bad != c.leaks {
				t.Fatalf("leaks = %v (%s), want %v; fit %+v (%.1f MiB/h)", bad, why, c.leaks, f, f.PerHour()/MiB)
			}
			if bad && !strings.Contains(why, "MiB per hour") {
				t.Fatalf("reason %q does not say the rate", why)
			}
		})
	}
}

func TestTrendLimitGoroutines(t *testing.T) {
	lim := DefaultSoakConfig(time.Hour).Goroutines
	rng := rand.New(rand.NewPCG(9, 9))
	var flat, growing []point
	for s := 0.0; s <= 3600; s += 5 {
		j := float64(rng.IntN(9)) // connections come and go
		flat = append(flat, point{s, 40 + j})
		growing = append(growing, point{s, 40 + j + s/60}) // one more a minute
	}
	if bad, why := lim.leaks(leastSquares(window(flat, 1440))); bad {
		t.Fatalf("flat goroutines flagged: %s", why)
	}
	if bad, _ := lim.leaks(leastSquares(window(growing, 1440))); !bad {
		t.Fatal("a goroutine a minute not flagged")
	}
}

func TestWindow(t *testing.T) {
	ps := []point{{0, 1}, {5, 2}, {10, 3}}
	if w := window(ps, 5); len(w) != 2 || w[0].t != 5 {
		t.Fatalf("window from 5: %v", w)
	}
	if w := window(ps, 11); w != nil {
		t.Fatalf("window past the end: %v", w)
	}
}

// TestTrendLimitManySeeds checks the verdicts are not one seed's luck: a
// flat series never fails and a leak always does, for many noise draws.
func TestTrendLimitManySeeds(t *testing.T) {
	lim := DefaultSoakConfig(time.Hour).Memory
	const MiB = 1 << 20
	for seed := uint64(100); seed < 200; seed++ {
		for _, d := range []time.Duration{5 * time.Minute, time.Hour} {
			from := 0.4 * d.Seconds()
			if bad, why := lim.leaks(leastSquares(window(rssLike(seed, d, 10*MiB, 4*MiB, 1*MiB, 0, 0), from))); bad {
				t.Fatalf("seed %d, %v: flat series flagged: %s", seed, d, why)
			}
			leak := 32.0 * MiB
			if d < time.Hour {
				leak = 200 * MiB
			}
			if bad, _ := lim.leaks(leastSquares(window(rssLike(seed, d, 17*MiB, 3*MiB, 1*MiB, 0, leak), from))); !bad {
				t.Fatalf("seed %d, %v: a leak of %.0f MiB/h not flagged", seed, d, leak/MiB)
			}
		}
	}
}
