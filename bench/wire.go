package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// wireClient is one worker's HTTP/1.1 client for the load itself: one
// persistent connection per node, owned by that worker alone. Sending a
// request is one write of bytes assembled in a reused buffer; reading the
// answer is a parse of the status line and of the headers that frame the
// body. There is no connection pool to lock, no per-request goroutine,
// header map or URL parse, which is what net/http's client spends most of
// its time on and what made the load tool saturate before the servers it
// measures. `tokend-bench calibrate` measures this client against wrk.
//
// Semantics kept from the net/http client it replaces: keep-alive,
// HTTP/1.1, no compression, no redirects (a 3xx is just a status), a
// per-request timeout, loopback-only dialing, and one retry of a GET on a
// reused connection that the server closed before answering (what
// net/http does for idempotent requests). It is not safe for concurrent
// use.
type wireClient struct {
	ctx     context.Context // cancelling it aborts the I/O in flight
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	timeout time.Duration
	conns   map[*endpoint]*wireConn
	buf     []byte // the request being written
}

type wireConn struct {
	nc     net.Conn
	br     *bufio.Reader
	stop   func() bool // unregisters the ctx watcher
	reused bool        // has answered a request before
}

func newWireClient(ctx context.Context, timeout time.Duration) *wireClient {
	if timeout <= 0 {
		timeout = DefaultConfig().Timeout
	}
	return &wireClient{
		ctx: ctx, dial: loopbackDialer(), timeout: timeout,
		conns: map[*endpoint]*wireConn{}, buf: make([]byte, 0, 1024),
	}
}

// errWireClosed is a reused connection that ended before the answer began.
var errWireClosed = errors.New("connection closed by the server before answering (EOF)")

// do sends req and reads the answer; keepBody copies the body into the
// response (bounded by maxBody), otherwise it is read and discarded.
func (c *wireClient) do(req *request, keepBody bool) (response, error) {
	if req.ep == nil {
		return response{}, errors.New("request has no endpoint")
	}
	for attempt := 0; ; attempt++ {
		wc, err := c.conn(req.ep)
		if err != nil {
			return response{}, err
		}
		r, keepAlive, replayable, err := c.roundTrip(wc, req, keepBody)
		if err == nil && keepAlive {
			wc.reused = true
			return r, nil
		}
		c.drop(req.ep)
		if err == nil || !replayable || !wc.reused || attempt > 0 || c.ctx.Err() != nil {
			return r, err
		}
	}
}

// conn returns the connection to ep, dialing it if there is none.
func (c *wireClient) conn(ep *endpoint) (*wireConn, error) {
	if wc := c.conns[ep]; wc != nil {
		return wc, nil
	}
	if ep.addr == "" {
		return nil, errors.New("target has no host")
	}
	nc, err := c.dial(c.ctx, "tcp", ep.addr)
	if err != nil {
		return nil, err
	}
	if ep.tls {
		host, _, _ := net.SplitHostPort(ep.addr)
		tc := tls.Client(nc, &tls.Config{ServerName: host, NextProtos: []string{"http/1.1"}})
		_ = tc.SetDeadline(time.Now().Add(c.timeout))
		if err := tc.HandshakeContext(c.ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", ep.addr, err)
		}
		nc = tc
	}
	wc := &wireConn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10)}
	// Cancelling the run unblocks a read or write at once, like a request
	// context does in net/http; one watcher per connection, not per request.
	wc.stop = context.AfterFunc(c.ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	c.conns[ep] = wc
	return wc, nil
}

func (c *wireClient) drop(ep *endpoint) {
	if wc := c.conns[ep]; wc != nil {
		wc.stop()
		_ = wc.nc.Close()
		delete(c.conns, ep)
	}
}

// close closes every connection.
func (c *wireClient) close() {
	for ep := range c.conns {
		c.drop(ep)
	}
}

// roundTrip writes req on wc and reads the answer. replayable says the
// failure happened before any part of an answer arrived and the request
// may be sent again on a fresh connection.
func (c *wireClient) roundTrip(wc *wireConn, req *request, keepBody bool) (r response, keepAlive, replayable bool, err error) {
	if err := wc.nc.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return r, false, true, err
	}
	c.buf = appendRequest(c.buf[:0], req)
	if n, err := wc.nc.Write(c.buf); err != nil {
		return r, false, n == 0 || req.method == http.MethodGet, err
	}
	r, keepAlive, started, err := readResponse(wc.br, keepBody)
	if err != nil {
		if !started && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			err = errWireClosed
		}
		return r, false, !started && req.method == http.MethodGet, err
	}
	return r, keepAlive, false, nil
}

// appendRequest serializes req as an HTTP/1.1 request.
func appendRequest(b []byte, req *request) []byte {
	b = append(b, req.method...)
	b = append(b, ' ')
	b = append(b, req.path()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, req.ep.host...)
	b = append(b, "\r\nUser-Agent: tokend-bench\r\n"...)
	if req.authScheme != "" || req.auth != "" {
		b = append(b, "Authorization: "...)
		b = append(b, req.authScheme...)
		b = append(b, req.auth...)
		b = append(b, "\r\n"...)
	}
	if req.method == http.MethodPost {
		b = append(b, "Content-Type: "+formType+"\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(req.form)), 10)
		b = append(b, "\r\n\r\n"...)
		return append(b, req.form...)
	}
	return append(b, "\r\n"...)
}
