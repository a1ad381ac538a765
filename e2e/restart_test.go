package e2e

import (
	"bytes"
	"net/url"
	"path/filepath"
	"testing"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// expectations maps each raw token to whether it should be active.
type expectations struct {
	access  map[string]bool
	refresh map[string]bool
	// grantOf links a refresh token to every token of its grant.
	grantOf map[string]*[]string
}

func newExpectations() *expectations {
	return &expectations{access: map[string]bool{}, refresh: map[string]bool{}, grantOf: map[string]*[]string{}}
}

func (e *expectations) grant(tr tokenResp, live bool) {
	e.access[tr.AccessToken] = live
	if tr.RefreshToken != "" {
		e.refresh[tr.RefreshToken] = live
		e.grantOf[tr.RefreshToken] = &[]string{tr.AccessToken, tr.RefreshToken}
	}
}

// rotated records a refresh: old's refresh token is spent, next joins its
// grant; old's access token stays valid until it expires.
func (e *expectations) rotated(old, next tokenResp) {
	e.refresh[old.RefreshToken] = false
	g := e.grantOf[old.RefreshToken]
	*g = append(*g, next.AccessToken, next.RefreshToken)
	e.access[next.AccessToken], e.refresh[next.RefreshToken] = true, true
	e.grantOf[next.RefreshToken] = g
}

// revokedGrant marks every token of rt's grant inactive.
func (e *expectations) revokedGrant(rt string) {
	for _, tok := range *e.grantOf[rt] {
		if _, ok := e.access[tok]; ok {
			e.access[tok] = false
		} else {
			e.refresh[tok] = false
		}
	}
}

// check asserts every token answers /validate and /introspect as expected.
func (e *expectations) check(t *testing.T, n *node, introspector client, when string) {
	t.Helper()
	bad := 0
	for tok, live := range e.access {
		r := n.validate(t, tok, "")
		if (r.Status == 200) != live || (r.Status != 200 && r.Status != 401) {
			bad++
			t.Errorf("%s: access token (live=%v) validates with %d", when, live, r.Status)
		}
		if n.active(t, introspector, tok) != live {
			bad++
			t.Errorf("%s: access token (live=%v) introspects wrongly", when, live)
		}
	}
	for tok, live := range e.refresh {
		if n.active(t, introspector, tok) != live {
			bad++
			t.Errorf("%s: refresh token (live=%v) introspects wrongly", when, live)
		}
	}
	if bad > 0 {
		t.FailNow()
	}
}

// TestRestart issues, refreshes and revokes tokens, restarts the node on the
// same data dir (first recovering from the log alone, then from a forced
// snapshot that truncated the log plus a tail written after it) and checks
// every token answers exactly as before.
func TestRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// TrailingLogs follows SnapshotThreshold, so a forced snapshot
	// truncates the log.
	n := startNode(t, dir, nodeOpts{SnapshotThreshold: 16, RefreshGrace: -1})
	// svc is a resource server: it introspects the other clients' tokens.
	svc := n.createClient(t, map[string]any{"name": "svc", "introspect": true, "grant_types": []string{"client_credentials"}, "scopes": []string{"read", "write"}})
	web := n.createClient(t, map[string]any{"name": "web", "grant_types": []string{"password", "refresh_token"}, "scopes": []string{"read"}})
	n.createUser(t, "", "alice", "alice-pw")
	n.createUser(t, "acme", "bob", "bob-pw")
	exp := newExpectations()

	refresh := func(rt string) tokenResp {
		return n.issue(t, web, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	var rotated []string // rotated-out refresh tokens, kept for a reuse check
	write := func(k int) []tokenResp {
		var grants []tokenResp
		for i := 0; i < k; i++ {
			cc := n.clientCreds(t, svc)
			pw := n.passwordGrant(t, web, "acme", "bob", "bob-pw")
			switch i % 4 {
			case 0:
				n.revoke(t, svc, cc.AccessToken)
				n.revoke(t, web, pw.AccessToken)
				exp.grant(cc, false)
				exp.grant(pw, false)
			case 1:
				n.revoke(t, web, pw.RefreshToken)
				exp.grant(cc, true)
				exp.grant(pw, false)
			case 2:
				next := refresh(pw.RefreshToken)
				exp.grant(pw, true)
				exp.rotated(pw, next)
				rotated = append(rotated, pw.RefreshToken)
				exp.grant(cc, true)
				grants = append(grants, next)
			default:
				exp.grant(cc, true)
				exp.grant(pw, true)
				grants = append(grants, pw)
			}
		}
		return grants
	}
	clientList := func() []byte {
		r := n.admin(t, "GET", "/admin/clients", nil)
		if r.Status != 200 {
			t.Fatalf("list clients: %d", r.Status)
		}
		return r.Body
	}

	grants := write(8)
	exp.check(t, n, svc, "before restart")
	clients := clientList()

	n = n.restart()
	exp.check(t, n, svc, "after restart from the log")
	if !bytes.Equal(clientList(), clients) {
		t.Errorf("client list changed across restart:\n%s\n%s", clients, clientList())
	}
	// Credentials survive: client secrets and user passwords still work.
	exp.grant(n.clientCreds(t, svc), true)
	exp.grant(n.passwordGrant(t, web, "", "alice", "alice-pw"), true)
	// A grant from before the restart still refreshes.
	next := refresh(grants[0].RefreshToken)
	exp.rotated(grants[0], next)

	more := write(8)
	if err := n.Raft.Snapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	// A tail after the snapshot: new grants and a revocation of a grant
	// that is in the snapshot.
	tail := write(4)
	n.revoke(t, web, more[0].AccessToken)
	exp.revokedGrant(more[0].RefreshToken)
	exp.check(t, n, svc, "before second restart")
	clients = clientList()

	n.stop()
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		t.Fatalf("open raft.db: %v", err)
	}
	first, err := store.FirstIndex()
	last, _ := store.LastIndex()
	store.Close()
	if err != nil || first <= 1 {
		t.Fatalf("log not truncated by the snapshot: first index %d (last %d), %v", first, last, err)
	}
	snaps, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
	if len(snaps) == 0 {
		t.Fatal("no snapshot on disk")
	}

	n = startNode(t, dir, n.Opts)
	exp.check(t, n, svc, "after restart from snapshot + tail")
	if !bytes.Equal(clientList(), clients) {
		t.Errorf("client list changed across restart")
	}
	// Refresh state survived too: a tail grant refreshes; a rotated-out
	// refresh token is still reuse and revokes its grant.
	next = refresh(tail[0].RefreshToken)
	exp.rotated(tail[0], next)
	r := n.postForm(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rotated[0]}}, []string{web.ID, web.Secret})
	if r.Status != 400 || r.errCode(t) != "invalid_grant" {
		t.Fatalf("reuse after restart: %d %s", r.Status, r.Body)
	}
	exp.revokedGrant(rotated[0])
	exp.check(t, n, svc, "after reuse revoked one grant")
}
