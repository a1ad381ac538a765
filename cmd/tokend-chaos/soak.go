package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tokend/tokend/chaos"
)

// soak runs tokend-chaos soak: flags, then chaos.Soak, then the summary.
func soak(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tokend-chaos soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := chaos.DefaultSoakConfig(5 * time.Minute)
	tokend := fs.String("tokend", "", "tokend binary (default: tokend beside this program, else on PATH)")
	bench := fs.String("bench", "", "tokend-bench binary (default: tokend-bench beside this program, else on PATH)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long the load runs (at most 2h)")
	fs.IntVar(&cfg.Rate, "rate", cfg.Rate, "tokend-bench --rate: requests/s over the three nodes (open loop)")
	fs.StringVar(&cfg.Mix, "mix", cfg.Mix, "tokend-bench --mix")
	fs.DurationVar(&cfg.AccessTTL, "access-token-ttl", cfg.AccessTTL, "the nodes' access token lifetime (more than --segment + 15s)")
	fs.DurationVar(&cfg.Segment, "segment", cfg.Segment, "length of one tokend-bench run (each seeds a fresh token pool)")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for the nodes' data, logs and the bench's reports (default: a temporary one, kept only on failure)")
	quiet := fs.Bool("quiet", false, "print only the summary")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.Duration <= 0 || cfg.Duration > 2*time.Hour {
		fmt.Fprintln(stderr, "tokend-chaos soak: --duration must be in (0, 2h]")
		return 2
	}
	var err error
	if cfg.Tokend, err = findBinary("tokend", *tokend); err == nil {
		cfg.Bench, err = findBinary("tokend-bench", *bench)
	}
	if err != nil {
		fmt.Fprintln(stderr, "tokend-chaos soak:", err)
		return 2
	}
	if !*quiet {
		cfg.Log = stdout
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := chaos.Soak(ctx, cfg)
	if err == nil || res.Elapsed > 0 {
		fmt.Fprint(stdout, res.Summary())
	}
	switch {
	case err != nil:
		fmt.Fprintln(stderr, "tokend-chaos soak: not completed:", err)
		return 2
	case !res.OK():
		fmt.Fprintln(stderr, "tokend-chaos soak: FAILED")
		return 1
	}
	return 0
}
