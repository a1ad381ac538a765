package cluster

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/fsm"
)

// leaderState exists while this node leads, one per term.
type leaderState struct {
	term     uint64
	cancel   context.CancelFunc
	officeAt time.Time
	// writesAt is when this leader may first acknowledge a write: every
	// lease granted by an earlier leader has expired by then.
	writesAt time.Time

	// readUntil is when this leader's right to answer reads ends, on the
	// node's monotonic clock (Node.sinceStart): a successful leadership
	// check that started at t extends it to t + leaderReadWindow.
	readUntil atomic.Int64

	// ready: the term's barrier (a Noop command) has been applied, so
	// the local FSM holds every entry committed before this term. Atomic
	// because every validation on the leader checks it.
	ready atomic.Bool

	// leases decides grants and acknowledgements (lease.go); timer is its
	// one expiry timer.
	leases *leaseTable
	timer  *time.Timer
}

func (ls *leaderState) isReady() bool { return ls.ready.Load() }

// mayServe reports whether the leader's read right holds at now.
func (ls *leaderState) mayServe(now int64) bool { return now < ls.readUntil.Load() }

// verifyLoop keeps the leader's read right alive. raft.State() alone is not
// enough: a leader whose process is paused (SIGSTOP, a long GC or VM stall)
// keeps believing it leads until its own timer runs after the pause, and
// meanwhile a new leader may have acknowledged writes; requests queued
// during the pause would then be answered from stale memory. So the leader
// serves reads only until leaderReadWindow after the start of its last
// successful quorum check (raft.VerifyLeader): every voter that answered
// that check had not yet left this term, so any new leader took office
// later and acknowledges nothing before officeWait after that.
func (n *Node) verifyLoop(ctx context.Context, ls *leaderState) {
	defer n.wg.Done()
	t := time.NewTicker(verifyInterval)
	defer t.Stop()
	for {
		start := n.sinceStart()
		// Waited for only as long as this leadership lasts (see await).
		// Not raft.VerifyLeader alone: it can be answered by a message
		// sent before start (confirm.go).
		err := n.confirmLeadership(ctx, ls.term)
		if err != nil && err == ctx.Err() {
			return
		}
		switch {
		case err == nil:
			ls.readUntil.Store(start + int64(leaderReadWindow))
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) watchLeadership() {
	defer n.wg.Done()
	for {
		select {
		case <-n.shutdownCh:
			return
		case isLeader := <-n.notifyCh:
			if isLeader {
				n.becomeLeader()
			} else if ls := n.leader.Swap(nil); ls != nil {
				ls.cancel()
				n.log.Info("cluster: lost leadership", "term", ls.term)
			}
		}
	}
}

func (n *Node) becomeLeader() {
	// From stopCtx: a term that begins while Shutdown runs ends with it.
	ctx, cancel := context.WithCancel(n.stopCtx)
	now := time.Now()
	ls := &leaderState{
		term:     n.raft.CurrentTerm(),
		cancel:   cancel,
		officeAt: now,
	}
	writesAt := n.sinceStart()
	if len(n.cfg.ClusterKey) > 0 {
		// Without a cluster key nobody can ever hold a lease, so there is
		// nothing to wait out.
		writesAt += int64(officeWait)
	}
	// One timer per term releases waiters held back by leases that run
	// out (or by the office wait); reports release the rest.
	ls.timer = time.AfterFunc(time.Hour, func() { ls.leases.expire(n.sinceStart()) })
	ls.timer.Stop()
	ls.leases = newLeaseTable(ls.term, writesAt, func(at int64) {
		ls.timer.Reset(time.Duration(at - n.sinceStart()))
	})
	n.lease.clear()
	if old := n.leader.Swap(ls); old != nil {
		old.cancel()
	}
	n.metrics.becameLeader.Inc()
	n.log.Info("cluster: became leader", "term", ls.term)
	n.wg.Add(2)
	go n.leaderLoop(ctx, ls)
	go n.verifyLoop(ctx, ls)
}

// leaderLoop commits a barrier, then runs the purge and reconcile loops
// until leadership ends.
func (n *Node) leaderLoop(ctx context.Context, ls *leaderState) {
	defer n.wg.Done()
	for {
		f := n.raft.Apply(fsm.Encode(&fsm.Noop{}), applyTimeout)
		// Not f.Error(): a leader shut down right after taking office
		// may leave it unanswered, and Shutdown waits for this loop.
		err := await(ctx, f)
		if err != nil && err == ctx.Err() {
			return
		}
		if err == nil {
			ls.leases.setReady(f.Index())
			ls.ready.Store(true)
			n.publishLeaderFloor(ls) // counts only after the office wait
			break
		}
		n.log.Warn("cluster: leader barrier failed", "err", err)
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrRaftShutdown) {
			return
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return
		}
	}
	purge := time.NewTicker(n.cfg.PurgeInterval)
	defer purge.Stop()
	reconcile := time.NewTicker(reconcileInterval)
	defer reconcile.Stop()
	n.reconcile(ls)
	for {
		select {
		case <-ctx.Done():
			return
		case <-purge.C:
			f := n.raft.Apply(fsm.Encode(&fsm.Purge{Now: n.cfg.Now().UnixNano()}), applyTimeout)
			if err := await(ctx, f); err != nil {
				n.log.Warn("cluster: purge failed", "err", err)
			} else {
				if r, ok := f.Response().(fsm.Result); ok && r.Count > 0 {
					n.log.Debug("cluster: purged expired tokens", "count", r.Count)
				}
				// Acknowledged like any write, so the floor passes the
				// codes it dropped (visible.go) without waiting for the
				// next write; bounded, the loop has more to do.
				wctx, cancel := context.WithTimeout(ctx, readVisibleWait)
				_ = n.waitVisible(wctx, ls, f.Index())
				cancel()
			}
		case <-reconcile.C:
			n.reconcile(ls)
		case <-n.reconcileCh:
			n.reconcile(ls)
		}
	}
}

// await waits for a raft future, or returns ctx's error if ctx ends
// first. raft does not answer every future (one queued on a buffered
// channel just before shutdown stays pending forever), so nothing may
// block on Error() without a way out; the waiting goroutine is left to the
// future.
func await(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// errNotLeader means the command was not proposed; retrying elsewhere is
// safe.
var errNotLeader = errors.New("not the leader")

// applyLeader proposes cmd, waits for it to commit and apply locally, then
// for every read-lease holder to apply it (the visibility barrier).
func (n *Node) applyLeader(ctx context.Context, cmd []byte) (fsm.Result, error) {
	ls := n.leader.Load()
	if ls == nil {
		return fsm.Result{}, errNotLeader
	}
	timeout := applyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := n.raft.Apply(cmd, timeout)
	err := await(ctx, f)
	if err != nil && err == ctx.Err() {
		return fsm.Result{}, unavailable("apply", ErrTimeout)
	}
	res, err := applyResult(f, err)
	if err != nil {
		return fsm.Result{}, err
	}
	if err := n.waitVisible(ctx, ls, f.Index()); err != nil {
		return fsm.Result{}, err
	}
	return res, nil
}

// applyResult maps a finished future's error (err) and response to what
// Apply returns; errNotLeader means nothing was proposed.
func applyResult(f raft.ApplyFuture, err error) (fsm.Result, error) {
	switch {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader):
		return fsm.Result{}, errNotLeader
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fsm.Result{}, unavailable("apply", ErrTimeout)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fsm.Result{}, unavailable("apply", ErrShutdown)
	default:
		return fsm.Result{}, unavailable("apply", err)
	}
	res, ok := f.Response().(fsm.Result)
	if !ok {
		return fsm.Result{}, errors.New("cluster: unexpected apply response")
	}
	return res, nil
}

// waitVisible returns once index may be acknowledged: this leader's
// office wait is over and every node holding an unexpired lease has
// reported applied >= index (leaseTable.await). Holders that fall behind
// stop counting when their lease expires, so the wait is bounded by one
// lease length. It starts no timer or goroutine of its own.
func (n *Node) waitVisible(ctx context.Context, ls *leaderState, index uint64) error {
	start := time.Now()
	defer func() { n.metrics.visibility.Observe(time.Since(start).Seconds()) }()
	if h := n.cfg.hooks; h != nil && h.ackEarly {
		return nil // a bug planted by a test (testhooks.go)
	}
	w := ls.leases.await(n.sinceStart(), index)
	if w == nil {
		n.publishLeaderFloor(ls)
		return nil
	}
	select {
	case <-w.done:
		n.publishLeaderFloor(ls)
		return nil
	case <-ctx.Done():
		ls.leases.abandon(w)
		if n.sinceStart() < ls.leases.writesAt {
			return unavailable("new leader settling", ErrTimeout)
		}
		return unavailable("waiting for followers to apply", ErrTimeout)
	}
}

// grantLease records a holder's report and decides whether it may serve
// reads for another lease length. The answer carries the leader's
// published floor, after waiting (briefly) for the one req wants.
func (n *Node) grantLease(req leaseRequest) leaseResponse {
	ls := n.leader.Load()
	if ls == nil || n.raft.State() != raft.Leader || n.raft.CurrentTerm() != ls.term {
		resp := leaseResponse{Reason: "not leader"}
		n.metrics.observeLease(resp)
		return resp
	}
	n.hop("report received")
	now := n.sinceStart()
	g := ls.leases.report(now, req.ID, req.Applied, req.Term, ls.mayServe(now))
	resp := leaseResponse{Term: ls.term, Leader: n.cfg.NodeID, Granted: g.granted, Reason: g.reason}
	if g.granted {
		resp.LeaseMS = leaseLength.Milliseconds()
	}
	n.metrics.observeLease(resp)
	resp.Floor = n.serveFloor(ls, req.Want)
	return resp
}

// Apply runs an encoded fsm command through Raft and returns its result
// once the write is visible on every node that may serve reads. On a
// follower it forwards to the leader. Errors that mean "retry later"
// are *UnavailableError. It never takes longer than about 5s.
func (n *Node) Apply(ctx context.Context, cmd []byte) (fsm.Result, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, applyTimeout)
	defer cancel()
	var lastErr error = ErrNoLeader
	for {
		if n.stopping() {
			return fsm.Result{}, unavailable("apply", ErrShutdown)
		}
		if n.raft.State() == raft.Leader {
			res, err := n.applyLeader(ctx, cmd)
			if !errors.Is(err, errNotLeader) {
				n.metrics.observeApply("leader", start, err)
				return res, err
			}
			lastErr = ErrNoLeader
		} else if addr := n.leaderAddr(); addr != "" && n.fwd != nil {
			res, safe, err := n.fwd.forward(ctx, addr, cmd)
			n.metrics.observeForward(err, safe)
			if err == nil {
				// The result answers for itself (fsm.Result carries what a
				// response needs), so the caller's answer never depends on
				// this node's state. Waiting here only lets a caller read
				// its write on this node at once: if this node holds a
				// read lease, the leader already waited for it to apply
				// the entry, so the wait ends at once; if it holds none,
				// it answers no reads until it has caught up and got one.
				// A wait that runs out is therefore logged, not returned:
				// the write is committed, and an error would invite a
				// retry that the state machine must treat as token reuse
				// (a code or refresh token presented twice revokes its
				// grant).
				here := n.applied.Load() >= res.Index // the usual case: no timer
				if !here {
					wctx, wcancel := context.WithTimeout(ctx, leaseLength)
					here = n.waitApplied(wctx, res.Index)
					wcancel()
				}
				if !here {
					n.log.Warn("cluster: forwarded write committed but not yet applied here", "index", res.Index, "applied", n.applied.Load())
				}
				n.metrics.observeApply("forward", start, nil)
				return res, nil
			}
			if !safe {
				n.metrics.observeApply("forward", start, err)
				return fsm.Result{}, err
			}
			lastErr = err
		}
		if err := n.disk.check(); err != nil {
			lastErr = err // why this node cannot lead (diskhealth.go)
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			n.metrics.observeApply("none", start, lastErr)
			var ue *UnavailableError
			if errors.As(lastErr, &ue) {
				return fsm.Result{}, lastErr
			}
			return fsm.Result{}, unavailable("apply", lastErr)
		}
	}
}

