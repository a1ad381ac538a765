package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// previousRelease is the release a rolling upgrade starts from: the last
// commit CI landed before this one's wire or state-machine changes. When a
// release changes what nodes say to each other, the release after it moves
// this forward, so every release is tested against the one before it.
const previousRelease = "90773fbf8c8190d1183fa850aa916626b8a27630"

// buildRelease builds cmd/tokend as it was at commit rev from this
// repository's history (git archive, so the work tree is untouched) and
// returns the binary's path. The module cache serves the old go.mod's
// dependencies like the current ones; nothing is downloaded that the
// current build does not also need, except where the old go.sum differs.
func buildRelease(t *testing.T, rev string) string {
	t.Helper()
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): the previous release's source comes from history", err)
	}
	repo := strings.TrimSpace(string(root))
	if err := exec.Command("git", "-C", repo, "cat-file", "-e", rev+"^{commit}").Run(); err != nil {
		// A shallow clone: the test needs history, not a network.
		t.Skipf("commit %s is not in this clone's history (shallow clone?): %v", rev[:7], err)
	}
	src := t.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", repo, rev, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("extracting %s: %v\n%s", rev[:7], err, out)
	}
	bin := filepath.Join(t.TempDir(), "tokend-"+rev[:7])
	build := exec.Command("go", "build", "-o", bin, "./cmd/tokend")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", rev[:7], err, out)
	}
	return bin
}

// TestRollingUpgrade follows docs/OPERATIONS.md's rolling upgrade with
// real processes: a three-node cluster of the previous release takes
// writes, then its nodes are replaced one at a time by this build on the
// same data directories, followers first and the leader last. Between
// steps, with old and new builds in one cluster, every node must take
// writes (client_credentials issues and revocations, forwarded to
// whichever build leads) and answer every earlier acknowledged write the
// same way: issued tokens valid, revoked ones refused.
func TestRollingUpgrade(t *testing.T) {
	old := buildRelease(t, previousRelease)
	c := newTestClusterWith(t, 3, func(p *proc, base []string) []string {
		p.bin = old
		return base
	})
	id, secret := c.createClient(c.procs[0])
	var live, revoked []string
	writes := func(step string) {
		t.Helper()
		for _, p := range c.procs {
			var tok string
			eventually(t, step+": issue through "+p.id, func() (err error) {
				tok, _, err = issue(p, id, secret)
				return err
			})
			live = append(live, tok)
			// Revoke a token issued on another node (maybe by the other
			// build), through this node.
			victim := live[0]
			live = live[1:]
			eventually(t, step+": revoke through "+p.id, func() error {
				_, err := revoke(p, id, secret, victim)
				return err
			})
			revoked = append(revoked, victim)
		}
		for _, p := range c.procs {
			for i, tok := range live {
				if code := definite(t, p, tok); code != http.StatusOK {
					t.Fatalf("%s: live token %d on %s (%s): %d", step, i, p.id, build(p, old), code)
				}
			}
			for i, tok := range revoked {
				if code := definite(t, p, tok); code != http.StatusUnauthorized {
					t.Fatalf("%s: revoked token %d on %s (%s): %d", step, i, p.id, build(p, old), code)
				}
			}
		}
	}
	for range 3 {
		tok, _, err := issue(c.procs[0], id, secret)
		if err != nil {
			t.Fatal(err)
		}
		live = append(live, tok)
	}
	writes("all on the previous release")

	for step := 1; step <= len(c.procs); step++ {
		p := nextToUpgrade(t, c, old)
		p.terminate(t)
		p.bin = ""
		p.start(t)
		c.waitReady(p)
		c.healthy(fmt.Sprintf("step %d", step), id, secret)
		writes(fmt.Sprintf("step %d (%s upgraded)", step, p.id))
	}
	for _, p := range c.procs {
		if p.bin != "" {
			t.Fatalf("%s still runs the previous release", p.id)
		}
	}
}

// nextToUpgrade picks a node still on the old build: a follower while
// there is one, the leader last, as docs/OPERATIONS.md prescribes.
func nextToUpgrade(t *testing.T, c *testCluster, old string) *proc {
	t.Helper()
	var leader *proc
	eventually(t, "a leader", func() (err error) {
		leader, err = c.leader()
		return err
	})
	for _, p := range c.procs {
		if p.bin == old && p != leader {
			return p
		}
	}
	if leader.bin != old {
		t.Fatal("no node left on the previous release")
	}
	return leader
}

func build(p *proc, old string) string {
	if p.bin == old {
		return "previous release"
	}
	return "this build"
}

// definite polls p's /validate for tok until it gives an answer about the
// token (200 or 401) rather than "not now" (503 while a node has no read
// lease, or a connection error), and returns it.
func definite(t *testing.T, p *proc, tok string) int {
	t.Helper()
	var code int
	eventually(t, "an answer from "+p.id, func() (err error) {
		code, err = validate(p, tok)
		if err == nil && code != http.StatusOK && code != http.StatusUnauthorized {
			err = fmt.Errorf("status %d", code)
		}
		return err
	})
	return code
}
