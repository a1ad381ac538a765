package cluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"
	"unicode"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/fsm"
)

// Backups: tokend snapshot save, inspect and restore.
//
// # The file
//
// A backup file is the FSM's own snapshot image (fsm/snapshot.go) wrapped
// so that it says where it came from and proves it is whole:
//
//	magic     8 bytes   "TOKENDBK"
//	version   1 byte    1
//	hdrlen    4 bytes   big-endian length of the header, 1 to 64 KiB
//	header    hdrlen bytes of JSON, a BackupHeader (unknown fields refused)
//	body      header.body_bytes bytes: the fsm snapshot image
//	checksum  32 bytes: SHA-256 of every byte before it
//
// The checksum is a trailer, so a node streams a file without buffering it,
// and it covers the header as well as the body; `head -c -32 FILE |
// sha256sum` prints it. ReadBackup accepts a file only whole: magic,
// version, a header that decodes strictly, a body that is exactly
// body_bytes long and decodes strictly into a fresh FSM, the checksum, and
// nothing after it. A corrupted file is reported as a checksum mismatch
// even when its body also fails to decode, and a short one as truncated.
//
// # Consistency of a save
//
// OpenSnapshot serves only while ReadReady() is nil: the local FSM then
// reflects every write acknowledged so far (doc.go). It then asks raft for a
// snapshot (raft.Snapshot, taken on the FSM goroutine between two apply
// batches, so it is the state after exactly the log prefix up to its index)
// and streams that. Its index is at least the applied index at the
// readiness check, so the file holds every write acknowledged before the
// request arrived, and it is a state the cluster really had, at the index
// and term the header records.
//
// # Restore
//
// RestoreSnapshot validates the whole file before anything changes (a bad
// file changes nothing), refuses a file of another cluster unless forced,
// then has the leader replace the state through raft.Restore: the leader
// installs the image at a fresh index past its log (leaving a hole, so
// every follower gets it as an InstallSnapshot) and raft commits a no-op
// after it. A node that is not the leader decodes the upload itself and
// streams the validated image to the leader over the internal port
// (opRestore), so an operator may point the CLI at any node. raft.Restore
// panics the leader if its FSM cannot read the image, so what it is given
// is never the upload itself but an image re-encoded from the FSM the
// upload decoded into.
//
// Visibility: once the restore returns, every node that answers reads
// answers from the restored state. After raft.Restore the leader applies an
// fsm.Noop through Apply, whose acknowledgement waits until every read-lease
// holder has applied it (waitVisible); a holder can apply that entry only
// after installing the snapshot before it, and a node that lags loses its
// lease instead. Until then the restore is a write in flight: a node may
// still answer from the old state. A restore that fails half way (the
// leader lost office) may be retried: restoring the same file twice gives
// the same state.
//
// The restored image keeps its own applied index, which is at most the
// header's index (checked); the restore index raft picks is past both that
// and the cluster's log, so grant ids (the log index that created them)
// stay unique.
//
// # Cluster identity
//
// A backup records the cluster it came from: the hex SHA-256 (first 16
// bytes) of the public key of the CA derived from the primary cluster key
// (pki.go), so it names the cluster's trust domain and reveals nothing of
// the key. A restore accepts the id of the primary key or of any accepted
// key (a key rotation keeps earlier backups restorable while the old key
// is still listed); anything else needs force. A single node without a
// cluster key is "node:" and its node id. The identity belongs to the
// cluster, not to its data: after a forced restore of another cluster's
// backup the cluster keeps its own id.

const (
	backupMagic   = "TOKENDBK"
	backupVersion = 1
	// maxBackupHeader bounds the JSON header.
	maxBackupHeader = 64 << 10
	backupPrefixLen = len(backupMagic) + 1 + 4

	// restoreTimeout bounds a restore: queueing it in raft, and a
	// follower's wait for the leader to answer a forwarded one.
	restoreTimeout = 5 * time.Minute
	// restoreBarrierTimeout bounds the visibility barrier after it.
	restoreBarrierTimeout = 30 * time.Second
)

