package e2e

import (
	"bytes"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokend/tokend/fsm"
)

// TestSecretsNotOnDisk issues, refreshes and revokes tokens, creates and
// rotates client secrets and sets passwords, forces a snapshot, writes a
// log tail, stops the node and reads every file under the data dir: no raw
// token, client secret or password may appear in them, only hashes.
func TestSecretsNotOnDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := startNode(t, dir, nodeOpts{SnapshotThreshold: 16})
	var seen secrets
	var live []string // tokens whose hash must be on disk

	passwords := []string{"alice-password-Zq7", "bob-password-Xw3", "alice-new-password-Kp9"}
	seen.add(passwords...)
	svc := n.createClient(t, map[string]any{"name": "svc", "grant_types": []string{"client_credentials"}})
	web := n.createClient(t, map[string]any{"name": "web", "grant_types": []string{"password", "refresh_token"}})
	seen.add(svc.Secret, web.Secret)
	n.createUser(t, "", "alice", passwords[0])
	n.createUser(t, "acme", "bob", passwords[1])

	round := func() {
		cc := n.clientCreds(t, svc)
		a := n.passwordGrant(t, web, "", "alice", passwords[0])
		b := n.passwordGrant(t, web, "acme", "bob", passwords[1])
		seen.add(cc.AccessToken, a.AccessToken, a.RefreshToken, b.AccessToken, b.RefreshToken)
		r := n.issue(t, web, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.RefreshToken}})
		seen.add(r.AccessToken, r.RefreshToken)
		n.revoke(t, web, b.RefreshToken)
		live = append(live, cc.AccessToken, r.AccessToken, r.RefreshToken)
	}
	for i := 0; i < 5; i++ {
		round()
	}
	// A rotated client secret: both old and new must stay off disk.
	rot := n.admin(t, "POST", "/admin/clients/"+svc.ID+"/secret", nil)
	if rot.Status != 200 {
		t.Fatalf("rotate: %d %s", rot.Status, rot.Body)
	}
	svc.Secret = str(rot.json(t)["client_secret"])
	seen.add(svc.Secret)
	if r := n.admin(t, "PUT", "/admin/users/default/alice", map[string]any{"password": passwords[2]}); r.Status != 200 {
		t.Fatalf("set password: %d", r.Status)
	}
	passwords[0] = passwords[2]
	if err := n.Raft.Snapshot(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		round() // the log tail after the snapshot
	}
	n.stop()

	var files int
	var all [][]byte
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		all = append(all, b)
		for _, s := range seen.list {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains the raw secret %q", p, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 2 || len(seen.list) < 40 {
		t.Fatalf("checked %d files for %d secrets", files, len(seen.list))
	}
	// The check reads the right bytes: live tokens are there as SHA-256 (the
	// log holds the whole hash, a snapshot the index key: its first 16
	// bytes).
	for _, tok := range live {
		h := fsm.HashOf(tok)
		found := false
		for _, b := range all {
			found = found || bytes.Contains(b, h[:16])
		}
		if !found {
			t.Errorf("hash of a live token not found on disk")
		}
	}
}
