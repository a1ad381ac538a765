package main

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestClusterKeyRotation follows docs/SECURITY.md's rolling procedure on a
// three-node cluster that reads its key from files: add the new key as an
// accepted key everywhere, make it primary everywhere, retire the old one,
// restarting one node at a time. Between any two restarts the cluster
// keeps all three voters and serves writes through every node, tokens
// issued before the rotation stay valid, and at the end a node that only
// knows the old key cannot join.
func TestClusterKeyRotation(t *testing.T) {
	oldKey, newKey := randomKey(t), randomKey(t)
	dir := t.TempDir()
	keyFile := func(p *proc) string { return filepath.Join(dir, p.id+".keys") }
	writeKeys := func(p *proc, keys ...string) {
		body := "# cluster keys, primary first\n" + strings.Join(keys, "\n") + "\n"
		if err := os.WriteFile(keyFile(p), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := newTestClusterWith(t, 3, func(p *proc, base []string) []string {
		writeKeys(p, oldKey)
		return fromFile(base, "cluster-key", keyFile(p))
	})
	id, secret := c.createClient(c.procs[0])
	before, _, err := issue(c.procs[1], id, secret)
	if err != nil {
		t.Fatal(err)
	}

	healthy := func(when string) { c.healthy(when, id, secret, before) }
	phases := []struct {
		name string
		keys []string
	}{
		{"add the new key", []string{oldKey, newKey}},
		{"make it primary", []string{newKey, oldKey}},
		{"retire the old key", []string{newKey}},
	}
	for _, ph := range phases {
		for _, p := range c.procs {
			writeKeys(p, ph.keys...)
			p.terminate(t)
			p.start(t)
			c.waitReady(p)
			healthy(ph.name + ", " + p.id + " restarted")
		}
	}

	// The old key no longer opens anything: gossip drops its packets and
	// the internal port refuses its certificate.
	stale := c.newProc("stale")
	stale.args = []string{"--cluster-key", oldKey, "--admin-token", c.admin, "--join", c.procs[0].gossipAddr, "--issuer", c.issuer}
	stale.start(t)
	t.Cleanup(func() { stale.kill(t) })
	eventually(t, "the stale node reports its failed join", func() error {
		if s, err := getStatus(stale); err != nil || s.JoinError == "" {
			return errors.New("no join error yet")
		}
		return nil
	})
	healthy("after a stale node tried to join")
}

func randomKey(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// fromFile swaps "--NAME VALUE" in args for "--NAME-file FILE": the same
// secret read from a file.
func fromFile(args []string, name, file string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		if args[i] == "--"+name {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return append(out, "--"+name+"-file", file)
}

// TestAdminTokenRotation follows docs/OPERATIONS.md: each node reads the
// admin token from its own file; write the new token and restart the nodes
// one at a time. A restarted node takes only the new token, one not yet
// restarted only the old, and the cluster serves throughout.
func TestAdminTokenRotation(t *testing.T) {
	dir := t.TempDir()
	tokenFile := func(p *proc) string { return filepath.Join(dir, p.id+".admin-token") }
	writeToken := func(p *proc, tok string) {
		if err := os.WriteFile(tokenFile(p), []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := newTestClusterWith(t, 3, func(p *proc, base []string) []string {
		writeToken(p, testAdminToken)
		return fromFile(base, "admin-token", tokenFile(p))
	})
	id, secret := c.createClient(c.procs[0])
	newToken := "rotated-admin-token-" + randomKey(t)
	admin := func(p *proc, tok string) int {
		code, _, _, err := do(http.MethodGet, p.url()+"/admin/clients", "", "", map[string]string{"Authorization": "Bearer " + tok})
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	for i, p := range c.procs {
		writeToken(p, newToken)
		p.terminate(t)
		p.start(t)
		c.waitReady(p)
		for j, q := range c.procs {
			want, refused := newToken, testAdminToken
			if j > i {
				want, refused = testAdminToken, newToken
			}
			eventually(t, q.id+" takes its current admin token", func() error {
				if code := admin(q, want); code != http.StatusOK {
					return fmt.Errorf("current token: %d", code)
				}
				return nil
			})
			if code := admin(q, refused); code != http.StatusUnauthorized {
				t.Fatalf("%s: the other token got %d, want 401", q.id, code)
			}
		}
		eventually(t, "a write through "+p.id, func() error {
			_, _, err := issue(p, id, secret)
			return err
		})
	}
}

// healthy waits until every node sees three live voters and a leader and
// answers reads, then checks that a write through every node validates on
// every node, as do the tokens in earlier. Right after a restart a node
// may still be waiting for a leader or a read lease (503): that is polled
// through, but an answer that says "invalid" fails at once.
func (c *testCluster) healthy(when, id, secret string, earlier ...string) {
	t := c.t
	t.Helper()
	eventually(t, when+": three voters, all alive, on every node", func() error {
		for _, p := range c.procs {
			s, err := getStatus(p)
			if err != nil {
				return err
			}
			alive := 0
			for _, m := range s.Members {
				if m.Suffrage == "Voter" && m.Status == "alive" {
					alive++
				}
			}
			if alive != 3 || s.LeaderID == "" {
				return fmt.Errorf("%s sees %d live voters, leader %q", p.id, alive, s.LeaderID)
			}
		}
		return nil
	})
	for _, p := range c.procs {
		c.waitReady(p)
	}
	for _, p := range c.procs {
		var tok string
		eventually(t, when+": write through "+p.id, func() error {
			var err error
			tok, _, err = issue(p, id, secret)
			return err
		})
		for _, q := range c.procs {
			for _, tk := range append([]string{tok}, earlier...) {
				eventually(t, when+": token valid on "+q.id, func() error {
					code, err := validate(q, tk)
					if code == http.StatusUnauthorized || code == http.StatusForbidden {
						t.Fatalf("%s: token refused on %s: %d", when, q.id, code)
					}
					if err != nil || code != http.StatusOK {
						return fmt.Errorf("validate: %d %v", code, err)
					}
					return nil
				})
			}
		}
	}
}

// TestOperatorCertificateRotation follows the operator-PKI rotation in
// docs/SECURITY.md on a three-node cluster: add the new CA to every node's
// bundle, switch every node to a certificate from the new CA, drop the old
// CA, restarting one node at a time. The cluster keeps three voters and
// serves between any two restarts, and at the end a certificate from the
// old CA no longer opens the internal port.
func TestOperatorCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	for _, sub := range []string{"old", "new"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	oldCA, newCA := newTestPKI(t, filepath.Join(dir, "old")), newTestPKI(t, filepath.Join(dir, "new"))
	bundle := func(p *proc) string { return filepath.Join(dir, p.id+"-ca.pem") }
	certFile := func(p *proc) string { return filepath.Join(dir, p.id+".pem") }
	keyFile := func(p *proc) string { return filepath.Join(dir, p.id+"-key.pem") }
	install := func(p *proc, from *testPKI, cas ...*testPKI) {
		cert, key := from.issue(t, p.id)
		for src, dst := range map[string]string{cert: certFile(p), key: keyFile(p)} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var pems []byte
		for _, ca := range cas {
			b, err := os.ReadFile(ca.caFile)
			if err != nil {
				t.Fatal(err)
			}
			pems = append(pems, b...)
		}
		if err := os.WriteFile(bundle(p), pems, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := newTestClusterWith(t, 3, func(p *proc, base []string) []string {
		install(p, oldCA, oldCA)
		return append(base, "--internal-tls-cert", certFile(p), "--internal-tls-key", keyFile(p), "--internal-tls-ca", bundle(p))
	})
	id, secret := c.createClient(c.procs[0])
	before, _, err := issue(c.procs[1], id, secret)
	if err != nil {
		t.Fatal(err)
	}
	phases := []struct {
		name string
		from *testPKI
		cas  []*testPKI
	}{
		{"trust the new CA", oldCA, []*testPKI{oldCA, newCA}},
		{"certificates from the new CA", newCA, []*testPKI{oldCA, newCA}},
		{"drop the old CA", newCA, []*testPKI{newCA}},
	}
	for _, ph := range phases {
		for _, p := range c.procs {
			install(p, ph.from, ph.cas...)
			p.terminate(t)
			p.start(t)
			c.waitReady(p)
			c.healthy(ph.name+", "+p.id+" restarted", id, secret, before)
		}
	}
	// A certificate from the old CA is refused at the handshake now.
	cert, key := oldCA.issue(t, "stale")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range c.procs {
		if _, err := internalCall(p.raftAddr, tlsDial(&pair, 'C'), rpcFrame(5, nil)); err == nil {
			t.Errorf("%s: a certificate from the retired CA still opens the internal port", p.id)
		}
	}
}
