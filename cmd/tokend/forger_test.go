package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/internal/loopaddr"
)

// The forger: an attacker on the network who speaks hashicorp/raft's wire
// protocol (with raft's own NetworkTransport) to a node's --raft-addr and
// tries to append commands to its log. Before the internal port had mutual
// TLS this replaced a user's password and registered an admin client on
// every node. TestForgerControl shows the forger works against a plain
// TCP Raft node, so the refusals below are real refusals.

const forgedClient = "forged-admin-client"

// forgedCommands registers an admin-scoped client and a user, the way the
// original attack did.
func forgedCommands() [][]byte {
	return [][]byte{
		fsm.Encode(&fsm.PutClient{Create: true, Client: fsm.Client{
			ID: forgedClient, Name: "forged", GrantTypes: []string{"client_credentials"}, Scopes: []string{"admin"},
		}}),
		fsm.Encode(&fsm.PutUser{User: fsm.User{Tenant: "default", Username: "forged-user"}}),
	}
}

// forge probes the target for its term and last index (an AppendEntries
// with term 0 changes nothing and is answered with both), then sends the
// commands with a higher term right after the victim's last entry,
// trying each possible term of that entry, with a commit index covering
// them.
func forge(target string, layer raft.StreamLayer) (raft.AppendEntriesResponse, error) {
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: 1, Timeout: 5 * time.Second, Logger: hclog.NewNullLogger(),
	})
	defer trans.Close()
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("forger"), Addr: []byte("127.0.0.1:1")}
	var probe raft.AppendEntriesResponse
	if err := trans.AppendEntries("victim", raft.ServerAddress(target), &raft.AppendEntriesRequest{RPCHeader: hdr}, &probe); err != nil {
		return probe, fmt.Errorf("probe: %w", err)
	}
	term := probe.Term + 1
	cmds := forgedCommands()
	var resp raft.AppendEntriesResponse
	for prevTerm := probe.Term; prevTerm >= 1; prevTerm-- {
		req := &raft.AppendEntriesRequest{
			RPCHeader: hdr, Term: term,
			PrevLogEntry: probe.LastLog, PrevLogTerm: prevTerm,
			LeaderCommitIndex: probe.LastLog + uint64(len(cmds)),
		}
		for i, c := range cmds {
			req.Entries = append(req.Entries, &raft.Log{Index: probe.LastLog + 1 + uint64(i), Term: term, Type: raft.LogCommand, Data: c})
		}
		if err := trans.AppendEntries("victim", raft.ServerAddress(target), req, &resp); err != nil {
			return resp, fmt.Errorf("forged append: %w", err)
		}
		if resp.Success {
			return resp, nil
		}
	}
	return resp, errors.New("victim rejected every forged append")
}

// dialLayer is a dial-only raft.StreamLayer: the forger never accepts.
// It records the local address of every connection it makes, so tests can
// find the victim's log line about it.
type dialLayer struct {
	dial   func(addr string, timeout time.Duration) (net.Conn, error)
	mu     sync.Mutex
	locals []string
	closed chan struct{}
	once   sync.Once
}

func newDialLayer(dial func(string, time.Duration) (net.Conn, error)) *dialLayer {
	return &dialLayer{dial: dial, closed: make(chan struct{})}
}

func (d *dialLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := d.dial(string(addr), timeout)
	if err == nil {
		d.mu.Lock()
		d.locals = append(d.locals, c.LocalAddr().String())
		d.mu.Unlock()
	}
	return c, err
}

func (d *dialLayer) Accept() (net.Conn, error) { <-d.closed; return nil, net.ErrClosed }
func (d *dialLayer) Close() error              { d.once.Do(func() { close(d.closed) }); return nil }
func (d *dialLayer) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func (d *dialLayer) localAddrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.locals...)
}

func plainDial(addr string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, timeout)
}

// tlsDial connects with TLS 1.3 presenting cert (none when nil), skips
// verifying the server (an attacker would), and names a service byte the
// way tokend's own nodes do.
func tlsDial(cert *tls.Certificate, service byte) func(string, time.Duration) (net.Conn, error) {
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", addr, cfg)
		if err != nil {
			return nil, err
		}
		if _, err := c.Write([]byte{service}); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
}

