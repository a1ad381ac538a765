package main

import (
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestFlagsReadEnvironmentAndFlagsWin(t *testing.T) {
	t.Setenv("TOKEND_HTTP_ADDR", "127.0.0.1:9999")
	t.Setenv("TOKEND_ACCESS_TOKEN_TTL", "5m")
	t.Setenv("TOKEND_NODE_ID", "from-env")
	c, err := parseServe([]string{"--node-id", "from-flag"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.httpAddr != "127.0.0.1:9999" || c.accessTTL != 5*time.Minute {
		t.Fatalf("environment not read: %+v", c)
	}
	if c.nodeID != "from-flag" {
		t.Fatalf("flag did not win over environment: %q", c.nodeID)
	}
}

func TestServeConfigErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--bootstrap-expect", "3"},                                   // cluster without key
		{"--join", "127.0.0.1:1"},                                     // join without key
		{"--bootstrap-expect", "0"},                                   // nonsense
		{"--tls-cert", "x"},                                           // cert without key
		{"--access-token-ttl", "-1s"},                                 // negative lifetime
		{"--dev", "--bootstrap-expect", "3", "--cluster-key", "AAAA"}, // dev is one node
		{"stray-argument"},
	} {
		if _, err := parseServe(args, io.Discard); err == nil {
			t.Errorf("parseServe(%q) accepted", args)
		}
	}
	t.Setenv("TOKEND_BOOTSTRAP_EXPECT", "not-a-number")
	if _, err := parseServe(nil, io.Discard); err == nil || !strings.Contains(err.Error(), "TOKEND_BOOTSTRAP_EXPECT") {
		t.Errorf("bad environment value not reported by name: %v", err)
	}
}

func TestClusterKeyMustBe32Bytes(t *testing.T) {
	c := &serveConfig{clusterKey: "c2hvcnQ="}
	if _, err := c.key(); err == nil {
		t.Fatal("short key accepted")
	}
	c.clusterKey = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	if k, err := c.key(); err != nil || len(k) != 32 {
		t.Fatalf("32-byte key refused: %v", err)
	}
}

// TestDevCurlLines runs tokend serve --dev and pastes the curl lines it
// prints into bash: they must work as printed.
func TestDevCurlLines(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is required (CI installs it)")
	}
	p := &proc{id: "dev", dir: t.TempDir(), httpAddr: freePort(t), raftAddr: freePort(t), gossipAddr: freePort(t),
		args: []string{"--dev"}}
	p.start(t)
	t.Cleanup(func() { p.terminate(t) })
	var block string
	eventually(t, "dev banner", func() error {
		out := p.out.String()
		start := strings.Index(out, "export TOKEND=")
		end := strings.Index(out, "# Authorization code flow")
		if start < 0 || end < start {
			if !p.running() {
				t.Fatalf("dev node exited:\n%s", out)
			}
			return io.ErrUnexpectedEOF
		}
		block = out[start:end]
		return nil
	})
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pasted lines failed: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{`"token_type":"bearer"`, `"active":true`, `"token_issued_counter":2`, "HTTP/1.1 200 OK", "X-Token-Subject: default/demo"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if last := s[strings.LastIndex(s, "HTTP/1.1"):]; !strings.HasPrefix(last, "HTTP/1.1 401") {
		t.Errorf("validate after revoke should be 401, got:\n%s", last)
	}
}

func TestFlagsAfterPositionalArguments(t *testing.T) {
	fs := newFlagSet("t", io.Discard)
	addr := fs.String("addr", "", "")
	force := fs.Bool("force", false, "")
	if err := parseWithEnv(fs, []string{"get", "ID", "--addr", "http://x", "--force", "--", "-literal"}); err != nil {
		t.Fatal(err)
	}
	if *addr != "http://x" || !*force || strings.Join(fs.Args(), " ") != "get ID -literal" {
		t.Fatalf("addr %q force %v args %q", *addr, *force, fs.Args())
	}
}
