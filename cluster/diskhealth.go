package cluster

import (
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
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
// adds is that the node says so: while the last log append or the last
// term/vote write failed, ReadReady returns "disk: <op>: <error>" (so
// /readyz does), Status carries the fault, and the log says it once per
// change (at most one line per faultLogEvery). The next write of the same
// kind that succeeds clears it.
//
// Raft's stable store writes (current term, vote) are different: raft
// panics when it cannot persist a new term, and lying about it would let a
// restarted node vote twice in one term. So healthStore retries them until
// they succeed: the node freezes (it stops answering Raft, exactly like a
// paused process, which the lease argument in doc.go already covers) and
// continues by itself once the disk takes writes again.

// stableRetry is how often a failing stable store write is retried.
const stableRetry = 250 * time.Millisecond

// faultLogEvery limits the log to one line about the disk per interval:
// on a nearly full disk small writes may succeed between failing big ones.
const faultLogEvery = 10 * time.Second

// DiskFault describes the last failed write to the Raft store; Status
// reports it while no later write of its kind has succeeded.
type DiskFault struct {
	Op       string    `json:"op"`
	Error    string    `json:"error"`
	Since    time.Time `json:"since"`
	Failures uint64    `json:"failures"`
}

// writeKind: a fault is cleared only by a later success of the same kind
// (on a full disk a one-page term write may succeed while log appends
// keep failing).
type writeKind int

const (
	logWrite    writeKind = iota // StoreLog(s), DeleteRange
	stableWrite                  // Set, SetUint64: current term, vote
	writeKinds
)

// diskHealth tracks whether the Raft store's writes succeed.
type diskHealth struct {
	log    *slog.Logger
	faulty atomic.Bool // some kind is faulty: the fast path for successes

	mu         sync.Mutex
	faults     [writeKinds]*DiskFault
	errs       [writeKinds]error
	loggedAt   time.Time
	suppressed int // changes not logged since loggedAt

	// inject, set only by tests, makes every write fail with its error
	// before it reaches bolt.
	inject atomic.Pointer[error]
}

func newDiskHealth(log *slog.Logger) *diskHealth { return &diskHealth{log: log} }

// record notes the outcome of one write of kind k.
func (d *diskHealth) record(k writeKind, op string, err error) {
	if err == nil && !d.faulty.Load() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	f := d.faults[k]
	switch {
	case err == nil && f == nil:
		return
	case err == nil:
		if d.mayLog(now) {
			d.log.Info("cluster: disk writes succeed again", "op", op, "failed_since", f.Since, "failures", f.Failures, "unlogged_changes", d.suppressed)
			d.suppressed = 0
		}
		d.faults[k], d.errs[k] = nil, nil
	default:
		if (f == nil || f.Error != publicError(err)) && d.mayLog(now) {
			d.log.Error("cluster: disk write failed; this node acknowledges no writes and serves no reads until writes succeed again",
				"op", op, "err", err, "unlogged_changes", d.suppressed)
			d.suppressed = 0
		}
		if f == nil {
			f = &DiskFault{Since: now}
			d.faults[k] = f
		}
		f.Op, f.Error = op, publicError(err)
		f.Failures++
		d.errs[k] = &UnavailableError{Reason: "disk", Err: errors.New(op + ": " + f.Error), After: retryAfter}
	}
	d.faulty.Store(d.faults[logWrite] != nil || d.faults[stableWrite] != nil)
}

// mayLog reports whether a change may be logged now, counting it as
// unlogged otherwise.
func (d *diskHealth) mayLog(now time.Time) bool {
	if !d.loggedAt.IsZero() && now.Sub(d.loggedAt) < faultLogEvery {
		d.suppressed++
		return false
	}
	d.loggedAt = now
	return true
}

// publicError is err for /readyz and Status: without the data
// directory's path, which clients have no business seeing.
func publicError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + " " + filepath.Base(pe.Path) + ": " + pe.Err.Error()
	}
	return err.Error()
}

// check returns nil while writes succeed, else an *UnavailableError
// "disk: <op>: <error>" (log writes first).
func (d *diskHealth) check() error {
	if d == nil || !d.faulty.Load() {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, err := range d.errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// status returns a copy of the current fault (log writes first), or nil.
func (d *diskHealth) status() *DiskFault {
	if d == nil || !d.faulty.Load() {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range d.faults {
		if f != nil {
			c := *f
			return &c
		}
	}
	return nil
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

func (s *healthStore) write(k writeKind, op string, f func() error) error {
	err := s.h.injected()
	if err == nil {
		err = f()
	}
	s.h.record(k, op, err)
	return err
}

func (s *healthStore) StoreLog(l *raft.Log) error {
	return s.write(logWrite, "store log", func() error { return s.BoltStore.StoreLog(l) })
}

func (s *healthStore) StoreLogs(logs []*raft.Log) error {
	return s.write(logWrite, "store log", func() error { return s.BoltStore.StoreLogs(logs) })
}

func (s *healthStore) DeleteRange(min, max uint64) error {
	return s.write(logWrite, "delete log range", func() error { return s.BoltStore.DeleteRange(min, max) })
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
	for s.write(stableWrite, "store raft term or vote", f) != nil {
		time.Sleep(stableRetry)
	}
	return nil
}
