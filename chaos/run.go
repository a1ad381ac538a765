package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Config says what to run.
type Config struct {
	// Tokend is the path of the tokend binary the nodes run.
	Tokend string
	// Dir holds the nodes' data directories and logs; empty: a new
	// temporary directory, removed afterwards unless the run failed.
	Dir string
	// LeaderKills, FollowerKills and Pauses count the faults (spread
	// evenly, see schedule).
	LeaderKills, FollowerKills, Pauses int
	// PauseFor is how long a paused node stays stopped.
	PauseFor time.Duration
	// Workers is the number of load workers.
	Workers int
	// WritesBetween is how many writes the cluster must acknowledge after
	// recovering from one fault before the next is applied.
	WritesBetween int
	// VerifyWorkers is the number of concurrent checkers at the end.
	VerifyWorkers int
	// Timeout bounds every wait: readiness, a leader, a write after a fault.
	Timeout time.Duration
	// Seed seeds the load's choices; 0: from the clock.
	Seed uint64
	// Log receives one progress line per step; nil for none. Tokens never
	// appear in it.
	Log io.Writer
}

func (c *Config) defaults() {
	if c.PauseFor <= 0 {
		c.PauseFor = 3 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.WritesBetween <= 0 {
		c.WritesBetween = 20
	}
	if c.VerifyWorkers <= 0 {
		c.VerifyWorkers = 8
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
}

// Result is what a run found.
type Result struct {
	LeaderKills, FollowerKills, Pauses int
	IssuesAcked, RevokesAcked          int
	// Checked tokens were validated on every node at the end.
	Checked int
	// LostIssues and LostRevokes are acknowledged writes the final check
	// did not find on some node.
	LostIssues, LostRevokes int
	// Unknown tokens had a revocation whose outcome is unknown;
	// Inconsistent of them were answered differently by the nodes.
	Unknown, Inconsistent int
	// StaleReads are validations during the load that contradicted an
	// acknowledged write.
	StaleReads int
	// Failovers are, per leader kill, the time from SIGKILL to the first
	// acknowledged write after it.
	Failovers []time.Duration
	// Classes counts every answer the clients saw, by operation and class.
	Classes map[string]int
	// Unexpected lists answers tokend should not give (see
	// unexpectedAnswer); Details lists violations. Neither holds tokens.
	Unexpected, Details []string
	Elapsed             time.Duration
	// Dir is where the nodes' logs are, when they were kept.
	Dir string
}

// Lost is the number of acknowledged writes lost.
func (r Result) Lost() int { return r.LostIssues + r.LostRevokes }

// OK says whether no acknowledged write was lost, no answer contradicted
// one, and tokend gave no answer it never should (a 500, a 4xx to a
// well-formed request): faults may make it say "not now", never "wrong".
func (r Result) OK() bool {
	return r.Lost() == 0 && r.Inconsistent == 0 && r.StaleReads == 0 && len(r.Unexpected) == 0
}

// Summary is the report: one headline, then the details.
func (r Result) Summary() string {
	var b strings.Builder
	p50, top := percentile(r.Failovers, 0.5), percentile(r.Failovers, 1)
	fmt.Fprintf(&b, "%d leader kills, %d acknowledged writes, %d lost, failover p50 %.2fs max %.2fs, client errors by class: %s\n",
		r.LeaderKills, r.IssuesAcked+r.RevokesAcked, r.Lost(), p50.Seconds(), top.Seconds(), errorClasses(r.Classes))
	fmt.Fprintf(&b, "  faults: %d leader kills, %d follower kills, %d pauses in %s (%.1f acknowledged writes/s)\n",
		r.LeaderKills, r.FollowerKills, r.Pauses, r.Elapsed.Round(time.Second),
		float64(r.IssuesAcked+r.RevokesAcked)/max(r.Elapsed.Seconds(), 1))
	fmt.Fprintf(&b, "  acknowledged: %d issues, %d revocations; checked %d tokens on every node: %d lost issues, %d lost revocations\n",
		r.IssuesAcked, r.RevokesAcked, r.Checked, r.LostIssues, r.LostRevokes)
	fmt.Fprintf(&b, "  unknown revocations: %d, answered differently by the nodes: %d; stale reads under load: %d\n",
		r.Unknown, r.Inconsistent, r.StaleReads)
	if len(r.Failovers) > 0 {
		fmt.Fprintf(&b, "  failover (SIGKILL of the leader to the next acknowledged write): p50 %.2fs p90 %.2fs max %.2fs\n",
			p50.Seconds(), percentile(r.Failovers, 0.9).Seconds(), top.Seconds())
	}
	if len(r.Unexpected) > 0 {
		fmt.Fprintf(&b, "  unexpected answers (first %d): %s\n", len(r.Unexpected), strings.Join(r.Unexpected, "; "))
	}
	for _, d := range r.Details {
		fmt.Fprintf(&b, "  %s\n", d)
	}
	if r.Dir != "" {
		fmt.Fprintf(&b, "  node logs and data: %s\n", r.Dir)
	}
	return b.String()
}

// percentile is the nearest-rank percentile of ds (q in (0, 1]).
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// runner is one run's state.
type runner struct {
	cfg  Config
	c    *cluster
	led  *ledger
	oc   *oauthClient
	turn map[fault]int // rotates the follower chosen, per kind of fault
	t0   time.Time
}

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Log != nil {
		fmt.Fprintf(r.cfg.Log, "%7.1fs  %s\n", time.Since(r.t0).Seconds(), fmt.Sprintf(format, args...))
	}
}

// Run starts the cluster, applies the faults under load, checks every
// acknowledged write and stops the cluster. An error means the run could
// not be completed (a node would not start, no leader or write within
// cfg.Timeout); what it found is in Result, whose OK says whether the
// guarantee held.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	if errUnsupported != nil {
		return res, errUnsupported
	}
	cfg.defaults()
	if cfg.Tokend == "" {
		return res, errors.New("chaos: no tokend binary given")
	}
	dir, tmp := cfg.Dir, cfg.Dir == ""
	if tmp {
		if dir, err = os.MkdirTemp("", "tokend-chaos-"); err != nil {
			return res, err
		}
	}
	r := &runner{cfg: cfg, led: newLedger(), t0: time.Now(), turn: map[fault]int{}}
	defer func() {
		res.Elapsed = time.Since(r.t0)
		if tmp && err == nil && res.OK() {
			_ = os.RemoveAll(dir)
		} else {
			res.Dir = dir
		}
	}()
	r.logf("starting 3 nodes of %s in %s (seed %d)", cfg.Tokend, dir, cfg.Seed)
	if r.c, err = startCluster(ctx, cfg.Tokend, dir, 3, cfg.Timeout); err != nil {
		return res, err
	}
	defer r.c.stop()
	id, secret, err := r.c.createClient(ctx, cfg.Timeout)
	if err != nil {
		return res, err
	}
	r.oc = newOAuthClient(id, secret, r.led, 3*time.Second)
	defer r.oc.close()
	err = r.faultsUnderLoad(ctx, &res)
	res.Classes, res.Unexpected, res.StaleReads = r.led.report()
	res.IssuesAcked, res.RevokesAcked = r.led.counts()
	if err != nil {
		return res, err
	}
	r.logf("checking %d tokens on every node", len(r.led.snapshot()))
	v, err := r.verify(ctx)
	res.Checked, res.LostIssues, res.LostRevokes = v.checked, v.lostIssues, v.lostRevokes
	res.Unknown, res.Inconsistent = v.unknown, v.inconsistent
	res.Details = append(r.led.violations(), v.details...)
	return res, err
}