// BackupHeader is the JSON header of a backup file.
type BackupHeader struct {
	// ClusterID names the cluster the backup was taken from.
	ClusterID string `json:"cluster_id"`
	// NodeID is the node that served it.
	NodeID string `json:"node_id"`
	// Index and Term are the Raft index and term the image reflects: the
	// state after applying exactly the log up to Index.
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// CreatedAt is when the node wrote the file (its wall clock).
	CreatedAt time.Time `json:"created_at"`
	// BodyBytes is the length of the image that follows the header.
	BodyBytes int64 `json:"body_bytes"`
	// TokendVersion is the version of the node that wrote it.
	TokendVersion string `json:"tokend_version,omitempty"`
}

func (h *BackupHeader) check() error {
	for name, v := range map[string]string{"cluster_id": h.ClusterID, "node_id": h.NodeID} {
		if v == "" || len(v) > 256 {
			return fmt.Errorf("header: %s must be 1-256 bytes", name)
		}
	}
	for name, v := range map[string]string{"cluster_id": h.ClusterID, "node_id": h.NodeID, "tokend_version": h.TokendVersion} {
		// Printed to an operator's terminal by inspect.
		if slices.ContainsFunc([]rune(v), func(r rune) bool { return !unicode.IsPrint(r) }) {
			return fmt.Errorf("header: %s holds unprintable characters", name)
		}
	}
	switch {
	case len(h.TokendVersion) > 64:
		return errors.New("header: tokend_version longer than 64 bytes")
	case h.Index == 0 || h.Term == 0:
		return errors.New("header: index and term must be positive")
	case h.CreatedAt.IsZero():
		return errors.New("header: created_at is missing")
	case h.BodyBytes <= 0:
		return errors.New("header: body_bytes must be positive")
	}
	return nil
}

// BackupError is a backup refused for what it holds: Code is
// "invalid_snapshot" for a file that is malformed, truncated or corrupted,
// "cluster_mismatch" for another cluster's backup without force.
type BackupError struct {
	Code, Msg string
}

func (e *BackupError) Error() string { return e.Msg }

// SnapshotRefused is the code, for the HTTP layer.
func (e *BackupError) SnapshotRefused() string { return e.Code }

func invalidBackup(format string, args ...any) error {
	return &BackupError{Code: "invalid_snapshot", Msg: "invalid backup file: " + fmt.Sprintf(format, args...)}
}

// Backup is a verified, decoded backup file.
type Backup struct {
	Header BackupHeader
	// ImageVersion is the format version of the fsm image inside.
	ImageVersion int
	// ImageIndex is the applied index the image itself records.
	ImageIndex uint64
	// Checksum is the file's trailer.
	Checksum [sha256.Size]byte
	// State is the decoded image: a private FSM nothing applies to.
	State *fsm.FSM
}

// Stats counts what the backup holds (no secrets, no hashes), taking live
// to mean usable at now.
func (b *Backup) Stats(now time.Time) fsm.Stats { return b.State.Stats(now.UnixNano()) }

// WriteBackup writes a backup file: h, then exactly h.BodyBytes of body
// (an fsm snapshot image), then the checksum.
func WriteBackup(w io.Writer, h BackupHeader, body io.Reader) (int64, error) {
	pre, err := backupPreamble(h)
	if err != nil {
		return 0, err
	}
	sum := sha256.New()
	mw := io.MultiWriter(w, sum)
	written, err := mw.Write(pre)
	total := int64(written)
	if err != nil {
		return total, err
	}
	n, err := io.CopyN(mw, body, h.BodyBytes)
	total += n
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("backup body ended after %d of %d bytes", n, h.BodyBytes)
		}
		return total, err
	}
	written, err = w.Write(sum.Sum(nil))
	return total + int64(written), err
}

func backupPreamble(h BackupHeader) ([]byte, error) {
	if err := h.check(); err != nil {
		return nil, err
	}
	js, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	if len(js) > maxBackupHeader {
		return nil, errors.New("backup header too long")
	}
	pre := make([]byte, 0, backupPrefixLen+len(js))
	pre = append(pre, backupMagic...)
	pre = append(pre, backupVersion)
	pre = binary.BigEndian.AppendUint32(pre, uint32(len(js)))
	return append(pre, js...), nil
}

