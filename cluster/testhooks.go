package cluster

import (
	"context"
	"net"
	"time"
)

// testHooks replace a node's network, clock and Raft timing for the
// in-process fault-injection harness (nemesis_test.go). Config carries them
// in an unexported field, so only tests inside this package can set them;
// a production node always has nil hooks and behaves exactly as described
// in doc.go.
type testHooks struct {
	// transport, when set, replaces the internal port: it returns the
	// node's Raft transport (a hashicorp/raft InmemTransport wrapped by
	// the nemesis) and routes the peers' RPC connections to serve.
	transport func(serve func(net.Conn)) raftTransport
	// dial, when set, replaces the TLS dial of the internal RPC path: it
	// returns one end of a connection whose other end is served by the
	// peer's serveRPC (the nemesis decides what gets through).
	dial func(ctx context.Context, addr string, kind byte) (net.Conn, error)
	// clock, when set, replaces sinceStart: nanoseconds of a monotonic
	// clock that may run at a rate slightly off real time. The lease
	// argument (doc.go) holds while every clock's rate is within
	// holderMargin/leaseLength of every other's.
	clock func() int64
	// timing, when set, replaces Raft's timeouts (raftTiming).
	timing *raftTiming
	// ackEarly plants a bug for the harness to find: the leader
	// acknowledges a write as soon as it applied it, without waiting for
	// read-lease holders (the visibility barrier, doc.go point 2).
	ackEarly bool
}

// raftTiming is what hashicorp/raft is configured with. Production uses
// defaultRaftTiming (config.go's constants); the harness shortens the
// election timeouts so that a schedule of faults runs in seconds. The
// lease constants are not part of it: officeWait counts the constant
// leaderLeaseTimeout, which stays an upper bound of Raft's, so the
// consistency argument in doc.go is unchanged by a shorter Raft timing.
type raftTiming struct {
	heartbeat, election, leaderLease, commit time.Duration
}

var defaultRaftTiming = raftTiming{
	heartbeat:   heartbeatTimeout,
	election:    electionTimeout,
	leaderLease: leaderLeaseTimeout,
	commit:      commitTimeout,
}

// raftTiming returns the node's Raft timing: the hooks' when set (their
// leader lease capped at leaderLeaseTimeout, which officeWait assumes),
// else the production constants.
func (n *Node) raftTiming() raftTiming {
	if n.cfg.hooks == nil || n.cfg.hooks.timing == nil {
		return defaultRaftTiming
	}
	t := *n.cfg.hooks.timing
	t.leaderLease = min(t.leaderLease, leaderLeaseTimeout)
	return t
}
