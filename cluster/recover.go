package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/tokend/tokend/fsm"
)

// Lost quorum: when a majority of the servers are gone for good, the
// survivors can never elect a leader, because every election needs votes
// from a majority of the configuration they remember. Recover rewrites
// that configuration offline, on a stopped node, with hashicorp/raft's
// RecoverCluster (the mechanism behind Consul's and Nomad's peers.json):
// it restores the newest snapshot into a fresh FSM, applies every log
// entry after it, writes a new snapshot at the last index holding the
// given configuration, and deletes the log. Everything the node had,
// snapshot and log, is in that snapshot, so nothing it held is lost, and
// entries it had but never learnt were committed count as committed from
// now on. The node then starts as the only voter (or with the other
// survivors given), elects itself and adds new members as they join.

// ErrNodeRunning means raft.db is locked: a node (or another recovery) has
// it open.
var ErrNodeRunning = errors.New("raft.db is locked by a running process: stop the node first")

// RaftServer is one server of a Raft configuration.
type RaftServer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	// Suffrage is Voter, Nonvoter or Staging (reports only; Recover makes
	// every server it is given a voter).
	Suffrage string `json:"suffrage,omitempty"`
}

// RecoverConfig says which stopped node to recover and into what.
type RecoverConfig struct {
	// DataDir is the node's --data-dir (it holds raft.db and snapshots/).
	DataDir string
	// NodeID is the --node-id the node ran with; it must be in Servers
	// and in the node's current configuration.
	NodeID string
	// Servers is the new configuration, every one a voter: usually just
	// the survivor. Address is the internal (Raft) address, host:port; the
	// node's own entry may leave it empty to keep its current address.
	Servers []RaftServer
	// DryRun reads and checks everything and writes nothing.
	DryRun bool
	// LockTimeout is how long to wait for raft.db's lock (default 2s).
	LockTimeout time.Duration
	// Logger receives hashicorp/raft's messages (default slog.Default).
	Logger *slog.Logger
}

