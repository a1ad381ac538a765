// Package e2e runs tokend's HTTP API on real single nodes: in-process
// cluster.New (real Raft over TCP on 127.0.0.1, real boltdb files in a temp
// dir), httpapi.New and a real http.Server on a 127.0.0.1 listener.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi"
	"github.com/tokend/tokend/internal/loopaddr"
)

// nodeOpts configures a test node. Zero values get test-friendly defaults.
type nodeOpts struct {
	AccessTTL, RefreshTTL time.Duration
	// RefreshGrace < 0 means 0 (no grace); 0 means the default 5s.
	RefreshGrace      time.Duration
	SnapshotThreshold uint64
	// Skew, when set, is added to the HTTP layer's clock (nanoseconds), so
	// tests can jump past expiries and grace windows without sleeping.
	Skew *atomic.Int64
	// AdminToken defaults to a random one.
	AdminToken string
	// RaftAddr is kept across restarts; empty picks a free port.
	RaftAddr string
}

// node is a running tokend node.
type node struct {
	t       *testing.T
	URL     string // http://127.0.0.1:port
	Admin   string // admin bearer token
	Dir     string
	Opts    nodeOpts
	Raft    *cluster.Node
	FSM     *fsm.FSM
	srv     *http.Server
	stopped bool
}

