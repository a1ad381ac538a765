package cluster

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/loopaddr"
	"github.com/tokend/tokend/internal/syncbuf"
)

// TestDeriveCADeterministic: every node holding a key derives the same CA,
// byte for byte; another key gives another CA.
func TestDeriveCADeterministic(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	a, err := deriveCA(k1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := deriveCA(k1)
	c, _ := deriveCA(k2)
	if !bytes.Equal(a.cert.Raw, b.cert.Raw) {
		t.Fatal("same key, different CA certificates")
	}
	if bytes.Equal(a.cert.Raw, c.cert.Raw) || a.key.Equal(c.key) {
		t.Fatal("different keys, same CA")
	}
	if !a.cert.IsCA || a.cert.SerialNumber.Int64() != 1 || !a.cert.NotAfter.Equal(caNotAfter) {
		t.Fatalf("CA certificate fields: ca=%v serial=%v notAfter=%v", a.cert.IsCA, a.cert.SerialNumber, a.cert.NotAfter)
	}
}

// handshake runs a TLS handshake between a client and a server identity
// over an in-memory pipe and returns the server's and client's errors.
func handshake(t *testing.T, client, server *identity) (srvErr, cliErr error) {
	t.Helper()
	// Real TCP, not net.Pipe: TLS alerts must not block on an unbuffered
	// pipe whose other end has stopped reading.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan error, 1)
	go func() {
		conn := tls.Server(s, server.serverTLS())
		err := conn.HandshakeContext(ctxT(t, 10*time.Second))
		if err == nil {
			// Read the client's first byte: only possible after a
			// successful handshake.
			_, err = conn.Read(make([]byte, 1))
		}
		s.Close()
		done <- err
	}()
	conn := tls.Client(c, client.clientTLS())
	cliErr = conn.HandshakeContext(ctxT(t, 10*time.Second))
	if cliErr == nil {
		_, cliErr = conn.Write([]byte{connRPC})
	}
	if cliErr == nil {
		// TLS 1.3: a refused client certificate shows on the next read.
		_, cliErr = conn.Read(make([]byte, 1))
		if errors.Is(cliErr, io.EOF) {
			cliErr = nil // the server closed after reading: accepted
		}
	}
	return <-done, cliErr
}

func mustIdentity(t *testing.T, id string, key []byte, accept ...[]byte) *identity {
	t.Helper()
	i, err := newIdentity(id, key, accept, TLSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestInternalTLSTrust: nodes with one key authenticate each other; a
// node with another key is refused both as client and as server; an
// accepted (rotation) key bridges the two.
func TestInternalTLSTrust(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	a, b := mustIdentity(t, "a", k1), mustIdentity(t, "b", k1)
	if srv, cli := handshake(t, a, b); srv != nil || cli != nil {
		t.Fatalf("same key refused: server %v, client %v", srv, cli)
	}
	x := mustIdentity(t, "x", k2)
	if srv, _ := handshake(t, x, b); srv == nil {
		t.Fatal("server accepted a client certificate from another CA")
	}
	if _, cli := handshake(t, b, x); cli == nil {
		t.Fatal("client accepted a server certificate from another CA")
	}
	// Rotation: y signs with k2 but accepts k1, b accepts k2 too.
	y := mustIdentity(t, "y", k2, k1)
	b2 := mustIdentity(t, "b", k1, k2)
	if srv, cli := handshake(t, y, b2); srv != nil || cli != nil {
		t.Fatalf("rotation pair refused: server %v, client %v", srv, cli)
	}
	if srv, cli := handshake(t, b2, y); srv != nil || cli != nil {
		t.Fatalf("rotation pair refused the other way: server %v, client %v", srv, cli)
	}
	// A client with no certificate at all.
	bare := &identity{roots: b.roots, cert: func() (*tls.Certificate, error) { return &tls.Certificate{}, nil }}
	if srv, _ := handshake(t, bare, b); srv == nil {
		t.Fatal("server accepted a client without a certificate")
	}
}

// TestRefusalLogged: a peer that fails the handshake is logged with its
// address, and counted.
func TestRefusalLogged(t *testing.T) {
	var buf syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	key := newKey(t)
	id := mustIdentity(t, "s", key)
	served := make(chan struct{}, 1)
	l, err := listenInternal(loopaddr.ForTest(t), id.serverTLS(), log, func(c net.Conn) { served <- struct{}{}; c.Close() })
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	c, err := net.Dial("tcp", l.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	local := c.LocalAddr().String()
	c.Write([]byte("POST /internal/apply HTTP/1.1\r\n\r\n"))
	c.Read(make([]byte, 64)) // until the listener hangs up
	c.Close()
	eventually(t, 10*time.Second, "refusal logged", func() bool {
		return strings.Contains(buf.String(), "refused internal connection") && strings.Contains(buf.String(), local)
	})
	if l.refused.Load() != 1 {
		t.Fatalf("refused count %d", l.refused.Load())
	}
	select {
	case <-served:
		t.Fatal("an unauthenticated connection reached the RPC service")
	default:
	}
	// An authenticated one does.
	d := &internalDialer{tls: mustIdentity(t, "c", key).clientTLS()}
	conn, err := d.dial(ctxT(t, 10*time.Second), l.ln.Addr().String(), connRPC)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	select {
	case <-served:
	case <-time.After(30 * time.Second):
		t.Fatal("an authenticated connection did not reach the RPC service")
	}
}

// TestFrameLimits: frames over the limit are refused on both ends.
func TestFrameLimits(t *testing.T) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	if err := writeFrame(w, opApply, make([]byte, maxFrame+1)); err == nil {
		t.Fatal("oversize frame written")
	}
	hdr := []byte{opApply, 0xff, 0xff, 0xff, 0xff}
	if _, _, err := readFrame(bufio.NewReader(bytes.NewReader(hdr))); err == nil {
		t.Fatal("oversize frame read")
	}
	b.Reset()
	if err := writeFrame(w, opLease, leaseRequest{ID: "n1", Applied: 7, Term: 3}.encode()); err != nil {
		t.Fatal(err)
	}
	op, p, err := readFrame(bufio.NewReader(&b))
	if err != nil || op != opLease {
		t.Fatal(op, err)
	}
	req, err := decodeLeaseRequest(p)
	if err != nil || req != (leaseRequest{ID: "n1", Applied: 7, Term: 3}) {
		t.Fatalf("lease request round trip: %+v %v", req, err)
	}
	resp := leaseResponse{Granted: true, Term: 3, Leader: "n2", LeaseMS: 1000, Reason: "x"}
	got, err := decodeLeaseResponse(resp.encode())
	if err != nil || got != resp {
		t.Fatalf("lease response round trip: %+v %v", got, err)
	}
	for _, bad := range [][]byte{nil, {2}, {1, 0x80}, {0, 1, 1, 9, 'a'}} {
		if _, err := decodeLeaseResponse(bad); err == nil {
			t.Errorf("decoded bad lease response %x", bad)
		}
	}
}
