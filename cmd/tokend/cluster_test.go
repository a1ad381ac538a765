package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/internal/loopaddr"
)

// validateEventually validates token on p, retrying while p answers 503
// (no read lease right now is an allowed answer, a stale one is not), and
// returns the first definite status.
func validateEventually(t *testing.T, p *proc, token string) int {
	t.Helper()
	var code int
	eventually(t, "definite answer from "+p.id, func() error {
		var err error
		code, err = validate(p, token)
		if err != nil {
			return err
		}
		if code == http.StatusServiceUnavailable {
			return fmt.Errorf("503")
		}
		return nil
	})
	return code
}

// TestClusterVisibility: a token issued on any node validates on every node
// at once, and a revocation on any node holds on every node at once.
func TestClusterVisibility(t *testing.T) {
	c := newTestCluster(t, 3)
	id, secret := c.createClient(c.procs[0])
	for i, issuer := range c.procs {
		tok, _, err := issue(issuer, id, secret)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range c.procs {
			if code := validateEventually(t, p, tok); code != http.StatusOK {
				t.Fatalf("token issued on %s: %s answered %d, want 200", issuer.id, p.id, code)
			}
		}
		revoker := c.procs[(i+1)%len(c.procs)]
		if _, err := revoke(revoker, id, secret, tok); err != nil {
			t.Fatal(err)
		}
		for _, p := range c.procs {
			if code := validateEventually(t, p, tok); code != http.StatusUnauthorized {
				t.Fatalf("token revoked on %s: %s answered %d, want 401", revoker.id, p.id, code)
			}
		}
	}
}

// TestClusterLeaderKill: SIGKILL the leader under a steady write load; a new
// leader takes over, writes succeed again, every acknowledged write
// survives, and the killed node catches up after a restart.
func TestClusterLeaderKill(t *testing.T) {
	c := newTestCluster(t, 3)
	id, secret := c.createClient(c.procs[0])
	var leader *proc
	eventually(t, "leader", func() (err error) { leader, err = c.leader(); return err })

	var (
		mu       sync.Mutex
		acked    []string
		stopLoad = make(chan struct{})
		wg       sync.WaitGroup
	)
	for w, p := range c.procs {
		wg.Add(1)
		go func(w int, p *proc) {
			defer wg.Done()
			for n := 0; n < 2000; n++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				if !p.running() {
					return
				}
				if tok, _, err := issue(p, id, secret); err == nil {
					mu.Lock()
					acked = append(acked, tok)
					mu.Unlock()
				} else {
					time.Sleep(20 * time.Millisecond) // pace retries against a node without leader
				}
			}
		}(w, p)
	}
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	eventually(t, "load running", func() error {
		if ackedCount() < 20 {
			return fmt.Errorf("%d acked", ackedCount())
		}
		return nil
	})
	leader.kill(t)
	before := ackedCount()

	var survivors []*proc
	for _, p := range c.procs {
		if p != leader {
			survivors = append(survivors, p)
		}
	}
	eventually(t, "new leader", func() error {
		nl, err := c.leader()
		if err == nil && nl == leader {
			return fmt.Errorf("old leader still reported")
		}
		return err
	})
	eventually(t, "writes resume", func() error {
		if ackedCount() < before+20 {
			return fmt.Errorf("%d acked since kill", ackedCount()-before)
		}
		return nil
	})
	close(stopLoad)
	wg.Wait()

	mu.Lock()
	tokens := append([]string(nil), acked...)
	mu.Unlock()
	for _, tok := range tokens {
		for _, p := range survivors {
			if code := validateEventually(t, p, tok); code != http.StatusOK {
				t.Fatalf("acknowledged token lost on %s: %d", p.id, code)
			}
		}
	}

	leader.start(t)
	c.waitReady(leader)
	eventually(t, "restarted node catches up", func() error {
		nl, err := c.leader()
		if err != nil {
			return err
		}
		ls, err := getStatus(nl)
		if err != nil {
			return err
		}
		rs, err := getStatus(leader)
		if err != nil {
			return err
		}
		if rs.AppliedIndex < ls.AppliedIndex {
			return fmt.Errorf("applied %d < leader's %d", rs.AppliedIndex, ls.AppliedIndex)
		}
		return nil
	})
	for _, tok := range tokens {
		if code := validateEventually(t, leader, tok); code != http.StatusOK {
			t.Fatalf("restarted node answers %d for an acknowledged token", code)
		}
	}
}

// TestClusterMajorityLoss: with two of three nodes gone, writes on the
// survivor fail with 503 and Retry-After instead of hanging; with one back,
// writes resume.
func TestClusterMajorityLoss(t *testing.T) {
	c := newTestCluster(t, 3)
	id, secret := c.createClient(c.procs[0])
	survivor := c.procs[0]
	c.procs[1].kill(t)
	c.procs[2].kill(t)

	eventually(t, "survivor refuses writes", func() error {
		form := "grant_type=client_credentials&client_id=" + id + "&client_secret=" + secret
		code, body, hdr, err := do(http.MethodPost, survivor.url()+"/token", "application/x-www-form-urlencoded", form, nil)
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable {
			return fmt.Errorf("status %d %s", code, body)
		}
		if hdr.Get("Retry-After") == "" || !strings.Contains(string(body), `"error"`) {
			return fmt.Errorf("503 without Retry-After or JSON error: %v %s", hdr, body)
		}
		return nil
	})

	c.procs[1].start(t)
	eventually(t, "writes resume with two of three", func() error {
		_, _, err := issue(survivor, id, secret)
		return err
	})
}