func testLogger(name string) *slog.Logger {
	if os.Getenv("TOKEND_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("t", name)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startNode starts a single-node tokend on dir (fresh or existing) and waits
// until /readyz answers 200. The node is stopped at test cleanup unless
// stop was called before.
func startNode(t *testing.T, dir string, opts nodeOpts) *node {
	t.Helper()
	accessTTL, refreshTTL, grace := opts.AccessTTL, opts.RefreshTTL, opts.RefreshGrace
	if accessTTL == 0 {
		accessTTL = 30 * time.Minute
	}
	if refreshTTL == 0 {
		refreshTTL = 12 * time.Hour
	}
	switch {
	case grace == 0:
		grace = 5 * time.Second
	case grace < 0:
		grace = 0
	}
	if opts.AdminToken == "" {
		opts.AdminToken = "adm-" + randHex(16)
	}
	if opts.RaftAddr == "" {
		opts.RaftAddr = loopaddr.ForTest(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := ln.Addr().String()
	log := testLogger(t.Name())
	reg := prometheus.NewRegistry()
	state := fsm.New()
	cn, err := cluster.New(context.Background(), cluster.Config{
		NodeID:            "n1",
		DataDir:           dir,
		RaftAddr:          opts.RaftAddr,
		GossipAddr:        "127.0.0.1:0", // unused without a cluster key
		HTTPAddr:          httpAddr,
		BootstrapExpect:   1,
		SnapshotThreshold: opts.SnapshotThreshold,
		Version:           "e2e",
		FSM:               state,
		Logger:            log,
		Registerer:        reg,
	})
	if err != nil {
		ln.Close()
		t.Fatalf("cluster.New: %v", err)
	}
	now := time.Now
	if opts.Skew != nil {
		skew := opts.Skew
		now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	}
	issuer := "http://" + httpAddr
	api, err := httpapi.New(httpapi.Config{
		FSM:          state,
		Replicator:   cn,
		Status:       func() any { return cn.Status() },
		Leave:        cn.Leave,
		Issuer:       issuer,
		AdminToken:   opts.AdminToken,
		AccessTTL:    accessTTL,
		RefreshTTL:   refreshTTL,
		RefreshGrace: grace,
		Logger:       log,
		Registry:     reg,
		Now:          now,
	})
	if err != nil {
		_ = cn.Shutdown(context.Background())
		ln.Close()
		t.Fatalf("httpapi.New: %v", err)
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	go func() { _ = srv.Serve(ln) }()
	n := &node{t: t, URL: issuer, Admin: opts.AdminToken, Dir: dir, Opts: opts, Raft: cn, FSM: state, srv: srv}
	t.Cleanup(n.stop)
	n.waitReady()
	return n
}

// waitReady polls /readyz until 200 (30 s deadline).
func (n *node) waitReady() {
	t := n.t
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(n.URL + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node at %s not ready after 30s (last: %v)", n.URL, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop shuts the HTTP server and the Raft node down. Safe to call twice.
func (n *node) stop() {
	if n.stopped {
		return
	}
	n.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = n.srv.Shutdown(ctx)
	if err := n.Raft.Shutdown(ctx); err != nil {
		n.t.Errorf("raft shutdown: %v", err)
	}
}

// restart stops n and starts a new node on the same data dir, Raft address
// and options.
func (n *node) restart() *node {
	n.t.Helper()
	n.stop()
	return startNode(n.t, n.Dir, n.Opts)
}

// ---- HTTP helpers ----

type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object (status %d): %q", r.Status, r.Body)
	}
	return m
}

// errCode returns the "error" field of a JSON error body, failing the test
// when the body is not the contract's error shape.
func (r reply) errCode(t *testing.T) string {
	t.Helper()
	m := r.json(t)
	code, ok := m["error"].(string)
	if !ok || code == "" {
		t.Fatalf("no error field in %d body %q", r.Status, r.Body)
	}
	return code
}

var httpc = &http.Client{Timeout: 20 * time.Second}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func newReq(t *testing.T, method, u, ctype string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	return req
}

// postForm posts form values; basic, when non-nil, is {id, secret} sent as
// HTTP Basic exactly as given (no encoding).
func (n *node) postForm(t *testing.T, path string, v url.Values, basic []string) reply {
	t.Helper()
	req := newReq(t, http.MethodPost, n.URL+path, "application/x-www-form-urlencoded", strings.NewReader(v.Encode()))
	if basic != nil {
		req.SetBasicAuth(basic[0], basic[1])
	}
	return do(t, req)
}

// admin calls the admin API with the admin token and a JSON body (nil: no
// body).
func (n *node) admin(t *testing.T, method, path string, body any) reply {
	t.Helper()
	var rd io.Reader
	ctype := ""
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd, ctype = bytes.NewReader(b), "application/json"
	}
	req := newReq(t, method, n.URL+path, ctype, rd)
	req.Header.Set("Authorization", "Bearer "+n.Admin)
	return do(t, req)
}

func (n *node) get(t *testing.T, path string) reply {
	t.Helper()
	return do(t, newReq(t, http.MethodGet, n.URL+path, "", nil))
}

type client struct {
	ID, Secret string
}

// createClient registers a client through the admin API.
func (n *node) createClient(t *testing.T, body map[string]any) client {
	t.Helper()
	r := n.admin(t, http.MethodPost, "/admin/clients", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create client: %d %s", r.Status, r.Body)
	}
	m := r.json(t)
	c := client{ID: str(m["client_id"])}
	c.Secret, _ = m["client_secret"].(string)
	if c.ID == "" {
		t.Fatalf("create client: no client_id in %s", r.Body)
	}
	return c
}

func (n *node) createUser(t *testing.T, tenant, username, password string) {
	t.Helper()
	body := map[string]any{"username": username, "password": password}
	if tenant != "" {
		body["tenant"] = tenant
	}
	r := n.admin(t, http.MethodPost, "/admin/users", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create user: %d %s", r.Status, r.Body)
	}
}

// tokenResp is the /token success body.
type tokenResp struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    *int64 `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	Counter      *int64 `json:"token_issued_counter"`
	LastIssued   string `json:"last_token_issued_date"`
}

// issue posts to /token with client_secret_post and requires 200.
func (n *node) issue(t *testing.T, c client, v url.Values) tokenResp {
	t.Helper()
	v.Set("client_id", c.ID)
	if c.Secret != "" {
		v.Set("client_secret", c.Secret)
	}
	r := n.postForm(t, "/token", v, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("token %v: %d %s", v.Get("grant_type"), r.Status, r.Body)
	}
	var tr tokenResp
	if err := json.Unmarshal(r.Body, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.AccessToken == "" {
		t.Fatalf("no access_token in %s", r.Body)
	}
	return tr
}

func (n *node) clientCreds(t *testing.T, c client) tokenResp {
	t.Helper()
	return n.issue(t, c, url.Values{"grant_type": {"client_credentials"}})
}

func (n *node) passwordGrant(t *testing.T, c client, tenant, user, pass string) tokenResp {
	t.Helper()
	v := url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}}
	if tenant != "" {
		v.Set("tenant_id", tenant)
	}
	return n.issue(t, c, v)
}

// validate calls GET /validate with a bearer token and returns the status.
func (n *node) validate(t *testing.T, tok, scope string) reply {
	t.Helper()
	u := n.URL + "/validate"
	if scope != "" {
		u += "?" + url.Values{"scope": {scope}}.Encode()
	}
	req := newReq(t, http.MethodGet, u, "", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	return do(t, req)
}

func (n *node) valid(t *testing.T, tok string) bool {
	t.Helper()
	r := n.validate(t, tok, "")
	switch r.Status {
	case http.StatusOK:
		return true
	case http.StatusUnauthorized:
		return false
	}
	t.Fatalf("validate: unexpected status %d %s", r.Status, r.Body)
	return false
}

// introspect calls /introspect authenticated as c and returns the JSON.
func (n *node) introspect(t *testing.T, c client, tok string) map[string]any {
	t.Helper()
	r := n.postForm(t, "/introspect", url.Values{"token": {tok}}, []string{c.ID, c.Secret})
	if r.Status != http.StatusOK {
		t.Fatalf("introspect: %d %s", r.Status, r.Body)
	}
	return r.json(t)
}

func (n *node) active(t *testing.T, c client, tok string) bool {
	t.Helper()
	m := n.introspect(t, c, tok)
	a, ok := m["active"].(bool)
	if !ok {
		t.Fatalf("introspect: no boolean active in %v", m)
	}
	if !a && len(m) != 1 {
		t.Fatalf("inactive introspection must be exactly {\"active\":false}, got %v", m)
	}
	return a
}

// revoke calls /revoke as c and requires 200 with an empty body.
func (n *node) revoke(t *testing.T, c client, tok string) {
	t.Helper()
	r := n.postForm(t, "/revoke", url.Values{"token": {tok}, "client_id": {c.ID}, "client_secret": {c.Secret}}, nil)
	if r.Status != http.StatusOK || len(r.Body) != 0 {
		t.Fatalf("revoke: %d %q", r.Status, r.Body)
	}
}

func str(v any) string { s, _ := v.(string); return s }