// leaderAddr returns the current leader's internal address as Raft knows
// it, or "" when there is none or this node leads.
func (n *Node) leaderAddr() string {
	addr, id := n.raft.LeaderWithID()
	if id == "" || string(id) == n.cfg.NodeID {
		return ""
	}
	return string(addr)
}

// memberMeta is what member id gossips about itself (this node's own
// metadata for its own id); false when gossip has not heard of it.
func (n *Node) memberMeta(id string) (nodeMeta, bool) {
	if id == n.cfg.NodeID {
		return n.localMeta(), true
	}
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	if p := n.peers[id]; p != nil {
		return p.meta, true
	}
	return nodeMeta{}, false
}

// ReadReady returns nil when this node may answer validations from local
// memory right now: it is the leader and has applied its term's barrier,
// or it holds an unexpired read lease from a leader. While writes to
// raft.db fail it returns "disk: <error>" (diskhealth.go). A read that
// answers from local state uses BeginRead and FinishRead (visible.go).
func (n *Node) ReadReady() error {
	_, err := n.BeginRead()
	return err
}

// WaitReady polls ReadReady until it is nil or ctx ends.
func (n *Node) WaitReady(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		err := n.ReadReady()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-n.shutdownCh:
			return unavailable("", ErrShutdown)
		case <-t.C:
		}
	}
}
