package cluster

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Disk faults at run time. Every write to raft.db goes through
// healthStore, which records its outcome in diskHealth. What keeps a
// failed write from being acknowledged is Raft itself: a leader whose
// StoreLogs fails answers the waiting futures with the error and steps
// down, and a follower whose append fails answers AppendEntries with a
// failure, so the entry counts towards no quorum there. What this file
// adds is that the node says so: while the last write failed, ReadReady
// returns "disk: <error>" (so /readyz does), Status carries the fault, and
// the log says it once per change. The next write that succeeds clears it.
//
// Raft's stable store writes (current term, vote) are different: raft
// panics when it cannot persist a new term, and lying about it would let a
// restarted node vote twice in one term. So healthStore retries them until
// they succeed: the node freezes (it stops answering Raft, exactly like a
// paused process, which the lease argument in doc.go already covers) and
// continues by itself once the disk takes writes again.

// stableRetry is how often a failing stable store write is retried.
const stableRetry = 250 * time.Millisecond

// faultLogEvery limits how often a changed error text is logged while the
// disk stays faulty.
const faultLogEvery = 10 * time.Second

// DiskFault describes the last failed write to the Raft store; Status
// reports it while no later write has succeeded.
type DiskFault struct {
	Op       string    `json:"op"`
	Error    string    `json:"error"`
	Since    time.Time `json:"since"`
	Failures uint64    `json:"failures"`
}

// diskHealth tracks whether the Raft store's writes succeed.
type diskHealth struct {
	log    *slog.Logger
	faulty atomic.Bool // fast path for successful writes

	mu       sync.Mutex
	fault    *DiskFault
	err      error
	loggedAt time.Time

	// inject, set only by tests, makes every write fail with its error
	// before it reaches bolt.
	inject atomic.Pointer[error]
}

func newDiskHealth(log *slog.Logger) *diskHealth { return &diskHealth{log: log} }

// record notes the outcome of one write.
func (d *diskHealth) record(op string, err error) {
	if err == nil && !d.faulty.Load() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if err == nil {
		if d.fault != nil {
			d.log.Info("cluster: disk writes succeed again", "op", op, "failed_since", d.fault.Since, "failures", d.fault.Failures)
		}
		d.fault, d.err = nil, nil
		d.faulty.Store(false)
		return
	}
	if d.fault == nil {
		d.fault = &DiskFault{Op: op, Error: err.Error(), Since: now}
		d.loggedAt = now
		d.log.Error("cluster: disk write failed; this node acknowledges no writes and serves no reads until writes succeed again", "op", op, "err", err)
	} else if d.fault.Op != op || d.fault.Error != err.Error() {
		d.fault.Op, d.fault.Error = op, err.Error()
		if now.Sub(d.loggedAt) >= faultLogEvery {
			d.loggedAt = now
			d.log.Error("cluster: disk write still failing", "op", op, "err", err, "failures", d.fault.Failures+1)
		}
	}
	d.fault.Failures++
	d.err = &UnavailableError{Reason: "disk", Err: errors.New(op + ": " + err.Error()), After: retryAfter}
	d.faulty.Store(true)
}

// check returns nil while writes succeed, else an *UnavailableError
// "disk: <op>: <error>".
func (d *diskHealth) check() error {
	if d == nil || !d.faulty.Load() {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// status returns a copy of the current fault, or nil.
func (d *diskHealth) status() *DiskFault {
	if d == nil || !d.faulty.Load() {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fault == nil {
		return nil
	}
	f := *d.fault
	return &f
}

// injected returns the error tests asked writes to fail with, or nil.
func (d *diskHealth) injected() error {
	if p := d.inject.Load(); p != nil {
		return *p
	}
	return nil
}

// healthStore is raft.LogStore and raft.StableStore over the bolt store,
// recording every write's outcome in h.
type healthStore struct {
	*raftboltdb.BoltStore
	h *diskHealth
}

var (
	_ raft.LogStore    = (*healthStore)(nil)
	_ raft.StableStore = (*healthStore)(nil)
)

func (s *healthStore) write(op string, f func() error) error {
	err := s.h.injected()
	if err == nil {
		err = f()
	}
	s.h.record(op, err)
	return err
}

func (s *healthStore) StoreLog(l *raft.Log) error {
	return s.write("store log", func() error { return s.BoltStore.StoreLog(l) })
}

func (s *healthStore) StoreLogs(logs []*raft.Log) error {
	return s.write("store log", func() error { return s.BoltStore.StoreLogs(logs) })
}

func (s *healthStore) DeleteRange(min, max uint64) error {
	return s.write("delete log range", func() error { return s.BoltStore.DeleteRange(min, max) })
}

func (s *healthStore) Set(k, v []byte) error {
	return s.stable(func() error { return s.BoltStore.Set(k, v) })
}

func (s *healthStore) SetUint64(k []byte, v uint64) error {
	return s.stable(func() error { return s.BoltStore.SetUint64(k, v) })
}

// stable retries a stable store write until it succeeds (see the comment
// at the top of the file). It does not give up at shutdown either: raft
// would panic on the error, so the write blocks and Node.Shutdown returns
// when its context ends.
func (s *healthStore) stable(f func() error) error {
	for s.write("store raft term or vote", f) != nil {
		time.Sleep(stableRetry)
	}
	return nil
}
