package cluster

import (
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/tokend/tokend/fsm"
)

func newKey(t *testing.T) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// startCluster starts n nodes that bootstrap together and waits until
// every one of them can serve reads.
func startCluster(t *testing.T, size int, grace time.Duration) ([]*testNode, []byte) {
	t.Helper()
	key := newKey(t)
	cfgs := make([]Config, size)
	for i := range cfgs {
		cfgs[i] = newTestCfg(t, "n"+string(rune('1'+i)), t.TempDir(), key)
		cfgs[i].BootstrapExpect = size
		cfgs[i].DeadServerGrace = grace
	}
	for i := range cfgs {
		for j := range cfgs {
			if i != j {
				cfgs[i].Join = append(cfgs[i].Join, cfgs[j].GossipAddr)
			}
		}
	}
	nodes := make([]*testNode, size)
	for i, c := range cfgs {
		nodes[i] = startTestNode(t, c)
	}
	waitAllReady(t, nodes)
	return nodes, key
}

func waitAllReady(t *testing.T, nodes []*testNode) {
	t.Helper()
	for _, n := range nodes {
		if err := n.WaitReady(ctxT(t, 60*time.Second)); err != nil {
			t.Fatalf("%s not ready: %v (status %+v)", n.cfg.NodeID, err, n.Status())
		}
	}
}

func leaderOf(t *testing.T, nodes []*testNode) (leader *testNode, followers []*testNode) {
	t.Helper()
	eventually(t, 60*time.Second, "a leader", func() bool {
		leader, followers = nil, nil
		for _, n := range nodes {
			if n.down {
				continue
			}
			if n.Status().State == "Leader" {
				leader = n
			} else {
				followers = append(followers, n)
			}
		}
		return leader != nil
	})
	return leader, followers
}

// checkVisible asserts the read guarantee right after an acknowledgement:
// every node that may serve reads answers as want, without waiting.
func checkVisible(t *testing.T, nodes []*testNode, tok string, want bool) {
	t.Helper()
	for _, n := range nodes {
		if n.down {
			continue
		}
		if n.ReadReady() == nil && valid(n.cfg.FSM, tok) != want {
			t.Fatalf("%s serves reads but says valid=%v right after the acknowledgement", n.cfg.NodeID, !want)
		}
	}
	for _, n := range nodes {
		if !n.down {
			eventually(t, 30*time.Second, "replication to "+n.cfg.NodeID, func() bool { return valid(n.cfg.FSM, tok) == want })
		}
	}
}

func voters(n *testNode) map[string]string {
	out := map[string]string{}
	for _, m := range n.Status().Members {
		if m.Suffrage == "Voter" {
			out[m.NodeID] = m.Status
		}
	}
	return out
}