// faultsUnderLoad runs the schedule under load, then stops the load and
// has one more write acknowledged: the barrier the final check relies on.
func (r *runner) faultsUnderLoad(ctx context.Context, res *Result) error {
	ld := startLoad(ctx, r.cfg.Workers, r.c.nodes, r.oc, r.cfg.Seed)
	defer ld.stop()
	plan := schedule(r.cfg.LeaderKills, r.cfg.FollowerKills, r.cfg.Pauses)
	for i, f := range plan {
		// Each fault hits a cluster that is taking writes: wait for some
		// acknowledged since it recovered from the last one.
		base := r.led.acked()
		if err := poll(ctx, r.cfg.Timeout, "writes under load", func() error {
			if n := r.led.acked() - base; n < r.cfg.WritesBetween {
				return fmt.Errorf("%d writes acknowledged", n)
			}
			return nil
		}); err != nil {
			return err
		}
		r.logf("fault %d/%d: %s", i+1, len(plan), f)
		d, err := r.apply(ctx, f)
		if err != nil {
			return fmt.Errorf("fault %d (%s): %w", i+1, f, err)
		}
		switch f {
		case leaderKill:
			res.LeaderKills++
			res.Failovers = append(res.Failovers, d)
		case followerKill:
			res.FollowerKills++
		default:
			res.Pauses++
		}
	}
	ld.stop()
	if _, err := r.awaitWrite(ctx, nil, time.Now()); err != nil {
		return fmt.Errorf("the last write: %w", err)
	}
	return r.c.waitAllReady(ctx, r.cfg.Timeout)
}
