package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/tokend/tokend/fsm"
)

// buildDiskState leaves a stopped single node's data directory behind: a
// client and 85 tokens, two snapshots (after 40 and 80 tokens) and a tail
// of five. threshold is SnapshotThreshold and so TrailingLogs: 8 compacts
// the log past the older snapshot, 10000 keeps the whole log.
func buildDiskState(t *testing.T, threshold uint64) (Config, []string) {
	t.Helper()
	cfg := newTestCfg(t, "n1", t.TempDir(), nil)
	cfg.SnapshotThreshold = threshold
	n := startTestNode(t, cfg)
	if err := n.WaitReady(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	mustApply(t, n.Node, putClientCmd("c1"))
	var toks []string
	write := func(k int) {
		for range k {
			tok := token()
			mustApply(t, n.Node, issueCmd("c1", tok))
			toks = append(toks, tok)
		}
	}
	write(40)
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	write(40)
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	write(5)
	n.stop(t)
	return cfg, toks
}

// snapshotDirs returns the snapshot directories, newest first.
func snapshotDirs(t *testing.T, cfg Config) []string {
	t.Helper()
	dir := filepath.Join(cfg.DataDir, "snapshots")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := snapshotIndexFromName(filepath.Base(out[i]))
		b, _ := snapshotIndexFromName(filepath.Base(out[j]))
		return a > b
	})
	if len(out) != 2 {
		t.Fatalf("want 2 snapshots, have %v", out)
	}
	return out
}

