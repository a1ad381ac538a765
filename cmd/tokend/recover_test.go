package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tokend/tokend/internal/loopaddr"
)

// TestRecoverRefusesBadPeers: tokend recover checks --peers before it
// opens anything, so a bad list never creates or touches a data dir.
func TestRecoverRefusesBadPeers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node1")
	for _, tc := range []struct {
		peers []string // --peers values; nil: flag absent
		want  string
	}{
		{nil, "--peers is required"},
		{[]string{"node1=127.0.0.1"}, "not host:port"},
		{[]string{"node1=127.0.0.1:0"}, "port must be 1-65535"},
		{[]string{"node1=127.0.0.1:70000"}, "port must be 1-65535"},
		{[]string{"node1=:8300"}, "has no host"},
		{[]string{"node1=0.0.0.0:8300"}, "advertised internal address"},
		{[]string{"node1=[::]:8300"}, "advertised internal address"},
		{[]string{"node1=127.0.0.1:8300,node1=127.0.0.1:8301"}, `node id "node1" given twice`},
		{[]string{"node1=127.0.0.1:8300", "node2=127.0.0.1:8300"}, "address 127.0.0.1:8300 given twice"},
		{[]string{"node2=127.0.0.1:8300"}, `this node ("node1") must be in the new configuration`},
		{[]string{"node1=127.0.0.1:8300,node2"}, `node "node2" has no address`},
		{[]string{"=127.0.0.1:8300"}, "has no node id"},
		{[]string{"node1="}, "has no address"},
		{[]string{"no de=127.0.0.1:8300,node1"}, `bad node id "no de"`},
		// A good list, but nothing to recover: no raft.db, and none made.
		{[]string{"node1=127.0.0.1:8300"}, "no Raft state"},
	} {
		args := []string{"recover", "--data-dir", dir, "--node-id", "node1"}
		for _, p := range tc.peers {
			args = append(args, "--peers", p)
		}
		var out strings.Builder
		err := run(withTimeout(t), args, &out, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tokend recover --peers %q: error %v, want one containing %q", tc.peers, err, tc.want)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused recover created or touched the data dir: %v", err)
	}
	// --peers is typed, never taken from the environment.
	t.Setenv("TOKEND_PEERS", "node1=127.0.0.1:8300")
	if err := run(withTimeout(t), []string{"recover", "--data-dir", dir, "--node-id", "node1"}, &strings.Builder{}, &strings.Builder{}); err == nil ||
		!strings.Contains(err.Error(), "--peers is required") {
		t.Fatalf("TOKEND_PEERS was read: %v", err)
	}
}

var lastIndexRE = regexp.MustCompile(`state kept: last index (\d+), term (\d+) \(snapshot at index (\d+), then (\d+) log entries\)`)

// recoveryOutput is what tokend recover printed, split up.
type recoveryOutput struct {
	lastIndex, snapIndex, logEntries uint64
	oldCfg, newCfg                   string
}

func parseRecovery(t *testing.T, out string) recoveryOutput {
	t.Helper()
	m := lastIndexRE.FindStringSubmatch(out)
	oldAt := strings.Index(out, "old configuration")
	newAt := strings.Index(out, "new configuration:")
	if m == nil || oldAt < 0 || newAt < oldAt {
		t.Fatalf("tokend recover printed no state and configurations:\n%s", out)
	}
	n := func(s string) uint64 { v, _ := strconv.ParseUint(s, 10, 64); return v }
	return recoveryOutput{lastIndex: n(m[1]), snapIndex: n(m[3]), logEntries: n(m[4]),
		oldCfg: out[oldAt:newAt], newCfg: out[newAt:]}
}

