package cluster

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector
	apply      *prometheus.HistogramVec
}

func newMetrics(n *Node, reg prometheus.Registerer) *metrics {
	m := &metrics{reg: reg}
	m.apply = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tokend_cluster_apply_seconds",
		Help:    "Time for Apply to make a write visible cluster-wide, by path (leader, forward) and result.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
	}, []string{"path", "result"})
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	m.collectors = []prometheus.Collector{
		m.apply,
		n.batchSizes,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tokend_cluster_internal_refused_total",
			Help: "Connections to the internal port refused at the TLS handshake (no or untrusted certificate).",
		}, func() float64 {
			if n.internal == nil {
				return 0
			}
			return float64(n.internal.refused.Load())
		}),
		gauge("tokend_raft_state", "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown.", func() float64 { return float64(n.raft.State()) }),
		gauge("tokend_raft_leader", "1 when this node is the Raft leader.", func() float64 { return b(n.raft.State() == raft.Leader) }),
		gauge("tokend_raft_term", "Current Raft term.", func() float64 { return float64(n.raft.CurrentTerm()) }),
		gauge("tokend_raft_commit_index", "Raft commit index.", func() float64 { return float64(n.raft.CommitIndex()) }),
		gauge("tokend_raft_applied_index", "Highest log index applied to the local state machine.", func() float64 { return float64(n.applied.Load()) }),
		gauge("tokend_cluster_read_ready", "1 when this node may answer validations (leader ready, or read lease held).", func() float64 { return b(n.ReadReady() == nil) }),
		gauge("tokend_cluster_lease_holders", "On the leader: nodes holding an unexpired read lease.", func() float64 {
			ls := n.leader.Load()
			if ls == nil {
				return 0
			}
			ls.mu.Lock()
			defer ls.mu.Unlock()
			c, now := 0, time.Now()
			for _, h := range ls.holders {
				if h.expires.After(now) {
					c++
				}
			}
			return float64(c)
		}),
	}
	if reg != nil {
		for _, c := range m.collectors {
			if err := reg.Register(c); err != nil {
				n.log.Warn("cluster: metric not registered", "err", err)
			}
		}
	}
	return m
}

func (m *metrics) observeApply(path string, start time.Time, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.apply.WithLabelValues(path, result).Observe(time.Since(start).Seconds())
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
