package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/tokend/tokend/fsm"
)

// Node is one tokend server: a Raft member applying committed commands to
// the FSM, plus gossip, forwarding and read leases.
type Node struct {
	cfg  Config
	log  *slog.Logger
	fsm  *fsm.FSM
	raft *raft.Raft

	store *raftboltdb.BoltStore
	snaps *raft.FileSnapshotStore
	disk  *diskHealth // outcome of raft.db writes (diskhealth.go)
	trans raftTransport
	// internal is the internal port and rpc its client; both nil on a
	// single node without a cluster key (in-memory transport).
	internal *internalListener
	rpc      *rpcClient
	fwd      *forwarder             // batches forwarded writes; nil without rpc
	ml       *memberlist.Memberlist // nil without a cluster key
	handOff  atomic.Pointer[http.Handler]

	hadState bool
	// raftUp is closed once openRaft has set raft: the internal port
	// accepts calls before that, and serving them needs it (rpc.go).
	raftUp chan struct{}

	// applied is the highest log index whose effects are visible in the
	// FSM (commands and configuration entries).
	applied  atomic.Uint64
	appliedN notifier
	pushCh   chan struct{} // kicks the lease loop after an apply batch

	leader atomic.Pointer[leaderState] // non-nil while this node leads
	lease  holderLease                 // read lease held from the leader
	vis    visibility                  // visibility floor (visible.go)

	peersMu sync.Mutex
	peers   map[string]*peer     // gossip view, including dead and left members
	leftAt  map[string]time.Time // servers removed by Leave, recently (leader)
	leaving atomic.Bool
	joinErr atomic.Pointer[string]

	notifyCh    chan bool
	reconcileCh chan struct{}
	metrics     *metrics
	tracer      atomic.Pointer[hopTracer] // hop tracing (hoptrace.go)
	// started anchors sinceStart, a monotonic clock that can be stored
	// in an atomic.
	started time.Time

	shutdownCh chan struct{}
	// stopCtx is cancelled when Shutdown begins: internal calls made or
	// served on the node's behalf end with it.
	stopCtx      context.Context
	stop         context.CancelFunc
	shutdownOnce sync.Once
	shutdownErr  error
	shutdownDone chan struct{}
	wg           sync.WaitGroup
}

// New opens (or creates) the node's Raft state under DataDir, starts Raft,
// gossip and the background loops, and bootstraps when appropriate. It
// returns without waiting for a leader; use WaitReady for that.
func New(ctx context.Context, cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{
		started:      time.Now(),
		cfg:          cfg,
		log:          cfg.Logger.With("node", cfg.NodeID),
		fsm:          cfg.FSM,
		pushCh:       make(chan struct{}, 1),
		peers:        make(map[string]*peer),
		leftAt:       make(map[string]time.Time),
		notifyCh:     make(chan bool, 16),
		reconcileCh:  make(chan struct{}, 1),
		shutdownCh:   make(chan struct{}),
		shutdownDone: make(chan struct{}),
		raftUp:       make(chan struct{}),
	}
	// Created before Raft starts: the FSM goroutine observes them from
	// the first replayed batch on; registered once the node is up.
	n.metrics = newMetrics(n)
	n.stopCtx, n.stop = context.WithCancel(context.Background())
	n.applied.Store(cfg.FSM.AppliedIndex())
	if err := n.openRaft(); err != nil {
		n.closeStores()
		return nil, err
	}
	switch {
	case n.hadState:
		n.log.Info("cluster: existing raft state found, not bootstrapping")
	case cfg.BootstrapExpect == 1 && len(cfg.Join) == 0:
		err := n.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: raft.ServerID(cfg.NodeID), Address: raft.ServerAddress(cfg.RaftAddr),
		}}}).Error()
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			n.Shutdown(ctx)
			return nil, fmt.Errorf("cluster: bootstrap: %w", err)
		}
		n.log.Info("cluster: bootstrapped single-node cluster")
	}

	if len(cfg.ClusterKey) > 0 {
		if err := n.startGossip(); err != nil {
			n.Shutdown(ctx)
			return nil, err
		}
		n.wg.Add(1)
		go n.leaseLoop()
		n.fwd.start()
	}
	// Started last: the leader loop uses n.ml. NotifyCh is buffered.
	n.wg.Add(1)
	go n.watchLeadership()
	n.metrics.register(cfg.Registerer, n)
	return n, nil
}

