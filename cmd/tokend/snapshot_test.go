package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/fsm"
)

// snapshotCLI runs tokend snapshot ARGS in-process against p and returns
// what it printed; it fails the test unless the command's success is ok.
func snapshotCLI(t *testing.T, p *proc, ok bool, args ...string) string {
	t.Helper()
	var out strings.Builder
	args = append([]string{"snapshot"}, args...)
	if args[1] != "inspect" {
		args = append(args, "--addr", p.url(), "--admin-token", testAdminToken)
	}
	err := run(withTimeout(t), args, &out, &out)
	if (err == nil) != ok {
		t.Fatalf("tokend %s: error %v, want success %v\n%s", strings.Join(args, " "), err, ok, out.String())
	}
	if err != nil {
		return out.String() + err.Error()
	}
	return out.String()
}

func readBackupT(t *testing.T, file string) *cluster.Backup {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := cluster.ReadBackup(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// inBackup reports whether tok is valid in the backup's state (now).
func inBackup(b *cluster.Backup, tok string) bool {
	_, ok := b.State.Lookup(fsm.HashOf(tok), time.Now().UnixNano())
	return ok
}

func createUser(t *testing.T, p *proc, username, password string) {
	t.Helper()
	eventually(t, "create user", func() error {
		code, body, _, err := do(http.MethodPost, p.url()+"/admin/users", "application/json",
			fmt.Sprintf(`{"tenant":"default","username":%q,"password":%q}`, username, password), adminAuth)
		if err == nil && code != http.StatusCreated {
			err = fmt.Errorf("status %d: %s", code, body)
		}
		return err
	})
}

// adminList returns the sorted ids (clients) or tenant/username (users)
// that p lists, retrying while it is unready.
func adminList(t *testing.T, p *proc, what string) []string {
	t.Helper()
	var out []string
	eventually(t, "list "+what+" on "+p.id, func() error {
		code, body, _, err := do(http.MethodGet, p.url()+"/admin/"+what, "", "", adminAuth)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("status %d: %s", code, body)
		}
		var items []struct {
			ClientID string `json:"client_id"`
			Tenant   string `json:"tenant"`
			Username string `json:"username"`
		}
		if err := json.Unmarshal(body, &items); err != nil {
			return err
		}
		out = out[:0]
		for _, it := range items {
			if it.ClientID != "" {
				out = append(out, it.ClientID)
			} else {
				out = append(out, it.Tenant+"/"+it.Username)
			}
		}
		slices.Sort(out)
		return nil
	})
	return out
}

// wantValid checks tok on every node: 200 if want, else 401 (503, not
// ready now, is retried; a stale answer is not).
func (c *testCluster) wantValid(tok string, want bool, what string) {
	c.t.Helper()
	code := http.StatusUnauthorized
	if want {
		code = http.StatusOK
	}
	for _, p := range c.procs {
		if got := validateEventually(c.t, p, tok); got != code {
			c.t.Fatalf("%s: %s answered %d, want %d", what, p.id, got, code)
		}
	}
}

func noSecrets(t *testing.T, what, out string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Fatalf("%s output contains a secret (%.12s…)", what, s)
		}
	}
}

