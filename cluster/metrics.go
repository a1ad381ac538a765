package cluster

import (
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's Prometheus collectors. They are created before
// Raft starts (the FSM goroutine, the lease loop and snapshots observe
// them from the first moment) and registered once the node is up. No label
// ever carries a token, a secret, a user name or a peer's address: labels
// are fixed sets of words (path, result, reason).
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector

	apply *prometheus.HistogramVec
	// applyObs holds apply's children by path (applyPaths) and result
	// (ok, error), looked up once: WithLabelValues hashes its labels and
	// takes a lock on every call, and observeApply runs once per write.
	applyObs   [len(applyPaths)][2]prometheus.Observer
	batchSizes prometheus.Histogram
	// visibility is the time applyLeader spends in waitVisible: the
	// office wait of a new leader plus waiting for lease holders.
	visibility prometheus.Histogram
	forwarded  *prometheus.CounterVec
	// readWait is how long reads of a token with a write in flight waited
	// for the visibility floor (visible.go), by result (ok, error).
	readWait    *prometheus.HistogramVec
	readWaitObs [2]prometheus.Observer
	// fwdBatch is how many forwarded writes one batch RPC carried.
	fwdBatch prometheus.Histogram

	// On the leader: lease renewals granted and refused (by reason).
	leaseGrants   prometheus.Counter
	leaseRefusals *prometheus.CounterVec
	// On a holder: renewals that failed (refused or error) and leases
	// that ran out before a renewal arrived.
	leaseRenewFailures *prometheus.CounterVec
	leaseExpiries      prometheus.Counter

	becameLeader prometheus.Counter

	snapCapture prometheus.Histogram
	snapPersist *prometheus.HistogramVec
	snapSize    prometheus.Gauge
}

// leaseRefusalReasons are the label values of
// tokend_cluster_lease_refusals_total: grantLease's reasons with spaces
// as underscores, and "other" for any reason not listed.
var leaseRefusalReasons = []string{"not_leader", "leader_not_ready", "leadership_not_confirmed", "stale_leader", "behind", "lagging", "other"}

// applyPaths are the path label values of tokend_cluster_apply_seconds.
var applyPaths = [...]string{"leader", "forward", "none"}

func newMetrics(n *Node) *metrics {
	m := &metrics{}
	m.newApplyMetrics()
	m.newLeaseMetrics()
	m.newSnapshotMetrics()
	m.collectors = append([]prometheus.Collector{
		m.apply, m.batchSizes, m.visibility, m.forwarded, m.fwdBatch, m.readWait,
		m.leaseGrants, m.leaseRefusals, m.leaseRenewFailures, m.leaseExpiries,
		m.becameLeader, m.snapCapture, m.snapPersist, m.snapSize,
	}, nodeCollectors(n)...)
	return m
}

// newApplyMetrics creates the write-path collectors: Apply latency, apply
// batch sizes, the visibility wait and forwarded writes.
func (m *metrics) newApplyMetrics() {
	m.apply = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tokend_cluster_apply_seconds",
		Help:    "Time for Apply to make a write visible cluster-wide, by path (leader, forward, none) and result.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
	}, []string{"path", "result"})
	for i, p := range applyPaths {
		m.applyObs[i] = [2]prometheus.Observer{m.apply.WithLabelValues(p, "ok"), m.apply.WithLabelValues(p, "error")}
	}
	m.batchSizes = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tokend_raft_apply_batch_size",
		Help:    "Log entries handed to the state machine per apply batch.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})
	m.visibility = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tokend_cluster_visibility_wait_seconds",
		Help:    "On the leader: time a committed write waited before acknowledgement for every read-lease holder to apply it (and, in a new term, for earlier leases to run out).",
		Buckets: []float64{.0001, .00025, .0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
	})
	m.readWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tokend_cluster_read_visibility_wait_seconds",
		Help:    "Reads of a token with a write in flight: time waited until every node serving reads had applied it, by result (ok; error: gave up, answered 503). Reads of other tokens do not wait and are not counted.",
		Buckets: []float64{.0001, .00025, .0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
	}, []string{"result"})
	m.readWaitObs = [2]prometheus.Observer{m.readWait.WithLabelValues("ok"), m.readWait.WithLabelValues("error")}
	m.forwarded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokend_cluster_forwarded_writes_total",
		Help: "Writes this node forwarded to the leader, by result: ok; retried (not proposed, tried again); failed (outcome unknown, returned to the caller).",
	}, []string{"result"})
	for _, r := range []string{"ok", "retried", "failed"} {
		m.forwarded.WithLabelValues(r)
	}
	m.fwdBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tokend_cluster_forward_batch_size",
		Help:    "On a follower: forwarded writes carried by one batch to the leader (group commit).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 9),
	})
}

