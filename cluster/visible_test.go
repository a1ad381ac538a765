package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/tokend/tokend/fsm"
)

// The visibility floor (visible.go): its wire form, the lease table's
// published floor, and reads of writes in flight on a real cluster.

func TestLeaseFloorEncoding(t *testing.T) {
	req := leaseRequest{ID: "node-2", Applied: 1 << 40, Term: 7, Want: 1<<40 + 3}
	got, err := decodeLeaseRequestFloor(req.encodeFloor())
	if err != nil || got != req {
		t.Fatalf("request round trip: %+v, %v", got, err)
	}
	resp := leaseResponse{Granted: true, Term: 7, Leader: "node-1", LeaseMS: 1000, Reason: "", Floor: 1 << 40}
	back, err := decodeLeaseResponseFloor(resp.encodeFloor())
	if err != nil || back != resp {
		t.Fatalf("response round trip: %+v, %v", back, err)
	}
	refused := leaseResponse{Term: 7, Leader: "node-1", Reason: "behind", Floor: 12}
	if back, err := decodeLeaseResponseFloor(refused.encodeFloor()); err != nil || back != refused {
		t.Fatalf("refusal round trip: %+v, %v", back, err)
	}
	// opLease keeps the previous release's encoding: no Want, no Floor.
	old, err := decodeLeaseRequest(req.encode())
	if err != nil || old.ID != req.ID || old.Applied != req.Applied || old.Want != 0 {
		t.Fatalf("opLease request: %+v, %v", old, err)
	}
	if o, err := decodeLeaseResponse(resp.encode()); err != nil || o.Floor != 0 || o.Leader != "node-1" || o.Reason != "" {
		t.Fatalf("opLease response: %+v, %v", o, err)
	}
	for _, b := range [][]byte{nil, {2}, {1}, {1, 7}, {1, 7, 0x80}} {
		if _, err := decodeLeaseResponseFloor(b); err == nil {
			t.Errorf("response %x decoded", b)
		}
	}
	if _, err := decodeLeaseRequestFloor([]byte{1, 2, 3}); err == nil {
		t.Error("request without an id decoded")
	}
}

// TestLeaseFloorUnknownOp: the answer a node gives to an operation it does
// not know is what makes a follower fall back to opLease, so a leader of
// the previous release (without opLeaseFloor) keeps granting leases.
func TestLeaseFloorUnknownOp(t *testing.T) {
	n := &Node{stopCtx: context.Background()}
	status, msg := n.handleRPC(200, nil, nil)
	err := error(&rpcError{status: status, msg: string(msg)})
	if !unknownOp(err) {
		t.Fatalf("unknown operation answered %d %q, not recognised", status, msg)
	}
	for _, e := range []error{
		&rpcError{status: stBadRequest, msg: "bad lease request"},
		&rpcError{status: stUnavailable, msg: "unknown operation"},
		errors.New("unknown operation 8"),
	} {
		if unknownOp(e) {
			t.Errorf("%v taken for an unknown operation", e)
		}
	}
}

func TestLeasePublishedFloor(t *testing.T) {
	tb := newLeaseTable(3, 100*ms, nil)
	if f := tb.publishedFloor(200 * ms); f != 0 {
		t.Fatalf("not ready: published %d", f)
	}
	tb.setReady(10)
	if f := tb.publishedFloor(50 * ms); f != 0 {
		t.Fatalf("during the office wait: published %d (earlier leases may not have the barrier)", f)
	}
	if f := tb.publishedFloor(100 * ms); f != 10 {
		t.Fatalf("after the office wait: published %d, want the barrier 10", f)
	}
	tb.report(100*ms, "b", 12, 3, true)
	if w := tb.await(110*ms, 12); w != nil {
		t.Fatal("12 not acknowledgeable with the only holder at 12")
	}
	if f := tb.publishedFloor(110 * ms); f != 12 {
		t.Fatalf("after acknowledging 12: published %d", f)
	}
	if w := tb.await(120*ms, 15); w == nil {
		t.Fatal("15 acknowledgeable with a holder at 12")
	}
	if f := tb.publishedFloor(120 * ms); f != 12 {
		t.Fatalf("with 15 waiting: published %d, want 12", f)
	}
}

