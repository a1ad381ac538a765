package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The nemesis: every message between harness nodes passes through it.
//
// Raft runs over hashicorp/raft's InmemTransport, wrapped (nemTransport) so
// that each RPC asks the nemesis first whether the request reaches the
// target and then whether the answer comes back; the internal RPC path
// (forwarded writes, lease reports, pings) runs over net.Pipe connections
// (nemConn) whose every write asks the same. A link is directed: cutting
// a→b loses a's requests to b and b's answers to a, so a one-way cut can
// apply a request whose answer is then lost, the case that makes a
// client's outcome unknown. Besides cut links the nemesis drops a fraction
// of messages and delays each by a random time up to a bound; concurrent
// messages then overtake each other (reordering; a single connection stays
// in order, as TCP does). A paused node's clients' requests wait until it
// resumes (harness_test.go), and its messages either are lost (every link
// cut) or wait too, in both directions, and arrive after it resumes, as
// a stopped process's socket buffers would deliver them: late and stale.
type nemesis struct {
	mu       sync.Mutex
	rng      *rand.Rand
	cut      map[[2]string]bool // [from, to] addresses whose messages are lost
	paused   map[string]*nemPause
	dropP    float64       // fraction of messages lost on open links
	delayMax time.Duration // each message waits up to this long

	trans   map[string]*raft.InmemTransport // current Raft transport per address
	servers map[string]*nemServer           // running RPC server per address
}

// nemServer is a node's RPC service as the nemesis dials it; wg counts its
// open connections so a restart can wait for them.
type nemServer struct {
	serve func(net.Conn)
	wg    sync.WaitGroup
}

var errNemesis = errors.New("nemesis: message lost")

func newNemesis(seed uint64) *nemesis {
	return &nemesis{
		rng:     rand.New(rand.NewPCG(seed, 0x6e656d)),
		cut:     map[[2]string]bool{},
		paused:  map[string]*nemPause{},
		trans:   map[string]*raft.InmemTransport{},
		servers: map[string]*nemServer{},
	}
}

// nemPause is a paused node: hold says its messages wait for resumed
// (else they are lost).
type nemPause struct {
	hold    bool
	resumed chan struct{}
}

// fate decides one message from from to to: whether it arrives and after
// how long, or (wait non-nil) that it must wait for a paused end to
// resume and then be decided again.
func (m *nemesis) fate(from, to string) (ok bool, d time.Duration, wait <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range []*nemPause{m.paused[from], m.paused[to]} {
		if p != nil && p.hold {
			return false, 0, p.resumed
		}
		if p != nil {
			return false, 0, nil
		}
	}
	if m.cut[[2]string{from, to}] {
		return false, 0, nil
	}
	if m.dropP > 0 && m.rng.Float64() < m.dropP {
		return false, 0, nil
	}
	if m.delayMax > 0 {
		return true, time.Duration(m.rng.Int64N(int64(m.delayMax))), nil
	}
	return true, 0, nil
}

// send passes one message, sleeping its delay; false: it was lost.
func (m *nemesis) send(from, to string) bool { return m.sendCtx(context.Background(), from, to) }

// sendCtx is send for a sender that gives up when ctx ends (a dial).
func (m *nemesis) sendCtx(ctx context.Context, from, to string) bool {
	for {
		ok, d, wait := m.fate(from, to)
		if wait != nil {
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return false
			}
		}
		if d > 0 {
			time.Sleep(d)
		}
		return ok
	}
}

// heal restores every link and ends drops and delays (not pauses).
func (m *nemesis) heal() {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.cut)
	m.dropP, m.delayMax = 0, 0
}

func (m *nemesis) setCut(from, to string, cut bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cut {
		m.cut[[2]string{from, to}] = true
	} else {
		delete(m.cut, [2]string{from, to})
	}
}

// pause pauses addr (hold: its messages wait rather than being lost);
// resume lets it and its held messages go.
func (m *nemesis) pause(addr string, hold bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.paused[addr] == nil {
		m.paused[addr] = &nemPause{hold: hold, resumed: make(chan struct{})}
	}
}

func (m *nemesis) resume(addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.paused[addr]; p != nil {
		close(p.resumed)
		delete(m.paused, addr)
	}
}

