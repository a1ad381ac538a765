package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/internal/loopaddr"
)

// The harness: real Nodes with the real fsm and raft-boltdb files in a
// temporary directory, wired through one nemesis (nemesis_test.go), each
// with a lease clock whose rate is off real time by up to clockSkew.
// Gossip runs on loopback ports and is never disturbed: it only finds
// members, and a member that gossip thinks alive stays a voter.

// harnessTiming shortens Raft's elections so that a schedule of faults
// fits in seconds. The lease constants (config.go) are untouched, so a
// new leader still waits officeWait before acknowledging writes.
var harnessTiming = raftTiming{
	heartbeat:   500 * time.Millisecond,
	election:    500 * time.Millisecond,
	leaderLease: 250 * time.Millisecond,
	// Longer than production's 2ms: idle clusters burn less CPU, and
	// followers learn commits later, which widens the windows in which
	// a missing visibility barrier would show.
	commit: 20 * time.Millisecond,
}

// clockSkew bounds each lease clock's rate: 1±clockSkew. Two clocks then
// differ by at most 2*clockSkew = 8%, inside holderMargin/leaseLength
// (10%), the assumption of the lease argument in doc.go.
const clockSkew = 0.04

// hnode is one slot of the harness cluster; a restart or a replacement
// puts a new Node (and possibly a new identity) into it.
type hnode struct {
	h *harness

	mu     sync.Mutex
	id     string
	addr   string // the Raft "address", a name only the nemesis routes
	gossip string
	dir    string
	node   *Node
	srv    *nemServer
	up     bool
	resume chan struct{} // non-nil while paused: closed on resume
	gen    int           // incarnation, for the log
}

type harness struct {
	seed   uint64
	dir    string
	key    []byte
	nem    *nemesis
	log    *slog.Logger
	plant  bool // testHooks.ackEarly on every node
	clocks func() float64
	nextID int

	mu    sync.Mutex
	nodes []*hnode
}

