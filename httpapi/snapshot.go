package httpapi

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"
)

// Backup and restore of the whole state (tokend snapshot save|restore):
//
//	GET  /admin/snapshot                      a backup file (cluster/backup.go)
//	POST /admin/snapshot/restore[?force=true] replace the cluster's state with one
//
// Both need the admin token and a read-ready node. A backup holds no raw
// token, secret or password, but it does hold password and secret hashes:
// it is as sensitive as the data directory.

// Snapshotter is what the snapshot endpoints need; a Replicator that
// implements it (cluster.Node) gets them, any other answers 501.
type Snapshotter interface {
	// OpenSnapshot returns a backup file of this node's state, including
	// every write acknowledged before the call, and its length.
	OpenSnapshot(ctx context.Context) (io.ReadCloser, int64, error)
	// RestoreSnapshot verifies the backup file read from r completely,
	// then replaces the cluster's state with it and returns a summary
	// once every read-ready node answers from it. Errors with a
	// SnapshotRefused() code refuse the file; a file of another cluster
	// is refused unless force.
	RestoreSnapshot(ctx context.Context, r io.Reader, force bool) (any, error)
}

// MaxSnapshotBytes bounds an uploaded backup file.
const MaxSnapshotBytes = 4 << 30

// snapshotTransferTime bounds the transfer of one backup file, either way:
// the listeners' read and write timeouts are made for small requests.
const snapshotTransferTime = 30 * time.Minute

// snapshotRefused is a backup file refused for what it holds.
type snapshotRefused interface {
	error
	SnapshotRefused() string
}

func (s *Server) snapshotter() (Snapshotter, error) {
	sn, ok := s.rep.(Snapshotter)
	if !ok {
		return nil, errorf(http.StatusNotImplemented, "not_supported", "this node cannot take or restore backups")
	}
	return sn, nil
}

func (s *Server) saveSnapshot(w http.ResponseWriter, r *http.Request) error {
	sn, err := s.snapshotter()
	if err != nil {
		return err
	}
	rc, size, err := sn.OpenSnapshot(r.Context())
	if err != nil {
		return err
	}
	defer rc.Close()
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(snapshotTransferTime))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if n, err := io.Copy(w, rc); err != nil {
		// The status is sent: the client sees a short body (it knows the
		// length) and a file without its checksum.
		s.log.WarnContext(r.Context(), "backup transfer failed", "sent", n, "of", size, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

func (s *Server) restoreSnapshot(w http.ResponseWriter, r *http.Request) error {
	sn, err := s.snapshotter()
	if err != nil {
		return err
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/octet-stream" {
		return errorf(http.StatusUnsupportedMediaType, "invalid_request", "Content-Type must be application/octet-stream")
	}
	force := false
	if v := r.URL.Query().Get("force"); v != "" {
		var err error
		if force, err = strconv.ParseBool(v); err != nil {
			return invalidRequest("force must be true or false")
		}
	}
	if r.ContentLength > MaxSnapshotBytes {
		return errorf(http.StatusRequestEntityTooLarge, "invalid_request", "backup file too large")
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(snapshotTransferTime))
	_ = rc.SetWriteDeadline(time.Now().Add(snapshotTransferTime))
	body := http.MaxBytesReader(w, r.Body, MaxSnapshotBytes)
	res, err := sn.RestoreSnapshot(r.Context(), body, force)
	var refused snapshotRefused
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, res)
		return nil
	case errors.As(err, &refused):
		status := http.StatusBadRequest
		if refused.SnapshotRefused() == "cluster_mismatch" {
			status = http.StatusConflict
		}
		s.log.WarnContext(r.Context(), "backup restore refused", "reason", refused.SnapshotRefused(), "err", refused.Error())
		return errorf(status, refused.SnapshotRefused(), refused.Error())
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "invalid_request", "backup file too large")
	default:
		return err
	}
}
