package cluster

import (
	"container/heap"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// The read-lease protocol as data structures (doc.go has the argument).
//
// leaseTable is the leader's half for one term and holderLease the
// follower's. Neither reads a clock, asks Raft anything or starts a timer:
// time (nanoseconds on the node's monotonic clock, Node.sinceStart), the
// term and whether leadership is confirmed are arguments, so the
// invariants can be tested without Raft (lease_test.go):
//
//   - a holder never serves past the leader's expiry for it (holderUntil
//     ends holderMargin before the leader's view, counted from an earlier
//     instant);
//   - the floor never decreases;
//   - an acknowledged index is at or below the applied index of every
//     holder whose lease is valid, now and later (a lease is granted only
//     at or above the floor, and the floor is raised to every acknowledged
//     index under the same mutex that grants).
//
// Acknowledgement is monotone in the index: if i may be acknowledged, so
// may every j < i. So waiters sit in a min-heap by index, and whatever
// raises the acknowledgeable bound (a report, a lease running out, the end
// of the office wait) releases a prefix of the heap at once: one report
// answers a whole batch of writes, and there is no timer or goroutine per
// request. Only the expiry of a lease that blocks a waiter needs a timer,
// and the table asks for one at a time through schedule.

// leaseTable is the leader's record of read-lease holders for one term.
type leaseTable struct {
	term uint64
	// writesAt is when the first write may be acknowledged: every lease an
	// earlier leader granted has expired by then.
	writesAt int64
	// schedule asks the owner to call expire at (or soon after) the given
	// time. Called with mu held; it must not call back into the table.
	schedule func(at int64)

	mu sync.Mutex
	// ready: the term's barrier has been applied; no lease before that.
	ready bool
	// floor is the highest index acknowledged (or the barrier's index); a
	// lease is granted only to a node that has applied at least this.
	floor   uint64
	holders map[string]*leaseHolder
	waiters waiterHeap
	armedAt int64 // the time schedule was last asked for; 0: none pending
}

// leaseHolder is one node's last report and the end of its lease, both
// as the leader sees them.
type leaseHolder struct {
	applied uint64
	expires int64 // leader's clock; 0: never granted
}

// visWaiter is a write waiting to be acknowledged.
type visWaiter struct {
	index uint64
	since int64         // when it started waiting (leader's clock)
	done  chan struct{} // closed when the index may be acknowledged
	gone  bool          // the caller stopped waiting; under leaseTable.mu
}

// leaseGrant is the table's answer to a report.
type leaseGrant struct {
	granted bool
	reason  string // why not, when not granted
}

func newLeaseTable(term uint64, writesAt int64, schedule func(at int64)) *leaseTable {
	return &leaseTable{term: term, writesAt: writesAt, schedule: schedule, holders: make(map[string]*leaseHolder)}
}

// setReady records that the term's barrier at index has been applied:
// leases may be granted from now on, to nodes that applied at least it.
func (t *leaseTable) setReady(index uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ready = true
	t.floor = max(t.floor, index)
}

func (t *leaseTable) isReady() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ready
}

// report records that holder id has applied everything up to applied (it
// believes term is current) and decides whether it gets a lease of
// leaseLength from now. confirmed says the leader's right to serve reads
// holds now (Raft leadership confirmed by a quorum recently enough, see
// leaderState.mayServe); without it a grant could outlive a newer
// leader's first acknowledgement.
func (t *leaseTable) report(now int64, id string, applied, term uint64, confirmed bool) leaseGrant {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.holders[id]
	if h == nil {
		h = &leaseHolder{}
		t.holders[id] = h
	}
	// Reports from one holder are sequential (its lease loop has one in
	// flight), so assignment, not max, is right, and it stays right if the
	// holder restarted behind: a lower applied index only holds back
	// acknowledgements until the old lease runs out.
	h.applied = applied
	var g leaseGrant
	switch {
	case !t.ready:
		g.reason = "leader not ready"
	case !confirmed:
		g.reason = "leadership not confirmed"
	case term > t.term:
		g.reason = "stale leader"
	case applied < t.floor:
		g.reason = "behind"
	case t.blocksStaleWaiterLocked(now, applied):
		// At the floor but not applying: renewing would hold every
		// acknowledgement back for as long as it keeps reporting (a
		// follower whose state machine hangs while its lease loop runs).
		// Refused, its lease lapses and the writes go on.
		g.reason = "lagging"
	default:
		h.expires = now + int64(leaseLength)
		g.granted = true
	}
	t.releaseLocked(now)
	return g
}

// await decides whether index may be acknowledged at now. If it may, the
// floor is raised to it and await returns nil. Otherwise it returns a
// waiter whose done channel is closed once it may (the floor raised
// then); a caller that stops waiting first calls abandon.
func (t *leaseTable) await(now int64, index uint64) *visWaiter {
	t.mu.Lock()
	defer t.mu.Unlock()
	if bound, _ := t.boundLocked(now); index <= bound {
		t.floor = max(t.floor, index)
		return nil
	}
	w := &visWaiter{index: index, since: now, done: make(chan struct{})}
	heap.Push(&t.waiters, w)
	t.armLocked(now)
	return w
}

