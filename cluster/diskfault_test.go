package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/fsm"
)

// errDiskFull is what a full disk's write returns.
var errDiskFull error = &fs.PathError{Op: "write", Path: "raft.db", Err: syscall.ENOSPC}

// failDisk makes every write of tn to raft.db fail with err (nil: succeed
// again).
func (tn *testNode) failDisk(err error) {
	if err == nil {
		tn.disk.inject.Store(nil)
		return
	}
	tn.disk.inject.Store(&err)
}

// writers apply fresh tokens through every node until stopped, and keep
// the ones acknowledged.
type writers struct {
	stopCh chan struct{}
	wg     sync.WaitGroup
	seq    atomic.Int64
	mu     sync.Mutex
	acked  []string
	spans  [][2]time.Time // when each acknowledged write started and ended
	failed int
}

func startWriters(nodes []*testNode) *writers {
	w := &writers{stopCh: make(chan struct{})}
	for _, n := range nodes {
		for range 2 {
			w.wg.Add(1)
			go w.run(n)
		}
	}
	return w
}

func (w *writers) run(n *testNode) {
	defer w.wg.Done()
	for {
		select {
		case <-w.stopCh:
			return
		default:
		}
		tok := fmt.Sprintf("at_disk_%s_%d", n.cfg.NodeID, w.seq.Add(1))
		start := time.Now()
		res, err := n.Apply(context.Background(), issueCmd("c1", tok))
		w.mu.Lock()
		if err == nil && res.Outcome == fsm.OK {
			w.acked = append(w.acked, tok)
			w.spans = append(w.spans, [2]time.Time{start, time.Now()})
		} else {
			w.failed++
		}
		w.mu.Unlock()
		if err != nil {
			time.Sleep(20 * time.Millisecond) // pacing after a failure, not synchronisation
		}
	}
}

func (w *writers) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// waitAcks waits until k more writes have been acknowledged.
func (w *writers) waitAcks(t *testing.T, k int, what string) {
	t.Helper()
	target := w.count() + k
	eventually(t, 60*time.Second, what, func() bool { return w.count() >= target })
}

func (w *writers) stop() []string {
	close(w.stopCh)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.acked...)
}

// checkAcked waits until every node holds every acknowledged token.
func checkAcked(t *testing.T, nodes []*testNode, acked []string, when string) {
	t.Helper()
	for _, n := range nodes {
		eventually(t, 60*time.Second, when+": every acknowledged write on "+n.cfg.NodeID, func() bool {
			for _, tok := range acked {
				if !valid(n.cfg.FSM, tok) {
					return false
				}
			}
			return true
		})
	}
}

// restartAll stops every node and starts it again from its data
// directory with an empty state machine.
func restartAll(t *testing.T, nodes []*testNode) {
	t.Helper()
	for _, n := range nodes {
		n.stop(t)
	}
	for i, n := range nodes {
		cfg := n.cfg
		cfg.FSM = fsm.New()
		nodes[i] = startTestNode(t, cfg)
	}
	waitAllReady(t, nodes)
}

func diskFaultReported(n *testNode) bool {
	err := n.ReadReady()
	st := n.Status()
	return err != nil && strings.HasPrefix(err.Error(), "disk: ") && strings.Contains(err.Error(), "no space left on device") &&
		st.DiskFault != nil && !st.ReadReady && strings.Contains(st.DiskFault.Error, "no space left on device")
}

// TestDiskFaultLeader: the leader's raft.db stops taking writes under a
// write load through every node. Writes fail or are acknowledged; the
// leader steps down and says why; every acknowledged write is on every
// node once the disk recovers, and again after all restart from disk.
func TestDiskFaultLeader(t *testing.T) {
	nodes, _ := startCluster(t, 3, time.Hour)
	t.Cleanup(func() {
		for _, n := range nodes {
			n.failDisk(nil) // before the nodes stop: a blocked term write would hold Shutdown
		}
	})
	leader, _ := leaderOf(t, nodes)
	mustApply(t, leader.Node, putClientCmd("c1"))
	w := startWriters(nodes)
	w.waitAcks(t, 20, "writes before the fault")

	leader.failDisk(errDiskFull)
	eventually(t, 60*time.Second, "the leader reporting the disk fault", func() bool { return diskFaultReported(leader) })
	eventually(t, 60*time.Second, "another leader", func() bool {
		for _, n := range nodes {
			if n != leader && n.raft.State() == raft.Leader {
				return true
			}
		}
		return false
	})
	w.waitAcks(t, 20, "writes on the healthy majority")
	if leader.raft.State() == raft.Leader || !diskFaultReported(leader) {
		t.Fatalf("the node with the failing disk leads or stopped saying why: %+v", leader.Status())
	}

	leader.failDisk(nil)
	eventually(t, 60*time.Second, "the node recovering", func() bool { return leader.ReadReady() == nil })
	if st := leader.Status(); st.DiskFault != nil {
		t.Fatalf("disk fault still reported after recovery: %+v", st.DiskFault)
	}
	w.waitAcks(t, 10, "writes after recovery")
	acked := w.stop()
	t.Logf("%d writes acknowledged, %d failed", len(acked), w.failed)
	checkAcked(t, nodes, acked, "after recovery")
	restartAll(t, nodes)
	checkAcked(t, nodes, acked, "after a restart")
}

