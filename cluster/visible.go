package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Reads of writes in flight (doc.go, "Consistency", point 5).
//
// Every node keeps a visibility floor: an index every node that may serve
// reads has applied. The leader publishes its lease table's floor once its
// office wait is over (before that, holders of an earlier leader's leases
// may not have applied its barrier); a follower learns the leader's
// published floor from every lease answer. A published floor stays true:
// readers of the same term hold leases granted at or above the floor,
// later leaders hold, and lease only to nodes that applied, a barrier above
// every committed index, and earlier terms' readers stopped before the
// publishing leader's office wait ended. So the floor may only rise, and a
// node takes the highest it has heard of. The fsm forgets changes at or
// below it (fsm.SetVisibleFloor).
//
// A read that looked up a token changed above the floor waits until the
// floor reaches that change: the leader waits as its writes do
// (leaseTable.await); a follower asks the leader at once (a lease request
// carrying the index it wants; the leader answers when its floor reaches
// it, or after floorWaitMax, whichever is first) and asks again until the
// floor is there or the read gives up.

// visibility is a node's floor and what its readers wait for.
type visibility struct {
	floor  atomic.Uint64
	floorN notifier // notified when floor rises
	// want is the highest index a reader on this follower waits for; the
	// lease loop asks for it while it is above the floor.
	want atomic.Uint64

	// legacy is the leader address that answered opLeaseFloor as an
	// unknown operation (a previous release), and when: such a leader
	// publishes no floor, so this node serves reads as that release did
	// (only acknowledged writes are linearizable) until legacyRecheck
	// later, when it asks again.
	mu       sync.Mutex
	legacyAt string
	legacyT  time.Time
}

const (
	// readVisibleWait bounds a read's wait for a write in flight: as long
	// as the write itself may wait for a stuck holder (lagLimit +
	// leaseLength, doc.go) and longer than a new leader's office wait.
	readVisibleWait = lagLimit + leaseLength + 2*leaseRenew
	// floorWaitMax is how long a leader holds a lease answer back for a
	// floor a follower's reader wants.
	floorWaitMax = leaseRenew
	// floorRetry paces a follower's repeated asks while its reader waits.
	floorRetry    = 5 * time.Millisecond
	legacyRecheck = 10 * time.Second
)

// raiseFloor records that every node serving reads has applied index.
func (n *Node) raiseFloor(index uint64) {
	for {
		cur := n.vis.floor.Load()
		if index <= cur {
			return
		}
		if n.vis.floor.CompareAndSwap(cur, index) {
			break
		}
	}
	n.fsm.SetVisibleFloor(index)
	n.vis.floorN.notify()
}

// publishLeaderFloor raises the node's floor to the lease table's, once
// it counts (after the office wait, barrier applied).
func (n *Node) publishLeaderFloor(ls *leaderState) {
	n.raiseFloor(ls.leases.publishedFloor(n.sinceStart()))
}

// VisibleFloor is this node's visibility floor: every node that may serve
// reads has applied every entry at or below it.
func (n *Node) VisibleFloor() uint64 { return n.vis.floor.Load() }

// BeginRead is ReadReady for one read, plus its fence: the instant on this
// node's clock until which the right to serve it holds (the lease's end,
// or the end of the leader's read window). FinishRead checks it after the
// lookup, so the state read was read while the right held.
func (n *Node) BeginRead() (int64, error) {
	if err := n.disk.check(); err != nil {
		return 0, err
	}
	if n.raft.State() == raft.Leader {
		ls := n.leader.Load()
		if ls != nil && ls.term == n.raft.CurrentTerm() && ls.isReady() {
			if until := ls.readUntil.Load(); n.sinceStart() < until {
				return until, nil
			}
		}
		return 0, unavailable("", ErrNotReady)
	}
	if until := n.lease.until.Load(); n.sinceStart() < until {
		return until, nil
	}
	if _, id := n.raft.LeaderWithID(); id == "" {
		return 0, unavailable("", ErrNoLeader)
	}
	return 0, unavailable("", ErrNoLease)
}