// backupSize is the length of the file WriteBackup writes for h.
func backupSize(h BackupHeader) (int64, error) {
	pre, err := backupPreamble(h)
	if err != nil {
		return 0, err
	}
	return int64(len(pre)) + h.BodyBytes + sha256.Size, nil
}

// readTracker remembers the first error reading its source other than
// the end of the data, so ReadBackup can tell a failing reader (an upload
// over its size limit, a broken connection) from a short file.
type readTracker struct {
	r   io.Reader
	err error
}

func (t *readTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && t.err == nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.err = err
	}
	return n, err
}

// headReader keeps the first bytes read through it.
type headReader struct {
	r    io.Reader
	head []byte
}

func (h *headReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if want := 8 - len(h.head); want > 0 {
		h.head = append(h.head, p[:min(n, want)]...)
	}
	return n, err
}

// ReadBackup reads and verifies a whole backup file from r. A file that is
// not a whole, well-formed backup is a *BackupError; a failure of r itself
// is returned wrapped as it is. It never panics on any input; memory grows
// with what r actually delivers, not with what the file claims.
func ReadBackup(r io.Reader) (*Backup, error) {
	src := &readTracker{r: r}
	sum := sha256.New()
	tee := io.TeeReader(src, sum)
	fail := func(err error) (*Backup, error) {
		if src.err != nil {
			return nil, fmt.Errorf("reading backup: %w", src.err)
		}
		return nil, err
	}

	var pre [backupPrefixLen]byte
	n, err := io.ReadFull(tee, pre[:])
	if m := min(n, len(backupMagic)); n == 0 || string(pre[:m]) != backupMagic[:m] {
		return fail(invalidBackup("not a tokend backup (no %q at the start)", backupMagic))
	}
	if err != nil {
		return fail(invalidBackup("truncated in the preamble (%d bytes)", n))
	}
	if pre[len(backupMagic)] != backupVersion {
		return fail(invalidBackup("format version %d, this tokend reads version %d", pre[len(backupMagic)], backupVersion))
	}
	hlen := binary.BigEndian.Uint32(pre[len(backupMagic)+1:])
	if hlen == 0 || hlen > maxBackupHeader {
		return fail(invalidBackup("header length %d is not within 1-%d", hlen, maxBackupHeader))
	}
	hb := make([]byte, hlen)
	if n, err := io.ReadFull(tee, hb); err != nil {
		return fail(invalidBackup("truncated in the header (%d of %d bytes)", n, hlen))
	}
	b := &Backup{}
	if err := decodeBackupHeader(hb, &b.Header); err != nil {
		return fail(invalidBackup("%v", err))
	}

	body := &io.LimitedReader{R: tee, N: b.Header.BodyBytes}
	head := &headReader{r: body}
	b.State = fsm.New()
	decodeErr := b.State.Restore(head)
	// Hash whatever the decoder left of the body, so that a corrupted file
	// is reported as corrupted rather than by its first decoding error.
	if _, err := io.Copy(io.Discard, body); err != nil {
		return fail(invalidBackup("reading the body: %v", err))
	}
	if body.N > 0 {
		return fail(invalidBackup("truncated: the body ends %d bytes early", body.N))
	}
	copy(b.Checksum[:], sum.Sum(nil))
	var trailer [sha256.Size]byte
	if n, err := io.ReadFull(src, trailer[:]); err != nil {
		return fail(invalidBackup("truncated: %d of %d checksum bytes", n, sha256.Size))
	}
	if subtle.ConstantTimeCompare(trailer[:], b.Checksum[:]) != 1 {
		return fail(invalidBackup("checksum mismatch: the file is corrupted (SHA-256 %s, recorded %s)",
			hex.EncodeToString(b.Checksum[:]), hex.EncodeToString(trailer[:])))
	}
	var extra [1]byte
	if n, _ := io.ReadFull(src, extra[:]); n > 0 {
		return fail(invalidBackup("data after the checksum"))
	}
	if src.err != nil {
		return fail(nil)
	}
	if decodeErr != nil {
		return nil, invalidBackup("the image does not decode: %v", decodeErr)
	}
	if len(head.head) > 4 {
		b.ImageVersion = int(head.head[4])
	}
	b.ImageIndex = b.State.AppliedIndex()
	if err := checkImage(b.State, b.Header.Index); err != nil {
		return nil, err
	}
	return b, nil
}