func (n *Node) openRaft() error {
	cfg := n.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("cluster: data dir: %w", err)
	}
	hlog := newHclog(n.log, "raft")
	store, err := openRaftDB(filepath.Join(cfg.DataDir, "raft.db")) // startcheck.go
	if err != nil {
		return err
	}
	n.store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hlog.Named("snapshot"))
	if err != nil {
		return fmt.Errorf("cluster: snapshot store: %w", err)
	}
	n.snaps = snaps
	trans, err := n.openTransport(hlog)
	if err != nil {
		return err
	}
	n.trans = trans

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	timing := n.raftTiming() // config.go's constants unless a test set hooks
	rc.HeartbeatTimeout = timing.heartbeat
	rc.ElectionTimeout = timing.election
	rc.LeaderLeaseTimeout = timing.leaderLease
	rc.CommitTimeout = timing.commit
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.SnapshotThreshold
	rc.SnapshotInterval = 30 * time.Second
	rc.MaxAppendEntries = 256
	rc.BatchApplyCh = true
	rc.NotifyCh = n.notifyCh
	rc.Logger = hlog

	n.hadState, err = raft.HasExistingState(store, store, snaps)
	if err != nil {
		trans.Close()
		return fmt.Errorf("cluster: inspect raft state: %w", err)
	}
	sc, err := newStartCheck(cfg.DataDir, store)
	if err != nil {
		trans.Close()
		return err
	}
	n.disk = newDiskHealth(n.log)
	stores := &healthStore{BoltStore: store, h: n.disk}
	// The cache keeps the newest entries in memory: the leader sends them
	// to followers and every node applies them right after storing them,
	// and without it each of those reads goes back to bolt and msgpack
	// (about 12% of the leader's CPU under a write load).
	logs, err := raft.NewLogCache(logCacheSize, stores)
	if err != nil {
		trans.Close()
		return fmt.Errorf("cluster: log cache: %w", err)
	}
	r, err := raft.NewRaft(rc, sc.fsm(&raftFSM{n: n}), logs, stores, sc.snapshots(snaps), trans)
	if err != nil {
		trans.Close()
		return sc.explain(fmt.Errorf("cluster: start raft: %w", err))
	}
	if err := sc.started(r); err != nil {
		r.Shutdown().Error()
		trans.Close()
		return err
	}
	n.raft = r
	close(n.raftUp)
	return nil
}

// raftTransport is what the node needs from its Raft transport: the
// internal port's NetworkTransport or, alone without a cluster key, an
// InmemTransport.
type raftTransport interface {
	raft.Transport
	Close() error
}

// openTransport opens the internal port (Raft and RPC over mutual TLS) or,
// for a single node without a cluster key, an in-memory transport: such a
// node has no peers to talk to, so it listens on no internal port at all.
func (n *Node) openTransport(hlog *hclogAdapter) (raftTransport, error) {
	cfg := n.cfg
	if len(cfg.ClusterKey) == 0 {
		_, trans := raft.NewInmemTransport(raft.ServerAddress(cfg.RaftAddr))
		return trans, nil
	}
	if h := cfg.hooks; h != nil && h.transport != nil {
		// The fault-injection harness: Raft over its wrapped in-memory
		// transport, internal RPCs over its connections (testhooks.go).
		n.rpc = newRPCClient(&internalDialer{hook: h.dial})
		n.fwd = newForwarder(n)
		return h.transport(n.serveRPC), nil
	}
	id, err := newIdentity(cfg.NodeID, cfg.ClusterKey, cfg.AcceptKeys, cfg.InternalTLS)
	if err != nil {
		return nil, fmt.Errorf("cluster: internal TLS: %w", err)
	}
	dialer := &internalDialer{tls: id.clientTLS()}
	l, err := listenInternal(cfg.RaftAddr, id.serverTLS(), n.log, n.serveRPC)
	if err != nil {
		return nil, fmt.Errorf("cluster: internal port %s: %w", cfg.RaftAddr, err)
	}
	n.internal, n.rpc = l, newRPCClient(dialer)
	n.fwd = newForwarder(n)
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  &raftLayer{l: l, dialer: dialer},
		MaxPool: 3,
		// 1 turns pipelined replication off. Its send loop can wedge for
		// good after a follower answers an append with failure (a full
		// disk there, or a log mismatch): hashicorp/raft#612, found
		// here by TestDiskFaultFollower. Raft's own docs find it of
		// little use with batching.
		MaxRPCsInFlight: 1,
		Timeout:         10 * time.Second,
		Logger:          hlog.Named("transport"),
	}), nil
}