// TestForgerControl: the forger succeeds against a Raft node on plain TCP
// built here, so it is a working attack and the refusals below mean
// something.
func TestForgerControl(t *testing.T) {
	addr := loopaddr.ForTest(t)
	trans, err := raft.NewTCPTransport(addr, nil, 3, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer trans.Close()
	state := fsm.New()
	rc := raft.DefaultConfig()
	rc.LocalID = "victim"
	rc.Logger = hclog.NewNullLogger()
	store := raft.NewInmemStore()
	r, err := raft.NewRaft(rc, appliedFSM{state}, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Shutdown()
	if err := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "victim", Address: raft.ServerAddress(addr)}}}).Error(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "victim leads", func() error {
		if r.State() != raft.Leader {
			return errors.New(r.State().String())
		}
		return nil
	})
	resp, err := forge(addr, newDialLayer(plainDial))
	if err != nil || !resp.Success {
		t.Fatalf("forger against plain TCP: %+v %v", resp, err)
	}
	eventually(t, "forged client applied", func() error {
		if _, ok := state.Client(forgedClient); !ok {
			return errors.New("not yet")
		}
		return nil
	})
}

// appliedFSM feeds committed commands to an fsm.FSM.
type appliedFSM struct{ f *fsm.FSM }

func (a appliedFSM) Apply(l *raft.Log) any             { return a.f.Apply(l.Index, l.Data) }
func (appliedFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("no snapshots") }
func (appliedFSM) Restore(io.ReadCloser) error         { return errors.New("no snapshots") }

// foreignCert is a certificate from a CA the cluster has never seen, with
// both extended key usages, as an attacker would mint.
func foreignCert(t *testing.T) *tls.Certificate {
	t.Helper()
	pki := newTestPKI(t, t.TempDir())
	pair, err := tls.LoadX509KeyPair(pki.issue(t, "mallory"))
	if err != nil {
		t.Fatal(err)
	}
	return &pair
}