// restart starts a node on cfg's data directory with an empty FSM and
// returns New's error; a node that starts is returned ready.
func restart(t *testing.T, cfg Config) (*testNode, error) {
	t.Helper()
	cfg.FSM = fsm.New()
	n, err := New(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	tn := &testNode{Node: n, cfg: cfg}
	t.Cleanup(func() { tn.stop(t) })
	if err := tn.WaitReady(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	return tn, nil
}

func wantStartError(t *testing.T, cfg Config, mentions ...string) {
	t.Helper()
	n, err := restart(t, cfg)
	if err == nil {
		t.Fatalf("node started (status %+v); want an error naming %v", n.Status(), mentions)
	}
	for _, m := range mentions {
		if !strings.Contains(err.Error(), m) {
			t.Fatalf("start error does not mention %q:\n%v", m, err)
		}
	}
	t.Logf("start refused: %v", err)
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += int64(len(b))
	}
	b[off] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestStartCorruptSnapshotFallsBackWhenLogCovers(t *testing.T) {
	cfg, toks := buildDiskState(t, 10000)
	flipByte(t, filepath.Join(snapshotDirs(t, cfg)[0], "state.bin"), -10)
	n, err := restart(t, cfg)
	if err != nil {
		t.Fatalf("the older snapshot and the whole log hold the state, but: %v", err)
	}
	for _, tok := range toks {
		if !valid(n.cfg.FSM, tok) {
			t.Fatal("acknowledged token missing after falling back to the older snapshot")
		}
	}
}

func TestStartCorruptSnapshotCompactedLog(t *testing.T) {
	cfg, _ := buildDiskState(t, 8)
	state := filepath.Join(snapshotDirs(t, cfg)[0], "state.bin")
	flipByte(t, state, -10)
	wantStartError(t, cfg, state, "CRC mismatch")
}

func TestStartCorruptSnapshotMeta(t *testing.T) {
	cfg, _ := buildDiskState(t, 8)
	meta := filepath.Join(snapshotDirs(t, cfg)[0], "meta.json")
	if err := os.WriteFile(meta, []byte(`{"Version":1,"ID":`), 0o600); err != nil {
		t.Fatal(err)
	}
	wantStartError(t, cfg, meta)
}

func TestStartAllSnapshotsCorrupt(t *testing.T) {
	cfg, _ := buildDiskState(t, 8)
	dirs := snapshotDirs(t, cfg)
	for _, d := range dirs {
		if err := os.Truncate(filepath.Join(d, "state.bin"), 7); err != nil {
			t.Fatal(err)
		}
	}
	wantStartError(t, cfg, filepath.Join(dirs[0], "state.bin"))
}

// TestStartSnapshotRestoreFails: a state.bin whose checksum matches but
// which the state machine cannot read.
func TestStartSnapshotRestoreFails(t *testing.T) {
	cfg, _ := buildDiskState(t, 8)
	dir := snapshotDirs(t, cfg)[0]
	garbage := bytes.Repeat([]byte("not a tokend snapshot "), 100)
	if err := os.WriteFile(filepath.Join(dir, "state.bin"), garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	metaPath := filepath.Join(dir, "meta.json")
	b, err := os.ReadFile(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	h.Write(garbage)
	meta["CRC"], meta["Size"] = h.Sum(nil), len(garbage)
	if b, err = json.Marshal(meta); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(metaPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	wantStartError(t, cfg, filepath.Join(dir, "state.bin"), "restoring the state machine")
}

func TestStartSnapshotsMissing(t *testing.T) {
	cfg, _ := buildDiskState(t, 8)
	if err := os.RemoveAll(filepath.Join(cfg.DataDir, "snapshots")); err != nil {
		t.Fatal(err)
	}
	wantStartError(t, cfg, "no snapshot to start from")
}

func raftDBPath(cfg Config) string { return filepath.Join(cfg.DataDir, "raft.db") }

func TestStartRaftDBTruncated(t *testing.T) {
	cfg, _ := buildDiskState(t, 10000)
	if err := os.Truncate(raftDBPath(cfg), 3*4096); err != nil {
		t.Fatal(err)
	}
	wantStartError(t, cfg, raftDBPath(cfg))
}

func TestStartRaftDBEmpty(t *testing.T) {
	cfg, _ := buildDiskState(t, 10000)
	if err := os.Truncate(raftDBPath(cfg), 0); err != nil {
		t.Fatal(err)
	}
	wantStartError(t, cfg, raftDBPath(cfg), "empty")
}

func TestStartRaftDBGarbage(t *testing.T) {
	cfg, _ := buildDiskState(t, 10000)
	overwrite(t, raftDBPath(cfg), 0)
	wantStartError(t, cfg, raftDBPath(cfg))
}

// TestStartRaftDBCorruptPages keeps bolt's meta pages and overwrites the
// rest: bolt has no checksums there, so only reading it all finds this.
func TestStartRaftDBCorruptPages(t *testing.T) {
	cfg, _ := buildDiskState(t, 10000)
	overwrite(t, raftDBPath(cfg), 2*4096)
	wantStartError(t, cfg, raftDBPath(cfg))
}

// overwrite replaces path's bytes from off on with random ones.
func overwrite(t *testing.T, path string, off int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rand.Read(b[off:]); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStartRaftDBMissingEntry: a log entry after the newest snapshot is
// gone; replaying would stop at the hole.
func TestStartRaftDBMissingEntry(t *testing.T) {
	cfg, _ := buildDiskState(t, 10000)
	store, err := raftboltdb.New(raftboltdb.Options{Path: raftDBPath(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	last, err := store.LastIndex()
	if err == nil {
		err = store.DeleteRange(last-2, last-2)
	}
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	wantStartError(t, cfg, fmt.Sprintf("the log has no entry %d", last-2))
}

// tokend recover opens raft.db with the same checks as a start-up: a
// truncated file is refused with its name, and a running node (holding
// the file's lock) is still told apart as ErrNodeRunning.
func TestRecoverChecksRaftDB(t *testing.T) {
	cfg, _ := buildDiskState(t, 10000)
	rc := RecoverConfig{DataDir: cfg.DataDir, NodeID: "n1", Servers: []RaftServer{{ID: "n1"}}, DryRun: true}
	if _, err := Recover(ctxT(t, 30*time.Second), rc); err != nil {
		t.Fatalf("dry run on a healthy data dir: %v", err)
	}

	lock, err := raftboltdb.New(raftboltdb.Options{Path: raftDBPath(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	rc.LockTimeout = 200 * time.Millisecond
	_, err = Recover(ctxT(t, 30*time.Second), rc)
	lock.Close()
	if !errors.Is(err, ErrNodeRunning) {
		t.Fatalf("recover while raft.db is locked: %v, want ErrNodeRunning", err)
	}

	if err := os.Truncate(raftDBPath(cfg), 3*4096); err != nil {
		t.Fatal(err)
	}
	_, err = Recover(ctxT(t, 30*time.Second), rc)
	if err == nil || !strings.Contains(err.Error(), raftDBPath(cfg)) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("recover on a truncated raft.db: %v, want an error naming it as truncated", err)
	}
}
