//go:build unix

package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a fake tokend: with TOKEND_BENCH_FAKE_NODE=1
// it parses `serve` flags like the real one and serves the fake store.
// TOKEND_BENCH_FAKE_MODE=exit makes it fail at startup;
// TOKEND_BENCH_FAKE_PIDS=DIR makes it leave its pid there.
func TestMain(m *testing.M) {
	if os.Getenv("TOKEND_BENCH_FAKE_NODE") == "1" {
		os.Exit(fakeTokendMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeTokendMain(args []string) int {
	if len(args) == 0 || args[0] != "serve" {
		fmt.Fprintln(os.Stderr, "fake tokend: want serve")
		return 2
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	nodeID := fs.String("node-id", "", "")
	dataDir := fs.String("data-dir", "", "")
	httpAddr := fs.String("http-addr", "", "")
	fs.String("raft-addr", "", "")
	fs.String("gossip-addr", "", "")
	fs.Int("bootstrap-expect", 1, "")
	fs.String("join", "", "")
	fs.String("issuer", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	// Secrets come in the environment, as TOKEND_* twins of the flags.
	admin := os.Getenv("TOKEND_ADMIN_TOKEN")
	args = append(args, "--admin-token", admin, "--cluster-key", os.Getenv("TOKEND_CLUSTER_KEY"))
	if os.Getenv("TOKEND_BENCH_FAKE_MODE") == "exit" {
		fmt.Fprintln(os.Stderr, "fake tokend: boom, cannot start")
		return 1
	}
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return 1
	}
	_ = os.WriteFile(filepath.Join(*dataDir, "args.txt"), []byte(strings.Join(args, "\n")), 0o644)
	if d := os.Getenv("TOKEND_BENCH_FAKE_PIDS"); d != "" {
		_ = os.WriteFile(filepath.Join(d, *nodeID), []byte(strconv.Itoa(os.Getpid())), 0o644)
	}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() { _ = http.Serve(ln, &fakeNode{s: newFakeStore(admin)}) }()
	<-sig
	return 0
}

func useFakeTokend(t *testing.T) string {
	t.Setenv("TOKEND_BENCH_FAKE_NODE", "1")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func readArgs(t *testing.T, dir, id string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, id, "args.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	out := map[string]string{}
	for i := 1; i+1 < len(lines); i += 2 {
		out[lines[i]] = lines[i+1]
	}
	return out
}

func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestSpawnClusterFlagsAndStop(t *testing.T) {
	exe := useFakeTokend(t)
	pids := t.TempDir()
	t.Setenv("TOKEND_BENCH_FAKE_PIDS", pids)
	c, err := spawnCluster(context.Background(), exe, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	seen := map[string]bool{}
	for i, nd := range c.Nodes {
		a := readArgs(t, c.Dir, nd.ID)
		for _, f := range []string{"--http-addr", "--raft-addr", "--gossip-addr"} {
			host, _, _ := net.SplitHostPort(a[f])
			if host != "127.0.0.1" || seen[a[f]] {
				t.Fatalf("%s %s = %q: want a distinct 127.0.0.1 port", nd.ID, f, a[f])
			}
			seen[a[f]] = true
		}
		if a["--admin-token"] != c.AdminToken || a["--bootstrap-expect"] != "3" || a["--node-id"] != nd.ID {
			t.Fatalf("%s args %v", nd.ID, a)
		}
		if key, err := base64.StdEncoding.DecodeString(a["--cluster-key"]); err != nil || len(key) != 32 {
			t.Fatalf("cluster key %q", a["--cluster-key"])
		}
		if argv := strings.Join(nd.cmd.Args, " "); strings.Contains(argv, c.AdminToken) || strings.Contains(argv, a["--cluster-key"]) {
			t.Fatalf("%s: a secret is on the command line: %v", nd.ID, nd.cmd.Args)
		}
		if !strings.HasPrefix(a["--data-dir"], c.Dir) {
			t.Fatalf("data dir %q outside the temp dir %q", a["--data-dir"], c.Dir)
		}
		// One issuer for the whole cluster: the first node's URL.
		if a["--issuer"] != c.Nodes[0].URL() {
			t.Fatalf("%s --issuer %q, want %q on every node", nd.ID, a["--issuer"], c.Nodes[0].URL())
		}
		wantJoin := ""
		if i > 0 {
			wantJoin = c.Nodes[0].GossipAddr
		}
		if a["--join"] != wantJoin {
			t.Fatalf("%s --join %q want %q", nd.ID, a["--join"], wantJoin)
		}
	}
	c.Stop()
	for _, nd := range c.Nodes {
		raw, _ := os.ReadFile(filepath.Join(pids, nd.ID))
		pid, _ := strconv.Atoi(string(raw))
		if pid == 0 || !processGone(pid) {
			t.Fatalf("%s (pid %d) still running after Stop", nd.ID, pid)
		}
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Fatalf("temp dir %s not removed", c.Dir)
	}
}

func TestSpawnReportsEarlyExit(t *testing.T) {
	exe := useFakeTokend(t)
	t.Setenv("TOKEND_BENCH_FAKE_MODE", "exit")
	_, err := spawnCluster(context.Background(), exe, 1, nil)
	if err == nil || !strings.Contains(err.Error(), "boom, cannot start") {
		t.Fatalf("err = %v", err)
	}
}

func TestFindTokend(t *testing.T) {
	if _, err := findTokend(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Fatal("missing --tokend accepted")
	}
	exe := useFakeTokend(t)
	if p, err := findTokend(exe); err != nil || p != exe {
		t.Fatalf("findTokend(%q) = %q, %v", exe, p, err)
	}
}

// TestRunSpawnedAndInterrupted runs the whole tool with --spawn 1 against
// the fake binary and cancels it (as SIGINT does) in the middle: Run must
// return promptly with partial results and the node must be gone.
func TestRunSpawnedAndInterrupted(t *testing.T) {
	exe := useFakeTokend(t)
	pids := t.TempDir()
	t.Setenv("TOKEND_BENCH_FAKE_PIDS", pids)
	cfg := quickConfig(t, ScenarioValidate, nil)
	cfg.Spawn, cfg.TokendPath, cfg.AdminToken = 1, exe, ""
	cfg.Duration = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for { // cancel once the load is running
			if _, err := os.Stat(filepath.Join(pids, "n1")); err == nil {
				time.Sleep(800 * time.Millisecond)
				cancel()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	start := time.Now()
	rep, err := Run(ctx, cfg, &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) >= cfg.Duration {
		t.Fatalf("interrupted run went on for its whole duration (%v)", time.Since(start))
	}
	if !rep.Cancelled || rep.Spawned != 1 || rep.Requests == 0 || rep.Errors != 0 {
		t.Fatalf("cancelled %v spawned %d requests %d errors %v", rep.Cancelled, rep.Spawned, rep.Requests, rep.ErrorsBy)
	}
	raw, _ := os.ReadFile(filepath.Join(pids, "n1"))
	pid, _ := strconv.Atoi(string(raw))
	if pid == 0 || !processGone(pid) {
		t.Fatalf("spawned node (pid %d) survived the interrupted run", pid)
	}
}