// rpcFrame is an internal RPC request as the wire carries it: operation,
// big-endian length, payload (cluster/rpc.go).
func rpcFrame(op byte, payload []byte) []byte {
	b := []byte{op, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	return append(b, payload...)
}

// internalCall sends one RPC frame after dialling with dial and returns
// the answer's status byte, or the error that ended the exchange.
func internalCall(addr string, dial func(string, time.Duration) (net.Conn, error), frame []byte) (byte, error) {
	c, err := dial(addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(frame); err != nil {
		return 0, err
	}
	var hdr [5]byte
	if _, err := io.ReadFull(bufio.NewReader(c), hdr[:]); err != nil {
		return 0, err
	}
	return hdr[0], nil
}

// attackCluster runs every attack against every node of c and checks
// that none got through and the cluster still serves.
func attackCluster(t *testing.T, c *testCluster) {
	foreign := foreignCert(t)
	plain := newDialLayer(plainDial)
	badTLS := newDialLayer(tlsDial(foreign, 'R'))
	noCert := newDialLayer(tlsDial(nil, 'C'))
	otherCA := newDialLayer(tlsDial(foreign, 'C'))
	calls := map[string][]byte{
		"apply":    rpcFrame(1, forgedCommands()[0]),
		"lease":    rpcFrame(2, append([]byte{0xff, 0x01, 0x01}, "mallory"...)),
		"leave":    rpcFrame(3, []byte(c.procs[0].id)),
		"hand-off": rpcFrame(4, []byte("POST /authorize/login HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")),
	}
	for _, p := range c.procs {
		if _, err := forge(p.raftAddr, plain); err == nil {
			t.Errorf("%s: forged AppendEntries over plain TCP accepted", p.id)
		}
		if _, err := forge(p.raftAddr, badTLS); err == nil {
			t.Errorf("%s: forged AppendEntries over TLS with a foreign certificate accepted", p.id)
		}
		for name, frame := range calls {
			for _, d := range []*dialLayer{noCert, otherCA} {
				if st, err := internalCall(p.raftAddr, d.dialFunc(), frame); err == nil {
					t.Errorf("%s: internal %s call answered (status %d) to an unauthenticated client", p.id, name, st)
				}
			}
		}
	}
	// Each of those connections failed at the TLS handshake, before the
	// node read a byte of the request: the node counts exactly those.
	attempts := 2 + 2*len(calls)
	for _, p := range c.procs {
		if n := metricValue(t, p, "tokend_cluster_internal_refused_total"); n < float64(attempts) {
			t.Errorf("%s: %v connections refused at the handshake, want at least %d", p.id, n, attempts)
		}
	}
	// Every node logged the refusals with the peer's address.
	for _, p := range c.procs {
		eventually(t, p.id+" logs refused peers", func() error {
			out := p.out.String()
			if !strings.Contains(out, "refused internal connection") {
				return errors.New("no refusal logged")
			}
			for _, l := range badTLS.localAddrs() {
				if strings.Contains(out, "peer="+l) {
					return nil
				}
			}
			return errors.New("no refusal names a forger's address")
		})
	}
	// Nothing was written, and the cluster still serves writes and reads.
	for _, p := range c.procs {
		code, _, _, err := do(http.MethodGet, p.url()+"/admin/clients/"+forgedClient, "", "", adminAuth)
		if err != nil || code != http.StatusNotFound {
			t.Errorf("%s: forged client lookup: %d %v", p.id, code, err)
		}
		if s, err := getStatus(p); err != nil || voters(s) != len(c.procs) {
			t.Errorf("%s: membership after the attacks: %+v %v", p.id, s, err)
		}
	}
	id, secret := c.createClient(c.procs[0])
	for _, p := range c.procs {
		tok, _, err := issue(p, id, secret)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range c.procs {
			if code, err := validate(q, tok); err != nil || code != http.StatusOK {
				t.Errorf("token from %s on %s: %d %v", p.id, q.id, code, err)
			}
		}
	}
}

// dialFunc adapts a dialLayer to internalCall's dial function, recording
// the local address.
func (d *dialLayer) dialFunc() func(string, time.Duration) (net.Conn, error) {
	return func(addr string, timeout time.Duration) (net.Conn, error) {
		return d.Dial(raft.ServerAddress(addr), timeout)
	}
}

func voters(s status) int {
	n := 0
	for _, m := range s.Members {
		if m.Suffrage == "Voter" {
			n++
		}
	}
	return n
}

// TestForgerRefusedClusterKey: a three-node cluster with only a cluster
// key refuses every forged Raft and RPC message at the TLS handshake.
func TestForgerRefusedClusterKey(t *testing.T) {
	attackCluster(t, newTestCluster(t, 3))
}

// TestForgerRefusedOperatorPKI: the same with operator certificates, and a
// node holding the cluster key but a certificate from another CA is never
// admitted while the cluster keeps serving.
func TestForgerRefusedOperatorPKI(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	c := newTestClusterWith(t, 3, func(p *proc, base []string) []string {
		cert, key := pki.issue(t, p.id)
		return append(base, "--internal-tls-cert", cert, "--internal-tls-key", key, "--internal-tls-ca", pki.caFile)
	})
	attackCluster(t, c)

	other := newTestPKI(t, t.TempDir())
	cert, key := other.issue(t, "node4")
	p4 := c.newProc("node4")
	p4.args = []string{"--cluster-key", c.key, "--admin-token", c.admin, "--join", c.procs[0].gossipAddr, "--issuer", c.issuer,
		"--internal-tls-cert", cert, "--internal-tls-key", key, "--internal-tls-ca", other.caFile}
	p4.start(t)
	t.Cleanup(func() { p4.kill(t) })
	eventually(t, "the leader refuses node4", func() error {
		for _, p := range c.procs {
			if strings.Contains(p.out.String(), "not adding member") && strings.Contains(p.out.String(), "id=node4") {
				return nil
			}
		}
		return errors.New("no refusal logged yet")
	})
	for _, p := range c.procs {
		if s, err := getStatus(p); err != nil || voters(s) != 3 {
			t.Errorf("%s: voters with node4 around: %+v %v", p.id, s, err)
		}
	}
	if s, err := getStatus(p4); err == nil && s.LeaderID != "" && s.State == "Follower" && s.AppliedIndex > 0 {
		t.Errorf("node4 follows the cluster: %+v", s)
	}
	id, secret := c.createClient(c.procs[1])
	if _, _, err := issue(c.procs[2], id, secret); err != nil {
		t.Fatal(err)
	}
}

// testPKI is an operator CA in PEM files.
type testPKI struct {
	dir    string
	caFile string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

func newTestPKI(t *testing.T, dir string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test operator CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{dir: dir, caFile: filepath.Join(dir, "ca.pem"), ca: ca, caKey: key}
	writePEM(t, p.caFile, "CERTIFICATE", der)
	return p
}

// issue writes a certificate and key for name and returns their paths.
func (p *testPKI) issue(t *testing.T, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// metricValue reads one unlabelled metric from p's /metrics.
func metricValue(t *testing.T, p *proc, name string) float64 {
	t.Helper()
	code, body, _, err := do(http.MethodGet, p.url()+"/metrics", "", "", adminAuth)
	if err != nil || code != http.StatusOK {
		t.Fatalf("%s /metrics: %d %v", p.id, code, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	t.Fatalf("%s: no metric %s", p.id, name)
	return 0
}