// TestReadOfRevocationInFlightWaits: a revocation applied on the leader
// (and on one follower) but not yet acknowledged, because another
// follower's lease still holds it back, is not answered as revoked until
// every node that serves reads has applied it. Without the wait, the
// leader would say "revoked" while the lagging holder still said "valid".
func TestReadOfRevocationInFlightWaits(t *testing.T) {
	nodes, _ := startCluster(t, 3, time.Minute)
	leader, followers := leaderOf(t, nodes)
	mustApply(t, leader.Node, putClientCmd("c1"))
	tok := token()
	mustApply(t, leader.Node, issueCmd("c1", tok))
	waitAllReady(t, nodes)
	lag, other := followers[0], followers[1]
	h := fsm.HashOf(tok)

	// lag's disk fails: it applies nothing new, but the leader counts its
	// lease until it runs out, so the revocation waits for that.
	lag.failDisk(errDiskFull)
	t.Cleanup(func() { lag.failDisk(nil) })
	acked := make(chan fsm.Result, 1)
	go func() {
		res, err := leader.Apply(context.Background(), revokeCmd(tok))
		if err != nil {
			t.Errorf("revoke: %v", err)
		}
		acked <- res
	}()
	eventually(t, 10*time.Second, "the leader applies the revocation", func() bool { return !valid(leader.cfg.FSM, tok) })
	select {
	case <-acked:
		t.Fatal("the revocation was acknowledged while a holder that cannot apply it still had a lease")
	default:
	}

	read := func(n *testNode) (uint64, error) {
		fence, err := n.BeginRead()
		if err != nil {
			return 0, err
		}
		valid(n.cfg.FSM, tok) // the lookup
		idx := n.cfg.FSM.InFlight(h)
		return idx, n.FinishRead(context.Background(), fence, idx)
	}
	idx, err := read(leader)
	if idx == 0 {
		t.Fatal("the leader's revocation is not in flight before its acknowledgement")
	}
	if err != nil {
		t.Fatalf("leader read of the revocation in flight: %v", err)
	}
	// The read returned only once every node that serves reads had
	// applied the revocation.
	if leader.VisibleFloor() < idx {
		t.Fatalf("read answered with floor %d below the revocation %d", leader.VisibleFloor(), idx)
	}
	for _, n := range nodes {
		if n.ReadReady() == nil && valid(n.cfg.FSM, tok) {
			t.Fatalf("%s serves reads and says valid after the leader's read said revoked", n.cfg.NodeID)
		}
	}
	res := <-acked
	if res.Index != idx {
		t.Fatalf("revocation at %d, in flight at %d", res.Index, idx)
	}
	// A follower's read of the same key: its floor comes with a lease
	// answer, at once.
	eventually(t, 10*time.Second, other.cfg.NodeID+" ready", func() bool { return other.ReadReady() == nil })
	if _, err := read(other); err != nil {
		t.Fatalf("follower read after the acknowledgement: %v", err)
	}
	if other.VisibleFloor() < idx {
		t.Fatalf("follower answered with floor %d below %d", other.VisibleFloor(), idx)
	}
}

// TestFollowerReadOfWriteInFlightWaits: a follower that applied a write
// before its acknowledgement asks the leader for the floor and answers
// once it is there; while nothing is in flight its reads stay local.
func TestFollowerReadOfWriteInFlightWaits(t *testing.T) {
	nodes, _ := startCluster(t, 3, time.Minute)
	leader, followers := leaderOf(t, nodes)
	mustApply(t, leader.Node, putClientCmd("c1"))
	waitAllReady(t, nodes)
	lag, f := followers[0], followers[1]
	lag.failDisk(errDiskFull)
	t.Cleanup(func() { lag.failDisk(nil) })
	tok := token()
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		if _, err := leader.Apply(context.Background(), issueCmd("c1", tok)); err != nil {
			t.Errorf("issue: %v", err)
		}
	}()
	eventually(t, 10*time.Second, f.cfg.NodeID+" applies the issue", func() bool { return valid(f.cfg.FSM, tok) })
	fence, err := f.BeginRead()
	if err != nil {
		t.Fatalf("%s (healthy) cannot serve reads: %v", f.cfg.NodeID, err)
	}
	idx := f.cfg.FSM.InFlight(fsm.HashOf(tok))
	if idx == 0 {
		select {
		case <-acked:
			t.Fatal("acknowledged while a holder that cannot apply it still had a lease")
		default:
			t.Fatal("an unacknowledged issue is not in flight on the follower")
		}
	}
	if err := f.FinishRead(context.Background(), fence, idx); err != nil {
		t.Fatalf("follower read: %v", err)
	}
	if f.VisibleFloor() < idx || leader.VisibleFloor() < idx {
		t.Fatalf("answered below the floor: follower %d, leader %d, write %d", f.VisibleFloor(), leader.VisibleFloor(), idx)
	}
	if lag.ReadReady() == nil {
		t.Fatalf("%s serves reads without having applied %d", lag.cfg.NodeID, idx)
	}
	<-acked
	// Another token, long acknowledged: nothing in flight, purely local.
	if got := f.cfg.FSM.InFlight(fsm.HashOf("never-issued")); got != 0 {
		t.Fatalf("an untouched token is in flight at %d", got)
	}
}