// TestClusterJoinAndLeave: a fourth node joins as a voter, then leaves
// gracefully, and the configuration shows both.
func TestClusterJoinAndLeave(t *testing.T) {
	c := newTestCluster(t, 3)
	p4 := c.newProc("node4")
	p4.args = []string{"--cluster-key", c.key, "--admin-token", c.admin, "--join", c.procs[0].gossipAddr, "--issuer", c.issuer}
	c.procs = append(c.procs, p4)
	p4.start(t)

	hasVoter := func(want bool) func() error {
		return func() error {
			s, err := getStatus(c.procs[0])
			if err != nil {
				return err
			}
			found := false
			for _, m := range s.Members {
				if m.NodeID == "node4" && m.Suffrage == "Voter" {
					found = true
				}
			}
			if found != want {
				return fmt.Errorf("node4 voter=%v, want %v: %+v", found, want, s.Members)
			}
			return nil
		}
	}
	eventually(t, "node4 becomes a voter", hasVoter(true))
	c.waitReady(p4)

	var out strings.Builder
	err := run(withTimeout(t), []string{"cluster", "leave", "--addr", p4.url(), "--admin-token", c.admin}, &out, &out)
	if err != nil {
		t.Fatalf("tokend cluster leave: %v\n%s", err, out.String())
	}
	eventually(t, "node4 leaves the configuration", hasVoter(false))
	p4.terminate(t)

	id, secret := c.createClient(c.procs[1])
	if _, _, err := issue(c.procs[2], id, secret); err != nil {
		t.Fatalf("cluster writes after node4 left: %v", err)
	}
}

// TestClusterWrongKey: a node with another cluster key cannot join and says
// why.
func TestClusterWrongKey(t *testing.T) {
	c := newTestCluster(t, 3)
	bad := c.newProc("intruder")
	bad.args = []string{"--cluster-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "--admin-token", c.admin,
		"--join", c.procs[0].gossipAddr, "--issuer", c.issuer}
	c.procs = append(c.procs, bad)
	bad.start(t)

	eventually(t, "intruder reports the failed join", func() error {
		s, err := getStatus(bad)
		if err != nil {
			return err
		}
		if !strings.Contains(tail(bad.out, 200), "cluster key") || !strings.Contains(s.JoinError, "cluster key") {
			return fmt.Errorf("no mention of the cluster key in its log or status yet (join_error %q)", s.JoinError)
		}
		if s.LeaderID != "" {
			return fmt.Errorf("intruder found leader %q", s.LeaderID)
		}
		return nil
	})
	s, err := getStatus(c.procs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range s.Members {
		if m.NodeID == "intruder" {
			t.Fatalf("intruder appears in the cluster: %+v", s.Members)
		}
	}
	if code, _, _, _ := do(http.MethodGet, bad.url()+"/readyz", "", "", nil); code == http.StatusOK {
		t.Fatalf("intruder claims to be ready")
	}
}

// TestClusterBootstrapExpectMismatch: servers that disagree on
// --bootstrap-expect do not bootstrap, and say why.
func TestClusterBootstrapExpectMismatch(t *testing.T) {
	c := &testCluster{t: t, key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", admin: testAdminToken}
	a, b := c.newProc("node1"), c.newProc("node2")
	c.issuer = a.url()
	a.args = []string{"--bootstrap-expect", "2", "--cluster-key", c.key, "--admin-token", c.admin, "--join", b.gossipAddr, "--issuer", c.issuer}
	b.args = []string{"--bootstrap-expect", "3", "--cluster-key", c.key, "--admin-token", c.admin, "--join", a.gossipAddr, "--issuer", c.issuer}
	c.procs = []*proc{a, b}
	t.Cleanup(func() {
		for _, p := range c.procs {
			p.kill(t)
		}
	})
	a.start(t)
	b.start(t)
	eventually(t, "mismatch reported", func() error {
		if !strings.Contains(a.out.String(), "different bootstrap-expect") {
			return fmt.Errorf("node1 has not reported the mismatch yet")
		}
		return nil
	})
	for _, p := range c.procs {
		s, err := getStatus(p)
		if err != nil {
			t.Fatal(err)
		}
		if s.LeaderID != "" || s.State == "Leader" {
			t.Fatalf("%s bootstrapped despite the mismatch: %+v", p.id, s)
		}
	}
}

// TestClusterReplacedAddress: a node that comes back under the same id with
// a new Raft address is updated in the configuration and serves again.
func TestClusterReplacedAddress(t *testing.T) {
	c := newTestCluster(t, 3)
	id, secret := c.createClient(c.procs[0])
	moved := c.procs[2]
	moved.terminate(t)
	moved.raftAddr = loopaddr.ForTest(t)
	moved.start(t)

	eventually(t, "configuration shows the new raft address", func() error {
		var s struct {
			Members []struct {
				NodeID   string `json:"node_id"`
				RaftAddr string `json:"raft_addr"`
				Suffrage string `json:"suffrage"`
			} `json:"members"`
		}
		code, body, _, err := do(http.MethodGet, c.procs[0].url()+"/cluster/status", "", "", adminAuth)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("status %d %v", code, err)
		}
		if err := json.Unmarshal(body, &s); err != nil {
			return err
		}
		for _, m := range s.Members {
			if m.NodeID == moved.id && m.RaftAddr == moved.raftAddr && m.Suffrage == "Voter" {
				return nil
			}
		}
		return fmt.Errorf("members: %+v", s.Members)
	})
	c.waitReady(moved)
	tok, _, err := issue(c.procs[0], id, secret)
	if err != nil {
		t.Fatal(err)
	}
	if code := validateEventually(t, moved, tok); code != http.StatusOK {
		t.Fatalf("moved node answers %d for a new token", code)
	}
}
