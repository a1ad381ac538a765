package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/loopaddr"
	"github.com/tokend/tokend/internal/syncbuf"
)

// These tests run real tokend processes on 127.0.0.1, built from the tree
// once per test binary.

var tokendBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokend-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tokendBin = filepath.Join(dir, "tokend")
	build := exec.Command("go", "build", "-o", tokendBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building tokend:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// deadline bounds every wait in these tests; generous because CI runs on
// two busy cores with the race detector.
const deadline = 60 * time.Second

// testAdminToken is the admin token of every node these tests start: the
// admin API and /cluster/status need it.
const testAdminToken = "test-admin-token-0123456789abcdef0123456789"

// proc is one tokend process.
type proc struct {
	id, httpAddr, raftAddr, gossipAddr, dir string
	args                                    []string
	// bin is the tokend binary to run; "" means this tree's (tokendBin).
	bin    string
	cmd    *exec.Cmd
	out    *syncbuf.Buffer
	exited chan struct{}
}

func (p *proc) url() string { return "http://" + p.httpAddr }

func (p *proc) start(t *testing.T) {
	t.Helper()
	p.out = &syncbuf.Buffer{}
	bin := p.bin
	if bin == "" {
		bin = tokendBin
	}
	p.cmd = exec.Command(bin, append([]string{"serve",
		"--node-id", p.id, "--data-dir", p.dir,
		"--http-addr", p.httpAddr, "--raft-addr", p.raftAddr, "--gossip-addr", p.gossipAddr,
		"--log-level", "info",
	}, p.args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.id, err)
	}
	p.exited = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
}

// startNode starts a single tokend process with args, a data directory of
// its own and free loopback ports, and kills it when the test ends (its
// output logged if the test failed). Waiting for it to be ready is the
// caller's: over plain HTTP, testCluster.waitReady.
func startNode(t *testing.T, id string, args ...string) *proc {
	t.Helper()
	p := &proc{id: id, dir: filepath.Join(t.TempDir(), "data"), httpAddr: loopaddr.ForTest(t), raftAddr: loopaddr.ForTest(t),
		gossipAddr: loopaddr.ForTest(t), args: args}
	p.start(t)
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("=== %s output ===\n%s", p.id, tail(p.out, 60))
		}
	})
	return p
}

func (p *proc) running() bool {
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) kill(t *testing.T) {
	t.Helper()
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

func (p *proc) terminate(t *testing.T) {
	t.Helper()
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(deadline):
		t.Errorf("%s did not stop on SIGTERM; killing", p.id)
		p.kill(t)
	}
}

// testCluster is a set of processes sharing a cluster key, admin token
// and issuer.
type testCluster struct {
	t          *testing.T
	key, admin string
	// issuer is every node's --issuer: the first node's URL.
	issuer string
	procs  []*proc
}

func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	return newTestClusterWith(t, n, nil)
}

// newTestClusterWith starts a cluster like newTestCluster; args, when not
// nil, turns each node's default arguments into the ones it runs with.
func newTestClusterWith(t *testing.T, n int, args func(p *proc, base []string) []string) *testCluster {
	t.Helper()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	c := &testCluster{t: t, key: base64.StdEncoding.EncodeToString(raw), admin: testAdminToken}
	for i := 0; i < n; i++ {
		c.procs = append(c.procs, c.newProc(fmt.Sprintf("node%d", i+1)))
	}
	c.issuer = c.procs[0].url()
	for i, p := range c.procs {
		var join []string
		for j, q := range c.procs {
			if j != i {
				join = append(join, q.gossipAddr)
			}
		}
		p.args = []string{"--bootstrap-expect", fmt.Sprint(n), "--cluster-key", c.key,
			"--admin-token", c.admin, "--join", strings.Join(join, ","), "--issuer", c.issuer}
		if args != nil {
			p.args = args(p, p.args)
		}
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			p.kill(t)
			if t.Failed() {
				t.Logf("=== %s output ===\n%s", p.id, tail(p.out, 60))
			}
		}
	})
	for _, p := range c.procs {
		p.start(t)
	}
	for _, p := range c.procs {
		c.waitReady(p)
	}
	return c
}

