// Command tokend-bench is the load generator and benchmark for tokend.
// Run it with --help; the measurement approach is documented in package
// github.com/tokend/tokend/bench.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tokend/tokend/bench"
)

func main() {
	if os.Getenv(bench.BaselineChildEnv) == "1" {
		if err := bench.ServeBaseline(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "tokend-bench:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "baseline-server" { // hidden: bench/validate-fastpath.sh
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := bench.BaselineServerMain(ctx, os.Args[2:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	if len(os.Args) > 1 && os.Args[1] == "calibrate" {
		self, _ := os.Executable()
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := bench.CalibrateMain(ctx, os.Args[2:], self, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	if len(os.Args) > 1 && os.Args[1] == "suite" {
		self, _ := os.Executable()
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := bench.SuiteMain(ctx, os.Args[2:], strings.Join(os.Args, " "), self, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	cfg, err := bench.ParseArgs(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tokend-bench:", err)
		os.Exit(2)
	}
	cfg.Args = os.Args
	if !cfg.BaselineInProcess {
		if self, err := os.Executable(); err == nil {
			cfg.BaselineSelf = self
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, cfg, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tokend-bench:", err)
		os.Exit(1)
	}
	switch {
	case rep.Visibility != nil && rep.Visibility.Stale > 0:
		os.Exit(3) // a consistency violation was observed
	case rep.Cancelled:
		os.Exit(130) // interrupted: the results printed are partial
	}
}