// TestSnapshotConsistentUnderLoad: a backup saved from a follower while
// every node issues tokens holds every token acknowledged before the save
// began and none requested after it ended; after revocations, new tokens
// and new clients, restoring it through another follower makes every node
// answer from it at once: its tokens valid (those revoked since, again),
// later ones not, and its clients and users exactly.
func TestSnapshotConsistentUnderLoad(t *testing.T) {
	c := newTestCluster(t, 3)
	id, secret := c.createClient(c.procs[0])
	const password = "snapshot-test-password-1"
	createUser(t, c.procs[1], "alice", password)
	var leader *proc
	eventually(t, "leader", func() (err error) { leader, err = c.leader(); return err })
	var followers []*proc
	for _, p := range c.procs {
		if p != leader {
			followers = append(followers, p)
		}
	}

	var revokedBefore []string
	for range 3 {
		tok, _, err := issue(c.procs[2], id, secret)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := revoke(c.procs[0], id, secret, tok); err != nil {
			t.Fatal(err)
		}
		revokedBefore = append(revokedBefore, tok)
	}

	type issued struct {
		tok              string
		started, ackedAt time.Time
	}
	var (
		mu   sync.Mutex
		all  []issued
		stop = make(chan struct{})
		wg   sync.WaitGroup
	)
	for _, p := range c.procs {
		wg.Add(1)
		go func(p *proc) {
			defer wg.Done()
			for n := 0; n < 150; n++ {
				select {
				case <-stop:
					return
				default:
				}
				started := time.Now()
				tok, _, err := issue(p, id, secret)
				if err != nil {
					time.Sleep(20 * time.Millisecond) // pace retries against an unready node
					continue
				}
				mu.Lock()
				all = append(all, issued{tok, started, time.Now()})
				mu.Unlock()
			}
		}(p)
	}
	count := func(cond func(issued) bool) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, i := range all {
			if cond(i) {
				n++
			}
		}
		return n
	}
	eventually(t, "load before the save", func() error {
		if n := count(func(issued) bool { return true }); n < 30 {
			return fmt.Errorf("%d tokens", n)
		}
		return nil
	})

	file := filepath.Join(t.TempDir(), "backup.tkd")
	saveStart := time.Now()
	saveOut := snapshotCLI(t, followers[0], true, "save", file)
	saveEnd := time.Now()
	eventually(t, "load after the save", func() error {
		if n := count(func(i issued) bool { return i.started.After(saveEnd) }); n < 20 {
			return fmt.Errorf("%d tokens", n)
		}
		return nil
	})
	close(stop)
	wg.Wait()

	b := readBackupT(t, file)
	if b.Header.NodeID != followers[0].id || b.Header.ClusterID == "" || b.ImageIndex > b.Header.Index || b.Header.Term == 0 {
		t.Fatalf("header %+v, image index %d", b.Header, b.ImageIndex)
	}
	var inSnap, notInSnap []string
	for _, i := range all {
		switch in := inBackup(b, i.tok); {
		case i.ackedAt.Before(saveStart) && !in:
			t.Fatalf("a token acknowledged before the save began is not in the backup (index %d)", b.Header.Index)
		case i.started.After(saveEnd) && in:
			t.Fatalf("a token requested after the save ended is in the backup (index %d)", b.Header.Index)
		case in:
			inSnap = append(inSnap, i.tok)
		default:
			notInSnap = append(notInSnap, i.tok)
		}
	}
	for _, tok := range revokedBefore {
		if inBackup(b, tok) {
			t.Fatal("a token revoked before the save is valid in the backup")
		}
	}
	t.Logf("backup at index %d: %d of %d tokens issued under load (%d acknowledged before the save, %d requested after it)",
		b.Header.Index, len(inSnap), len(all), count(func(i issued) bool { return i.ackedAt.Before(saveStart) }),
		count(func(i issued) bool { return i.started.After(saveEnd) }))

	var secrets []string
	for _, i := range all {
		secrets = append(secrets, i.tok)
	}
	secretHash := fsm.HashOf(secret)
	secrets = append(secrets, revokedBefore...)
	secrets = append(secrets, secret, password, hex.EncodeToString(secretHash[:]))
	noSecrets(t, "save", saveOut, secrets)

	inspectOut := snapshotCLI(t, nil, true, "inspect", file)
	noSecrets(t, "inspect", inspectOut, secrets)
	var view struct {
		Checksum string `json:"checksum"`
		NodeID   string `json:"node_id"`
		Index    uint64 `json:"index"`
		fsm.Stats
	}
	if err := json.Unmarshal([]byte(inspectOut), &view); err != nil {
		t.Fatalf("inspect: %v\n%s", err, inspectOut)
	}
	// Every token of the cluster is a client_credentials access token of
	// this test, one grant each.
	n := len(inSnap)
	if view.Checksum != "ok" || view.NodeID != followers[0].id || view.Index != b.Header.Index || view.Clients != 1 ||
		view.Users != 1 || view.Grants != n || view.Tokens != n || view.LiveAccess != n || view.LiveRefresh != 0 {
		t.Fatalf("inspect says %+v; the backup holds %d of the test's tokens\n%s", view, n, inspectOut)
	}

	// Change everything the backup holds.
	revokedAfter := inSnap[:5]
	for i, tok := range revokedAfter {
		if _, err := revoke(c.procs[i%3], id, secret, tok); err != nil {
			t.Fatal(err)
		}
	}
	for _, tok := range revokedAfter {
		c.wantValid(tok, false, "revoked after the save")
	}
	later, _, err := issue(leader, id, secret)
	if err != nil {
		t.Fatal(err)
	}
	notInSnap = append(notInSnap, later)
	c.wantValid(later, true, "issued after the save")
	id2, _ := c.createClient(c.procs[1])
	createUser(t, c.procs[2], "bob", "another-password-2")

	restoreOut := snapshotCLI(t, followers[1], true, "restore", file)
	noSecrets(t, "restore", restoreOut, secrets)
	var res struct {
		Restored      bool   `json:"restored"`
		Forced        bool   `json:"forced"`
		SnapshotIndex uint64 `json:"snapshot_index"`
	}
	if err := json.Unmarshal([]byte(restoreOut), &res); err != nil || !res.Restored || res.Forced || res.SnapshotIndex != b.Header.Index {
		t.Fatalf("restore said %s (%v)", restoreOut, err)
	}
	for _, tok := range inSnap {
		c.wantValid(tok, true, "a token of the backup, after restore")
	}
	for _, tok := range notInSnap {
		c.wantValid(tok, false, "a token not in the backup, after restore")
	}
	for _, tok := range revokedBefore {
		c.wantValid(tok, false, "revoked before the save, after restore")
	}
	for _, p := range c.procs {
		if got := adminList(t, p, "clients"); !slices.Equal(got, []string{id}) {
			t.Fatalf("clients on %s after restore: %v, want only %s (not %s)", p.id, got, id, id2)
		}
		if got := adminList(t, p, "users"); !slices.Equal(got, []string{"default/alice"}) {
			t.Fatalf("users on %s after restore: %v", p.id, got)
		}
	}
	// And the cluster goes on: a write on every node is visible everywhere.
	for _, p := range c.procs {
		var tok string
		eventually(t, "issue after restore on "+p.id, func() (err error) { tok, _, err = issue(p, id, secret); return err })
		c.wantValid(tok, true, "issued on "+p.id+" after restore")
	}
}