func tail(b *syncbuf.Buffer, lines int) string {
	if b == nil {
		return ""
	}
	all := strings.Split(b.String(), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func (c *testCluster) newProc(id string) *proc {
	return &proc{id: id, dir: filepath.Join(c.t.TempDir(), id),
		httpAddr: loopaddr.ForTest(c.t), raftAddr: loopaddr.ForTest(c.t), gossipAddr: loopaddr.ForTest(c.t)}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	stop := time.Now().Add(deadline)
	var err error
	for time.Now().Before(stop) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after %v: %v", what, deadline, err)
}

var httpc = &http.Client{Timeout: 15 * time.Second}

// adminAuth is the header that authenticates with testAdminToken.
var adminAuth = map[string]string{"Authorization": "Bearer " + testAdminToken}

func (c *testCluster) waitReady(p *proc) {
	c.t.Helper()
	eventually(c.t, p.id+" ready", func() error {
		if !p.running() {
			return fmt.Errorf("%s exited:\n%s", p.id, tail(p.out, 20))
		}
		resp, err := httpc.Get(p.url() + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
}

type status struct {
	NodeID       string `json:"node_id"`
	State        string `json:"state"`
	LeaderID     string `json:"leader_id"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	JoinError    string `json:"join_error"`
	Members      []struct {
		NodeID   string `json:"node_id"`
		RaftAddr string `json:"raft_addr"`
		Suffrage string `json:"suffrage"`
		Status   string `json:"status"`
	} `json:"members"`
}

func getStatus(p *proc) (status, error) {
	var s status
	code, body, _, err := do(http.MethodGet, p.url()+"/cluster/status", "", "", adminAuth)
	if err != nil {
		return s, err
	}
	if code != http.StatusOK {
		return s, fmt.Errorf("/cluster/status: %d %s", code, body)
	}
	return s, json.Unmarshal(body, &s)
}

func (c *testCluster) leader() (*proc, error) {
	for _, p := range c.procs {
		if !p.running() {
			continue
		}
		if s, err := getStatus(p); err == nil && s.State == "Leader" {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no leader among running nodes")
}

// do sends a request and returns status and body.
func do(method, u, contentType, body string, hdr map[string]string) (int, []byte, http.Header, error) {
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header, err
}

func (c *testCluster) createClient(p *proc) (id, secret string) {
	c.t.Helper()
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	eventually(c.t, "create client", func() error {
		code, body, _, err := do(http.MethodPost, p.url()+"/admin/clients", "application/json",
			`{"name":"cluster test","grant_types":["client_credentials"],"scopes":["read"]}`,
			map[string]string{"Authorization": "Bearer " + c.admin})
		if err != nil {
			return err
		}
		if code != http.StatusCreated {
			return fmt.Errorf("status %d: %s", code, body)
		}
		return json.Unmarshal(body, &out)
	})
	return out.ClientID, out.ClientSecret
}

// issue asks p for a client_credentials token.
func issue(p *proc, id, secret string) (string, int, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
	code, body, _, err := do(http.MethodPost, p.url()+"/token", "application/x-www-form-urlencoded", form.Encode(), nil)
	if err != nil || code != http.StatusOK {
		return "", code, fmt.Errorf("issue on %s: %d %s %v", p.id, code, body, err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", code, fmt.Errorf("issue on %s: bad body %s", p.id, body)
	}
	return tok.AccessToken, code, nil
}

func revoke(p *proc, id, secret, token string) (int, error) {
	form := url.Values{"token": {token}, "client_id": {id}, "client_secret": {secret}}
	code, body, _, err := do(http.MethodPost, p.url()+"/revoke", "application/x-www-form-urlencoded", form.Encode(), nil)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("revoke on %s: %d %s", p.id, code, body)
	}
	return code, err
}

func validate(p *proc, token string) (int, error) {
	code, _, _, err := do(http.MethodGet, p.url()+"/validate", "", "", map[string]string{"Authorization": "Bearer " + token})
	return code, err
}

func withTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	t.Cleanup(cancel)
	return ctx
}