// TestSingleNodeReads: a lone node's floor follows its acknowledgements,
// so a read right after a write is local and allocates nothing, and a
// restart (restored state counts as in flight) does not hold reads back
// once the node leads again.
func TestSingleNodeReads(t *testing.T) {
	dir := t.TempDir()
	cfg := newTestCfg(t, "n1", dir, nil)
	cfg.SnapshotThreshold = 4
	n := startTestNode(t, cfg)
	if err := n.WaitReady(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	mustApply(t, n.Node, putClientCmd("c1"))
	var toks []string
	for range 10 {
		tok := token()
		res := mustApply(t, n.Node, issueCmd("c1", tok))
		if n.VisibleFloor() < res.Index || cfg.FSM.InFlight(fsm.HashOf(tok)) != 0 {
			t.Fatalf("acknowledged %d, floor %d, in flight at %d", res.Index, n.VisibleFloor(), cfg.FSM.InFlight(fsm.HashOf(tok)))
		}
		toks = append(toks, tok)
	}
	h := fsm.HashOf(toks[0])
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		fence, err := n.BeginRead()
		if err != nil {
			t.Fatal(err)
		}
		cfg.FSM.Lookup(h, time.Now().UnixNano())
		if err := n.FinishRead(ctx, fence, cfg.FSM.InFlight(h)); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per read without a write in flight", allocs)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	n.stop(t)

	cfg.FSM = fsm.New()
	n = startTestNode(t, cfg)
	if err := n.WaitReady(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	fence, err := n.BeginRead()
	if err != nil {
		t.Fatal(err)
	}
	if !valid(cfg.FSM, toks[9]) {
		t.Fatal("token lost over the restart")
	}
	if err := n.FinishRead(ctxT(t, 10*time.Second), fence, cfg.FSM.InFlight(fsm.HashOf(toks[9]))); err != nil {
		t.Fatalf("read after restart: %v", err)
	}
}

// TestConfirmAnswersTerm: opConfirm answers the peer's current term, which
// the leader compares with its own (confirm.go); a malformed request is
// refused, and a peer without the operation is recognised as one.
func TestConfirmAnswersTerm(t *testing.T) {
	nodes, _ := startCluster(t, 3, time.Minute)
	leader, followers := leaderOf(t, nodes)
	term := leader.raft.CurrentTerm()
	st, b := followers[0].handleRPC(opConfirm, binary.AppendUvarint(nil, term), nil)
	if got, k := binary.Uvarint(b); st != stOK || k <= 0 || got != followers[0].raft.CurrentTerm() {
		t.Fatalf("opConfirm answered %d %x, want the term %d", st, b, followers[0].raft.CurrentTerm())
	}
	if st, _ := followers[0].handleRPC(opConfirm, nil, nil); st != stBadRequest {
		t.Fatalf("empty opConfirm answered %d", st)
	}
	if err := leader.confirmLeadership(ctxT(t, 10*time.Second), term); err != nil {
		t.Fatalf("leader of term %d not confirmed: %v", term, err)
	}
	// A leader of an older term is not confirmed by voters that moved on.
	if err := leader.confirmLeadership(ctxT(t, 10*time.Second), term-1); !errors.Is(err, errNotConfirmed) {
		t.Fatalf("an older term confirmed: %v", err)
	}
}
