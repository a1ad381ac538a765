package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Start-up checks: a damaged raft.db or snapshot must stop the node with
// an error that names the file, never start it with an empty or partial
// state. Left alone, the libraries do neither reliably: bbolt maps a
// truncated file and faults (SIGBUS) when it touches a page past the end;
// raft skips a snapshot whose meta.json it cannot read without telling
// anyone, falls back to an older snapshot when one fails to open or
// restore, and then panics (or, with no snapshot at all, starts empty)
// when the log no longer holds the entries after it.

// recoveryHint ends every start-up refusal.
const recoveryHint = " (move the data directory aside and restore a backup, or let the node rejoin empty: docs/RECOVERY.md)"

// openRaftDB opens raft.db after checking that its pages lie within the
// file; newStartCheck then reads every log entry.
func openRaftDB(path string) (*raftboltdb.BoltStore, error) {
	if err := checkBoltFile(path, 5*time.Second); err != nil {
		return nil, err
	}
	var store *raftboltdb.BoltStore
	err := guardFaults(func() (err error) {
		store, err = raftboltdb.New(raftboltdb.Options{Path: path})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: %s: %w%s", path, err, recoveryHint)
	}
	return store, nil
}

// checkBoltFile opens an existing raft.db read-only and compares the size
// its meta page claims with the file's. A missing file is a new node; an
// empty one is not (bbolt writes its first pages when it creates the file,
// so zero bytes means it was truncated). lockWait bounds the wait for
// the file's lock: a running node holds it, and the error then wraps
// bbolt.ErrTimeout.
func checkBoltFile(path string, lockWait time.Duration) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if fi.Size() == 0 {
		return fmt.Errorf("cluster: %s is empty (truncated?)%s", path, recoveryHint)
	}
	err = guardFaults(func() error {
		db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: lockWait})
		if err != nil {
			return err
		}
		defer db.Close()
		return db.View(func(tx *bbolt.Tx) error {
			if need := tx.Size(); need > fi.Size() {
				return fmt.Errorf("truncated: %d bytes, its pages need %d", fi.Size(), need)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("cluster: %s: %w%s", path, err, recoveryHint)
	}
	return nil
}

// checkLogs reads every log entry once: bolt has no checksums on its data
// pages, so this is what finds garbage in them before raft would panic on
// it in the middle of applying. An index without an entry is not an error
// by itself (a restored backup's snapshot takes an index of its own and
// no entry); covers counts it.
func (sc *startCheck) checkLogs(logs raft.LogStore) error {
	var l raft.Log
	for i := sc.first; i > 0 && i <= sc.last; i++ {
		err := logs.GetLog(i, &l)
		switch {
		case errors.Is(err, raft.ErrLogNotFound):
			sc.maxMissing = i
		case err != nil:
			return fmt.Errorf("log entry %d of %d-%d: %w", i, sc.first, sc.last, err)
		case l.Index != i:
			return fmt.Errorf("log entry %d of %d-%d says it is %d", i, sc.first, sc.last, l.Index)
		}
	}
	return nil
}

// guardFaults runs f, turning a panic or a memory fault in it (bbolt
// reading a damaged page or mapping) into an error.
func guardFaults(f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("damaged: %v", r)
		}
	}()
	return f()
}

// startCheck makes sure raft starts from a whole state: the snapshot it
// restores plus the log hold every index any snapshot on disk or the log
// reached. It sees each snapshot raft opens and each state machine
// restore, and refuses raft's fall-back to an older snapshot when the log
// no longer bridges the gap, so that NewRaft fails instead.
type startCheck struct {
	dir         string // DataDir/snapshots
	first, last uint64 // the log's range in raft.db (0, 0 when empty)
	maxMissing  uint64 // the highest index in that range without an entry
	maxIndex    uint64 // the highest index any snapshot directory claims
	starting    atomic.Bool

	mu     sync.Mutex
	failed []string // "<file>: <why>", in the order found
	opened string   // the snapshot raft opened last
}

