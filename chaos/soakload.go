package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// benchTotals adds up the tokend-bench segments of a soak.
type benchTotals struct {
	Segments int
	Requests int64
	Errors   int64
	ErrorsBy map[string]int64
	// Failed lists segments that did not complete (exit status, no report).
	Failed []string
}

// benchReport is the part of tokend-bench's --json report a soak reads.
type benchReport struct {
	Requests  int64            `json:"requests"`
	Errors    int64            `json:"errors"`
	ErrorsBy  map[string]int64 `json:"errors_by_status"`
	Stopped   string           `json:"stopped_early"`
	Cancelled bool             `json:"cancelled"`
}

// runBenchSegments runs tokend-bench mixed against every node, one segment
// after another, until the soak's end. Each segment is a fresh tokend-bench
// process that seeds its own pool of access tokens: the pool must outlive
// the segment, and a soak's tokens live for only cfg.AccessTTL so that
// they expire and are purged while it runs (tokend-bench's validations
// count an expired pooled token as an error). Segments are therefore
// shorter than the lifetime (see SoakConfig.Segment).
func (r *soakRunner) runBenchSegments(ctx context.Context, end time.Time) benchTotals {
	tot := benchTotals{ErrorsBy: map[string]int64{}}
	for i := 1; ctx.Err() == nil; i++ {
		left := time.Until(end)
		if left < 5*time.Second {
			break
		}
		d := min(left, r.cfg.Segment)
		rep, err := r.benchSegment(ctx, i, d)
		if ctx.Err() != nil {
			break // interrupted: the segment's answers say nothing
		}
		tot.Segments++
		if err != nil {
			tot.Failed = append(tot.Failed, fmt.Sprintf("segment %d: %v", i, err))
			r.logf("bench segment %d: %v", i, err)
			// Do not spin on a failing tool: wait out a few seconds.
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
			continue
		}
		tot.Requests += rep.Requests
		tot.Errors += rep.Errors
		for k, v := range rep.ErrorsBy {
			tot.ErrorsBy[k] += v
		}
		r.logf("bench segment %d: %d requests, %d errors; %s", i, rep.Requests, rep.Errors, r.smp.latest())
	}
	return tot
}

// benchSegment runs one tokend-bench process for d and reads its report.
func (r *soakRunner) benchSegment(ctx context.Context, i int, d time.Duration) (benchReport, error) {
	var rep benchReport
	out := filepath.Join(r.dir, fmt.Sprintf("bench-%03d.json", i))
	args := []string{"mixed", "--duration", d.String(), "--warmup", "0s",
		"--rate", strconv.Itoa(r.cfg.Rate), "--concurrency", strconv.Itoa(r.cfg.Concurrency),
		"--requests", strconv.Itoa(r.cfg.Rate * int(d.Seconds()+1)),
		"--tokens", strconv.Itoa(r.cfg.PoolTokens), "--mix", r.cfg.Mix,
		"--quiet", "--json", out, "--plot", "",
		// A random admin token of a throwaway local cluster; tokend-bench
		// reads it from argv only.
		"--admin-token", r.c.admin}
	for _, nd := range r.c.nodes {
		args = append(args, "--target", nd.url())
	}
	// The bench's own bound: it stops itself after d; this one only
	// catches a hung tool.
	cctx, cancel := context.WithTimeout(ctx, d+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, r.cfg.Bench, args...)
	cmd.Env = baseEnv()
	logf, err := os.OpenFile(filepath.Join(r.dir, "bench.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return rep, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n=== soak: bench segment %d at %s ===\n", i, time.Now().UTC().Format(time.RFC3339))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		return rep, fmt.Errorf("tokend-bench: %w (output in %s)", err, logf.Name())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return rep, err
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("%s: %w", out, err)
	}
	if rep.Cancelled {
		return rep, fmt.Errorf("tokend-bench cancelled (%s)", rep.Stopped)
	}
	return rep, nil
}
