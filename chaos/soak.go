package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// SoakConfig says what a soak runs (tokend-chaos soak; make soak).
type SoakConfig struct {
	// Tokend and Bench are the paths of the tokend and tokend-bench
	// binaries.
	Tokend, Bench string
	// Dir holds the nodes' data, logs and the bench's reports; empty: a
	// temporary directory, removed afterwards unless the soak failed.
	Dir string
	// Duration is how long the load runs.
	Duration time.Duration
	// AccessTTL, RefreshTTL and PurgeInterval are the nodes' token
	// lifetimes and purge period: short, so that tokens expire and are
	// purged many times over and the live population levels off within
	// the first minutes.
	AccessTTL, RefreshTTL, PurgeInterval time.Duration
	// Segment is the length of one tokend-bench run; it must leave the
	// pool it seeds valid to its end (see runBenchSegments).
	Segment time.Duration
	// Rate (requests/s, open loop), Concurrency, PoolTokens and Mix are
	// tokend-bench's --rate, --concurrency, --tokens and --mix.
	Rate, Concurrency, PoolTokens int
	Mix                           string
	// SampleEvery is the /metrics sampling interval.
	SampleEvery time.Duration
	// SteadyAfter is the fraction of the run after which the population
	// is steady; the trends are fitted over the rest.
	SteadyAfter float64
	// Memory, Goroutines and LiveTokens are the limits on growth over the
	// steady window (trendLimit); live tokens growing means expired ones
	// are not all purged.
	Memory, Goroutines, LiveTokens trendLimit
	// Timeout bounds the cluster's start.
	Timeout time.Duration
	// Log receives progress lines; nil for none.
	Log io.Writer
}

// DefaultSoakConfig is what make soak runs, for the given duration. The
// limits are argued in docs/RELIABILITY.md (Soak).
func DefaultSoakConfig(d time.Duration) SoakConfig {
	return SoakConfig{
		Duration:  d,
		AccessTTL: 90 * time.Second, RefreshTTL: 120 * time.Second, PurgeInterval: 10 * time.Second,
		Segment: 60 * time.Second,
		Rate:    300, Concurrency: 16, PoolTokens: 2000, Mix: "validate=95,issue=4,revoke=1",
		SampleEvery: 5 * time.Second, SteadyAfter: 0.4,
		Memory:     trendLimit{PerHour: 16 << 20, Fraction: 0.25, Unit: " MiB", Scale: mib},
		Goroutines: trendLimit{PerHour: 0, Fraction: 0.10, Min: 10},
		LiveTokens: trendLimit{PerHour: 0, Fraction: 0.30, Min: 100},
		Timeout:    2 * time.Minute,
	}
}

// soakRunner is one soak's state.
type soakRunner struct {
	cfg SoakConfig
	c   *cluster
	smp *sampler
	dir string
	t0  time.Time
}

func (r *soakRunner) logf(format string, args ...any) {
	if r.cfg.Log != nil {
		fmt.Fprintf(r.cfg.Log, "%7.1fs  %s\n", time.Since(r.t0).Seconds(), fmt.Sprintf(format, args...))
	}
}

// Soak starts three nodes with short token lifetimes, drives tokend-bench
// mixed against all of them for cfg.Duration while sampling each node's
// memory, goroutines and live tokens, and judges the trends over the
// steady-state part of the run. An error means the soak could not be run;
// whether it passed is SoakResult.OK.
func Soak(ctx context.Context, cfg SoakConfig) (res SoakResult, err error) {
	if cfg.Tokend == "" || cfg.Bench == "" {
		return res, errors.New("chaos: soak needs the tokend and tokend-bench binaries")
	}
	if warm := cfg.AccessTTL + 2*cfg.PurgeInterval; cfg.Duration < 2*warm {
		return res, fmt.Errorf("chaos: a soak of %v is too short: the population is steady only after %v, and the trends need as long again", cfg.Duration, warm)
	}
	if cfg.Segment+15*time.Second > cfg.AccessTTL {
		return res, fmt.Errorf("chaos: a bench segment (%v) must end well within the access token lifetime (%v)", cfg.Segment, cfg.AccessTTL)
	}
	dir, tmp := cfg.Dir, cfg.Dir == ""
	if tmp {
		dir, err = os.MkdirTemp("", "tokend-soak-")
	} else {
		err = os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return res, err
	}
	r := &soakRunner{cfg: cfg, dir: dir, t0: time.Now()}
	defer func() {
		if tmp && err == nil && res.OK() {
			_ = os.RemoveAll(dir)
		} else {
			res.Dir = dir
		}
	}()
	r.logf("starting 3 nodes of %s in %s", cfg.Tokend, dir)
	r.c, err = startCluster(ctx, cfg.Tokend, dir, 3, cfg.Timeout,
		"--access-token-ttl", cfg.AccessTTL.String(), "--refresh-token-ttl", cfg.RefreshTTL.String(),
		"--purge-interval", cfg.PurgeInterval.String())
	if err != nil {
		return res, err
	}
	defer r.c.stop()
	r.t0 = time.Now()
	smp := newSampler(r.c, r.t0)
	r.smp = smp
	sctx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); smp.run(sctx, cfg.SampleEvery) }()
	r.logf("load for %v: tokend-bench mixed at %d requests/s on 3 nodes, in %v segments", cfg.Duration, cfg.Rate, cfg.Segment)
	res.Bench = r.runBenchSegments(ctx, r.t0.Add(cfg.Duration))
	smp.sampleAll(ctx) // the end state, after the last segment
	stopSampling()
	wg.Wait()
	res.Elapsed = time.Since(r.t0)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("soak interrupted: %w", err)
	}
	for _, nd := range r.c.nodes {
		if !nd.running() {
			res.Problems = append(res.Problems, fmt.Sprintf("%s exited during the soak; its log ends:\n%s", nd.id, nd.logTail(20)))
		}
	}
	res.judge(cfg, smp, r.c.nodes)
	if err := smp.writeCSV(filepath.Join(dir, "samples.csv")); err != nil {
		r.logf("writing the samples: %v", err)
	}
	return res, nil
}