// newStartCheck reads the log's range and every snapshot's meta.json, and
// fails when raft would find no snapshot to start from although the log
// alone does not hold the state.
func newStartCheck(dataDir string, logs raft.LogStore) (*startCheck, error) {
	sc := &startCheck{dir: filepath.Join(dataDir, "snapshots")}
	sc.starting.Store(true)
	err := guardFaults(func() (err error) {
		if sc.first, err = logs.FirstIndex(); err != nil {
			return err
		}
		if sc.last, err = logs.LastIndex(); err != nil {
			return err
		}
		return sc.checkLogs(logs)
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: %s: %w%s", filepath.Join(dataDir, "raft.db"), err, recoveryHint)
	}
	usable, err := sc.scan()
	if err != nil {
		return nil, err
	}
	if usable == 0 && !sc.covers(0) {
		return nil, sc.refusal("no snapshot to start from")
	}
	return sc, nil
}

// scan reads each snapshot directory's meta.json (as raft will) and
// returns how many raft can use; the others are noted as failed, and
// every directory's index (from its name when meta.json is unreadable)
// counts towards maxIndex.
func (sc *startCheck) scan() (usable int, err error) {
	entries, err := os.ReadDir(sc.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cluster: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		if idx, ok := snapshotIndexFromName(e.Name()); ok && idx > sc.maxIndex {
			sc.maxIndex = idx
		}
		metaPath := filepath.Join(sc.dir, e.Name(), "meta.json")
		var meta raft.SnapshotMeta
		b, err := os.ReadFile(metaPath)
		if err == nil {
			err = json.Unmarshal(b, &meta)
		}
		if err == nil && (meta.Version < raft.SnapshotVersionMin || meta.Version > raft.SnapshotVersionMax) {
			err = fmt.Errorf("unsupported snapshot version %d", meta.Version)
		}
		if err != nil {
			sc.failed = append(sc.failed, fmt.Sprintf("%s: %v", metaPath, err))
			continue
		}
		if meta.Index > sc.maxIndex {
			sc.maxIndex = meta.Index
		}
		usable++
	}
	return usable, nil
}

// snapshotIndexFromName parses raft's snapshot directory name,
// term-index-milliseconds.
func snapshotIndexFromName(name string) (uint64, bool) {
	parts := strings.Split(name, "-")
	if len(parts) != 3 {
		return 0, false
	}
	idx, err := strconv.ParseUint(parts[1], 10, 64)
	return idx, err == nil
}

// covers reports whether a state restored from a snapshot at index s
// (0: none) plus the log reaches every index known: the log must continue
// right after s and reach maxIndex.
func (sc *startCheck) covers(s uint64) bool {
	if sc.maxMissing > s {
		return false // the log has a hole after the snapshot
	}
	if sc.last > s && sc.first > s+1 {
		return false // a hole between the snapshot and the log
	}
	if sc.maxIndex > s && (sc.last < sc.maxIndex || sc.first > s+1) {
		return false // a newer snapshot's entries are in neither
	}
	return true
}

func (sc *startCheck) refusal(what string) error {
	return fmt.Errorf("cluster: refusing to start from a partial state: %s; %s", what, sc.summary())
}

// explain adds what the check found to NewRaft's error.
func (sc *startCheck) explain(err error) error {
	return fmt.Errorf("%w; %s", err, sc.summary())
}

// summary says what the log and the snapshots hold, and which files are
// unusable and why.
func (sc *startCheck) summary() string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	msg := fmt.Sprintf("raft.db holds log entries %d-%d, snapshots in %s reach %d", sc.first, sc.last, sc.dir, sc.maxIndex)
	if sc.maxMissing > 0 {
		msg += fmt.Sprintf(", the log has no entry %d", sc.maxMissing)
	}
	if len(sc.failed) > 0 {
		msg += "; unusable: " + strings.Join(sc.failed, "; ")
	}
	return msg + recoveryHint
}

// started ends the start-up phase; it is a last check that raft restored
// a snapshot the log continues from.
func (sc *startCheck) started(r *raft.Raft) error {
	sc.starting.Store(false)
	s, _ := strconv.ParseUint(r.Stats()["last_snapshot_index"], 10, 64)
	if !sc.covers(s) {
		return sc.refusal(fmt.Sprintf("raft restored the snapshot at index %d", s))
	}
	return nil
}

// snapshots wraps the file snapshot store so that start-up sees what
// raft opens.
func (sc *startCheck) snapshots(s raft.SnapshotStore) raft.SnapshotStore {
	return &checkedSnapshots{SnapshotStore: s, sc: sc}
}

type checkedSnapshots struct {
	raft.SnapshotStore
	sc *startCheck
}

func (c *checkedSnapshots) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	sc := c.sc
	if !sc.starting.Load() {
		return c.SnapshotStore.Open(id)
	}
	state := filepath.Join(sc.dir, id, "state.bin")
	if idx, ok := snapshotIndexFromName(id); ok && !sc.covers(idx) {
		// An older snapshot than one that failed (or one older than a
		// directory whose meta.json is unreadable, or before a hole in the
		// log): restoring it would leave a partial state.
		err := fmt.Errorf("%s: not used: the log does not continue from its index %d", filepath.Join(sc.dir, id), idx)
		sc.mu.Lock()
		sc.failed = append(sc.failed, err.Error())
		sc.mu.Unlock()
		return nil, nil, err
	}
	meta, rc, err := c.SnapshotStore.Open(id)
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.opened = state
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			sc.failed = append(sc.failed, err.Error())
		} else {
			sc.failed = append(sc.failed, fmt.Sprintf("%s: %v", state, err))
		}
	}
	return meta, rc, err
}

// fsm wraps the state machine so that start-up learns which snapshot's
// restore failed.
func (sc *startCheck) fsm(f *raftFSM) raft.FSM { return &checkedFSM{raftFSM: f, sc: sc} }

type checkedFSM struct {
	*raftFSM
	sc *startCheck
}

func (c *checkedFSM) Restore(rc io.ReadCloser) error {
	err := c.raftFSM.Restore(rc)
	if err != nil && c.sc.starting.Load() {
		c.sc.mu.Lock()
		c.sc.failed = append(c.sc.failed, fmt.Sprintf("%s: restoring the state machine: %v", c.sc.opened, err))
		c.sc.mu.Unlock()
	}
	return err
}
