package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// reconcile makes the Raft configuration follow gossip: alive members
// become voters (or get their new address), members that left are
// removed, and members dead longer than DeadServerGrace are removed when
// the remaining voters keep a quorum.
func (n *Node) reconcile(ls *leaderState) {
	if n.ml == nil || n.raft.State() != raft.Leader {
		return
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return
	}
	inCfg := map[string]raft.Server{}
	for _, s := range f.Configuration().Servers {
		inCfg[string(s.ID)] = s
	}
	peers := n.reconcilePeers()
	n.addAliveVoters(inCfg, peers)
	n.removeLeftServers(inCfg, peers)
	n.removeDeadServers(ls, inCfg, peers)
}

// reconcilePeers copies the gossip view for reconcile, with servers that
// left through Leave marked as left while their tombstone lasts.
func (n *Node) reconcilePeers() map[string]peer {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	peers := make(map[string]peer, len(n.peers))
	for id, p := range n.peers {
		cp := *p
		// A server that left through Leave stays out for a while even if
		// gossip has not (yet) heard of its departure.
		if at, ok := n.leftAt[id]; ok {
			if time.Since(at) < leftTombstone {
				cp.state = memberlist.StateLeft
			} else {
				delete(n.leftAt, id)
			}
		}
		peers[id] = cp
	}
	return peers
}

// addAliveVoters is reconcile's first pass: it adds alive members that
// are not voters (or not at their gossiped raft address), this node
// included.
func (n *Node) addAliveVoters(inCfg map[string]raft.Server, peers map[string]peer) {
	// A node restarted under a new Raft address may win an election before
	// anyone updated its entry; as leader it must fix its own, or it is
	// unreachable the moment it steps down.
	if self, ok := inCfg[n.cfg.NodeID]; ok && string(self.Address) != n.cfg.RaftAddr {
		n.log.Info("cluster: updating own raft address", "raft", n.cfg.RaftAddr, "was", string(self.Address))
		if err := n.raft.AddVoter(raft.ServerID(n.cfg.NodeID), raft.ServerAddress(n.cfg.RaftAddr), 0, 5*time.Second).Error(); err != nil {
			n.log.Warn("cluster: updating own raft address failed", "err", err)
		}
	}

	for id, p := range peers {
		if id == n.cfg.NodeID {
			continue
		}
		s, ok := inCfg[id]
		if p.state != memberlist.StateAlive || ok && string(s.Address) == p.meta.Raft && s.Suffrage == raft.Voter {
			continue
		}
		// Gossip only proves the cluster key; with operator PKI a node
		// may hold the key but no certificate we trust. Adding it would
		// make a voter nobody can reach, so its internal port must
		// complete a mutual TLS call first.
		if _, _, err := n.rpc.call(n.stopCtx, p.meta.Raft, opPing, nil, 2*time.Second); err != nil {
			n.log.Warn("cluster: not adding member: its internal port failed authentication", "id", id, "raft", p.meta.Raft, "err", err)
			continue
		}
		n.log.Info("cluster: adding voter", "id", id, "raft", p.meta.Raft, "was", string(s.Address))
		if err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(p.meta.Raft), 0, 5*time.Second).Error(); err != nil {
			n.log.Warn("cluster: add voter failed", "id", id, "err", err)
		}
	}
}

// removeLeftServers is reconcile's second pass: it removes servers whose
// member left gracefully (or is tombstoned after Leave).
func (n *Node) removeLeftServers(inCfg map[string]raft.Server, peers map[string]peer) {
	for id, p := range peers {
		if id == n.cfg.NodeID {
			continue
		}
		if _, ok := inCfg[id]; !ok || p.state != memberlist.StateLeft {
			continue
		}
		n.log.Info("cluster: removing server that left", "id", id)
		if err := n.removeServer(id); err != nil {
			n.log.Warn("cluster: remove server failed", "id", id, "err", err)
		}
	}
}

// removeDeadServers is reconcile's third pass: it removes servers dead
// (or unknown to gossip) for longer than DeadServerGrace, counted from
// this leader's taking office at the earliest, but never a voter whose
// removal would leave the alive voters short of a quorum.
func (n *Node) removeDeadServers(ls *leaderState, inCfg map[string]raft.Server, peers map[string]peer) {
	voters, alive := 0, 0
	for id, s := range inCfg {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if p, ok := peers[id]; id == n.cfg.NodeID || ok && p.state == memberlist.StateAlive {
			alive++
		}
	}
	now := time.Now()
	for id, s := range inCfg {
		if id == n.cfg.NodeID {
			continue
		}
		p, known := peers[id]
		if known && (p.state == memberlist.StateAlive || p.state == memberlist.StateLeft) {
			continue
		}
		since := ls.officeAt
		if known && p.since.After(since) {
			since = p.since
		}
		if now.Sub(since) < n.cfg.DeadServerGrace {
			continue
		}
		if s.Suffrage == raft.Voter {
			if alive < (voters-1)/2+1 {
				n.log.Warn("cluster: not removing dead server: quorum would be unsafe", "id", id, "voters", voters, "alive", alive)
				continue
			}
			voters--
		}
		n.log.Info("cluster: removing dead server", "id", id, "dead_for", now.Sub(since).Round(time.Second))
		if err := n.removeServer(id); err != nil {
			n.log.Warn("cluster: remove server failed", "id", id, "err", err)
		}
	}
}

// leftTombstone is how long the leader keeps a server that left through
// Leave out of the configuration regardless of gossip; a node that
// restarts sooner is re-added when it expires.
const leftTombstone = 30 * time.Second

func (n *Node) markLeft(id string) {
	n.peersMu.Lock()
	n.leftAt[id] = time.Now()
	n.peersMu.Unlock()
}

func (n *Node) removeServer(id string) error {
	return n.raft.RemoveServer(raft.ServerID(id), 0, 5*time.Second).Error()
}

// Leave departs gracefully: it announces the departure over gossip (so the
// leader does not add the node back) and has the leader remove it from the
// Raft configuration. Call Shutdown afterwards.
func (n *Node) Leave(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	others := 0
	for _, s := range f.Configuration().Servers {
		if string(s.ID) != n.cfg.NodeID {
			others++
		}
	}
	if others == 0 {
		return errors.New("cluster: cannot leave: this node is the only server")
	}
	n.leaving.Store(true) // stops metaLoop; gossips left=true
	if n.ml != nil {
		if err := n.ml.UpdateNode(3 * time.Second); err != nil {
			n.log.Warn("cluster: gossip leave announcement", "err", err)
		}
		if err := n.ml.Leave(5 * time.Second); err != nil {
			n.log.Warn("cluster: gossip leave", "err", err)
		}
	}
	var lastErr error = ErrNoLeader
	for {
		if n.raft.State() == raft.Leader {
			// The leader removes itself, then steps down.
			if err := n.removeServer(n.cfg.NodeID); err == nil {
				return nil
			} else {
				lastErr = err
			}
		} else if addr := n.leaderAddr(); addr != "" && n.rpc != nil {
			_, _, err := n.rpc.call(ctx, addr, opLeave, []byte(n.cfg.NodeID), 5*time.Second)
			if err == nil {
				return nil
			}
			lastErr = err
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return unavailable("leave", lastErr)
		}
	}
}
