package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// nodeMeta is what each node gossips about itself (kept well under
// memberlist's 512-byte limit).
type nodeMeta struct {
	ID      string `json:"id"`
	Raft    string `json:"raft"`
	HTTP    string `json:"http"`
	Version string `json:"v,omitempty"`
	Expect  int    `json:"expect"`
	// State: the node has Raft state, i.e. belongs to a cluster already.
	State bool `json:"state"`
	// Left: the node is leaving gracefully (set by Leave just before the
	// gossip leave, because memberlist's leave events do not say whether
	// a node left or died).
	Left bool `json:"left,omitempty"`
}

type peer struct {
	meta  nodeMeta
	state memberlist.NodeStateType
	since time.Time // when state last changed, as seen here
}

func (p *peer) status() string {
	switch p.state {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown"
}

func (n *Node) localMeta() nodeMeta {
	return nodeMeta{ID: n.cfg.NodeID, Raft: n.cfg.RaftAddr, HTTP: n.cfg.HTTPAddr, Version: n.cfg.Version,
		Expect: n.cfg.BootstrapExpect, State: n.hasState(), Left: n.leaving.Load()}
}

type gossipDelegate struct{ n *Node }

func (d gossipDelegate) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(d.n.localMeta())
	if len(b) > limit {
		d.n.log.Error("cluster: node metadata too large for gossip", "bytes", len(b))
		return nil
	}
	return b
}
func (gossipDelegate) NotifyMsg([]byte)                {}
func (gossipDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (gossipDelegate) LocalState(bool) []byte          { return nil }
func (gossipDelegate) MergeRemoteState([]byte, bool)   {}

type gossipEvents struct{ n *Node }

// memberlist never fills in Node.State for events, so the event kind
// decides: join/update mean alive, leave means dead (or left, when the
// node announced it in its metadata).
func (e gossipEvents) NotifyJoin(m *memberlist.Node)   { e.n.gossipEvent(m, memberlist.StateAlive) }
func (e gossipEvents) NotifyLeave(m *memberlist.Node)  { e.n.gossipEvent(m, memberlist.StateDead) }
func (e gossipEvents) NotifyUpdate(m *memberlist.Node) { e.n.gossipEvent(m, memberlist.StateAlive) }

func (n *Node) gossipEvent(m *memberlist.Node, state memberlist.NodeStateType) {
	var meta nodeMeta
	if err := json.Unmarshal(m.Meta, &meta); err != nil || meta.ID != m.Name {
		n.log.Warn("cluster: ignoring gossip member with bad metadata", "name", m.Name, "addr", m.Address())
		return
	}
	if meta.Left {
		state = memberlist.StateLeft
	}
	n.peersMu.Lock()
	p := n.peers[m.Name]
	if p == nil {
		p = &peer{}
		n.peers[m.Name] = p
	}
	if p.state != state || p.since.IsZero() {
		p.since = time.Now()
	}
	p.meta, p.state = meta, state
	n.peersMu.Unlock()
	if m.Name != n.cfg.NodeID {
		n.log.Info("cluster: gossip member", "member", m.Name, "status", p.status(), "raft", meta.Raft, "http", meta.HTTP)
	}
	select {
	case n.reconcileCh <- struct{}{}:
	default:
	}
}

func (n *Node) startGossip() error {
	host, portStr, _ := net.SplitHostPort(n.cfg.GossipAddr)
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("cluster: gossip port %q: %w", portStr, err)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.cfg.NodeID
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	// The keyring encrypts with the primary key and decrypts with every
	// accepted one, so a key rotation never splits gossip.
	kr, err := memberlist.NewKeyring(n.cfg.AcceptKeys, n.cfg.ClusterKey)
	if err != nil {
		return fmt.Errorf("cluster: gossip keyring: %w", err)
	}
	mc.Keyring = kr
	mc.Delegate = gossipDelegate{n}
	mc.Events = gossipEvents{n}
	mc.DeadNodeReclaimTime = 10 * time.Second // a replaced node may reuse its name
	mc.Logger = log.New(stdWriter{newHclog(n.log, "memberlist")}, "", 0)
	mc.LogOutput = nil
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("cluster: start gossip on %s: %w", n.cfg.GossipAddr, err)
	}
	n.ml = ml
	if len(n.cfg.Join) > 0 {
		n.wg.Add(1)
		go n.joinLoop()
	}
	if !n.hadState && (n.cfg.BootstrapExpect > 1) {
		n.wg.Add(1)
		go n.bootstrapLoop()
	}
	n.wg.Add(1)
	go n.metaLoop()
	return nil
}

