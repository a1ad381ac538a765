package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/tokend/tokend/cluster"
)

const recoverUsage = `tokend recover --data-dir DIR --node-id ID --peers ID=HOST:PORT[,ID=HOST:PORT...] [--dry-run]

Lost quorum: run on a STOPPED survivor when a majority of the servers are
gone for good. It rewrites the Raft configuration in DIR to the servers in
--peers (all voters; usually just this node, with its internal --raft-addr),
keeping everything the node holds. Start the node afterwards: it elects
itself and adds new members that --join it. Never start the lost servers
again on their old data. See docs/RECOVERY.md.

`

// recoverCmd is tokend recover: cluster.Recover on a stopped node's data
// dir, with what it found and did printed to stdout.
func recoverCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	host, _ := os.Hostname()
	fs := newFlagSet("tokend recover", stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), recoverUsage)
		fs.PrintDefaults()
	}
	nodeID := fs.String("node-id", host, "the --node-id the node ran with; must be among --peers")
	dataDir := fs.String("data-dir", "", "the node's --data-dir (default ./data/<node-id>)")
	var peers listFlag
	fs.Var(&peers, "peers", "the new configuration, comma-separated ID=HOST:PORT (the internal --raft-addr); this node's own entry may be just ID to keep its address (command line only)")
	dryRun := fs.Bool("dry-run", false, "check and print what would change; write nothing")
	// --node-id and --data-dir read TOKEND_NODE_ID and TOKEND_DATA_DIR
	// like tokend serve, so the node's environment file fits; the new
	// configuration must be typed.
	if err := parseWithEnv(fs, args, "peers", "dry-run"); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("recover: unexpected argument %q", fs.Arg(0))
	}
	if len(peers) == 0 {
		return errors.New("recover: --peers is required: the servers of the new configuration, e.g. --peers " + *nodeID + "=HOST:PORT (this node's internal address)")
	}
	servers, err := parsePeers(peers)
	if err != nil {
		return fmt.Errorf("recover: --peers: %w", err)
	}
	if *dataDir == "" {
		*dataDir = filepath.Join("data", *nodeID)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, err := cluster.Recover(ctx, cluster.RecoverConfig{
		DataDir: *dataDir,
		NodeID:  *nodeID,
		Servers: servers,
		DryRun:  *dryRun,
		Logger:  log,
	})
	if err != nil {
		if errors.Is(err, cluster.ErrNodeRunning) {
			return fmt.Errorf("recover: %w (systemctl stop tokend; kubectl scale statefulset/tokend --replicas=0): tokend recover works only on a stopped node", err)
		}
		return fmt.Errorf("recover: %w", err)
	}
	printRecovery(stdout, *nodeID, *dataDir, rep)
	return nil
}

// parsePeers reads ID=HOST:PORT items; a bare ID (no '=') leaves the
// address empty, which cluster.Recover allows only for the node itself.
// The ids and addresses are checked by cluster.Recover.
func parsePeers(items []string) ([]cluster.RaftServer, error) {
	var out []cluster.RaftServer
	for _, it := range items {
		id, addr, hasAddr := strings.Cut(it, "=")
		id, addr = strings.TrimSpace(id), strings.TrimSpace(addr)
		if id == "" {
			return nil, fmt.Errorf("%q has no node id (want ID=HOST:PORT)", it)
		}
		if hasAddr && addr == "" {
			return nil, fmt.Errorf("%q has no address (want ID=HOST:PORT)", it)
		}
		out = append(out, cluster.RaftServer{ID: id, Address: addr})
	}
	return out, nil
}

func printRecovery(w io.Writer, nodeID, dataDir string, r *cluster.RecoverReport) {
	fmt.Fprintf(w, "node %s, data dir %s\n", nodeID, dataDir)
	fmt.Fprintf(w, "state kept: last index %d, term %d (snapshot at index %d, then %d log entries); current term %d\n",
		r.LastIndex, r.LastTerm, r.SnapshotIndex, r.LogEntries, r.CurrentTerm)
	printServers(w, fmt.Sprintf("old configuration (as of index %d):", r.OldIndex), r.Old)
	printServers(w, "new configuration:", r.New)
	if r.DryRun {
		fmt.Fprintln(w, "dry run: nothing written")
		return
	}
	fmt.Fprintf(w, "recovered: snapshot %s holds everything up to index %d (term %d) and the new configuration; the log was compacted into it\n",
		r.Snapshot, r.LastIndex, r.LastTerm)
	fmt.Fprintf(w, "next: start %s; it elects itself leader. Then start new nodes with the same cluster key and issuer, --join pointing at its gossip address; the leader adds them as voters. Never restart the lost nodes on their old data.\n", nodeID)
}

func printServers(w io.Writer, title string, list []cluster.RaftServer) {
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range list {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.ID, s.Address, s.Suffrage)
	}
	tw.Flush()
}
