package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tokend/tokend/internal/loopaddr"
)

// spawnReadyTimeout bounds how long spawned nodes may take to serve /readyz.
const spawnReadyTimeout = 60 * time.Second

// findTokend locates the tokend binary: the explicit path, else a tokend
// beside the running executable, else tokend on PATH.
func findTokend(explicit string) (string, error) {
	if explicit != "" {
		p, err := exec.LookPath(explicit)
		if err != nil {
			return "", fmt.Errorf("--tokend %s: %v", explicit, err)
		}
		return filepath.Abs(p)
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "tokend")
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("tokend"); err == nil {
		return filepath.Abs(p)
	}
	return "", errors.New("no tokend binary found beside tokend-bench or on PATH; build it (make build) or pass --tokend PATH")
}

// freeLoopbackPorts picks n distinct free ports on 127.0.0.1, below the
// ephemeral range so the bench's own connections cannot take them before
// the nodes bind (see internal/loopaddr). loopaddr.Free never returns a
// port twice in one process, so the n ports are distinct.
func freeLoopbackPorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for len(ports) < n {
		addr, err := loopaddr.Free()
		if err != nil {
			return nil, err
		}
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		ports = append(ports, port)
	}
	return ports, nil
}

// spawnedNode is one tokend process.
type spawnedNode struct {
	ID         string
	HTTPAddr   string
	RaftAddr   string
	GossipAddr string
	LogPath    string
	cmd        *exec.Cmd
	exited     chan struct{}
	waitErr    error
}

// URL is the node's base URL.
func (n *spawnedNode) URL() string { return "http://" + n.HTTPAddr }

func (n *spawnedNode) logTail() string {
	b, err := os.ReadFile(n.LogPath)
	if err != nil {
		return ""
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return strings.TrimSpace(string(b))
}

// localCluster is a set of spawned nodes sharing a temporary directory.
type localCluster struct {
	Nodes      []*spawnedNode
	AdminToken string
	Dir        string
	stopOnce   sync.Once
}

// URLs lists the nodes' base URLs.
func (c *localCluster) URLs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.URL()
	}
	return out
}

// spawnCluster starts n nodes of the tokend binary at path on free loopback
// ports, the first bootstrapping and the others joining it, and waits
// until every node answers /readyz with 200. Every node announces the same
// issuer, the first node's URL (tokend requires --issuer for a cluster).
// On any failure everything started is stopped again.
func spawnCluster(ctx context.Context, path string, n int, log io.Writer) (*localCluster, error) {
	dir, err := os.MkdirTemp("", "tokend-bench-")
	if err != nil {
		return nil, err
	}
	c := &localCluster{AdminToken: randomString(32), Dir: dir}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	clusterKey := base64.StdEncoding.EncodeToString(key)
	ports, err := freeLoopbackPorts(3 * n)
	if err != nil {
		c.Stop()
		return nil, err
	}
	issuer := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	for i := 0; i < n; i++ {
		nd := &spawnedNode{
			ID:         "n" + strconv.Itoa(i+1),
			HTTPAddr:   "127.0.0.1:" + strconv.Itoa(ports[3*i]),
			RaftAddr:   "127.0.0.1:" + strconv.Itoa(ports[3*i+1]),
			GossipAddr: "127.0.0.1:" + strconv.Itoa(ports[3*i+2]),
			exited:     make(chan struct{}),
		}
		nd.LogPath = filepath.Join(dir, nd.ID+".log")
		args := []string{"serve",
			"--node-id", nd.ID,
			"--data-dir", filepath.Join(dir, nd.ID),
			"--http-addr", nd.HTTPAddr,
			"--raft-addr", nd.RaftAddr,
			"--gossip-addr", nd.GossipAddr,
			"--issuer", issuer,
		}
		// Secrets travel in the environment, which only the same user can
		// read, never on the command line, which every local user can.
		env := append(spawnEnv(), "TOKEND_ADMIN_TOKEN="+c.AdminToken)
		if n > 1 {
			env = append(env, "TOKEND_CLUSTER_KEY="+clusterKey)
			args = append(args, "--bootstrap-expect", strconv.Itoa(n))
			if i > 0 {
				args = append(args, "--join", c.Nodes[0].GossipAddr)
			}
		}
		logf, err := os.Create(nd.LogPath)
		if err != nil {
			c.Stop()
			return nil, err
		}
		nd.cmd = exec.Command(path, args...)
		nd.cmd.Env = env
		nd.cmd.Stdout = logf
		nd.cmd.Stderr = logf
		nd.cmd.SysProcAttr = childSysProcAttr()
		if err := nd.cmd.Start(); err != nil {
			logf.Close()
			c.Stop()
			return nil, fmt.Errorf("starting %s: %w", path, err)
		}
		go func() {
			nd.waitErr = nd.cmd.Wait()
			logf.Close()
			close(nd.exited)
		}()
		c.Nodes = append(c.Nodes, nd)
		if log != nil {
			fmt.Fprintf(log, "spawned tokend %s: http %s raft %s gossip %s (log %s)\n", nd.ID, nd.HTTPAddr, nd.RaftAddr, nd.GossipAddr, nd.LogPath)
		}
	}
	if err := c.waitReady(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *localCluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, spawnReadyTimeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: loopbackDialer()}}
	defer hc.CloseIdleConnections()
	for _, nd := range c.Nodes {
		for {
			select {
			case <-nd.exited:
				return fmt.Errorf("tokend %s exited before becoming ready (%v); its log:\n%s", nd.ID, nd.waitErr, nd.logTail())
			default:
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, nd.URL()+"/readyz", nil)
			if resp, err := hc.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return fmt.Errorf("tokend %s not ready (GET /readyz != 200) after %s; its log:\n%s", nd.ID, spawnReadyTimeout, nd.logTail())
				}
				return ctx.Err()
			case <-nd.exited:
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// Stop terminates every node (SIGTERM, then SIGKILL after 5 s) and removes
// the temporary directory. It is safe to call more than once.
func (c *localCluster) Stop() {
	c.stopOnce.Do(func() {
		var wg sync.WaitGroup
		for _, nd := range c.Nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = nd.cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-nd.exited:
				case <-time.After(5 * time.Second):
					_ = nd.cmd.Process.Kill()
					<-nd.exited
				}
			}()
		}
		wg.Wait()
		_ = os.RemoveAll(c.Dir)
	})
}

// spawnEnv is this process's environment without the TOKEND_* variables
// tokend reads: a spawned node is configured by the bench alone, not by
// whatever the operator's shell exports.
func spawnEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKEND_") || strings.HasPrefix(kv, "TOKEND_BENCH_") {
			env = append(env, kv)
		}
	}
	return env
}