func (n *Node) closeStores() {
	if n.trans != nil {
		n.trans.Close()
	} else if n.internal != nil {
		n.internal.close()
	}
	if n.store != nil {
		n.store.Close()
	}
}

// hasState reports whether this node has (or had) any Raft state, i.e. it
// belongs to a cluster and must never bootstrap.
func (n *Node) hasState() bool {
	return n.hadState || n.raft.LastIndex() > 0
}

func (n *Node) stopping() bool {
	select {
	case <-n.shutdownCh:
		return true
	default:
		return false
	}
}

// Shutdown stops the node without leaving the cluster (peers see it as
// failed; use Leave first for a graceful departure). Safe to call twice.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutdownOnce.Do(func() {
		close(n.shutdownCh)
		n.stop()
		if ls := n.leader.Swap(nil); ls != nil {
			ls.cancel()
		}
		go func() {
			defer close(n.shutdownDone)
			var errs []error
			if n.raft != nil {
				errs = append(errs, n.raft.Shutdown().Error())
			}
			if n.ml != nil {
				errs = append(errs, n.ml.Shutdown())
			}
			n.wg.Wait()
			if n.trans != nil {
				n.trans.Close()
			}
			if n.internal != nil {
				n.internal.close()
				n.internal.wg.Wait()
			}
			if n.rpc != nil {
				n.rpc.close()
			}
			errs = append(errs, n.store.Close())
			if n.metrics != nil {
				n.metrics.unregister()
			}
			n.shutdownErr = errors.Join(errs...)
		}()
	})
	select {
	case <-n.shutdownDone:
		return n.shutdownErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Snapshot forces a Raft snapshot (and log compaction).
func (n *Node) Snapshot() error {
	err := n.raft.Snapshot().Error()
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil
	}
	return err
}

// raftFSM adapts *fsm.FSM to raft.BatchingFSM.
type raftFSM struct{ n *Node }

func (a *raftFSM) Apply(l *raft.Log) any { return a.ApplyBatch([]*raft.Log{l})[0] }

func (a *raftFSM) ApplyBatch(logs []*raft.Log) []any {
	a.n.metrics.batchSizes.Observe(float64(len(logs)))
	out := make([]any, len(logs))
	var last uint64
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			out[i] = a.n.fsm.Apply(l.Index, l.Data)
		}
		last = l.Index
	}
	// Traced before it becomes visible, so it precedes any report of it.
	a.n.hop("applied")
	if last > a.n.applied.Load() {
		a.n.applied.Store(last)
	}
	a.n.appliedN.notify()
	select {
	case a.n.pushCh <- struct{}{}:
	default:
	}
	return out
}

func (a *raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	start := time.Now()
	s := a.n.fsm.Snapshot()
	a.n.metrics.snapCapture.Observe(time.Since(start).Seconds())
	return fsmSnapshot{s, a.n.metrics}, nil
}

func (a *raftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := a.n.fsm.Restore(rc); err != nil {
		return err
	}
	a.n.applied.Store(a.n.fsm.AppliedIndex())
	a.n.appliedN.notify()
	return nil
}

type fsmSnapshot struct {
	s *fsm.Snapshot
	m *metrics
}

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) (err error) {
	start := time.Now()
	var size int64
	defer func() {
		result := "ok"
		if err != nil {
			result = "error"
		} else {
			s.m.snapSize.Set(float64(size))
		}
		s.m.snapPersist.WithLabelValues(result).Observe(time.Since(start).Seconds())
	}()
	if size, err = s.s.WriteTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release lets the state machine change the shared index tables in place
// again (fsm copies a table a snapshot still reads before changing it).
func (s fsmSnapshot) Release() { s.s.Release() }

// notifier is a broadcast: wait returns a channel closed by the next notify.
// Take the channel before checking the condition you wait for.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (nt *notifier) wait() <-chan struct{} {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if nt.ch == nil {
		nt.ch = make(chan struct{})
	}
	return nt.ch
}

