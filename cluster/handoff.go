package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
)

// Sign-in hand-off over the internal port.
//
// The HTTP layer keeps a sign-in's state on the node that showed the login
// page and hands a post that reached another node to that owner (see
// httpapi/handoff.go). The post travels as an HTTP/1.1 message inside an
// opHandOff RPC, so it is as authenticated and private as every other
// internal call, and the public listener needs no internal route.

// maxHandOffAnswer bounds the answer a node accepts: sign-in answers are
// small pages and redirects.
const maxHandOffAnswer = 1 << 20

// ServeHandOffs installs the handler that answers sign-in posts handed off
// by other nodes. Until it is called such posts are refused.
func (n *Node) ServeHandOffs(h http.Handler) { n.handOff.Store(&h) }

// HandOff sends r to the node named id and returns that node's answer. The
// request's RemoteAddr is not carried: the owner sees this node's internal
// address as the client, and the request's own headers for the rest.
func (n *Node) HandOff(ctx context.Context, id string, r *http.Request) (*http.Response, error) {
	if n.rpc == nil {
		return nil, errors.New("cluster: no internal port (single node without a cluster key)")
	}
	meta, _ := n.memberMeta(id)
	addr := meta.Raft
	if addr == "" {
		return nil, fmt.Errorf("cluster: no internal address known for node %q", id)
	}
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		return nil, fmt.Errorf("cluster: encode hand-off: %w", err)
	}
	b, _, err := n.rpc.call(ctx, addr, opHandOff, buf.Bytes(), applyTimeout)
	if err != nil {
		return nil, fmt.Errorf("cluster: hand-off to %s: %w", id, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), r)
	if err != nil {
		return nil, fmt.Errorf("cluster: hand-off answer from %s: %w", id, err)
	}
	return resp, nil
}

func (n *Node) serveHandOff(ctx context.Context, payload []byte, peer net.Addr) (byte, []byte) {
	hp := n.handOff.Load()
	if hp == nil {
		return stUnavailable, []byte("sign-in hand-off not served here")
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(payload)))
	if err != nil {
		return stBadRequest, []byte("malformed hand-off request")
	}
	req = req.WithContext(ctx)
	req.RemoteAddr = peer.String()
	rec := &bufferedResponse{header: make(http.Header)}
	(*hp).ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	resp := &http.Response{
		StatusCode:    rec.status,
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rec.header,
		Body:          io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		ContentLength: int64(rec.body.Len()),
	}
	var out bytes.Buffer
	if err := resp.Write(&out); err != nil || out.Len() > maxHandOffAnswer {
		return stUnavailable, []byte("hand-off answer could not be encoded")
	}
	return stOK, out.Bytes()
}

// bufferedResponse collects a handler's answer in memory.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if b.body.Len()+len(p) > maxHandOffAnswer {
		return 0, errors.New("hand-off answer too large")
	}
	return b.body.Write(p)
}