// FinishRead is called after a read's local lookup with BeginRead's fence
// and the fsm's InFlight index of what it read (0: nothing in flight). It
// returns nil when the answer may be given: the lookup happened before the
// fence, and what it saw is visible on every node that serves reads (it
// waits for that, bounded by ctx and readVisibleWait). Otherwise an
// *UnavailableError. Without a write in flight it costs one clock read.
func (n *Node) FinishRead(ctx context.Context, fence int64, index uint64) error {
	if n.sinceStart() >= fence {
		return unavailable("read outlived the read lease", ErrNoLease)
	}
	if index <= n.vis.floor.Load() {
		return nil
	}
	start := time.Now()
	err := n.waitFloor(ctx, index)
	if err != nil {
		n.metrics.readWaitObs[1].Observe(time.Since(start).Seconds())
	} else {
		n.metrics.readWaitObs[0].Observe(time.Since(start).Seconds())
	}
	return err
}

// waitFloor waits until this node's floor reaches index. Each round
// re-reads the node's role (it may win or lose leadership meanwhile) and
// lasts at most leaseRenew.
func (n *Node) waitFloor(ctx context.Context, index uint64) error {
	ctx, cancel := context.WithTimeout(ctx, readVisibleWait)
	defer cancel()
	for {
		ch := n.vis.floorN.wait()
		if index <= n.vis.floor.Load() {
			return nil
		}
		if ls := n.leader.Load(); ls != nil && n.raft.State() == raft.Leader {
			rctx, rcancel := context.WithTimeout(ctx, leaseRenew)
			_ = n.leaderWait(rctx, ls, index) // publishes once acknowledgeable
			rcancel()
		} else {
			if n.leaderIsLegacy() {
				return nil // a previous release's leader: its guarantee (above)
			}
			for {
				cur := n.vis.want.Load()
				if index <= cur || n.vis.want.CompareAndSwap(cur, index) {
					break
				}
			}
			n.kickLease()
		}
		t := time.NewTimer(leaseRenew)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return unavailable("waiting for a write in flight to become visible", ErrTimeout)
		case <-n.shutdownCh:
			t.Stop()
			return unavailable("", ErrShutdown)
		}
		t.Stop()
	}
}

// leaderWait waits, on the leader, until index may be acknowledged (as a
// write at index would) and publishes the floor.
func (n *Node) leaderWait(ctx context.Context, ls *leaderState, index uint64) error {
	if !ls.isReady() || !n.waitApplied(ctx, index) {
		return unavailable("waiting for a write in flight to become visible", ErrTimeout)
	}
	if w := ls.leases.await(n.sinceStart(), index); w != nil {
		select {
		case <-w.done:
		case <-ctx.Done():
			ls.leases.abandon(w)
			return unavailable("waiting for a write in flight to become visible", ErrTimeout)
		}
	}
	n.publishLeaderFloor(ls)
	return nil
}

// serveFloor is the floor a lease answer carries: the leader's published
// floor, after waiting up to floorWaitMax for want if it is above it.
func (n *Node) serveFloor(ls *leaderState, want uint64) uint64 {
	n.publishLeaderFloor(ls)
	if want > n.vis.floor.Load() {
		ctx, cancel := context.WithTimeout(n.stopCtx, floorWaitMax)
		_ = n.leaderWait(ctx, ls, want) // a timeout just answers the lower floor
		cancel()
	}
	return n.vis.floor.Load()
}

// kickLease makes the lease loop report now.
func (n *Node) kickLease() {
	select {
	case n.pushCh <- struct{}{}:
	default:
	}
}

// leaderIsLegacy says whether the current leader answered opLeaseFloor as
// unknown recently.
func (n *Node) leaderIsLegacy() bool { return n.isLegacy(n.leaderAddr()) }

func (n *Node) isLegacy(addr string) bool {
	n.vis.mu.Lock()
	defer n.vis.mu.Unlock()
	return addr != "" && addr == n.vis.legacyAt && time.Since(n.vis.legacyT) < legacyRecheck
}

func (n *Node) markLegacy(addr string, legacy bool) {
	n.vis.mu.Lock()
	defer n.vis.mu.Unlock()
	if legacy {
		n.vis.legacyAt, n.vis.legacyT = addr, time.Now()
		n.vis.floorN.notify() // waiting readers re-check
	} else if n.vis.legacyAt == addr {
		n.vis.legacyAt = ""
	}
}