func (nt *notifier) notify() {
	nt.mu.Lock()
	if nt.ch != nil {
		close(nt.ch)
		nt.ch = nil
	}
	nt.mu.Unlock()
}

// waitApplied waits until the local FSM has applied index, or ctx ends.
func (n *Node) waitApplied(ctx context.Context, index uint64) bool {
	for {
		ch := n.appliedN.wait()
		if n.applied.Load() >= index {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		case <-n.shutdownCh:
			return false
		}
	}
}

// Status is what GET /cluster/status reports.
type Status struct {
	NodeID         string   `json:"node_id"`
	State          string   `json:"state"`
	Term           uint64   `json:"term"`
	LeaderID       string   `json:"leader_id"`
	LeaderHTTPAddr string   `json:"leader_http_addr"`
	CommitIndex    uint64   `json:"commit_index"`
	AppliedIndex   uint64   `json:"applied_index"`
	ReadReady      bool     `json:"read_ready"`
	JoinError      string   `json:"join_error,omitempty"`
	Members        []Member `json:"members"`
	// DiskFault is the last failed write to raft.db while no later one
	// has succeeded (diskhealth.go).
	DiskFault *DiskFault `json:"disk_fault,omitempty"`
}

// Member is one server as Raft and gossip see it.
type Member struct {
	NodeID   string `json:"node_id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	// Suffrage is Voter, Nonvoter or Staging in the Raft configuration, or
	// None for a gossip member that is not (yet) in it.
	Suffrage string `json:"suffrage"`
	// Status is the gossip health: alive, dead, left, or unknown
	// for a configured server gossip has not seen.
	Status  string `json:"status"`
	Version string `json:"version,omitempty"`
}

// Status reports this node's view of the cluster.
func (n *Node) Status() Status {
	s := Status{
		NodeID:       n.cfg.NodeID,
		State:        n.raft.State().String(),
		Term:         n.raft.CurrentTerm(),
		CommitIndex:  n.raft.CommitIndex(),
		AppliedIndex: n.applied.Load(),
		ReadReady:    n.ReadReady() == nil,
		DiskFault:    n.disk.status(),
		Members:      []Member{},
	}
	if e := n.joinErr.Load(); e != nil {
		s.JoinError = *e
	}
	_, lid := n.raft.LeaderWithID()
	s.LeaderID = string(lid)
	if lid != "" {
		meta, _ := n.memberMeta(string(lid))
		s.LeaderHTTPAddr = meta.HTTP
	}
	byID := map[string]*Member{}
	get := func(id string) *Member {
		m := byID[id]
		if m == nil {
			m = &Member{NodeID: id, Suffrage: "None", Status: "unknown"}
			byID[id] = m
		}
		return m
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, sv := range f.Configuration().Servers {
			m := get(string(sv.ID))
			m.RaftAddr = string(sv.Address)
			m.Suffrage = sv.Suffrage.String()
		}
	}
	self := get(n.cfg.NodeID)
	self.RaftAddr, self.HTTPAddr, self.Version = n.cfg.RaftAddr, n.cfg.HTTPAddr, n.cfg.Version
	if n.raft.State() != raft.Shutdown {
		self.Status = "alive"
	}
	if n.ml != nil {
		n.peersMu.Lock()
		for id, p := range n.peers {
			m := get(id)
			if m.RaftAddr == "" {
				m.RaftAddr = p.meta.Raft
			}
			m.HTTPAddr, m.Version = p.meta.HTTP, p.meta.Version
			m.Status = p.status()
		}
		n.peersMu.Unlock()
	}
	for _, m := range byID {
		s.Members = append(s.Members, *m)
	}
	sort.Slice(s.Members, func(i, j int) bool { return s.Members[i].NodeID < s.Members[j].NodeID })
	return s
}

// sinceStart is nanoseconds on the monotonic clock since the node started
// (or on the test clock of the harness, testhooks.go).
func (n *Node) sinceStart() int64 {
	if h := n.cfg.hooks; h != nil && h.clock != nil {
		return h.clock()
	}
	return int64(time.Since(n.started))
}