// RecoverReport says what Recover found and did.
type RecoverReport struct {
	// Old is the configuration the node had, as of log index OldIndex;
	// New the one it has now (or would have, on a dry run).
	Old      []RaftServer `json:"old"`
	OldIndex uint64       `json:"old_index"`
	New      []RaftServer `json:"new"`
	// LastIndex and LastTerm are those of the last entry the node holds
	// (log or snapshot); everything up to it is kept.
	LastIndex uint64 `json:"last_index"`
	LastTerm  uint64 `json:"last_term"`
	// SnapshotIndex is the newest snapshot's index before recovery (0:
	// none) and LogEntries how many log entries followed it.
	SnapshotIndex uint64 `json:"snapshot_index"`
	LogEntries    uint64 `json:"log_entries"`
	// CurrentTerm is the term the node last knew.
	CurrentTerm uint64 `json:"current_term"`
	// Snapshot is the ID of the snapshot Recover wrote (empty on a dry
	// run) and AppliedIndex the FSM index it holds.
	Snapshot     string `json:"snapshot,omitempty"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	DryRun       bool   `json:"dry_run,omitempty"`
}

// Recover rewrites the Raft configuration of a stopped node (see the
// comment above ErrNodeRunning). It refuses a running node (ErrNodeRunning),
// a data dir without Raft state, a server list that does not name the node
// or has bad or repeated ids or addresses, and a node id that is not in the
// node's current configuration (the usual sign of a wrong --node-id).
func Recover(ctx context.Context, cfg RecoverConfig) (*RecoverReport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	store, snaps, hlog, err := openRaftState(cfg)
	if err != nil {
		return nil, err
	}
	defer store.Close()

	rep, next, err := planRecovery(cfg, store, snaps)
	if err != nil {
		return nil, err
	}
	if cfg.DryRun {
		return rep, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	state := fsm.New()
	if err := recoverCluster(cfg.NodeID, hlog, state, store, snaps, next); err != nil {
		return nil, err
	}
	id, err := checkRecovered(store, snaps, next, rep)
	if err != nil {
		return nil, err
	}
	rep.Snapshot, rep.AppliedIndex = id, state.AppliedIndex()
	return rep, nil
}

// withDefaults checks what Recover is given and fills in the defaults.
func (cfg RecoverConfig) withDefaults() (RecoverConfig, error) {
	if cfg.NodeID == "" {
		return cfg, errors.New("the node id is required (the --node-id the node ran with)")
	}
	if cfg.DataDir == "" {
		return cfg, errors.New("the data dir is required")
	}
	if err := checkServers(cfg.NodeID, cfg.Servers); err != nil {
		return cfg, err
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// openRaftState opens the stopped node's raft.db and snapshot store,
// creating nothing: it refuses a data dir without Raft state, a raft.db
// owned by someone else, and one a running node holds locked. The caller
// closes the store.
func openRaftState(cfg RecoverConfig) (*raftboltdb.BoltStore, *raft.FileSnapshotStore, *hclogAdapter, error) {
	dbPath := filepath.Join(cfg.DataDir, "raft.db")
	// Never create anything: a missing raft.db means a wrong --data-dir.
	if _, err := os.Stat(dbPath); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil, fmt.Errorf("no Raft state in %s (no raft.db): is that the node's --data-dir?", cfg.DataDir)
	} else if err != nil {
		return nil, nil, nil, err
	}
	if err := checkOwner(dbPath); err != nil {
		return nil, nil, nil, err
	}
	// raft-boltdb holds an exclusive flock on raft.db while the node runs.
	// The same checks as a start-up (startcheck.go) first: a truncated or
	// garbage raft.db gets an error naming it, not a fault inside bbolt.
	err := checkBoltFile(dbPath, cfg.LockTimeout)
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, nil, nil, fmt.Errorf("%s: %w", dbPath, ErrNodeRunning)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	opts := *bbolt.DefaultOptions
	opts.Timeout = cfg.LockTimeout
	var store *raftboltdb.BoltStore
	err = guardFaults(func() (err error) {
		store, err = raftboltdb.New(raftboltdb.Options{Path: dbPath, BoltOptions: &opts})
		return err
	})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, nil, nil, fmt.Errorf("%s: %w", dbPath, ErrNodeRunning)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open %s: %w", dbPath, err)
	}
	hlog := newHclog(cfg.Logger, "raft")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hlog.Named("snapshot"))
	if err != nil {
		store.Close()
		return nil, nil, nil, fmt.Errorf("snapshot store: %w", err)
	}
	if ok, err := raft.HasExistingState(store, store, snaps); err != nil {
		store.Close()
		return nil, nil, nil, fmt.Errorf("inspect raft state: %w", err)
	} else if !ok {
		store.Close()
		return nil, nil, nil, fmt.Errorf("no Raft state in %s (raft.db is empty): is that the node's --data-dir?", cfg.DataDir)
	}
	return store, snaps, hlog, nil
}

// planRecovery reads the node's state into a report and builds the new
// configuration: every given server a voter, the node's own entry at its
// current address unless another is given. It refuses a node id that is
// not in the current configuration.
func planRecovery(cfg RecoverConfig, store *raftboltdb.BoltStore, snaps *raft.FileSnapshotStore) (*RecoverReport, raft.Configuration, error) {
	var next raft.Configuration
	rep := &RecoverReport{DryRun: cfg.DryRun}
	old, err := readState(store, snaps, rep)
	if err != nil {
		return nil, next, err
	}
	rep.Old = servers(old)
	var self *raft.Server
	for i, s := range old.Servers {
		if string(s.ID) == cfg.NodeID {
			self = &old.Servers[i]
		}
	}
	if self == nil {
		return nil, next, fmt.Errorf("node %q is not in this data dir's configuration (%s): is --node-id the one the node ran with?",
			cfg.NodeID, formatServers(rep.Old))
	}

	for _, s := range cfg.Servers {
		addr := s.Address
		if addr == "" {
			addr = string(self.Address)
		}
		next.Servers = append(next.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(s.ID), Address: raft.ServerAddress(addr)})
	}
	rep.New = servers(next)
	return rep, next, nil
}

// recoverCluster runs hashicorp/raft's RecoverCluster with next as the
// configuration, restoring and replaying into state.
func recoverCluster(nodeID string, hlog *hclogAdapter, state *fsm.FSM, store *raftboltdb.BoltStore, snaps *raft.FileSnapshotStore, next raft.Configuration) error {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(nodeID)
	rc.Logger = hlog
	// RecoverCluster needs a transport only to encode addresses into the
	// snapshot's metadata; nothing is sent.
	var selfAddr raft.ServerAddress
	for _, s := range next.Servers {
		if string(s.ID) == nodeID {
			selfAddr = s.Address
		}
	}
	_, trans := raft.NewInmemTransport(selfAddr)
	defer trans.Close()
	if err := raft.RecoverCluster(rc, recoveryFSM{state}, store, store, snaps, trans, next); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	return nil
}

// checkRecovered reads back what the node will start from: the newest
// snapshot must be the one written (last index and term, configuration
// next) and the log empty. It returns the snapshot's ID.
func checkRecovered(store *raftboltdb.BoltStore, snaps *raft.FileSnapshotStore, next raft.Configuration, rep *RecoverReport) (string, error) {
	metas, err := snaps.List()
	if err != nil || len(metas) == 0 {
		return "", fmt.Errorf("recover: the new snapshot is not listed: %v", err)
	}
	m := metas[0]
	if m.Index != rep.LastIndex || m.Term != rep.LastTerm || !sameServers(m.Configuration, next) {
		return "", fmt.Errorf("recover: the newest snapshot %s (index %d, term %d, %s) is not the one written (index %d, term %d, %s)",
			m.ID, m.Index, m.Term, formatServers(servers(m.Configuration)), rep.LastIndex, rep.LastTerm, formatServers(rep.New))
	}
	if last, err := store.LastIndex(); err != nil || last != 0 {
		return "", fmt.Errorf("recover: the log was not compacted (last index %d, %v)", last, err)
	}
	return m.ID, nil
}

// readState finds the node's latest configuration (the last configuration
// entry of the log after the newest snapshot, else the snapshot's), and
// the index and term of the last entry it holds.
func readState(store *raftboltdb.BoltStore, snaps *raft.FileSnapshotStore, rep *RecoverReport) (cfg raft.Configuration, err error) {
	metas, err := snaps.List()
	if err != nil {
		return cfg, fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) > 0 {
		m := metas[0]
		cfg, rep.OldIndex = m.Configuration, m.ConfigurationIndex
		rep.SnapshotIndex, rep.LastIndex, rep.LastTerm = m.Index, m.Index, m.Term
	}
	if rep.CurrentTerm, err = store.GetUint64([]byte("CurrentTerm")); err != nil && err.Error() != "not found" {
		return cfg, fmt.Errorf("read current term: %w", err)
	}
	first, err := store.FirstIndex()
	if err != nil {
		return cfg, fmt.Errorf("read log: %w", err)
	}
	last, err := store.LastIndex()
	if err != nil {
		return cfg, fmt.Errorf("read log: %w", err)
	}
	if last == 0 {
		return cfg, nil
	}
	for i := max(first, rep.SnapshotIndex+1); i <= last; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil {
			return cfg, fmt.Errorf("read log entry %d: %w", i, err)
		}
		rep.LogEntries++
		rep.LastIndex, rep.LastTerm = l.Index, l.Term
		if l.Type == raft.LogConfiguration {
			c, err := decodeConfiguration(l.Data)
			if err != nil {
				return cfg, fmt.Errorf("log entry %d: %w", i, err)
			}
			cfg, rep.OldIndex = c, l.Index
		}
	}
	return cfg, nil
}

// decodeConfiguration is raft.DecodeConfiguration, which panics on bad
// input, returning an error instead.
func decodeConfiguration(b []byte) (c raft.Configuration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bad configuration entry: %v", r)
		}
	}()
	return raft.DecodeConfiguration(b), nil
}

// checkServers validates the new configuration: ids are non-empty and
// printable without spaces, '=' or ','; addresses are host:port with a
// port in 1-65535 and not an unspecified IP; neither repeats; the node's
// own id is among them, and only its entry may omit the address.
func checkServers(self string, list []RaftServer) error {
	if len(list) == 0 {
		return errors.New("the new configuration is empty: give at least this node (--peers ID=HOST:PORT)")
	}
	ids, addrs := map[string]bool{}, map[string]bool{}
	found := false
	for _, s := range list {
		if s.ID == "" || strings.IndexFunc(s.ID, func(r rune) bool {
			return unicode.IsSpace(r) || unicode.IsControl(r) || r == '=' || r == ','
		}) >= 0 {
			return fmt.Errorf("bad node id %q", s.ID)
		}
		if ids[s.ID] {
			return fmt.Errorf("node id %q given twice", s.ID)
		}
		ids[s.ID] = true
		if s.ID == self {
			found = true
		}
		if s.Address == "" {
			if s.ID != self {
				return fmt.Errorf("node %q has no address (only this node's own entry may omit it)", s.ID)
			}
			continue
		}
		if err := checkHostPort(s.Address); err != nil {
			return fmt.Errorf("node %q: %w", s.ID, err)
		}
		if addrs[s.Address] {
			return fmt.Errorf("address %s given twice", s.Address)
		}
		addrs[s.Address] = true
	}
	if !found {
		return fmt.Errorf("this node (%q) must be in the new configuration: the node that starts from this data dir leads it", self)
	}
	return nil
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q is not host:port: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("address %q has no host", addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("address %q: port must be 1-65535", addr)
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		return fmt.Errorf("address %q: peers dial it, so it must be the node's advertised internal address, not %s", addr, host)
	}
	return nil
}

func servers(c raft.Configuration) []RaftServer {
	out := make([]RaftServer, 0, len(c.Servers))
	for _, s := range c.Servers {
		out = append(out, RaftServer{ID: string(s.ID), Address: string(s.Address), Suffrage: s.Suffrage.String()})
	}
	return out
}

func sameServers(a, b raft.Configuration) bool {
	if len(a.Servers) != len(b.Servers) {
		return false
	}
	for i := range a.Servers {
		if a.Servers[i] != b.Servers[i] {
			return false
		}
	}
	return true
}

func formatServers(list []RaftServer) string {
	if len(list) == 0 {
		return "no servers"
	}
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = s.ID + "=" + s.Address
	}
	return strings.Join(parts, ", ")
}

// recoveryFSM is raftFSM without a running node: RecoverCluster restores
// the newest snapshot into it, applies the log after that and snapshots
// the result.
type recoveryFSM struct{ f *fsm.FSM }

func (r recoveryFSM) Apply(l *raft.Log) any {
	if l.Type == raft.LogCommand {
		return r.f.Apply(l.Index, l.Data)
	}
	return nil
}

func (r recoveryFSM) Snapshot() (raft.FSMSnapshot, error) {
	return recoverySnapshot{r.f.Snapshot()}, nil
}

func (r recoveryFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return r.f.Restore(rc)
}

type recoverySnapshot struct{ s *fsm.Snapshot }

func (s recoverySnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (recoverySnapshot) Release() {}