// newLeaseMetrics creates the read-lease collectors (grants and refusals
// on the leader, renew failures and expiries on a holder) and the
// leader-change counter.
func (m *metrics) newLeaseMetrics() {
	m.leaseGrants = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tokend_cluster_lease_grants_total",
		Help: "On the leader: read-lease renewals granted.",
	})
	m.leaseRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokend_cluster_lease_refusals_total",
		Help: "On the leader: read-lease renewals refused, by reason (not_leader, leader_not_ready, leadership_not_confirmed, stale_leader, behind).",
	}, []string{"reason"})
	m.leaseRenewFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokend_cluster_lease_renew_failures_total",
		Help: "On a follower: read-lease renewals that failed: reason=refused (the leader said no), reason=error (no answer).",
	}, []string{"reason"})
	m.leaseExpiries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tokend_cluster_lease_expiries_total",
		Help: "On a follower: read leases that ran out before a renewal (the node answered 503 to validations until the next grant).",
	})
	m.becameLeader = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tokend_raft_became_leader_total",
		Help: "Times this node took office as Raft leader; summed over nodes, the cluster's leader changes.",
	})
	for _, r := range leaseRefusalReasons {
		m.leaseRefusals.WithLabelValues(r)
	}
	for _, r := range []string{"refused", "error"} {
		m.leaseRenewFailures.WithLabelValues(r)
	}
}

// newSnapshotMetrics creates the snapshot collectors: capture and persist
// times and the last snapshot's size.
func (m *metrics) newSnapshotMetrics() {
	m.snapCapture = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tokend_raft_snapshot_capture_seconds",
		Help:    "Time the state machine was held capturing a snapshot image (applies wait meanwhile).",
		Buckets: prometheus.ExponentialBuckets(.0001, 4, 10),
	})
	m.snapPersist = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tokend_raft_snapshot_persist_seconds",
		Help:    "Time to encode and write a snapshot to disk, by result.",
		Buckets: prometheus.ExponentialBuckets(.001, 4, 10),
	}, []string{"result"})
	m.snapSize = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tokend_raft_snapshot_size_bytes",
		Help: "Size of the last snapshot this node wrote (0 until it writes one).",
	})
	for _, r := range []string{"ok", "error"} {
		m.snapPersist.WithLabelValues(r)
	}
}

// nodeCollectors are the collectors read from the node at scrape time:
// refused internal connections, Raft's state and indexes, read readiness
// and lease holders. The functions run at scrape time only, after New
// returned, so n.raft is set.
func nodeCollectors(n *Node) []prometheus.Collector {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	return []prometheus.Collector{
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
		gauge("tokend_cluster_visibility_floor", "Highest log index this node knows every node serving reads has applied (visible.go).", func() float64 { return float64(n.vis.floor.Load()) }),
		gauge("tokend_fsm_inflight_keys", "Tokens with a change above the visibility floor, whose reads wait for it (fsm/recent.go).", func() float64 { return float64(n.fsm.InFlightKeys()) }),
		gauge("tokend_raft_last_contact_seconds", "Seconds since this node last heard from a leader: 0 on the leader; since the node started when it never has.", func() float64 {
			if n.raft.State() == raft.Leader {
				return 0
			}
			if t := n.raft.LastContact(); !t.IsZero() {
				return time.Since(t).Seconds()
			}
			return time.Since(n.started).Seconds()
		}),
		gauge("tokend_cluster_read_ready", "1 when this node may answer validations (leader ready, or read lease held).", func() float64 { return b(n.ReadReady() == nil) }),
		gauge("tokend_cluster_lease_holders", "On the leader: nodes holding an unexpired read lease.", func() float64 {
			ls := n.leader.Load()
			if ls == nil {
				return 0
			}
			return float64(ls.leases.holdersAt(n.sinceStart()))
		}),
	}
}

// register adds the collectors to reg (nil: none).
func (m *metrics) register(reg prometheus.Registerer, n *Node) {
	if reg == nil {
		return
	}
	m.reg = reg
	for _, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			n.log.Warn("cluster: metric not registered", "err", err)
		}
	}
}

func (m *metrics) observeApply(path string, start time.Time, err error) {
	if m == nil {
		return
	}
	result := 0
	if err != nil {
		result = 1
	}
	for i, p := range applyPaths {
		if p == path {
			m.applyObs[i][result].Observe(time.Since(start).Seconds())
			return
		}
	}
	m.apply.WithLabelValues(path, [2]string{"ok", "error"}[result]).Observe(time.Since(start).Seconds())
}

// observeLease counts the leader's answer to a renewal.
func (m *metrics) observeLease(resp leaseResponse) {
	if resp.Granted {
		m.leaseGrants.Inc()
		return
	}
	reason := strings.ReplaceAll(resp.Reason, " ", "_")
	for _, r := range leaseRefusalReasons {
		if r == reason {
			m.leaseRefusals.WithLabelValues(reason).Inc()
			return
		}
	}
	m.leaseRefusals.WithLabelValues("other").Inc()
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}

// observeForward counts one forwarding attempt: safe errors mean nothing
// was proposed and Apply tries again.
func (m *metrics) observeForward(err error, safe bool) {
	switch {
	case err == nil:
		m.forwarded.WithLabelValues("ok").Inc()
	case safe:
		m.forwarded.WithLabelValues("retried").Inc()
	default:
		m.forwarded.WithLabelValues("failed").Inc()
	}
}