// TestSnapshotRestoreRefusals: a corrupted or truncated file is refused,
// by the CLI and by the node, and changes nothing; another cluster's
// backup is refused without --force and restored with it; and the cluster
// keeps its own identity, so its own backup restores afterwards unforced.
func TestSnapshotRestoreRefusals(t *testing.T) {
	c := newTestCluster(t, 3)
	other := newTestCluster(t, 1)
	dir := t.TempDir()

	id, secret := c.createClient(c.procs[0])
	t1, _, err := issue(c.procs[1], id, secret)
	if err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(dir, "mine.tkd")
	snapshotCLI(t, c.procs[0], true, "save", mine)
	snapshotCLI(t, c.procs[0], false, "save", mine) // never overwrites
	t3, _, err := issue(c.procs[2], id, secret)
	if err != nil {
		t.Fatal(err)
	}

	oid, osecret := other.createClient(other.procs[0])
	t2, _, err := issue(other.procs[0], oid, osecret)
	if err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(dir, "theirs.tkd")
	snapshotCLI(t, other.procs[0], true, "save", theirs)
	if a, b := readBackupT(t, mine).Header.ClusterID, readBackupT(t, theirs).Header.ClusterID; a == b {
		t.Fatalf("two clusters with different keys share the id %s", a)
	}

	unchanged := func(what string) {
		t.Helper()
		c.wantValid(t1, true, what+": t1")
		c.wantValid(t3, true, what+": t3")
		c.wantValid(t2, false, what+": the other cluster's token")
		for _, p := range c.procs {
			if got := adminList(t, p, "clients"); !slices.Equal(got, []string{id}) {
				t.Fatalf("%s: clients on %s: %v", what, p.id, got)
			}
		}
	}

	good, err := os.ReadFile(mine)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := slices.Clone(good)
	corrupt[len(corrupt)/2] ^= 0x01
	bad := filepath.Join(dir, "corrupt.tkd")
	if err := os.WriteFile(bad, corrupt, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := snapshotCLI(t, c.procs[1], false, "restore", bad); !strings.Contains(out, "checksum mismatch") {
		t.Fatalf("CLI restore of a corrupted file: %s", out)
	}
	if out := snapshotCLI(t, nil, false, "inspect", bad); !strings.Contains(out, "checksum mismatch") {
		t.Fatalf("inspect of a corrupted file: %s", out)
	}
	octet := map[string]string{"Authorization": "Bearer " + testAdminToken}
	for name, body := range map[string][]byte{"corrupted": corrupt, "truncated": good[:len(good)-10], "empty": nil} {
		code, resp, _, err := do(http.MethodPost, c.procs[1].url()+"/admin/snapshot/restore?force=true", "application/octet-stream", string(body), octet)
		if err != nil || code != http.StatusBadRequest || !strings.Contains(string(resp), "invalid_snapshot") {
			t.Fatalf("upload of a %s file: %d %s %v", name, code, resp, err)
		}
	}
	unchanged("after refused corrupted files")

	out := snapshotCLI(t, c.procs[2], false, "restore", theirs)
	if !strings.Contains(out, "409") || !strings.Contains(out, "cluster_mismatch") || !strings.Contains(out, "--force") {
		t.Fatalf("restore of another cluster's backup without --force: %s", out)
	}
	unchanged("after a refused foreign backup")

	out = snapshotCLI(t, c.procs[2], true, "restore", theirs, "--force")
	if !strings.Contains(out, `"forced": true`) {
		t.Fatalf("forced restore said %s", out)
	}
	c.wantValid(t2, true, "the other cluster's token after a forced restore")
	c.wantValid(t1, false, "t1 after a forced restore")
	c.wantValid(t3, false, "t3 after a forced restore")
	for _, p := range c.procs {
		if got := adminList(t, p, "clients"); !slices.Equal(got, []string{oid}) {
			t.Fatalf("clients on %s after a forced restore: %v, want %s", p.id, got, oid)
		}
	}

	out = snapshotCLI(t, c.procs[0], true, "restore", mine)
	if strings.Contains(out, `"forced": true`) {
		t.Fatalf("the cluster's own backup needed force after a forced restore: %s", out)
	}
	c.wantValid(t1, true, "t1 after restoring the cluster's own backup")
	c.wantValid(t3, false, "t3 after restoring the cluster's own backup")
	c.wantValid(t2, false, "the other cluster's token after restoring the own backup")
}