// newHarness starts size nodes that bootstrap together and waits until
// each can serve reads. rates draws each incarnation's clock rate.
func newHarness(ctx context.Context, seed uint64, dir string, size int, rate func() float64, plant bool, log *slog.Logger) (*harness, error) {
	h := &harness{seed: seed, dir: dir, key: make([]byte, 32), nem: newNemesis(seed), log: log, plant: plant, clocks: rate}
	for i := range h.key {
		h.key[i] = byte(seed>>(8*(i%8))) ^ byte(i)
	}
	for range size {
		hn, err := h.newSlot()
		if err != nil {
			return nil, err
		}
		h.nodes = append(h.nodes, hn)
	}
	for _, hn := range h.nodes {
		if err := hn.start(h.gossipPeers(hn), size); err != nil {
			h.close()
			return nil, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := h.waitReady(wctx); err != nil {
		h.close()
		return nil, fmt.Errorf("cluster never became ready: %w", err)
	}
	return h, nil
}

// newSlot allocates a fresh identity: node id, data dir, addresses.
func (h *harness) newSlot() (*hnode, error) {
	h.nextID++
	id := fmt.Sprintf("n%d", h.nextID)
	g, err := loopaddr.Free()
	if err != nil {
		return nil, err
	}
	return &hnode{h: h, id: id, addr: "nem-" + id + ":7000", gossip: g, dir: filepath.Join(h.dir, id)}, nil
}

func (h *harness) gossipPeers(self *hnode) []string {
	var out []string
	for _, o := range h.slots() {
		if o != self {
			out = append(out, o.gossipAddr())
		}
	}
	return out
}

func (h *harness) slots() []*hnode {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*hnode(nil), h.nodes...)
}

func (hn *hnode) gossipAddr() string {
	hn.mu.Lock()
	defer hn.mu.Unlock()
	return hn.gossip
}

// start runs a new incarnation of the slot on its data dir (creating or
// reopening raft.db and the snapshots there). expect is BootstrapExpect:
// the cluster size for the first start, 1 for a node that joins (it never
// bootstraps then; the leader adds it).
func (hn *hnode) start(join []string, expect int) error {
	h := hn.h
	hn.mu.Lock()
	defer hn.mu.Unlock()
	hooks := &testHooks{
		dial:     h.nem.dialer(hn.addr),
		clock:    skewClock(h.clocks()),
		timing:   &harnessTiming,
		ackEarly: h.plant,
	}
	hooks.transport = func(serve func(net.Conn)) raftTransport {
		t, srv := h.nem.attach(hn.addr, serve)
		hn.srv = srv
		return t
	}
	hn.gen++
	cfg := Config{
		NodeID:            hn.id,
		DataDir:           hn.dir,
		RaftAddr:          hn.addr,
		GossipAddr:        hn.gossip,
		HTTPAddr:          "http://" + hn.id,
		Join:              join,
		BootstrapExpect:   expect,
		ClusterKey:        h.key,
		DeadServerGrace:   time.Hour,
		PurgeInterval:     time.Hour,
		SnapshotThreshold: 64,
		Version:           "nemesis",
		FSM:               fsm.New(),
		Logger:            h.log.With("node", fmt.Sprintf("%s#%d", hn.id, hn.gen)),
		hooks:             hooks,
	}
	n, err := New(context.Background(), cfg)
	if err != nil {
		h.nem.detach(hn.addr)
		return fmt.Errorf("start %s: %w", hn.id, err)
	}
	hn.node, hn.up = n, true
	return nil
}

// stop shuts the slot's node down (as a crash would: no Leave) and waits
// until nothing of it runs any more.
func (hn *hnode) stop() error {
	hn.mu.Lock()
	n, srv, up := hn.node, hn.srv, hn.up
	hn.up = false
	if hn.resume != nil {
		hn.h.nem.resume(hn.addr)
		close(hn.resume)
		hn.resume = nil
	}
	hn.mu.Unlock()
	if !up {
		return nil
	}
	hn.h.nem.detach(hn.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := n.Shutdown(ctx)
	if srv != nil {
		srv.wg.Wait()
	}
	if err != nil {
		return fmt.Errorf("shutdown %s: %w", hn.name(), err)
	}
	return nil
}

// restart stops the node and starts it again on the same data dir.
func (hn *hnode) restart() error {
	if err := hn.stop(); err != nil {
		return err
	}
	return hn.start(hn.h.gossipPeers(hn), 1)
}

// pause holds the node's clients' requests until unpause and either cuts
// every link of the node or (hold) holds its messages both ways until
// then: as a stopped process looks from outside. (Its own timers keep
// running, so a paused leader steps down on time; the pause of a whole
// process is covered by cmd/tokend's linearizability test.)
func (hn *hnode) pause(hold bool) {
	hn.mu.Lock()
	defer hn.mu.Unlock()
	if hn.resume == nil && hn.up {
		hn.resume = make(chan struct{})
		hn.h.nem.pause(hn.addr, hold)
	}
}

func (hn *hnode) unpause() {
	hn.mu.Lock()
	defer hn.mu.Unlock()
	if hn.resume != nil {
		hn.h.nem.resume(hn.addr)
		close(hn.resume)
		hn.resume = nil
	}
}

// held returns a channel to wait on before sending the node a request (nil
// when it is not paused).
func (hn *hnode) held() <-chan struct{} {
	hn.mu.Lock()
	defer hn.mu.Unlock()
	return hn.resume
}

// replace removes the slot's node from the cluster (Leave, then
// shutdown) and puts a new member, with a new id and an empty data dir,
// in its place; the leader adds it as a voter once gossip reports it. If
// Leave fails (no leader reachable), the old node is restarted instead.
func (h *harness) replace(ctx context.Context, hn *hnode) error {
	n, up := hn.current()
	if !up {
		return nil
	}
	if err := n.Leave(ctx); err != nil {
		h.log.Info("nemesis: leave failed, restarting instead", "node", hn.name(), "err", err)
		return hn.restart()
	}
	if err := hn.stop(); err != nil {
		return err
	}
	fresh, err := h.newSlot()
	if err != nil {
		return err
	}
	hn.mu.Lock()
	hn.id, hn.addr, hn.gossip, hn.dir, hn.gen = fresh.id, fresh.addr, fresh.gossip, fresh.dir, 0
	hn.mu.Unlock()
	return hn.start(h.gossipPeers(hn), 1)
}

// waitReady waits until every running, unpaused node can serve reads.
func (h *harness) waitReady(ctx context.Context) error {
	for _, hn := range h.slots() {
		n, ok := hn.current()
		if !ok {
			continue
		}
		if err := n.WaitReady(ctx); err != nil {
			return fmt.Errorf("%s: %w (status %+v)", hn.name(), err, n.Status())
		}
	}
	return nil
}

// current returns the slot's running node; false while it is down.
func (hn *hnode) current() (*Node, bool) {
	hn.mu.Lock()
	defer hn.mu.Unlock()
	return hn.node, hn.up
}

func (hn *hnode) name() string {
	hn.mu.Lock()
	defer hn.mu.Unlock()
	return fmt.Sprintf("%s#%d", hn.id, hn.gen)
}

func (h *harness) close() {
	for _, hn := range h.slots() {
		hn.stop()
	}
}
