package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokend/tokend/fsm"
)

// Config configures a Node. Zero values get the defaults documented on each
// field.
type Config struct {
	NodeID, DataDir string
	// RaftAddr and GossipAddr are host:port pairs the node both binds and
	// advertises (so not 0.0.0.0).
	RaftAddr, GossipAddr string
	// HTTPAddr is this node's HTTP address (host:port, or a base URL such as
	// https://host:port when the node serves TLS). It is gossiped only so
	// that Status can report it; node-to-node traffic uses RaftAddr.
	HTTPAddr string
	// Join lists gossip addresses of existing members; joining is retried
	// in the background until one answers.
	Join []string
	// BootstrapExpect is how many servers must see each other before a new
	// cluster bootstraps (default 1). A node with Raft state never
	// bootstraps; a node with Join set and BootstrapExpect 1 never does
	// either (it waits to be added by the leader).
	BootstrapExpect int
	// ClusterKey (16, 24 or 32 bytes; 32 recommended) encrypts gossip and
	// authenticates internal calls. Required when BootstrapExpect > 1 or
	// Join is set. Without it the node runs alone: no gossip, and the
	// internal endpoints refuse everything.
	ClusterKey []byte
	// AcceptKeys are further cluster keys accepted during a key rotation
	// (see docs/SECURITY.md): gossip decrypts with them and certificates
	// chaining to the CAs derived from them are trusted. The node itself
	// encrypts and signs only with ClusterKey.
	AcceptKeys [][]byte
	// InternalTLS, when its files are set, replaces the key-derived
	// certificates of the internal port with the operator's PKI; the
	// cluster key then only encrypts gossip.
	InternalTLS TLSFiles
	// DeadServerGrace is how long a member may be dead before the leader
	// removes it from the Raft configuration (default 10m).
	DeadServerGrace time.Duration
	// PurgeInterval is how often the leader proposes fsm.Purge (default 1m).
	PurgeInterval time.Duration
	// SnapshotThreshold is Raft's SnapshotThreshold and TrailingLogs
	// (default 8192).
	SnapshotThreshold uint64
	Version           string
	FSM               *fsm.FSM
	Logger            *slog.Logger
	// Registerer receives the cluster metrics when non-nil.
	Registerer prometheus.Registerer
	// Now is the clock written into purge commands (default time.Now).
	Now func() time.Time

	// hooks are set only by tests in this package (testhooks.go).
	hooks *testHooks
}

// TLSFiles names PEM files of an operator-supplied PKI for the internal
// port: this node's certificate and key, and the CA bundle that peers'
// certificates must chain to.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

func (f TLSFiles) set() bool { return f.CertFile != "" || f.KeyFile != "" || f.CAFile != "" }

// Timing. Raft's timeouts are generous enough that a -race build on two
// busy cores does not flap. The fault-injection harness shortens Raft's
// four (testhooks.go, raftTiming; its leader lease never exceeds
// leaderLeaseTimeout, which officeWait counts);
// the lease constants are never overridden.
//
// commitTimeout: a follower learns that an entry committed only from the
// leader's next AppendEntries, which raft sends when new entries arrive or
// after a random 1-2x CommitTimeout; every write waits for that (the
// visibility barrier waits for lease holders to apply it). Measured with
// TestWritePathHops (a lone write through a follower, three nodes on
// loopback): 5ms gives ~10.5ms per write, of which ~7.5ms is this wait;
// 2ms gives ~4.5ms; 1ms ~3ms. The price is empty AppendEntries when idle:
// three idle nodes used 1.1s CPU per 10s at 5ms, 1.7s at 2ms, 2.1s at
// 1ms. Under load (64 connections) new entries carry the commit index
// anyway; 1ms and 5ms were within noise of each other there.
const (
	heartbeatTimeout   = 1000 * time.Millisecond
	electionTimeout    = 1000 * time.Millisecond
	leaderLeaseTimeout = 500 * time.Millisecond
	commitTimeout      = 2 * time.Millisecond
	// logCacheSize raft log entries are kept in memory (raft.LogCache):
	// replication and the FSM read back what was just stored, which cost
	// the leader 12% of its CPU in bolt reads and msgpack without it.
	logCacheSize = 512

	// leaseLength is the read lease a leader grants; the holder counts it
	// from when it sent the request, minus holderMargin.
	leaseLength  = 1000 * time.Millisecond
	holderMargin = 100 * time.Millisecond // 10%: bounds clock-rate drift
	leaseRenew   = 50 * time.Millisecond
	// lagLimit: a holder that has not applied a write waiting this long
	// gets no renewal (lease.go), so a follower that reports but does not
	// apply holds writes back for at most lagLimit + leaseLength.
	lagLimit = leaseLength
	// officeWait is how long a new leader waits before acknowledging
	// writes: every lease an earlier leader granted has expired by then
	// (see doc.go for the argument).
	officeWait = leaseLength + leaderLeaseTimeout + 2*holderMargin

	// The leader re-confirms its leadership with a quorum every
	// verifyInterval and serves reads for leaderReadWindow after the start
	// of the last confirmation: officeWait less 20% for clock-rate drift,
	// so it stops before any successor could acknowledge a write.
	verifyInterval   = 100 * time.Millisecond
	leaderReadWindow = officeWait * 8 / 10

	applyTimeout      = 5 * time.Second
	reconcileInterval = 1 * time.Second
	retryAfter        = 1 * time.Second
)

func (c Config) withDefaults() (Config, error) {
	if c.NodeID == "" {
		return c, errors.New("cluster: NodeID is required")
	}
	if c.DataDir == "" {
		return c, errors.New("cluster: DataDir is required")
	}
	if c.FSM == nil {
		return c, errors.New("cluster: FSM is required")
	}
	if _, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
		return c, fmt.Errorf("cluster: raft address %q: %w", c.RaftAddr, err)
	}
	if c.BootstrapExpect == 0 {
		c.BootstrapExpect = 1
	}
	if c.BootstrapExpect < 0 {
		return c, errors.New("cluster: BootstrapExpect must be positive")
	}
	multi := c.BootstrapExpect > 1 || len(c.Join) > 0
	if multi && len(c.ClusterKey) == 0 {
		return c, errors.New("cluster: a cluster key is required for more than one node (--cluster-key, base64 of 32 random bytes)")
	}
	if c.InternalTLS.set() && len(c.ClusterKey) == 0 {
		return c, errors.New("cluster: internal TLS files need a cluster key too (it encrypts gossip)")
	}
	if len(c.AcceptKeys) > 0 && len(c.ClusterKey) == 0 {
		return c, errors.New("cluster: accepted keys need a primary cluster key")
	}
	for _, k := range append([][]byte{c.ClusterKey}, c.AcceptKeys...) {
		switch len(k) {
		case 0, 16, 24, 32:
		default:
			return c, fmt.Errorf("cluster: cluster key must be 16, 24 or 32 bytes, got %d", len(k))
		}
	}
	if len(c.ClusterKey) > 0 {
		if _, _, err := net.SplitHostPort(c.GossipAddr); err != nil {
			return c, fmt.Errorf("cluster: gossip address %q: %w", c.GossipAddr, err)
		}
	}
	if c.DeadServerGrace <= 0 {
		c.DeadServerGrace = 10 * time.Minute
	}
	if c.PurgeInterval <= 0 {
		c.PurgeInterval = time.Minute
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}