// TestRecoverLostQuorum follows docs/RECOVERY.md: two of three nodes are
// lost for good (killed, data deleted); the survivor, which by then
// refuses writes, is stopped and gets a one-server configuration from
// tokend recover (refused while it ran); restarted, on a new internal
// address as a pod would be, it leads alone with every token acknowledged
// before, and two fresh nodes join it as voters.
func TestRecoverLostQuorum(t *testing.T) {
	c := newTestCluster(t, 3)
	survivor, lost := c.procs[0], c.procs[1:]
	id, secret := c.createClient(survivor)
	var tokens []string
	for _, p := range c.procs {
		var tok string
		eventually(t, "issue through "+p.id, func() (err error) { tok, _, err = issue(p, id, secret); return err })
		tokens = append(tokens, tok)
	}
	for _, tok := range tokens {
		if code := validateEventually(t, survivor, tok); code != http.StatusOK {
			t.Fatalf("token not valid on the survivor before the loss: %d", code)
		}
	}
	before, err := getStatus(survivor)
	if err != nil {
		t.Fatal(err)
	}

	recoverArgs := func(extra ...string) []string {
		return append([]string{"recover", "--data-dir", survivor.dir, "--node-id", survivor.id,
			"--peers", survivor.id + "=" + survivor.raftAddr}, extra...)
	}
	// A running node holds raft.db's lock: recover refuses and changes
	// nothing (the node goes on serving writes).
	var out strings.Builder
	err = run(withTimeout(t), recoverArgs(), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "stop the node first") {
		t.Fatalf("recover on a running node: %v, want 'stop the node first'\n%s", err, out.String())
	}
	eventually(t, "the cluster still takes writes", func() error { _, _, err := issue(survivor, id, secret); return err })

	// Two nodes lost for good: killed, their data gone.
	for _, p := range lost {
		p.kill(t)
		if err := os.RemoveAll(p.dir); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the survivor has no leader and refuses writes", func() error {
		form := "grant_type=client_credentials&client_id=" + id + "&client_secret=" + secret
		code, body, _, err := do(http.MethodPost, survivor.url()+"/token", "application/x-www-form-urlencoded", form, nil)
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable {
			return fmt.Errorf("token: %d %s", code, body)
		}
		s, err := getStatus(survivor)
		if err != nil {
			return err
		}
		if s.LeaderID != "" || s.State == "Leader" {
			return fmt.Errorf("state %s, leader %q", s.State, s.LeaderID)
		}
		return nil
	})
	survivor.terminate(t)

	// A node id that is not in the configuration is refused.
	out.Reset()
	err = run(withTimeout(t), []string{"recover", "--data-dir", survivor.dir, "--node-id", "node9", "--peers", "node9=" + survivor.raftAddr}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), `"node9" is not in this data dir's configuration`) {
		t.Fatalf("recover with a wrong node id: %v", err)
	}
	// A dry run shows the three-server configuration and writes nothing.
	out.Reset()
	if err := run(withTimeout(t), recoverArgs("--dry-run"), &out, &out); err != nil {
		t.Fatalf("dry run: %v\n%s", err, out.String())
	}
	dry := parseRecovery(t, out.String())
	for _, p := range c.procs {
		if !strings.Contains(dry.oldCfg, p.id) {
			t.Fatalf("dry run: old configuration lacks %s:\n%s", p.id, out.String())
		}
	}
	if !strings.Contains(out.String(), "dry run: nothing written") {
		t.Fatalf("dry run does not say so:\n%s", out.String())
	}

	// The real thing, with the real binary.
	cmd := exec.CommandContext(withTimeout(t), tokendBin, recoverArgs()...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tokend recover: %v\n%s", err, b)
	}
	t.Logf("tokend recover:\n%s", b)
	rec := parseRecovery(t, string(b))
	if rec.oldCfg != dry.oldCfg {
		t.Fatalf("the dry run changed the configuration:\n%s\nthen\n%s", dry.oldCfg, rec.oldCfg)
	}
	if !strings.Contains(rec.newCfg, survivor.id) || !strings.Contains(rec.newCfg, survivor.raftAddr) ||
		strings.Contains(rec.newCfg, lost[0].id) || strings.Contains(rec.newCfg, lost[1].id) {
		t.Fatalf("new configuration is not just %s:\n%s", survivor.id, b)
	}
	if rec.lastIndex < before.AppliedIndex || rec.lastIndex != dry.lastIndex {
		t.Fatalf("recovery kept up to index %d; the survivor had applied %d, the dry run saw %d:\n%s",
			rec.lastIndex, before.AppliedIndex, dry.lastIndex, b)
	}
	if !strings.Contains(string(b), "recovered: snapshot ") {
		t.Fatalf("tokend recover does not say what it wrote:\n%s", b)
	}
	// Persisted: the configuration is now the new one, the log folded
	// into a snapshot at the same last index; recovering again keeps it
	// so. (--peers with the bare id keeps the node's address from its
	// configuration.)
	out.Reset()
	err = run(withTimeout(t), []string{"recover", "--data-dir", survivor.dir, "--node-id", survivor.id, "--peers", survivor.id}, &out, &out)
	if err != nil {
		t.Fatalf("recovering again: %v\n%s", err, out.String())
	}
	after := parseRecovery(t, out.String())
	if strings.Contains(after.oldCfg, lost[0].id) || !strings.Contains(after.oldCfg, survivor.id) ||
		!strings.Contains(after.newCfg, survivor.raftAddr) || after.snapIndex != rec.lastIndex || after.logEntries != 0 {
		t.Fatalf("after recovery the data dir holds:\n%s", out.String())
	}

	// Restarted alone, with its usual flags but a new internal address
	// (as a Kubernetes pod gets a new IP): it leads, fixes its own entry,
	// everything it had is there, and it takes writes.
	survivor.raftAddr = loopaddr.ForTest(t)
	survivor.start(t)
	eventually(t, "the survivor leads alone", func() error {
		s, err := getStatus(survivor)
		if err != nil {
			return err
		}
		if s.State != "Leader" || s.LeaderID != survivor.id {
			return fmt.Errorf("state %s, leader %q", s.State, s.LeaderID)
		}
		return nil
	})
	c.waitReady(survivor)
	for _, tok := range tokens {
		if code := validateEventually(t, survivor, tok); code != http.StatusOK {
			t.Fatalf("a token acknowledged before the loss answers %d after recovery", code)
		}
	}
	var soloTok string
	eventually(t, "write on the recovered survivor", func() (err error) { soloTok, _, err = issue(survivor, id, secret); return err })
	tokens = append(tokens, soloTok)

	// Two fresh nodes (new ids, empty data dirs, the usual flags of a
	// cluster member) join through the survivor.
	live := []*proc{survivor}
	for _, name := range []string{"node4", "node5"} {
		p := c.newProc(name)
		p.args = []string{"--bootstrap-expect", "3", "--cluster-key", c.key, "--admin-token", c.admin,
			"--join", survivor.gossipAddr, "--issuer", c.issuer}
		c.procs = append(c.procs, p)
		live = append(live, p)
		p.start(t)
	}
	want := []string{survivor.id, "node4", "node5"}
	eventually(t, "three alive voters: the survivor, at its new address, and the two new nodes", func() error {
		for _, p := range live {
			s, err := getStatus(p)
			if err != nil {
				return err
			}
			var voters []string
			for _, m := range s.Members {
				if m.Suffrage == "Voter" && m.Status == "alive" {
					voters = append(voters, m.NodeID)
				}
				// The address in the Raft configuration, as a new node
				// has it (a node reports its own from its flags).
				if p != survivor && m.NodeID == survivor.id && m.RaftAddr != survivor.raftAddr {
					return fmt.Errorf("%s has %s at %s, not %s", p.id, m.NodeID, m.RaftAddr, survivor.raftAddr)
				}
			}
			slices.Sort(voters)
			if !slices.Equal(voters, want) || s.LeaderID == "" {
				return fmt.Errorf("%s sees alive voters %v, leader %q: %+v", p.id, voters, s.LeaderID, s.Members)
			}
		}
		return nil
	})
	for _, p := range live {
		c.waitReady(p)
	}
	var newTok string
	eventually(t, "write through a new node", func() (err error) { newTok, _, err = issue(live[1], id, secret); return err })
	tokens = append(tokens, newTok)
	for _, p := range live {
		for _, tok := range tokens {
			if code := validateEventually(t, p, tok); code != http.StatusOK {
				t.Fatalf("%s answers %d for a token acknowledged earlier", p.id, code)
			}
		}
	}
}
