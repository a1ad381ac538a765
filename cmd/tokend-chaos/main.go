// Command tokend-chaos kills and pauses the processes of a three-node
// tokend cluster under load and checks that no acknowledged write is lost
// (package chaos; make chaos-kill runs it with KILLS leader kills).
//
//	tokend-chaos [--tokend bin/tokend] [--kills 100] [--follower-kills N] [--pauses N]
//
// It prints one progress line per fault and, at the end, the summary:
//
//	100 leader kills, M acknowledged writes, 0 lost, failover p50 Xs max Ys, client errors by class: ...
//
// and exits 1 when an acknowledged write was lost or contradicted or
// tokend gave an answer it never should (a 500), 2 when the run could not
// be completed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tokend/tokend/chaos"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "soak" {
		return soak(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("tokend-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg chaos.Config
	tokend := fs.String("tokend", "", "tokend binary (default: tokend beside this program, else on PATH)")
	fs.IntVar(&cfg.LeaderKills, "kills", 100, "leader kills (SIGKILL, then restart from the data directory)")
	followers := fs.Int("follower-kills", -1, "follower kills (default: kills/10, at least 1)")
	pauses := fs.Int("pauses", -1, "SIGSTOP/SIGCONT pauses, alternately of a follower and the leader (default: kills/10, at least 1)")
	fs.DurationVar(&cfg.PauseFor, "pause-for", 3*time.Second, "how long a paused node stays stopped")
	fs.IntVar(&cfg.Workers, "workers", 8, "load workers")
	fs.IntVar(&cfg.WritesBetween, "writes-between", 20, "writes acknowledged after recovering from one fault before the next")
	fs.DurationVar(&cfg.Timeout, "timeout", 2*time.Minute, "bound on every wait (readiness, a leader, a write after a fault)")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for the nodes' data and logs (default: a temporary one, kept only on failure)")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed of the load's choices (0: from the clock)")
	quiet := fs.Bool("quiet", false, "print only the summary")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.FollowerKills, cfg.Pauses = orTenth(*followers, cfg.LeaderKills), orTenth(*pauses, cfg.LeaderKills)
	bin, err := findTokend(*tokend)
	if err != nil {
		fmt.Fprintln(stderr, "tokend-chaos:", err)
		return 2
	}
	cfg.Tokend = bin
	if !*quiet {
		cfg.Log = stdout
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := chaos.Run(ctx, cfg)
	fmt.Fprint(stdout, res.Summary())
	switch {
	case !res.OK():
		fmt.Fprintln(stderr, "tokend-chaos: FAILED: acknowledged writes lost or contradicted")
		return 1
	case err != nil:
		fmt.Fprintln(stderr, "tokend-chaos: run not completed:", err)
		return 2
	}
	return 0
}

// orTenth is n, or when n is negative a tenth of kills, at least 1.
func orTenth(n, kills int) int {
	if n >= 0 {
		return n
	}
	return max(1, kills/10)
}

// findTokend locates the tokend binary: the explicit path, else a tokend
// beside the running executable, else tokend on PATH.
func findTokend(explicit string) (string, error) { return findBinary("tokend", explicit) }

// findBinary locates the binary name: the explicit path, else one beside
// the running executable, else name on PATH.
func findBinary(name, explicit string) (string, error) {
	if explicit == "" {
		if exe, err := os.Executable(); err == nil {
			p := filepath.Join(filepath.Dir(exe), name)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				return p, nil
			}
		}
		explicit = name
	}
	p, err := exec.LookPath(explicit)
	if err != nil {
		return "", fmt.Errorf("no %s binary (%w); build it with make build or pass --%s", name, err, strings.TrimPrefix(name, "tokend-"))
	}
	return filepath.Abs(p)
}