// TestDiskFaultFollower: a follower's failing disk costs the cluster
// nothing acknowledged; the follower stops serving reads, says why, and
// catches up once the disk recovers.
func TestDiskFaultFollower(t *testing.T) {
	nodes, _ := startCluster(t, 3, time.Hour)
	t.Cleanup(func() {
		for _, n := range nodes {
			n.failDisk(nil)
		}
	})
	leader, followers := leaderOf(t, nodes)
	mustApply(t, leader.Node, putClientCmd("c1"))
	w := startWriters(nodes)
	w.waitAcks(t, 20, "writes before the fault")

	f := followers[0]
	f.failDisk(errDiskFull)
	eventually(t, 60*time.Second, "the follower reporting the disk fault", func() bool { return diskFaultReported(f) })
	w.waitAcks(t, 20, "writes with a follower's disk failing")
	if !diskFaultReported(f) {
		t.Fatalf("the follower stopped reporting its disk fault: %+v", f.Status())
	}

	f.failDisk(nil)
	eventually(t, 60*time.Second, "the follower recovering", func() bool { return f.ReadReady() == nil })
	w.waitAcks(t, 10, "writes after recovery")
	acked := w.stop()
	t.Logf("%d writes acknowledged, %d failed", len(acked), w.failed)
	checkAcked(t, nodes, acked, "after recovery")
	restartAll(t, nodes)
	checkAcked(t, nodes, acked, "after a restart")
}

// TestDiskFaultSingleNode: alone, a node whose disk fills acknowledges
// nothing more, and serves again by itself once writes succeed.
func TestDiskFaultSingleNode(t *testing.T) {
	cfg := newTestCfg(t, "n1", t.TempDir(), nil)
	n := startTestNode(t, cfg)
	t.Cleanup(func() { n.failDisk(nil) })
	if err := n.WaitReady(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	mustApply(t, n.Node, putClientCmd("c1"))
	w := startWriters([]*testNode{n})
	w.waitAcks(t, 20, "writes before the fault")
	n.failDisk(errDiskFull)
	eventually(t, 60*time.Second, "the node reporting the disk fault", func() bool { return diskFaultReported(n) })
	faultSeen := time.Now()
	if _, err := n.Apply(ctxT(t, 10*time.Second), issueCmd("c1", "at_disk_probe")); err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("a write while the disk fails: %v, want the disk error", err)
	}
	if !diskFaultReported(n) {
		t.Fatalf("the node stopped reporting its disk fault: %+v", n.Status())
	}
	cleared := time.Now()
	n.failDisk(nil)
	eventually(t, 60*time.Second, "the node recovering", func() bool { return n.ReadReady() == nil })
	w.waitAcks(t, 10, "writes after recovery")
	acked := w.stop()
	for _, sp := range w.spans {
		if sp[0].After(faultSeen) && sp[1].Before(cleared) {
			t.Fatalf("a write that started %v after the fault was reported was acknowledged before it cleared", sp[0].Sub(faultSeen))
		}
	}
	restartAll(t, []*testNode{n})
	checkAcked(t, []*testNode{n}, acked, "after a restart")
}

// TestDiskHealthKinds: a fault is cleared only by a success of its own
// kind, clients see no paths, and the log gets one line per interval.
func TestDiskHealthKinds(t *testing.T) {
	var lines atomic.Int64
	d := newDiskHealth(slog.New(countingHandler{&lines}))
	full := &fs.PathError{Op: "write", Path: "/var/lib/tokend/n1/raft.db", Err: syscall.ENOSPC}
	if d.check() != nil || d.status() != nil {
		t.Fatal("a fresh node reports a fault")
	}
	d.record(logWrite, "store log", full)
	err := d.check()
	if err == nil || err.Error() != "disk: store log: write raft.db: no space left on device" {
		t.Fatalf("check: %v", err)
	}
	var ue *UnavailableError
	if !errors.As(err, &ue) || ue.RetryAfter() <= 0 {
		t.Fatalf("not retryable: %#v", err)
	}
	d.record(stableWrite, "store raft term or vote", nil) // a small write still fits
	if d.check() == nil || d.status() == nil || d.status().Failures != 1 {
		t.Fatalf("a term write cleared a log fault: %v %+v", d.check(), d.status())
	}
	for range 100 {
		d.record(logWrite, "store log", nil)
		d.record(logWrite, "store log", full)
	}
	if n := lines.Load(); n != 1 {
		t.Fatalf("%d log lines for one flapping fault, want 1", n)
	}
	d.record(logWrite, "store log", nil)
	if d.check() != nil || d.status() != nil {
		t.Fatalf("still faulty after a successful append: %v", d.check())
	}
}

type countingHandler struct{ n *atomic.Int64 }

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(context.Context, slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }
