package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokend/tokend/internal/loopaddr"
)

// upgradeFixture is what testdata/upgrade-10974e3/fixture.json records
// about the state the old build wrote.
type upgradeFixture struct {
	ClientID       string `json:"client_id"`
	ClientSecret   string `json:"client_secret"`
	Tenant         string `json:"tenant"`
	Username       string `json:"username"`
	Password       string `json:"password"`
	CCAccess       string `json:"cc_access_token"`
	PasswordAccess string `json:"password_access_token"`
	Refresh        string `json:"refresh_token"`
	Revoked        string `json:"revoked_access_token"`
	TailAccess     string `json:"tail_access_token"`
}

// TestUpgradeDataDir: the current build starts on a data directory the
// previous release wrote (its Raft log, stable store and a snapshot in the
// old encodings; testdata/upgrade-10974e3) and answers exactly as the old
// node did: live tokens validate, the revoked one does not, the client
// secret, the user's password and the refresh token work, and the state
// survives a restart that writes a snapshot in the current format. This
// is the stop-everything upgrade docs/OPERATIONS.md prescribes across the
// internal-port change.
func TestUpgradeDataDir(t *testing.T) {
	src := filepath.Join("testdata", "upgrade-10974e3")
	raw, err := os.ReadFile(filepath.Join(src, "fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx upgradeFixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(src, "data"))); err != nil {
		t.Fatal(err)
	}
	p := &proc{id: "old1", dir: dir, httpAddr: loopaddr.ForTest(t), raftAddr: loopaddr.ForTest(t), gossipAddr: loopaddr.ForTest(t),
		args: []string{"--admin-token", testAdminToken, "--snapshot-threshold", "16",
			"--access-token-ttl", "87600h", "--refresh-token-ttl", "87600h"}}
	c := &testCluster{t: t, admin: testAdminToken, procs: []*proc{p}}
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("=== %s output ===\n%s", p.id, tail(p.out, 60))
		}
	})

	check := func(when string) {
		t.Helper()
		for name, tok := range map[string]string{"client-credentials": fx.CCAccess, "password": fx.PasswordAccess, "after the snapshot": fx.TailAccess} {
			if code, err := validate(p, tok); err != nil || code != http.StatusOK {
				t.Fatalf("%s: %s token: %d %v", when, name, code, err)
			}
		}
		if code, err := validate(p, fx.Revoked); err != nil || code != http.StatusUnauthorized {
			t.Fatalf("%s: revoked token: %d %v", when, code, err)
		}
		if _, code, err := issue(p, fx.ClientID, fx.ClientSecret); err != nil {
			t.Fatalf("%s: client secret: %d %v", when, code, err)
		}
		form := url.Values{"grant_type": {"password"}, "username": {fx.Username}, "password": {fx.Password},
			"tenant_id": {fx.Tenant}, "client_id": {fx.ClientID}, "client_secret": {fx.ClientSecret}, "scope": {"read"}}
		if code, body, _, err := do(http.MethodPost, p.url()+"/token", "application/x-www-form-urlencoded", form.Encode(), nil); err != nil || code != http.StatusOK {
			t.Fatalf("%s: password grant: %d %s %v", when, code, body, err)
		}
	}

	p.start(t)
	c.waitReady(p)
	check("on the old data")
	// The refresh token rotates once: it was written by the old build.
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fx.Refresh},
		"client_id": {fx.ClientID}, "client_secret": {fx.ClientSecret}}
	code, body, _, err := do(http.MethodPost, p.url()+"/token", "application/x-www-form-urlencoded", form.Encode(), nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("refresh with the old refresh token: %d %s %v", code, body, err)
	}
	var rotated struct {
		Scope string `json:"scope"`
	}
	if err := json.Unmarshal(body, &rotated); err != nil || rotated.Scope != "read write" {
		t.Fatalf("refresh answer %s (%v): want the grant's scope", body, err)
	}

	// A write, then a snapshot in the new build's own format (a backup
	// makes Raft take one at once), then a restart from that snapshot.
	if _, code, err := issue(p, fx.ClientID, fx.ClientSecret); err != nil {
		t.Fatalf("write: %d %v", code, err)
	}
	snapshotCLI(t, p, true, "save", filepath.Join(t.TempDir(), "backup"))
	entries, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	newSnapshot := false
	for _, e := range entries {
		newSnapshot = newSnapshot || (e.IsDir() && e.Name() != "2-39-1796047303540")
	}
	if !newSnapshot {
		t.Fatalf("no snapshot written by the new build among %v", entries)
	}
	p.terminate(t)
	p.start(t)
	c.waitReady(p)
	check("after a restart from the new snapshot")
}
