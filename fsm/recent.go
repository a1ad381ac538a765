package fsm

import (
	"sync"
	"sync/atomic"
)

// Changes in flight: which tokens were changed by entries not yet known to
// be visible on every node that serves reads.
//
// A node applies entry i before the leader acknowledges it, so a read here
// could observe i while a read on a lease holder that has not applied i
// yet misses it: the first read must not answer before i is visible
// everywhere (package cluster's doc, "Consistency"). The consensus layer
// tells the state machine its visibility floor (SetVisibleFloor: every
// node serving reads has applied every entry at or below it), and Apply
// remembers, per token key, the index of its latest change while that
// index is above the floor. A read asks InFlight after its lookup and,
// when it gets an index, waits for the floor to reach it.
//
// The record is made before the change itself becomes visible to readers
// (index.put and index.del record first; revokeGrant records before it
// sets the revoked flag), so a reader whose lookup saw a change finds it
// here, or finds it pruned, which happens only after the floor passed it.
//
// Cost: nothing per token in the flat tables. While nothing is in flight a
// read pays two atomic loads; an entry lives from its apply to the next
// floor rise (about one round trip). A burst larger than recentMax keys (a
// client's revocation with a million tokens) is recorded as one index that
// covers every key, so the table never holds more than recentMax keys; a
// restored snapshot is recorded the same way. The expired tokens a purge
// drops are not recorded (index.deleteIf): they expired by the proposer's
// clock, and expiry is judged by each reader's clock anyway; the redeemed
// codes it drops with their grant's last token are.

// recentShards spreads readers of different keys over separate locks.
const recentShards = 64

// recentMax bounds the keys held; beyond it a change covers every key.
const recentMax = 1 << 16

type recent struct {
	// at is the index of the entry being applied (apply goroutine only).
	at uint64
	// hi is the highest index recorded, floor the visibility floor: while
	// hi <= floor nothing is in flight and readers look no further.
	hi    atomic.Uint64
	floor atomic.Uint64
	// all: every key counts as changed at this index.
	all  atomic.Uint64
	held atomic.Int64 // keys in the shards

	// queue holds every recorded (index, key) in apply order from head
	// on, so pruning stops at the first one above the floor.
	qmu   sync.Mutex
	queue []recentEntry
	head  int

	shards [recentShards]recentShard
}

type recentEntry struct {
	index uint64
	k     key
}

type recentShard struct {
	mu sync.Mutex
	m  map[key]uint64 // latest change above the floor, by key
	_  [48]byte       // one shard per cache line
}

func (r *recent) shard(k key) *recentShard { return &r.shards[k[0]%recentShards] }

// touch records that the entry being applied changes k. Called before the
// change is made visible.
func (r *recent) touch(k key) {
	if r == nil {
		return
	}
	i := r.at
	if i <= r.floor.Load() || i <= r.all.Load() {
		return // visible everywhere already, or covered
	}
	if r.held.Load() >= recentMax {
		r.coverAll(i)
		return
	}
	storeMax(&r.hi, i)
	s := r.shard(k)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[key]uint64)
	}
	old, had := s.m[k]
	s.m[k] = i
	s.mu.Unlock()
	if old == i {
		return // already queued for this entry
	}
	if !had {
		r.held.Add(1)
	}
	r.qmu.Lock()
	r.queue = append(r.queue, recentEntry{i, k})
	r.qmu.Unlock()
}

// coverAll records that every key counts as changed at index i.
func (r *recent) coverAll(i uint64) {
	storeMax(&r.all, i)
	storeMax(&r.hi, i)
}

// pending returns the index of the latest change to k above the floor, or
// 0 when none is.
func (r *recent) pending(k key) uint64 {
	fl := r.floor.Load()
	if r.hi.Load() <= fl {
		return 0
	}
	var p uint64
	if a := r.all.Load(); a > fl {
		p = a
	}
	s := r.shard(k)
	s.mu.Lock()
	i := s.m[k]
	s.mu.Unlock()
	if i > fl && i > p {
		p = i
	}
	return p
}

// setFloor raises the floor to f (never lowers it) and forgets every
// change at or below it.
func (r *recent) setFloor(f uint64) {
	if !storeMax(&r.floor, f) {
		return
	}
	r.qmu.Lock()
	defer r.qmu.Unlock()
	for r.head < len(r.queue) && r.queue[r.head].index <= f {
		e := r.queue[r.head]
		r.head++
		s := r.shard(e.k)
		s.mu.Lock()
		if s.m[e.k] == e.index {
			delete(s.m, e.k)
			r.held.Add(-1)
		}
		s.mu.Unlock()
	}
	switch {
	case r.head == len(r.queue) && cap(r.queue) > recentMax/16:
		r.queue, r.head = nil, 0 // after a burst: give the memory back
	case r.head == len(r.queue):
		r.queue, r.head = r.queue[:0], 0
	case r.head > len(r.queue)/2:
		n := copy(r.queue, r.queue[r.head:])
		r.queue, r.head = r.queue[:n], 0
	}
}

// storeMax raises v to x and reports whether it did.
func storeMax(v *atomic.Uint64, x uint64) bool {
	for {
		cur := v.Load()
		if x <= cur {
			return false
		}
		if v.CompareAndSwap(cur, x) {
			return true
		}
	}
}

// InFlight returns the log index of the latest change to the token with
// hash h that is above the visibility floor (SetVisibleFloor), or 0 when
// every change to it is visible on every node serving reads. Call it after
// the lookup whose answer it qualifies; it allocates nothing.
func (f *FSM) InFlight(h Hash) uint64 { return f.recent.pending(keyOf(h)) }

// SetVisibleFloor tells the state machine that every node serving reads
// has applied every entry at or below index. It never lowers the floor.
// Safe to call from any goroutine.
func (f *FSM) SetVisibleFloor(index uint64) { f.recent.setFloor(index) }

// VisibleFloor is the floor last set.
func (f *FSM) VisibleFloor() uint64 { return f.recent.floor.Load() }

// InFlightKeys is the number of token keys with a change in flight held
// now (for tests and metrics).
func (f *FSM) InFlightKeys() int { return int(f.recent.held.Load()) }
