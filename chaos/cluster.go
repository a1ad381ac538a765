package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend/internal/loopaddr"
)

// cluster is three tokend processes sharing a cluster key, an admin token
// and an issuer, and the HTTP client the driver talks to them with.
type cluster struct {
	nodes []*node
	admin string
	dir   string
	hc    *http.Client // short timeout: a paused node must not hold the driver
}

// startCluster spawns n nodes of bin under dir and waits until all serve
// /readyz with 200. extra flags follow the defaults, so they override them
// (the flag package keeps a repeated flag's last value). Secrets travel in the environment, which only the same
// user can read, never on the command line, which every local user can.
func startCluster(ctx context.Context, bin, dir string, n int, readyTimeout time.Duration, extra ...string) (*cluster, error) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	admin := make([]byte, 32)
	_, _ = rand.Read(admin)
	c := &cluster{admin: base64.RawURLEncoding.EncodeToString(admin), dir: dir,
		hc: &http.Client{Timeout: 2 * time.Second}}
	env := append(baseEnv(), "TOKEND_CLUSTER_KEY="+base64.StdEncoding.EncodeToString(key), "TOKEND_ADMIN_TOKEN="+c.admin)
	for i := 0; i < n; i++ {
		nd := &node{id: "node" + strconv.Itoa(i+1), bin: bin, env: env}
		for _, a := range []*string{&nd.httpAddr, &nd.raftAddr, &nd.gossipAddr} {
			addr, err := loopaddr.Free()
			if err != nil {
				return nil, err
			}
			*a = addr
		}
		nd.logPath = filepath.Join(dir, nd.id+".log")
		c.nodes = append(c.nodes, nd)
	}
	issuer := c.nodes[0].url()
	for i, nd := range c.nodes {
		var join []string
		for j, o := range c.nodes {
			if j != i {
				join = append(join, o.gossipAddr)
			}
		}
		nd.args = []string{"serve", "--node-id", nd.id, "--data-dir", filepath.Join(dir, nd.id),
			"--http-addr", nd.httpAddr, "--raft-addr", nd.raftAddr, "--gossip-addr", nd.gossipAddr,
			"--bootstrap-expect", strconv.Itoa(n), "--join", strings.Join(join, ","), "--issuer", issuer,
			// Tokens issued early must still be valid when the last check runs.
			"--access-token-ttl", "24h"}
		nd.args = append(nd.args, extra...)
		if err := nd.start(); err != nil {
			c.stop()
			return nil, err
		}
	}
	if err := c.waitAllReady(ctx, readyTimeout); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// baseEnv is this process's environment without the TOKEND_* variables
// tokend reads: the nodes are configured by the driver alone.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKEND_") {
			env = append(env, kv)
		}
	}
	return env
}

// stop kills every node (they hold nothing worth a graceful stop here).
func (c *cluster) stop() {
	for _, nd := range c.nodes {
		if nd.running() {
			_ = nd.signal(sigCont)
		}
		_ = nd.kill()
	}
	c.hc.CloseIdleConnections()
}

// ready reports whether nd answers /readyz with 200.
func (c *cluster) ready(ctx context.Context, nd *node) error {
	if !nd.running() {
		return fmt.Errorf("%s is not running", nd.id)
	}
	code, _, err := c.get(ctx, nd, "/readyz", false)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: /readyz %d", nd.id, code)
	}
	return nil
}

// waitAllReady polls /readyz of every node until all answer 200.
func (c *cluster) waitAllReady(ctx context.Context, timeout time.Duration) error {
	return poll(ctx, timeout, "every node ready", func() error {
		for _, nd := range c.nodes {
			if err := c.ready(ctx, nd); err != nil {
				if !nd.running() {
					return fmt.Errorf("%w; its log ends:\n%s", err, nd.logTail(30))
				}
				return err
			}
		}
		return nil
	})
}

// status is the part of /cluster/status the driver reads.
type status struct {
	NodeID   string `json:"node_id"`
	State    string `json:"state"`
	LeaderID string `json:"leader_id"`
}

func (c *cluster) status(ctx context.Context, nd *node) (status, error) {
	var s status
	code, body, err := c.get(ctx, nd, "/cluster/status", true)
	if err != nil {
		return s, err
	}
	if code != http.StatusOK {
		return s, fmt.Errorf("%s: /cluster/status %d", nd.id, code)
	}
	return s, json.Unmarshal(body, &s)
}

// leader finds the node that says it leads, among running, unpaused nodes.
func (c *cluster) leader(ctx context.Context) (*node, error) {
	for _, nd := range c.nodes {
		if !nd.serving() {
			continue
		}
		if s, err := c.status(ctx, nd); err == nil && s.State == "Leader" {
			return nd, nil
		}
	}
	return nil, errors.New("no running node says it is the leader")
}

func (c *cluster) waitLeader(ctx context.Context, timeout time.Duration) (*node, error) {
	var l *node
	err := poll(ctx, timeout, "a leader", func() (err error) {
		l, err = c.leader(ctx)
		return err
	})
	return l, err
}

func (c *cluster) get(ctx context.Context, nd *node, path string, admin bool) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, nd.url()+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if admin {
		req.Header.Set("Authorization", "Bearer "+c.admin)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// createClient registers the confidential client the load uses.
func (c *cluster) createClient(ctx context.Context, timeout time.Duration) (id, secret string, err error) {
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	body := `{"name":"tokend-chaos","grant_types":["client_credentials"],"scopes":["read"]}`
	err = poll(ctx, timeout, "registering the load's client", func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.nodes[0].url()+"/admin/clients", bytes.NewReader([]byte(body)))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+c.admin)
		resp, err := c.hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("POST /admin/clients: %d %s", resp.StatusCode, b)
		}
		return json.Unmarshal(b, &out)
	})
	return out.ClientID, out.ClientSecret, err
}

// poll calls cond every 50 ms until it returns nil, the timeout passes or
// ctx ends; the error then names what was awaited and cond's last error.
func poll(ctx context.Context, timeout time.Duration, what string, cond func() error) error {
	stop := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(stop) {
			return fmt.Errorf("%s: still failing after %v: %w", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
