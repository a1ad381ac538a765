package cluster

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tokend/tokend/fsm"
)

// TestSingleNodeRestart: bootstrap, issue and revoke, restart on the same
// data dir (first from the log alone, then after a snapshot truncated the
// log) and every acknowledged write is there.
func TestSingleNodeRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := newTestCfg(t, "n1", dir, nil)
	cfg.SnapshotThreshold = 16 // also TrailingLogs, so a snapshot truncates
	n := startTestNode(t, cfg)
	if err := n.WaitReady(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	st := n.Status()
	if st.State != "Leader" || st.LeaderID != "n1" || st.LeaderHTTPAddr != cfg.HTTPAddr || len(st.Members) != 1 ||
		st.Members[0].Suffrage != "Voter" || st.Members[0].Status != "alive" || st.Members[0].RaftAddr != cfg.RaftAddr {
		t.Fatalf("status: %+v", st)
	}

	mustApply(t, n.Node, putClientCmd("c1"))
	var live, revoked []string
	write := func(count int) {
		for i := range count {
			tok := token()
			res := mustApply(t, n.Node, issueCmd("c1", tok))
			if res.GrantID == 0 || res.Index == 0 {
				t.Fatalf("issue result %+v", res)
			}
			if !valid(cfg.FSM, tok) {
				t.Fatal("token not valid right after Apply returned")
			}
			if i%3 == 0 {
				mustApply(t, n.Node, revokeCmd(tok))
				if valid(cfg.FSM, tok) {
					t.Fatal("token still valid after revoke returned")
				}
				revoked = append(revoked, tok)
			} else {
				live = append(live, tok)
			}
		}
	}
	check := func(f *fsm.FSM, when string) {
		t.Helper()
		for _, tok := range live {
			if !valid(f, tok) {
				t.Fatalf("%s: acknowledged token lost", when)
			}
		}
		for _, tok := range revoked {
			if valid(f, tok) {
				t.Fatalf("%s: revoked token valid again", when)
			}
		}
	}
	write(30)
	if res, err := n.Apply(ctxT(t, 5*time.Second), revokeCmd("unknown")); err != nil || res.Outcome != fsm.NotFound {
		t.Fatalf("revoke unknown: %+v %v", res, err)
	}

	restart := func() {
		t.Helper()
		applied := n.Status().AppliedIndex
		n.stop(t)
		cfg.FSM = fsm.New()
		n = startTestNode(t, cfg)
		if err := n.WaitReady(ctxT(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		if got := n.Status().AppliedIndex; got < applied {
			t.Fatalf("applied index after restart %d < %d", got, applied)
		}
	}
	restart()
	check(cfg.FSM, "restart from log")

	write(30)
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	first, err := n.store.FirstIndex()
	if err != nil || first <= 1 {
		t.Fatalf("log not truncated by snapshot: first index %d, %v", first, err)
	}
	write(10) // a log tail after the snapshot
	restart()
	check(cfg.FSM, "restart from snapshot + tail")
	if cfg.FSM.LiveTokens() != len(live) {
		t.Fatalf("live tokens %d, want %d", cfg.FSM.LiveTokens(), len(live))
	}

	// Without a cluster key there is no internal port and no gossip.
	for _, addr := range []string{cfg.RaftAddr, cfg.GossipAddr} {
		if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			c.Close()
			t.Fatalf("a node without a cluster key listens on %s", addr)
		}
	}

	// After shutdown, Apply fails fast with a retryable error.
	n.stop(t)
	ctx := ctxT(t, 60*time.Second)
	_, err = n.Apply(ctx, putClientCmd("c2"))
	var ra interface{ RetryAfter() time.Duration }
	if !errors.As(err, &ra) || ra.RetryAfter() <= 0 || ctx.Err() != nil {
		t.Fatalf("apply after shutdown: %v (caller's context: %v)", err, ctx.Err())
	}
	if n.ReadReady() == nil {
		t.Fatal("ReadReady after shutdown")
	}
	if st := n.Status(); st.State != "Shutdown" {
		t.Fatalf("state after shutdown: %s", st.State)
	}
}

// TestSingleNodePurge: the leader proposes purges on its own.
func TestSingleNodePurge(t *testing.T) {
	cfg := newTestCfg(t, "p1", t.TempDir(), nil)
	cfg.PurgeInterval = 50 * time.Millisecond
	n := startTestNode(t, cfg)
	if err := n.WaitReady(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	mustApply(t, n.Node, putClientCmd("c1"))
	now := time.Now()
	mustApply(t, n.Node, fsm.Encode(&fsm.IssueGrant{ClientID: "c1", IssuedAt: now.UnixNano(),
		Access: fsm.TokenSpec{Hash: fsm.HashOf("short"), ExpiresAt: now.Add(20 * time.Millisecond).UnixNano()}}))
	mustApply(t, n.Node, issueCmd("c1", "long"))
	eventually(t, 20*time.Second, "purge of the expired token", func() bool { return cfg.FSM.LiveTokens() == 1 })
	if !valid(cfg.FSM, "long") {
		t.Fatal("live token purged")
	}
}

func TestConfigValidation(t *testing.T) {
	base := newTestCfg(t, "v1", t.TempDir(), nil)
	for name, mut := range map[string]func(*Config){
		"no node id":     func(c *Config) { c.NodeID = "" },
		"no data dir":    func(c *Config) { c.DataDir = "" },
		"expect w/o key": func(c *Config) { c.BootstrapExpect = 3 },
		"join w/o key":   func(c *Config) { c.Join = []string{"127.0.0.1:1"} },
		"short key":      func(c *Config) { c.ClusterKey = []byte("short") },
	} {
		c := base
		mut(&c)
		if _, err := New(ctxT(t, 5*time.Second), c); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