// blocksStaleWaiterLocked says whether a holder that has applied up to
// applied holds back the lowest waiting write, and that write has waited
// lagLimit or longer. The lowest index is the one the holder blocks
// first; a healthy holder applies a committed entry within milliseconds.
func (t *leaseTable) blocksStaleWaiterLocked(now int64, applied uint64) bool {
	return len(t.waiters) > 0 && t.waiters[0].index > applied && now-t.waiters[0].since >= int64(lagLimit)
}

// abandon drops a waiter whose caller gave up. If it was released
// meanwhile, the floor has already been raised, which is harmless: the
// index was acknowledgeable.
func (t *leaseTable) abandon(w *visWaiter) {
	t.mu.Lock()
	w.gone = true
	t.mu.Unlock()
}

// expire is called at (or after) a time schedule asked for: leases that
// ran out no longer hold waiters back.
func (t *leaseTable) expire(now int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.armedAt = 0
	t.releaseLocked(now)
}

// holdersAt counts nodes whose lease is unexpired at now (leader's view).
func (t *leaseTable) holdersAt(now int64) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := 0
	for _, h := range t.holders {
		if h.expires > now {
			c++
		}
	}
	return c
}

// publishedFloor is the floor once it holds for every node that may
// serve reads: after the office wait (holders of earlier leaders' leases
// may not have applied this term's barrier before), barrier applied;
// 0 before.
func (t *leaseTable) publishedFloor(now int64) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ready || now < t.writesAt {
		return 0
	}
	return t.floor
}

// floorIndex is the current floor.
func (t *leaseTable) floorIndex() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.floor
}

// boundLocked returns the highest index that may be acknowledged at now
// (none during the office wait, every index when no holder blocks) and
// when it next rises by time alone if nothing is reported (0: never).
func (t *leaseTable) boundLocked(now int64) (bound uint64, next int64) {
	if now < t.writesAt {
		return 0, t.writesAt
	}
	bound = math.MaxUint64
	for _, h := range t.holders {
		if h.expires > now && h.applied < bound {
			bound = h.applied
		}
	}
	return bound, 0
}

// releaseLocked closes every waiter at or below the current bound, raising
// the floor to each, and arms the timer for the rest.
func (t *leaseTable) releaseLocked(now int64) {
	if len(t.waiters) == 0 {
		return
	}
	bound, _ := t.boundLocked(now)
	for len(t.waiters) > 0 && t.waiters[0].index <= bound {
		w := heap.Pop(&t.waiters).(*visWaiter)
		t.floor = max(t.floor, w.index)
		if !w.gone {
			close(w.done)
		}
	}
	t.armLocked(now)
}

// armLocked asks for an expire call when the lowest waiter could next be
// released by time alone: the end of the office wait, or the earliest
// expiry among the leases that hold it back.
func (t *leaseTable) armLocked(now int64) {
	if len(t.waiters) == 0 || t.schedule == nil {
		return
	}
	_, at := t.boundLocked(now)
	if at == 0 {
		low := t.waiters[0].index
		for _, h := range t.holders {
			if h.expires > now && h.applied < low && (at == 0 || h.expires < at) {
				at = h.expires
			}
		}
	}
	if at == 0 {
		return // only a report can release it
	}
	if t.armedAt == 0 || at < t.armedAt || t.armedAt <= now {
		t.armedAt = at
		t.schedule(at)
	}
}

// waiterHeap is a min-heap of waiters by index (container/heap).
type waiterHeap []*visWaiter

func (h waiterHeap) Len() int           { return len(h) }
func (h waiterHeap) Less(i, j int) bool { return h[i].index < h[j].index }
func (h waiterHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *waiterHeap) Push(x any)        { *h = append(*h, x.(*visWaiter)) }
func (h *waiterHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return w
}

// holderLease is the read lease this node holds from a leader: when it
// ends on the node's monotonic clock (Node.sinceStart). It is atomic
// because every validation on a follower checks it.
type holderLease struct{ until atomic.Int64 }

// holderUntil is where a lease granted for leaseMS ends on the holder's
// clock: counted from when the holder sent the request (before the leader
// counted its own lease from its answer), less holderMargin for clock-rate
// drift. So the holder stops before the leader's view of the lease ends.
func holderUntil(sent, leaseMS int64) int64 {
	return sent + int64(time.Duration(leaseMS)*time.Millisecond-holderMargin)
}

func (l *holderLease) valid(now int64) bool { return now < l.until.Load() }

// extend moves the end of the lease to until if that is later.
func (l *holderLease) extend(until int64) {
	for {
		cur := l.until.Load()
		if until <= cur || l.until.CompareAndSwap(cur, until) {
			return
		}
	}
}

func (l *holderLease) clear() { l.until.Store(0) }