func decodeBackupHeader(b []byte, h *BackupHeader) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(h); err != nil {
		return fmt.Errorf("header: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("header: data after the JSON object")
	}
	return h.check()
}

// checkImage checks what a decoded image says about itself against the
// index it is to be restored at: raft must place it past every index the
// image has used.
func checkImage(img *fsm.FSM, index uint64) error {
	applied := img.AppliedIndex()
	if applied > index {
		return invalidBackup("the image's applied index %d is past the header's index %d", applied, index)
	}
	if g := img.Stats(0).MaxGrantID; g > applied {
		return invalidBackup("grant %d is past the image's applied index %d", g, applied)
	}
	return nil
}

// ClusterID is the identity backups of this cluster record (see above).
func (n *Node) ClusterID() string {
	ids, err := clusterIDs(n.cfg.NodeID, n.cfg.ClusterKey, nil)
	if err != nil || len(ids) == 0 {
		return "node:" + n.cfg.NodeID
	}
	return ids[0]
}

// clusterIDs returns the ids of the primary key and the accepted keys.
func clusterIDs(nodeID string, key []byte, accept [][]byte) ([]string, error) {
	if len(key) == 0 {
		return []string{"node:" + nodeID}, nil
	}
	var ids []string
	for _, k := range append([][]byte{key}, accept...) {
		ca, err := deriveCA(k)
		if err != nil {
			return nil, err
		}
		// The fingerprint the CA's subject names the first 8 bytes of.
		fp := sha256.Sum256(ca.key.Public().(ed25519.PublicKey))
		ids = append(ids, hex.EncodeToString(fp[:16]))
	}
	return ids, nil
}

// OpenSnapshot returns a backup file of this node's state and its length,
// taken at an applied index that includes every write acknowledged before
// the call; the caller must close it. It refuses (an *UnavailableError)
// while the node may not serve reads.
func (n *Node) OpenSnapshot(ctx context.Context) (io.ReadCloser, int64, error) {
	if err := n.ReadReady(); err != nil {
		return nil, 0, err
	}
	f := n.raft.Snapshot()
	if err := await(ctx, f); err != nil {
		switch {
		case err == ctx.Err():
			return nil, 0, unavailable("snapshot", ErrTimeout)
		case errors.Is(err, raft.ErrRaftShutdown):
			return nil, 0, unavailable("snapshot", ErrShutdown)
		}
		// For example a configuration change not yet applied.
		return nil, 0, unavailable("snapshot", err)
	}
	meta, rc, err := f.Open()
	if err != nil {
		return nil, 0, fmt.Errorf("cluster: open snapshot: %w", err)
	}
	h := BackupHeader{
		ClusterID: n.ClusterID(), NodeID: n.cfg.NodeID, Index: meta.Index, Term: meta.Term,
		CreatedAt: time.Now().UTC(), BodyBytes: meta.Size, TokendVersion: n.cfg.Version,
	}
	size, err := backupSize(h)
	if err != nil {
		rc.Close()
		return nil, 0, fmt.Errorf("cluster: backup header: %w", err)
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer rc.Close()
		_, err := WriteBackup(pw, h, rc)
		pw.CloseWithError(err)
	}()
	n.log.Info("cluster: backup taken", "index", meta.Index, "term", meta.Term, "bytes", size)
	return &pipedBackup{pr: pr, done: done}, size, nil
}

type pipedBackup struct {
	pr   *io.PipeReader
	done chan struct{}
}

func (p *pipedBackup) Read(b []byte) (int, error) { return p.pr.Read(b) }

func (p *pipedBackup) Close() error {
	p.pr.CloseWithError(errors.New("backup reader closed"))
	<-p.done
	return nil
}

// RestoreResult is what a restore reports.
type RestoreResult struct {
	Restored bool `json:"restored"`
	// SnapshotIndex and SnapshotClusterID are the backup's index and
	// cluster; ClusterID is this cluster's.
	SnapshotIndex     uint64 `json:"snapshot_index"`
	SnapshotClusterID string `json:"snapshot_cluster_id"`
	ClusterID         string `json:"cluster_id"`
	// Forced is true when the backup came from another cluster.
	Forced bool `json:"forced"`
	// AppliedIndex is the index of the barrier after the restore: every
	// read-ready node has applied it.
	AppliedIndex uint64 `json:"applied_index"`
	fsm.Stats
}

