package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/fsm"
)

// Internal RPC.
//
// Node-to-node calls other than Raft's own run on RPC connections of the
// internal port (mux.go), so they inherit its mutual TLS: there is no
// signature, timestamp or replay window to get wrong, because TLS 1.3
// already authenticates both ends and every record of the session.
//
// A connection carries one call at a time. A request frame is the
// operation byte, a big-endian uint32 length and the payload; the answer
// frame is a status byte, a length and the payload. Payloads are the
// existing encodings: an fsm command for opApply and fsm.EncodeResult for
// its answer (a batch of them for opApplyBatch, forward.go), a few varints for leases, an HTTP/1.1 message for the sign-in
// hand-off. Clients keep idle connections per peer for reuse.
const (
	opApply   byte = 1 // payload: encoded fsm command; answer: fsm.EncodeResult
	opLease   byte = 2 // payload: leaseRequest; answer: leaseResponse
	opLeave   byte = 3 // payload: node id to remove
	opHandOff byte = 4 // payload: HTTP/1.1 request; answer: HTTP/1.1 response
	opPing    byte = 5 // no payload: proves the internal port authenticates
	opRestore byte = 6 // payload: index, size; then size bytes of image (backup.go)
	// opApplyBatch carries several forwarded commands (forward.go):
	// payload encodeBatch(commands); answer encodeBatchAnswers, one status
	// and payload per command as opApply would have answered it.
	opApplyBatch byte = 7

	stOK          byte = 0
	stNotLeader   byte = 1 // nothing was proposed: retrying elsewhere is safe
	stUnavailable byte = 2 // payload: reason
	stBadRequest  byte = 3 // payload: reason

	maxFrame = 4 << 20

	rpcIdleTimeout   = 2 * time.Minute  // server side: an idle connection is closed
	rpcPoolIdleLimit = 30 * time.Second // client side: older idle connections are not reused
	rpcMaxIdle       = 64               // idle connections kept per peer
	rpcWriteTimeout  = 10 * time.Second
)

func writeFrame(w *bufio.Writer, kind byte, payload []byte) error {
	if len(payload) > maxFrame {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(payload), maxFrame)
	}
	var hdr [5]byte
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	w.Write(hdr[:])
	w.Write(payload)
	return w.Flush()
}

func readFrame(r *bufio.Reader) (kind byte, payload []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	size := binary.BigEndian.Uint32(hdr[1:])
	if size > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds %d", size, maxFrame)
	}
	payload = make([]byte, size)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	return hdr[0], payload, nil
}

// serveRPC answers calls on one authenticated connection until the peer
// closes it, it idles out, or the node shuts down.
func (n *Node) serveRPC(conn net.Conn) {
	defer conn.Close()
	if !n.awaitRaft() {
		return
	}
	stop := context.AfterFunc(n.stopCtx, func() { conn.Close() })
	defer stop()
	r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
	for {
		conn.SetReadDeadline(time.Now().Add(rpcIdleTimeout))
		op, payload, err := readFrame(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrDeadlineExceeded) {
				n.log.Debug("cluster: internal RPC connection ended", "peer", conn.RemoteAddr(), "err", err)
			}
			return
		}
		if op == opRestore {
			n.serveRestore(conn, r, w, payload) // streams: ends the connection
			return
		}
		status, answer := n.handleRPC(op, payload, conn.RemoteAddr())
		conn.SetWriteDeadline(time.Now().Add(rpcWriteTimeout))
		if err := writeFrame(w, status, answer); err != nil {
			return
		}
	}
}

// awaitRaft waits until openRaft has set n.raft, which the calls use: the
// internal port listens (and in the harness, peers dial) before that, so
// a peer that connects while the node starts waits, and is dropped if the
// start fails or takes longer than a handshake may.
func (n *Node) awaitRaft() bool {
	select {
	case <-n.raftUp:
		return true
	default:
	}
	t := time.NewTimer(handshakeTimeout)
	defer t.Stop()
	select {
	case <-n.raftUp:
		return true
	case <-n.stopCtx.Done():
	case <-t.C:
	}
	return false
}