func (m *nemesis) setLossy(dropP float64, delayMax time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropP, m.delayMax = dropP, delayMax
}

// attach makes a fresh Raft transport for addr, connected both ways to
// every other attached one, and registers serve as addr's RPC service.
func (m *nemesis) attach(addr string, serve func(net.Conn)) (*nemTransport, *nemServer) {
	_, in := raft.NewInmemTransportWithTimeout(raft.ServerAddress(addr), time.Second)
	srv := &nemServer{serve: serve}
	m.mu.Lock()
	defer m.mu.Unlock()
	for a, t := range m.trans {
		t.Connect(raft.ServerAddress(addr), in)
		in.Connect(raft.ServerAddress(a), t)
	}
	m.trans[addr] = in
	m.servers[addr] = srv
	return &nemTransport{InmemTransport: in, nem: m, from: addr}, srv
}

// detach stops routing RPCs to addr's server (before its node shuts
// down); Raft messages to it then time out in its closed transport.
func (m *nemesis) detach(addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.servers, addr)
}

// dialer returns the internal RPC dialer of the node at from.
func (m *nemesis) dialer(from string) func(ctx context.Context, addr string, kind byte) (net.Conn, error) {
	return func(ctx context.Context, to string, kind byte) (net.Conn, error) {
		if kind != connRPC {
			return nil, fmt.Errorf("nemesis: only RPC connections are dialled, not %q", kind)
		}
		if !m.sendCtx(ctx, from, to) {
			return nil, fmt.Errorf("dial %s: %w", to, errNemesis)
		}
		m.mu.Lock()
		srv := m.servers[to]
		if srv != nil {
			srv.wg.Add(1)
		}
		m.mu.Unlock()
		if srv == nil {
			return nil, fmt.Errorf("dial %s: connection refused", to)
		}
		client, server := net.Pipe()
		go func() {
			defer srv.wg.Done()
			srv.serve(&nemConn{Conn: server, nem: m, from: to, to: from})
		}()
		return &nemConn{Conn: client, nem: m, from: from, to: to}, nil
	}
}

// nemConn is one end of an internal RPC connection: each write is a
// message from from to to. A lost one breaks the connection, as a reset
// or a timeout would.
type nemConn struct {
	net.Conn
	nem      *nemesis
	from, to string
}

func (c *nemConn) Write(b []byte) (int, error) {
	if !c.nem.send(c.from, c.to) {
		c.Conn.Close()
		return 0, errNemesis
	}
	return c.Conn.Write(b)
}

// nemTransport is a node's Raft transport: its InmemTransport, with every
// outgoing RPC and its answer passed through the nemesis. Pipelining is
// off, as on the production transport (node.go).
type nemTransport struct {
	*raft.InmemTransport
	nem  *nemesis
	from string
}

var _ raft.WithPreVote = (*nemTransport)(nil)

// call sends a request to target, runs it there (call) and brings the
// answer back, each leg subject to the nemesis.
func (t *nemTransport) call(target raft.ServerAddress, call func() error) error {
	if !t.nem.send(t.from, string(target)) {
		return errNemesis
	}
	err := call()
	if !t.nem.send(string(target), t.from) {
		return errNemesis // applied there, answer lost
	}
	return err
}

func (t *nemTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

func (t *nemTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return t.call(target, func() error { return t.InmemTransport.AppendEntries(id, target, args, resp) })
}

func (t *nemTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.call(target, func() error { return t.InmemTransport.RequestVote(id, target, args, resp) })
}

func (t *nemTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.call(target, func() error { return t.InmemTransport.RequestPreVote(id, target, args, resp) })
}

func (t *nemTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	return t.call(target, func() error { return t.InmemTransport.InstallSnapshot(id, target, args, resp, data) })
}

func (t *nemTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.call(target, func() error { return t.InmemTransport.TimeoutNow(id, target, args, resp) })
}

// skewClock is a node's lease clock (testHooks.clock): monotonic, running
// at rate times real time from when the node started.
func skewClock(rate float64) func() int64 {
	start := time.Now()
	return func() int64 { return int64(float64(time.Since(start)) * rate) }
}
