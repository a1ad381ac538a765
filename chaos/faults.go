package chaos

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// fault is one step of the schedule.
type fault uint8

const (
	leaderKill fault = iota
	followerKill
	pauseFollower
	pauseLeader
)

func (f fault) String() string {
	return [...]string{"leader kill", "follower kill", "follower pause", "leader pause"}[f]
}

// schedule spreads followers follower kills and pauses pauses (alternately
// of a follower and of the leader) evenly among leaders leader kills.
func schedule(leaders, followers, pauses int) []fault {
	var out []fault
	fi, pi := 0, 0
	for i := 0; i < leaders; i++ {
		out = append(out, leaderKill)
		// After leader kill i+1, catch up with the evenly spread share.
		for ; followers > 0 && fi < followers && (fi+1)*leaders <= (i+1)*followers; fi++ {
			out = append(out, followerKill)
		}
		for ; pauses > 0 && pi < pauses && (pi+1)*leaders <= (i+1)*pauses; pi++ {
			out = append(out, []fault{pauseFollower, pauseLeader}[pi%2])
		}
	}
	for ; fi < followers; fi++ {
		out = append(out, followerKill)
	}
	for ; pi < pauses; pi++ {
		out = append(out, []fault{pauseFollower, pauseLeader}[pi%2])
	}
	return out
}

// apply runs one fault and returns the failover time of a leader kill
// (zero for the others) once every node is ready again.
func (r *runner) apply(ctx context.Context, f fault) (time.Duration, error) {
	leader, err := r.c.waitLeader(ctx, r.cfg.Timeout)
	if err != nil {
		return 0, err
	}
	victim := leader
	if f == followerKill || f == pauseFollower {
		victim = r.follower(f, leader)
	}
	var failover time.Duration
	switch f {
	case leaderKill, followerKill:
		at := time.Now()
		if err := victim.kill(); err != nil {
			return 0, err
		}
		if failover, err = r.awaitWrite(ctx, victim, at); err != nil {
			return 0, err
		}
		if err := victim.start(); err != nil {
			return 0, err
		}
	case pauseFollower, pauseLeader:
		if err := victim.signal(sigStop); err != nil {
			return 0, err
		}
		// The pause is the fault itself, not a wait for anything; the
		// load and the driver's writes go on through the other nodes.
		var pauseErr error
		failover, pauseErr = r.pauseFor(ctx, victim)
		if err := victim.signal(sigCont); err != nil {
			return 0, err
		}
		if pauseErr != nil {
			return 0, pauseErr
		}
	}
	if err := r.c.waitAllReady(ctx, r.cfg.Timeout); err != nil {
		return 0, fmt.Errorf("after the %s of %s: %w", f, victim.id, err)
	}
	r.logf("%s of %s: writes again after %.2fs, all ready", f, victim.id, failover.Seconds())
	if f != leaderKill {
		failover = 0
	}
	return failover, nil
}

// follower picks a follower of leader: for each kind of fault the first
// and the second follower (in node order) in turn, so every node gets
// killed and paused as a follower over a run.
func (r *runner) follower(f fault, leader *node) *node {
	var fs []*node
	for _, nd := range r.c.nodes {
		if nd != leader {
			fs = append(fs, nd)
		}
	}
	r.turn[f]++
	return fs[r.turn[f]%len(fs)]
}

// pauseFor keeps victim stopped for cfg.PauseFor and drives writes
// through the others meanwhile, so the cluster acknowledges writes the
// paused node has not seen; it returns how long the first one took.
func (r *runner) pauseFor(ctx context.Context, victim *node) (time.Duration, error) {
	at := time.Now()
	d, err := r.awaitWrite(ctx, victim, at)
	if err != nil {
		return 0, err
	}
	select {
	case <-ctx.Done():
		return d, ctx.Err()
	case <-time.After(time.Until(at.Add(r.cfg.PauseFor))):
		return d, nil
	}
}

// awaitWrite issues tokens through the nodes other than down, in turn,
// until one is acknowledged, and returns the time from at to that
// acknowledgement: how long the cluster could not take writes. down may be
// nil.
func (r *runner) awaitWrite(ctx context.Context, down *node, at time.Time) (time.Duration, error) {
	var d time.Duration
	i := 0
	what := "a write acknowledged"
	if down != nil {
		what += " without " + down.id
	}
	err := poll(ctx, r.cfg.Timeout, what, func() error {
		for range r.c.nodes {
			nd := r.c.nodes[i%len(r.c.nodes)]
			i++
			if nd == down || !nd.serving() {
				continue
			}
			if r.oc.issue(ctx, nd, "failover issue") != nil {
				d = time.Since(at)
				return nil
			}
			return errors.New("no acknowledgement yet")
		}
		return errors.New("no node to write to")
	})
	return d, err
}