func (n *Node) handleRPC(op byte, payload []byte, peer net.Addr) (byte, []byte) {
	ctx, cancel := context.WithTimeout(n.stopCtx, applyTimeout)
	defer cancel()
	switch op {
	case opApply:
		res, err := n.applyLeader(ctx, payload)
		switch {
		case errors.Is(err, errNotLeader):
			return stNotLeader, nil
		case err != nil:
			return stUnavailable, []byte(err.Error())
		}
		return stOK, fsm.EncodeResult(res)
	case opApplyBatch:
		cmds, err := decodeBatch(payload)
		if err != nil {
			return stBadRequest, []byte(err.Error())
		}
		answers, err := n.applyBatch(ctx, cmds)
		if errors.Is(err, errNotLeader) {
			return stNotLeader, nil
		}
		return stOK, encodeBatchAnswers(answers)
	case opLease:
		req, err := decodeLeaseRequest(payload)
		if err != nil {
			return stBadRequest, []byte(err.Error())
		}
		return stOK, n.grantLease(req).encode()
	case opConfirm: // confirm.go
		return n.serveConfirm(payload)
	case opLeaseFloor: // leaserpc.go
		req, err := decodeLeaseRequestFloor(payload)
		if err != nil {
			return stBadRequest, []byte(err.Error())
		}
		return stOK, n.grantLease(req).encodeFloor()
	case opLeave:
		if len(payload) == 0 {
			return stBadRequest, []byte("empty node id")
		}
		if n.raft.State() != raft.Leader {
			return stNotLeader, nil
		}
		n.markLeft(string(payload))
		if err := n.removeServer(string(payload)); err != nil {
			return stUnavailable, []byte(err.Error())
		}
		return stOK, nil
	case opHandOff:
		return n.serveHandOff(ctx, payload, peer)
	case opPing:
		return stOK, nil
	}
	return stBadRequest, []byte(fmt.Sprintf("unknown operation %d", op))
}

// rpcError is a peer's refusal, as opposed to a transport failure.
type rpcError struct {
	status byte
	msg    string
}

func (e *rpcError) Error() string {
	switch e.status {
	case stNotLeader:
		return "peer is not the leader"
	case stBadRequest:
		return "peer refused the request: " + e.msg
	}
	return "peer unavailable: " + e.msg
}

// rpcClient makes calls to peers' internal ports, reusing connections.
type rpcClient struct {
	dialer *internalDialer

	mu     sync.Mutex
	idle   map[string][]*rpcConn
	closed bool
}

type rpcConn struct {
	net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	used time.Time
}

func newRPCClient(d *internalDialer) *rpcClient {
	return &rpcClient{dialer: d, idle: make(map[string][]*rpcConn)}
}

func (c *rpcClient) get(ctx context.Context, addr string) (*rpcConn, error) {
	c.mu.Lock()
	for list := c.idle[addr]; len(list) > 0; list = c.idle[addr] {
		rc := list[len(list)-1]
		c.idle[addr] = list[:len(list)-1]
		if time.Since(rc.used) < rpcPoolIdleLimit {
			c.mu.Unlock()
			return rc, nil
		}
		rc.Close()
	}
	c.mu.Unlock()
	conn, err := c.dialer.dial(ctx, addr, connRPC)
	if err != nil {
		return nil, err
	}
	return &rpcConn{Conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}, nil
}

func (c *rpcClient) put(addr string, rc *rpcConn) {
	rc.used = time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.idle[addr]) >= rpcMaxIdle {
		rc.Close()
		return
	}
	c.idle[addr] = append(c.idle[addr], rc)
}

func (c *rpcClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for addr, list := range c.idle {
		for _, rc := range list {
			rc.Close()
		}
		delete(c.idle, addr)
	}
}

// call sends one request to addr and returns the answer's payload. safe
// reports that the request certainly had no effect (no connection could
// be made, or the peer is not the leader), so retrying elsewhere cannot
// apply a command twice.
func (c *rpcClient) call(ctx context.Context, addr string, op byte, payload []byte, timeout time.Duration) (answer []byte, safe bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rc, err := c.get(ctx, addr)
	if err != nil {
		return nil, true, err
	}
	dl, _ := ctx.Deadline()
	rc.SetDeadline(dl)
	// A cancelled caller must not wait out the deadline.
	stop := context.AfterFunc(ctx, func() { rc.SetDeadline(time.Unix(1, 0)) })
	status, answer, err := func() (byte, []byte, error) {
		if err := writeFrame(rc.w, op, payload); err != nil {
			return 0, nil, err
		}
		return readFrame(rc.r)
	}()
	stopped := stop()
	if err != nil {
		rc.Close()
		return nil, false, err
	}
	if stopped {
		rc.SetDeadline(time.Time{})
		c.put(addr, rc)
	} else {
		// The caller gave up just as the answer arrived: the answer
		// stands, but the connection's deadline has been spoiled.
		rc.Close()
	}
	if status != stOK {
		return nil, status == stNotLeader, &rpcError{status: status, msg: string(answer)}
	}
	return answer, false, nil
}