// RestoreSnapshot is RestoreBackup for the HTTP layer (httpapi.Snapshotter).
func (n *Node) RestoreSnapshot(ctx context.Context, r io.Reader, force bool) (any, error) {
	return n.RestoreBackup(ctx, r, force)
}

// RestoreBackup replaces the whole cluster's state with the backup file
// read from r (see above). The file is read and verified completely first:
// a bad file (*BackupError) or a failing reader changes nothing. A backup
// of another cluster is refused unless force. Errors that mean "try
// again" are *UnavailableError; retrying a restore is always safe.
func (n *Node) RestoreBackup(ctx context.Context, r io.Reader, force bool) (RestoreResult, error) {
	b, err := ReadBackup(r)
	if err != nil {
		return RestoreResult{}, err
	}
	ids, err := clusterIDs(n.cfg.NodeID, n.cfg.ClusterKey, n.cfg.AcceptKeys)
	if err != nil {
		return RestoreResult{}, err
	}
	res := RestoreResult{
		SnapshotIndex: b.Header.Index, SnapshotClusterID: b.Header.ClusterID, ClusterID: ids[0],
		Stats: b.Stats(time.Now()),
	}
	if !slices.Contains(ids, b.Header.ClusterID) {
		if !force {
			return res, &BackupError{Code: "cluster_mismatch", Msg: fmt.Sprintf(
				"the backup is of cluster %s, this is cluster %s: restoring it replaces this cluster's clients, users and tokens with another's; force it (tokend snapshot restore --force) if that is what you want",
				b.Header.ClusterID, ids[0])}
		}
		res.Forced = true
	}
	n.log.Info("cluster: restoring backup", "snapshot_index", b.Header.Index, "snapshot_node", b.Header.NodeID,
		"snapshot_cluster", b.Header.ClusterID, "forced", res.Forced)
	res.AppliedIndex, err = n.restoreImage(ctx, b.State, b.Header.Index)
	if err != nil {
		return res, err
	}
	res.Restored = true
	n.log.Info("cluster: backup restored", "snapshot_index", b.Header.Index, "applied_index", res.AppliedIndex)
	return res, nil
}

// restoreImage has the leader restore img, from here or over the
// internal port, following leader changes while nothing was done.
func (n *Node) restoreImage(ctx context.Context, img *fsm.FSM, index uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	var lastErr error = ErrNoLeader
	for {
		if n.stopping() {
			return 0, unavailable("restore", ErrShutdown)
		}
		if n.raft.State() == raft.Leader {
			applied, err := n.restoreLeader(ctx, img, index)
			if !errors.Is(err, errNotLeader) {
				return applied, err
			}
			lastErr = ErrNoLeader
		} else if addr := n.leaderAddr(); addr != "" && n.rpc != nil {
			applied, safe, err := n.forwardRestore(ctx, addr, img, index)
			if err == nil || !safe {
				return applied, err
			}
			lastErr = err
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return 0, unavailable("restore", lastErr)
		}
	}
}

// restoreLeader restores img through raft on this node, the leader, then
// waits until the restored state is visible on every read-ready node.
// errNotLeader means nothing was done.
func (n *Node) restoreLeader(ctx context.Context, img *fsm.FSM, index uint64) (uint64, error) {
	if n.leader.Load() == nil {
		return 0, errNotLeader
	}
	snap := img.Snapshot() // img is private: nothing applies to it
	size, err := snap.WriteTo(io.Discard)
	if err != nil {
		return 0, err
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := snap.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: index, Term: 1, Size: size}
	err = n.raft.Restore(meta, pr, restoreTimeout)
	pr.CloseWithError(errors.New("restore over")) // ends the writer if raft stopped reading
	switch {
	case err == nil:
	case errors.Is(err, raft.ErrNotLeader):
		return 0, errNotLeader
	case errors.Is(err, raft.ErrRaftShutdown):
		return 0, unavailable("restore", ErrShutdown)
	default:
		return 0, unavailable("restore did not complete (retrying it is safe)", err)
	}
	// The visibility barrier (see above). It runs even if the caller has
	// gone: the restore is done, and lease holders must not go on serving
	// the state it replaced.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreBarrierTimeout)
	defer cancel()
	for {
		res, err := n.Apply(bctx, fsm.Encode(&fsm.Noop{}))
		if err == nil {
			return res.Index, nil
		}
		if !sleepCtx(bctx, 100*time.Millisecond) {
			return 0, unavailable("restored, but not yet confirmed on every node (retrying it is safe)", err)
		}
	}
}

