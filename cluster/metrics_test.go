package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sample reads one series from reg: a counter's or gauge's value, or a
// histogram's observation count. ok is false when the series is absent.
func sample(t *testing.T, reg *prometheus.Registry, name string, labels ...string) (v float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue metric
				}
			}
			switch {
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func mustSample(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	v, ok := sample(t, reg, name, labels...)
	if !ok {
		t.Fatalf("metric %s%v not exported", name, labels)
	}
	return v
}

// TestMetricsSingleNode: a lone node's Raft, visibility and snapshot
// metrics move with what it does, and the labelled series a dashboard
// needs exist before their first event.
func TestMetricsSingleNode(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := newTestCfg(t, "n1", t.TempDir(), nil)
	cfg.Registerer = reg
	n := startTestNode(t, cfg)
	if err := n.WaitReady(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]string{
		{"tokend_cluster_forwarded_writes_total", "result", "ok"},
		{"tokend_cluster_forwarded_writes_total", "result", "failed"},
		{"tokend_cluster_lease_refusals_total", "reason", "behind"},
		{"tokend_cluster_lease_renew_failures_total", "reason", "error"},
		{"tokend_cluster_lease_expiries_total"},
		{"tokend_raft_snapshot_persist_seconds", "result", "ok"},
		{"tokend_raft_snapshot_size_bytes"},
	} {
		if v := mustSample(t, reg, s[0], s[1:]...); v != 0 {
			t.Errorf("%v = %v before any event", s, v)
		}
	}
	if v := mustSample(t, reg, "tokend_raft_became_leader_total"); v != 1 {
		t.Errorf("tokend_raft_became_leader_total = %v, want 1", v)
	}
	if v := mustSample(t, reg, "tokend_raft_last_contact_seconds"); v != 0 {
		t.Errorf("tokend_raft_last_contact_seconds on the leader = %v, want 0", v)
	}

	mustApply(t, n.Node, putClientCmd("c1"))
	const writes = 5
	for range writes {
		mustApply(t, n.Node, issueCmd("c1", token()))
	}
	if v := mustSample(t, reg, "tokend_cluster_visibility_wait_seconds"); v < writes+1 {
		t.Errorf("visibility waits observed: %v, want at least %d", v, writes+1)
	}
	if v := mustSample(t, reg, "tokend_cluster_apply_seconds", "path", "leader", "result", "ok"); v != writes+1 {
		t.Errorf("leader applies observed: %v, want %d", v, writes+1)
	}
	if v := mustSample(t, reg, "tokend_raft_apply_batch_size"); v < 1 {
		t.Errorf("apply batches observed: %v", v)
	}

	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if v := mustSample(t, reg, "tokend_raft_snapshot_capture_seconds"); v != 1 {
		t.Errorf("snapshot captures observed: %v, want 1", v)
	}
	if v := mustSample(t, reg, "tokend_raft_snapshot_persist_seconds", "result", "ok"); v != 1 {
		t.Errorf("snapshot persists observed: %v, want 1", v)
	}
	if v := mustSample(t, reg, "tokend_raft_snapshot_size_bytes"); v < 64 {
		t.Errorf("snapshot size %v bytes: too small for a client and %d grants", v, writes)
	}

}

// TestMetricsLeases: in a three-node cluster the leader counts lease
// grants and holders, a follower counts its forwarded writes, and when the
// leader stops the followers count their leases running out.
func TestMetricsLeases(t *testing.T) {
	key := newKey(t)
	const size = 3
	regs := make([]*prometheus.Registry, size)
	cfgs := make([]Config, size)
	for i := range cfgs {
		regs[i] = prometheus.NewRegistry()
		cfgs[i] = newTestCfg(t, fmt.Sprintf("n%d", i+1), t.TempDir(), key)
		cfgs[i].BootstrapExpect = size
		cfgs[i].Registerer = regs[i]
	}
	for i := range cfgs {
		for j := range cfgs {
			if i != j {
				cfgs[i].Join = append(cfgs[i].Join, cfgs[j].GossipAddr)
			}
		}
	}
	nodes := make([]*testNode, size)
	regOf := map[*testNode]*prometheus.Registry{}
	for i, c := range cfgs {
		nodes[i] = startTestNode(t, c)
		regOf[nodes[i]] = regs[i]
	}
	waitAllReady(t, nodes)
	leader, followers := leaderOf(t, nodes)
	lreg := regOf[leader]

	sumBecame := func() float64 {
		var s float64
		for _, n := range nodes {
			if !n.down {
				s += mustSample(t, regOf[n], "tokend_raft_became_leader_total")
			}
		}
		return s
	}
	if s := sumBecame(); s != 1 {
		t.Fatalf("leaders elected, summed over nodes: %v, want 1", s)
	}
	eventually(t, 30*time.Second, "two lease holders on the leader", func() bool {
		v, _ := sample(t, lreg, "tokend_cluster_lease_holders")
		return v == 2
	})
	if v := mustSample(t, lreg, "tokend_cluster_lease_grants_total"); v < 2 {
		t.Errorf("lease grants on the leader: %v", v)
	}
	f := followers[0]
	freg := regOf[f]
	mustApply(t, f.Node, putClientCmd("c1"))
	if v := mustSample(t, freg, "tokend_cluster_forwarded_writes_total", "result", "ok"); v != 1 {
		t.Errorf("forwarded writes ok on %s: %v, want 1", f.cfg.NodeID, v)
	}
	if v := mustSample(t, freg, "tokend_cluster_apply_seconds", "path", "forward", "result", "ok"); v != 1 {
		t.Errorf("forwarded applies observed on %s: %v, want 1", f.cfg.NodeID, v)
	}
	if v := mustSample(t, lreg, "tokend_cluster_visibility_wait_seconds"); v < 1 {
		t.Errorf("visibility waits on the leader: %v", v)
	}
	if v := mustSample(t, freg, "tokend_raft_last_contact_seconds"); v <= 0 || v > 5 {
		t.Errorf("last contact on a follower: %v s", v)
	}
	// A follower asked for a lease refuses it as not_leader.
	if r := f.grantLease(leaseRequest{ID: "x", Applied: 1, Term: 1}); r.Granted || r.Reason != "not leader" {
		t.Fatalf("lease answer from a follower: %+v", r)
	}
	if v := mustSample(t, freg, "tokend_cluster_lease_refusals_total", "reason", "not_leader"); v != 1 {
		t.Errorf("not_leader refusals on %s: %v, want 1", f.cfg.NodeID, v)
	}

	leader.stop(t)
	for _, f := range followers {
		reg := regOf[f]
		eventually(t, 30*time.Second, f.cfg.NodeID+" counting its lease running out", func() bool {
			v, _ := sample(t, reg, "tokend_cluster_lease_expiries_total")
			return v >= 1
		})
	}
	leaderOf(t, nodes)
	// Raft reports the new state before the node's leadership watcher has
	// counted it, so wait for the count; a second election would push the
	// sum past 1 for good, and the check after the wait catches that.
	eventually(t, 30*time.Second, "the new leader counting its election", func() bool {
		return sumBecame() >= 1
	})
	if s := sumBecame(); s != 1 { // the stopped leader's count is not summed
		t.Errorf("leaders elected among the survivors: %v, want 1", s)
	}
}
