// Command etcdput is the etcd reference for tokend's write path: it puts
// small values into a local etcd cluster from N concurrent clients for a
// bounded time and prints the rate and latency percentiles, in the same
// closed-loop model as tokend-bench (each client sends its next put when
// the last one was acknowledged). etcd is the obvious yardstick for a
// Raft-replicated store: a put, like a token issue, is one replicated
// write acknowledged after a quorum has it on disk.
//
// It is a module of its own (bench/etcdput/go.mod) so that etcd's client
// and its gRPC dependency tree stay out of tokend's go.mod; build it with
// `cd bench/etcdput && go build`. bench/etcd-compare.sh starts a
// three-member cluster and runs it beside tokend-bench.
//
// Only loopback endpoints are accepted, and every run is bounded by
// --duration (at most 10 minutes).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

type config struct {
	endpoints []string
	clients   int
	conns     int
	duration  time.Duration
	warmup    time.Duration
	valueSize int
	keys      int
	timeout   time.Duration
	ready     time.Duration // how long the first put may keep failing
	probe     bool          // only wait for the cluster to take a put
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdput:", err)
		os.Exit(2)
	}
	res, err := run(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdput:", err)
		os.Exit(1)
	}
	fmt.Println(res)
}

func parseFlags(args []string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("etcdput", flag.ContinueOnError)
	eps := fs.String("endpoints", "127.0.0.1:2379", "comma-separated etcd client `ADDRS` (loopback only)")
	fs.IntVar(&cfg.clients, "clients", 64, "concurrent clients, each with one put in flight (1-10000)")
	fs.IntVar(&cfg.conns, "conns", 8, "gRPC connections the clients are spread over (1-clients)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured phase (max 10m)")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "load applied and discarded first")
	fs.IntVar(&cfg.valueSize, "value-size", 64, "bytes per value")
	fs.IntVar(&cfg.keys, "keys", 100_000, "key space the puts cycle through")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "per-put timeout")
	fs.DurationVar(&cfg.ready, "ready", 10*time.Second, "keep retrying the first put this long (a cluster still electing a leader)")
	fs.BoolVar(&cfg.probe, "probe", false, "only wait (up to --ready) until the cluster takes a put, then exit")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	for _, e := range strings.Split(*eps, ",") {
		if err := checkLoopback(e); err != nil {
			return cfg, err
		}
		cfg.endpoints = append(cfg.endpoints, strings.TrimSpace(e))
	}
	if cfg.clients < 1 || cfg.clients > 10_000 {
		return cfg, errors.New("--clients must be between 1 and 10000")
	}
	cfg.conns = min(max(cfg.conns, 1), cfg.clients)
	switch {
	case cfg.duration <= 0 || cfg.duration > 10*time.Minute:
		return cfg, errors.New("--duration must be positive and at most 10m")
	case cfg.warmup < 0 || cfg.warmup > time.Minute:
		return cfg, errors.New("--warmup must be between 0 and 1m")
	case cfg.valueSize < 1 || cfg.valueSize > 1<<20:
		return cfg, errors.New("--value-size must be between 1 and 1MiB")
	case cfg.keys < 1:
		return cfg, errors.New("--keys must be positive")
	}
	return cfg, nil
}

// checkLoopback refuses an endpoint that is not 127.0.0.1, ::1 or
// localhost (with or without an http:// scheme).
func checkLoopback(ep string) error {
	ep = strings.TrimSpace(ep)
	hostport := ep
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			return fmt.Errorf("endpoint %q: %w", ep, err)
		}
		hostport = u.Host
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("endpoint %q: %w", ep, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("endpoint %q refused: only loopback targets", ep)
	}
	return nil
}

// result is one run's outcome.
type result struct {
	cfg      config
	requests int
	errors   int64
	elapsed  time.Duration
	lat      []time.Duration // sorted
}

func (r result) String() string {
	if r.cfg.probe {
		return "etcd ready: " + strings.Join(r.cfg.endpoints, ",")
	}
	rate := float64(r.requests) / r.elapsed.Seconds()
	return fmt.Sprintf("etcd put: clients=%d conns=%d value=%dB measured=%.2fs requests=%d errors=%d req/s=%.0f p50=%s p99=%s max=%s",
		r.cfg.clients, r.cfg.conns, r.cfg.valueSize, r.elapsed.Seconds(), r.requests, r.errors, rate,
		pct(r.lat, 50), pct(r.lat, 99), pct(r.lat, 100))
}

func pct(sorted []time.Duration, p float64) string {
	if len(sorted) == 0 {
		return "-"
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	i = min(max(i, 0), len(sorted)-1)
	return sorted[i].Round(10 * time.Microsecond).String()
}

func run(ctx context.Context, cfg config) (result, error) {
	clis := make([]*clientv3.Client, cfg.conns)
	for i := range clis {
		c, err := clientv3.New(clientv3.Config{Endpoints: cfg.endpoints, DialTimeout: 5 * time.Second})
		if err != nil {
			return result{}, fmt.Errorf("connecting to %v: %w", cfg.endpoints, err)
		}
		defer c.Close()
		clis[i] = c
	}
	if err := firstPut(ctx, clis[0], cfg.ready); err != nil {
		return result{}, err
	}
	if cfg.probe {
		return result{cfg: cfg}, nil
	}
	return load(ctx, cfg, clis), nil
}

// firstPut puts one key before the clock starts, retrying for up to ready
// (a cluster that was just started may still be electing its leader), so
// a cluster that is not there fails fast and one that is starting does not
// fail at all.
func firstPut(ctx context.Context, c *clientv3.Client, ready time.Duration) error {
	deadline := time.Now().Add(ready)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.Put(pctx, "etcdput/probe", "x")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("first put: %w", err)
		}
		time.Sleep(100 * time.Millisecond) // a retry interval, not synchronisation
	}
}

// load runs the clients: warmup first, then the measured phase; puts that
// start in the measured phase are recorded.
func load(ctx context.Context, cfg config, clis []*clientv3.Client) result {
	buf := make([]byte, (cfg.valueSize+1)/2)
	_, _ = rand.Read(buf)
	value := hex.EncodeToString(buf)[:cfg.valueSize]
	start := time.Now()
	measure := start.Add(cfg.warmup)
	end := measure.Add(cfg.duration)
	var errs atomic.Int64
	var next atomic.Int64
	lats := make([][]time.Duration, cfg.clients)
	var wg sync.WaitGroup
	for w := 0; w < cfg.clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kv := clis[w%len(clis)]
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				key := fmt.Sprintf("etcdput/%08d", next.Add(1)%int64(cfg.keys))
				pctx, cancel := context.WithTimeout(ctx, cfg.timeout)
				_, err := kv.Put(pctx, key, value)
				cancel()
				if t0.Before(measure) {
					continue
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	res := result{cfg: cfg, errors: errs.Load(), elapsed: time.Since(measure)}
	for _, l := range lats {
		res.lat = append(res.lat, l...)
	}
	slices.Sort(res.lat)
	res.requests = len(res.lat)
	return res
}