// forwardRestore streams img to the leader at addr (opRestore): a frame of
// {index, size}, then size bytes of image, answered by one frame whose
// payload is the barrier index. safe reports that the leader certainly
// did nothing.
func (n *Node) forwardRestore(ctx context.Context, addr string, img *fsm.FSM, index uint64) (uint64, bool, error) {
	snap := img.Snapshot()
	size, err := snap.WriteTo(io.Discard)
	if err != nil {
		return 0, false, err
	}
	conn, err := n.rpc.dialer.dial(ctx, addr, connRPC)
	if err != nil {
		return 0, true, unavailable("forward restore to leader", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(restoreTimeout))
	w := bufio.NewWriterSize(conn, 64<<10)
	req := binary.AppendUvarint(binary.AppendUvarint(nil, index), uint64(size))
	status, answer, err := func() (byte, []byte, error) {
		if err := writeFrame(w, opRestore, req); err != nil {
			return 0, nil, err
		}
		if _, err := snap.WriteTo(w); err != nil {
			return 0, nil, err
		}
		if err := w.Flush(); err != nil {
			return 0, nil, err
		}
		return readFrame(bufio.NewReader(conn))
	}()
	switch {
	case err != nil:
		return 0, false, unavailable("forward restore to leader (retrying it is safe)", err)
	case status == stNotLeader:
		return 0, true, unavailable("forward restore", errNotLeader)
	case status != stOK:
		return 0, false, unavailable("forward restore", &rpcError{status: status, msg: string(answer)})
	}
	applied, k := binary.Uvarint(answer)
	if k <= 0 {
		return 0, false, errors.New("cluster: bad restore answer from the leader")
	}
	return applied, false, nil
}

// maxRestoreImage bounds the image a peer may stream in one restore.
const maxRestoreImage = 1 << 36

// serveRestore answers one forwarded restore on conn and ends the
// connection: it reads the whole image first (so its answer is never
// interleaved with the upload), checks it, and restores it if this node
// leads.
func (n *Node) serveRestore(conn net.Conn, r *bufio.Reader, w *bufio.Writer, payload []byte) {
	answer := func(status byte, b []byte) {
		conn.SetWriteDeadline(time.Now().Add(rpcWriteTimeout))
		writeFrame(w, status, b)
	}
	index, k := binary.Uvarint(payload)
	size, k2 := uint64(0), 0
	if k > 0 {
		size, k2 = binary.Uvarint(payload[k:])
	}
	if k <= 0 || k2 <= 0 || index == 0 || size == 0 || size > maxRestoreImage {
		answer(stBadRequest, []byte("bad restore request"))
		return
	}
	conn.SetReadDeadline(time.Now().Add(restoreTimeout))
	img := fsm.New()
	body := &io.LimitedReader{R: r, N: int64(size)}
	if err := img.Restore(body); err != nil || body.N != 0 {
		io.Copy(io.Discard, body) // the peer writes it all before it reads
		answer(stBadRequest, []byte(fmt.Sprintf("restore image: %v", err)))
		return
	}
	if err := checkImage(img, index); err != nil {
		answer(stBadRequest, []byte(err.Error()))
		return
	}
	ctx, cancel := context.WithTimeout(n.stopCtx, restoreTimeout)
	defer cancel()
	n.log.Info("cluster: restoring a backup forwarded by a peer", "peer", conn.RemoteAddr(), "snapshot_index", index)
	applied, err := n.restoreLeader(ctx, img, index)
	switch {
	case errors.Is(err, errNotLeader):
		answer(stNotLeader, nil)
	case err != nil:
		answer(stUnavailable, []byte(err.Error()))
	default:
		answer(stOK, binary.AppendUvarint(nil, applied))
	}
}
