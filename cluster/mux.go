package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// The internal port.
//
// One TCP listener (--raft-addr) carries Raft and the node-to-node RPCs.
// Every connection is TLS 1.3 with certificates on both sides (pki.go);
// only after the handshake has verified the peer does the listener read
// the first byte, which names the service (as rqlite's multiplexed port
// does, but inside TLS, so an unauthenticated peer cannot even choose a
// service): connRaft hands the connection to hashicorp/raft's
// NetworkTransport through a StreamLayer, connRPC to the RPC server
// (rpc.go). A peer that fails the handshake is logged with its address
// and dropped before a single byte of its request is read.
const (
	connRaft byte = 'R'
	connRPC  byte = 'C'

	alpnInternal = "tokend-internal/1"

	// handshakeTimeout bounds how long an accepted connection may take to
	// authenticate and name its service; maxHandshakes bounds how many may
	// do so at once, so a flood of idle connections cannot exhaust memory.
	handshakeTimeout = 10 * time.Second
	maxHandshakes    = 256

	refusalLogsPerSecond = 5
)

// internalListener accepts the internal port's connections and routes
// them by service.
type internalListener struct {
	ln     net.Listener
	tls    *tls.Config
	log    *slog.Logger
	raftCh chan net.Conn
	rpc    func(net.Conn) // serves one RPC connection; runs in its own goroutine
	sem    chan struct{}

	refused atomic.Uint64 // failed handshakes, for metrics
	// logMu guards the refusal log's rate limit: logWindow started when
	// the current second began, logged refusals were written in it.
	logMu      sync.Mutex
	logWindow  time.Time
	logged     int
	suppressed uint64

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup
}

func listenInternal(addr string, cfg *tls.Config, log *slog.Logger, rpc func(net.Conn)) (*internalListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	l := &internalListener{
		ln: ln, tls: cfg, log: log, rpc: rpc,
		raftCh: make(chan net.Conn),
		sem:    make(chan struct{}, maxHandshakes),
		closed: make(chan struct{}),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

func (l *internalListener) acceptLoop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.closed:
				return
			default:
			}
			// Temporary failures (out of file descriptors): back off like
			// net/http does rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("cluster: internal accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-l.closed:
				return
			}
			continue
		}
		delay = 0
		select {
		case l.sem <- struct{}{}:
		default:
			conn.Close() // too many unauthenticated connections pending
			l.noteRefusal(conn.RemoteAddr(), errors.New("too many pending handshakes"))
			continue
		}
		l.wg.Add(1)
		go l.handshake(conn)
	}
}

// handshake authenticates conn and routes it by its first byte.
func (l *internalListener) handshake(raw net.Conn) {
	defer l.wg.Done()
	release := func() { <-l.sem }
	raw.SetDeadline(time.Now().Add(handshakeTimeout))
	conn := tls.Server(raw, l.tls)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := conn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		release()
		raw.Close()
		l.noteRefusal(raw.RemoteAddr(), err)
		return
	}
	var kind [1]byte
	if _, err := conn.Read(kind[:]); err != nil {
		release()
		conn.Close()
		return
	}
	release()
	raw.SetDeadline(time.Time{})
	switch kind[0] {
	case connRaft:
		select {
		case l.raftCh <- conn:
		case <-l.closed:
			conn.Close()
		}
	case connRPC:
		l.rpc(conn)
	default:
		l.log.Warn("cluster: internal connection named an unknown service", "peer", raw.RemoteAddr(), "service", kind[0])
		conn.Close()
	}
}

// noteRefusal logs a refused peer with its address, at most
// refusalLogsPerSecond times a second so a flood cannot fill the log; the
// count of refusals is kept for the metric.
func (l *internalListener) noteRefusal(addr net.Addr, err error) {
	l.refused.Add(1)
	l.logMu.Lock()
	now := time.Now()
	if now.Sub(l.logWindow) >= time.Second {
		l.logWindow, l.logged = now, 0
	}
	if l.logged >= refusalLogsPerSecond {
		l.suppressed++
		l.logMu.Unlock()
		return
	}
	l.logged++
	skipped := l.suppressed
	l.suppressed = 0
	l.logMu.Unlock()
	l.log.Warn("cluster: refused internal connection", "peer", addr.String(), "err", err, "refusals_not_logged", skipped)
}

func (l *internalListener) close() {
	l.closeOnce.Do(func() {
		close(l.closed)
		l.ln.Close()
	})
}

// raftLayer is the raft.StreamLayer over the internal port.
type raftLayer struct {
	l      *internalListener
	dialer *internalDialer
}

var _ raft.StreamLayer = (*raftLayer)(nil)

func (r *raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-r.l.raftCh:
		return c, nil
	case <-r.l.closed:
		return nil, net.ErrClosed
	}
}

// Close is called by the NetworkTransport on shutdown; the shared listener
// is closed with it, so the RPC service stops at the same time.
func (r *raftLayer) Close() error {
	r.l.close()
	return nil
}

func (r *raftLayer) Addr() net.Addr { return r.l.ln.Addr() }

func (r *raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return r.dialer.dial(ctx, string(addr), connRaft)
}

// internalDialer opens authenticated connections to peers' internal ports.
type internalDialer struct {
	tls *tls.Config
	// hook replaces the whole dial in the fault-injection harness
	// (testHooks.dial); nil otherwise.
	hook func(ctx context.Context, addr string, kind byte) (net.Conn, error)
}

// dial connects to addr, completes the TLS handshake (verifying the peer)
// and names the service.
func (d *internalDialer) dial(ctx context.Context, addr string, kind byte) (net.Conn, error) {
	if d.hook != nil {
		return d.hook(ctx, addr, kind)
	}
	nd := &net.Dialer{KeepAlive: 30 * time.Second}
	raw, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, d.tls)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("internal TLS handshake with %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetWriteDeadline(dl)
	}
	if _, err := conn.Write([]byte{kind}); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetWriteDeadline(time.Time{})
	return conn, nil
}
