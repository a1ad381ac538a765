package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokend/tokend/fsm"
)

// snapReplicator is a memReplicator that can back up and restore: it
// serves a fixed file and records what a restore received.
type snapReplicator struct {
	memReplicator
	file       string
	restoreErr error
	got        string
	force      bool
}

func (s *snapReplicator) OpenSnapshot(context.Context) (io.ReadCloser, int64, error) {
	return io.NopCloser(strings.NewReader(s.file)), int64(len(s.file)), nil
}

func (s *snapReplicator) RestoreSnapshot(_ context.Context, r io.Reader, force bool) (any, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	s.got, s.force = string(b), force
	if s.restoreErr != nil {
		return nil, s.restoreErr
	}
	return map[string]bool{"restored": true}, nil
}

type refusal struct{ code string }

func (r refusal) Error() string           { return "refused: " + r.code }
func (r refusal) SnapshotRefused() string { return r.code }

func newSnapServer(t *testing.T, f *fsm.FSM, rep Replicator) *Server {
	t.Helper()
	s, err := New(Config{FSM: f, Replicator: rep, Issuer: "http://tokend.test", AdminToken: testAdminToken,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func snapRequest(s *Server, method, target, contentType, body string, auth bool) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w
}

func TestSnapshotEndpoints(t *testing.T) {
	f := fsm.New()
	rep := &snapReplicator{memReplicator: memReplicator{f: f}, file: "TOKENDBK backup bytes"}
	s := newSnapServer(t, f, rep)

	if w := snapRequest(s, http.MethodGet, "/admin/snapshot", "", "", false); w.Code != http.StatusUnauthorized {
		t.Errorf("save without the admin token: %d", w.Code)
	}
	w := snapRequest(s, http.MethodGet, "/admin/snapshot", "", "", true)
	if w.Code != http.StatusOK || w.Body.String() != rep.file || w.Header().Get("Content-Length") != "21" ||
		w.Header().Get("Content-Type") != "application/octet-stream" {
		t.Errorf("save: %d %q %v", w.Code, w.Body, w.Header())
	}

	if w := snapRequest(s, http.MethodPost, "/admin/snapshot/restore", "application/octet-stream", "x", false); w.Code != http.StatusUnauthorized || rep.got != "" {
		t.Errorf("restore without the admin token: %d, restored %q", w.Code, rep.got)
	}
	if w := snapRequest(s, http.MethodPost, "/admin/snapshot/restore", "application/json", "x", true); w.Code != http.StatusUnsupportedMediaType || rep.got != "" {
		t.Errorf("restore as JSON: %d", w.Code)
	}
	if w := snapRequest(s, http.MethodPost, "/admin/snapshot/restore?force=maybe", "application/octet-stream", "x", true); w.Code != http.StatusBadRequest || rep.got != "" {
		t.Errorf("restore with force=maybe: %d", w.Code)
	}
	w = snapRequest(s, http.MethodPost, "/admin/snapshot/restore?force=true", "application/octet-stream", "the file", true)
	if w.Code != http.StatusOK || rep.got != "the file" || !rep.force {
		t.Errorf("restore: %d %s, got %q force %v", w.Code, w.Body, rep.got, rep.force)
	}

	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{refusal{"invalid_snapshot"}, http.StatusBadRequest, "invalid_snapshot"},
		{refusal{"cluster_mismatch"}, http.StatusConflict, "cluster_mismatch"},
		{errNoLease{}, http.StatusServiceUnavailable, "temporarily_unavailable"},
		{&http.MaxBytesError{Limit: 1}, http.StatusRequestEntityTooLarge, "invalid_request"},
		{errors.New("disk on fire"), http.StatusInternalServerError, "server_error"},
	} {
		rep.restoreErr = c.err
		w := snapRequest(s, http.MethodPost, "/admin/snapshot/restore", "application/octet-stream", "f", true)
		var body struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != c.status || body.Error != c.code {
			t.Errorf("restore failing with %v: %d %s, want %d %s", c.err, w.Code, w.Body, c.status, c.code)
		}
	}
}

// TestSnapshotUnsupported: a Replicator without backups answers 501, and
// an unready node 503, before reading anything.
func TestSnapshotUnsupported(t *testing.T) {
	s, _ := newMemServer(t)
	if w := snapRequest(s, http.MethodGet, "/admin/snapshot", "", "", true); w.Code != http.StatusNotImplemented {
		t.Errorf("save on a Replicator without backups: %d", w.Code)
	}
	f := fsm.New()
	u := newSnapServer(t, f, &unreadyReplicator{memReplicator{f: f}})
	if w := snapRequest(u, http.MethodGet, "/admin/snapshot", "", "", true); w.Code != http.StatusServiceUnavailable {
		t.Errorf("save on an unready node: %d", w.Code)
	}
}