func TestThreeNodes(t *testing.T) {
	nodes, key := startCluster(t, 3, 2*time.Second)
	leader, followers := leaderOf(t, nodes)
	st := leader.Status()
	if len(st.Members) != 3 {
		t.Fatalf("members: %+v", st.Members)
	}
	for _, m := range st.Members {
		if m.Suffrage != "Voter" || m.Status != "alive" || m.HTTPAddr == "" || m.RaftAddr == "" {
			t.Fatalf("member %+v", m)
		}
	}
	fs := followers[0].Status()
	if fs.LeaderID != leader.cfg.NodeID || fs.LeaderHTTPAddr != leader.cfg.HTTPAddr {
		t.Fatalf("follower status: %+v", fs)
	}

	// Writes on a follower are forwarded; the result is visible on every
	// serving node as soon as Apply returns.
	mustApply(t, followers[0].Node, putClientCmd("c1"))
	var acked []string
	for i := range 20 {
		tok := token()
		res := mustApply(t, nodes[i%3].Node, issueCmd("c1", tok))
		if res.GrantID == 0 {
			t.Fatalf("result %+v", res)
		}
		checkVisible(t, nodes, tok, true)
		acked = append(acked, tok)
	}
	mustApply(t, followers[1].Node, revokeCmd(acked[0]))
	checkVisible(t, nodes, acked[0], false)
	acked = acked[1:]

	// A fourth node joins as a voter, then leaves gracefully.
	c4 := newTestCfg(t, "n4", t.TempDir(), key)
	c4.BootstrapExpect = 3
	c4.Join = []string{nodes[0].cfg.GossipAddr}
	n4 := startTestNode(t, c4)
	eventually(t, 60*time.Second, "n4 to become a voter", func() bool { return voters(leader)["n4"] == "alive" })
	if err := n4.WaitReady(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, tok := range acked {
		if !valid(c4.FSM, tok) {
			t.Fatal("n4 ready but missing an acknowledged token")
		}
	}
	if err := n4.Leave(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "n4 removed", func() bool { _, ok := voters(leader)["n4"]; return !ok })
	n4.stop(t)
	waitAllReady(t, nodes)

	// Failover: stop the leader; a new one is elected and writes resume.
	old := leader
	old.stop(t)
	start := time.Now()
	newLeader, rest := leaderOf(t, nodes)
	tok := token()
	eventually(t, 30*time.Second, "a write after failover", func() bool {
		_, err := rest[0].Apply(ctxT(t, 10*time.Second), issueCmd("c1", tok))
		var ra interface{ RetryAfter() time.Duration }
		if err != nil && !errors.As(err, &ra) {
			t.Fatalf("non-retryable error during failover: %v", err)
		}
		return err == nil
	})
	t.Logf("writes resumed %v after the leader stopped", time.Since(start).Round(time.Millisecond))
	checkVisible(t, nodes, tok, true)
	acked = append(acked, tok)
	for _, n := range []*testNode{newLeader, rest[0]} {
		for _, tok := range acked {
			if !valid(n.cfg.FSM, tok) {
				t.Fatalf("%s lost an acknowledged token", n.cfg.NodeID)
			}
		}
	}

	// The dead leader is removed after the grace period (2 voters stay a
	// quorum), then re-added when it comes back and catches up.
	eventually(t, 60*time.Second, "dead server removal", func() bool { _, ok := voters(newLeader)[old.cfg.NodeID]; return !ok })
	oc := old.cfg
	oc.FSM = fsm.New()
	back := startTestNode(t, oc)
	for i, n := range nodes {
		if n == old {
			nodes[i] = back
		}
	}
	eventually(t, 60*time.Second, "old leader back as voter", func() bool { return voters(newLeader)[oc.NodeID] == "alive" })
	waitAllReady(t, nodes)
	mustApply(t, back.Node, revokeCmd(acked[1]))
	checkVisible(t, nodes, acked[1], false)
	eventually(t, 30*time.Second, "equal applied index", func() bool {
		return back.Status().AppliedIndex == newLeader.Status().AppliedIndex
	})
	for _, tok := range acked[2:] {
		if !valid(oc.FSM, tok) {
			t.Fatal("restarted node missing an acknowledged token")
		}
	}
}

// TestNoQuorum: with two of three nodes down, writes fail fast with a
// retryable error and reads stop; bringing one back resumes writes.
func TestNoQuorum(t *testing.T) {
	nodes, _ := startCluster(t, 3, time.Hour)
	_, followers := leaderOf(t, nodes)
	mustApply(t, nodes[0].Node, putClientCmd("c1"))
	var survivor *testNode
	for _, n := range nodes {
		if n != followers[0] {
			n.stop(t)
		} else {
			survivor = n
		}
	}
	// Apply must give up by itself (its own bound, about 5 s) with a
	// retryable error, long before the caller's generous deadline.
	ctx := ctxT(t, 60*time.Second)
	_, err := survivor.Apply(ctx, issueCmd("c1", token()))
	var ra interface{ RetryAfter() time.Duration }
	if !errors.As(err, &ra) || ctx.Err() != nil {
		t.Fatalf("apply without quorum: %v (caller's context: %v)", err, ctx.Err())
	}
	eventually(t, 10*time.Second, "reads to stop without a leader", func() bool { return survivor.ReadReady() != nil })

	var back *testNode
	for i, n := range nodes {
		if n != survivor && back == nil {
			c := n.cfg
			c.FSM = fsm.New()
			back = startTestNode(t, c)
			nodes[i] = back
		}
	}
	eventually(t, 60*time.Second, "writes to resume", func() bool {
		_, err := survivor.Apply(ctxT(t, 10*time.Second), issueCmd("c1", token()))
		return err == nil
	})
}

// TestWrongClusterKey: a node with another key cannot join and says why.
func TestWrongClusterKey(t *testing.T) {
	good := newTestCfg(t, "g1", t.TempDir(), newKey(t))
	g := startTestNode(t, good)
	if err := g.WaitReady(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	bad := newTestCfg(t, "b1", t.TempDir(), newKey(t))
	bad.Join = []string{good.GossipAddr}
	bad.BootstrapExpect = 1
	b := startTestNode(t, bad)
	eventually(t, 30*time.Second, "a join error", func() bool { return b.Status().JoinError != "" })
	t.Logf("join error: %s", b.Status().JoinError)
	if len(g.Status().Members) != 1 || b.Status().LeaderID != "" || b.ReadReady() == nil {
		t.Fatalf("wrong-key node got in: good %+v bad %+v", g.Status(), b.Status())
	}
	// Internal calls from a node with the wrong key are refused at the
	// TLS handshake: its certificate chains to another CA.
	_, _, err := b.rpc.call(ctxT(t, 5*time.Second), good.RaftAddr, opApply, putClientCmd("x"), 5*time.Second)
	if err == nil {
		t.Fatal("internal call with the wrong key accepted")
	}
	t.Logf("refused as: %v", err)
	if _, ok := good.FSM.Client("x"); ok {
		t.Fatal("command from the wrong key applied")
	}
}