// joinLoop retries joining until some member answers.
func (n *Node) joinLoop() {
	defer n.wg.Done()
	backoff := 200 * time.Millisecond
	for {
		joined, err := n.ml.Join(n.cfg.Join)
		if joined > 0 {
			n.joinErr.Store(nil)
			n.log.Info("cluster: joined gossip", "contacted", joined)
			return
		}
		msg := fmt.Sprintf("cannot join %v: %s (is the cluster key the same on every node?)", n.cfg.Join, strings.Join(strings.Fields(fmt.Sprint(err)), " "))
		if prev := n.joinErr.Load(); prev == nil || *prev != msg {
			n.log.Error("cluster: " + msg)
		}
		n.joinErr.Store(&msg)
		t := time.NewTimer(backoff)
		select {
		case <-n.shutdownCh:
			t.Stop()
			return
		case <-t.C:
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

// metaLoop re-gossips this node's metadata when it gains Raft state, so
// new nodes know not to bootstrap with it.
func (n *Node) metaLoop() {
	defer n.wg.Done()
	advertised := n.hadState
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for !advertised {
		select {
		case <-n.shutdownCh:
			return
		case <-t.C:
		}
		if n.leaving.Load() {
			return
		}
		if n.hasState() {
			if err := n.ml.UpdateNode(5 * time.Second); err != nil {
				n.log.Warn("cluster: gossip metadata update", "err", err)
				continue
			}
			advertised = true
		}
	}
}

// bootstrapLoop waits until exactly BootstrapExpect servers without Raft
// state see each other, then bootstraps them all with one configuration.
// Every node computes the same sorted server list, and hashicorp/raft
// accepts identical bootstraps on each of them.
func (n *Node) bootstrapLoop() {
	defer n.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	warned := map[string]bool{}
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-t.C:
		}
		if n.hasState() {
			return
		}
		if _, id := n.raft.LeaderWithID(); id != "" {
			return
		}
		var servers []raft.Server
		existing, mismatch := false, false
		for _, meta := range n.alivePeers() {
			if meta.Expect != n.cfg.BootstrapExpect {
				mismatch = true
				if !warned[meta.ID] {
					warned[meta.ID] = true
					n.log.Error("cluster: peer has a different bootstrap-expect; not bootstrapping",
						"peer", meta.ID, "peer_expect", meta.Expect, "expect", n.cfg.BootstrapExpect)
				}
			}
			if meta.State {
				existing = true
			}
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(meta.ID), Address: raft.ServerAddress(meta.Raft)})
		}
		switch {
		case mismatch:
			continue
		case existing:
			if !warned["\x00existing"] {
				warned["\x00existing"] = true
				n.log.Info("cluster: found an existing cluster; waiting for its leader to add this node")
			}
			continue
		case len(servers) < n.cfg.BootstrapExpect:
			continue
		case len(servers) > n.cfg.BootstrapExpect:
			if !warned["\x00toomany"] {
				warned["\x00toomany"] = true
				n.log.Error("cluster: more servers than bootstrap-expect without state; not bootstrapping", "seen", len(servers))
			}
			continue
		}
		sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
		err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			n.log.Error("cluster: bootstrap failed", "err", err)
			continue
		}
		n.log.Info("cluster: bootstrapped", "servers", len(servers))
		return
	}
}

var _ io.Writer = stdWriter{}

// alivePeers is the metadata of every member gossip reports alive (this
// node included), from the peers table that gossip events keep. Reading
// memberlist.Members()' Meta instead would race: those are memberlist's
// own records, rewritten under its lock when a member updates its meta.
func (n *Node) alivePeers() []nodeMeta {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	out := make([]nodeMeta, 0, len(n.peers))
	for _, p := range n.peers {
		if p.state == memberlist.StateAlive {
			out = append(out, p.meta)
		}
	}
	return out
}
