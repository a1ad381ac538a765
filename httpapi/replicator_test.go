package httpapi

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/fsm"
)

// memReplicator applies commands straight to a local FSM in call order. It
// stands in for consensus in handler-level tests; the e2e package runs the
// same handlers over real Raft.
type memReplicator struct {
	f   *fsm.FSM
	mu  sync.Mutex
	idx uint64
}

func (m *memReplicator) Apply(_ context.Context, cmd []byte) (fsm.Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.idx++
	return m.f.Apply(m.idx, cmd), nil
}

func (m *memReplicator) ReadReady() error { return nil }

// BeginRead and FinishRead: one in-order FSM has nothing in flight.
func (m *memReplicator) BeginRead() (int64, error) { return 0, nil }

func (m *memReplicator) FinishRead(context.Context, int64, uint64) error { return nil }

// testAdminToken is an admin token of the minimum accepted length or more.
const testAdminToken = "test-admin-token-0123456789abcdef0123456789"

// newMemServer returns a Server over a fresh FSM with an admin token.
func newMemServer(t testing.TB) (*Server, *fsm.FSM) {
	t.Helper()
	f := fsm.New()
	s, err := New(Config{
		FSM: f, Replicator: &memReplicator{f: f},
		Issuer: "http://tokend.test", AdminToken: testAdminToken,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, f
}

// unreadyReplicator refuses reads, like a node without a lease.
type unreadyReplicator struct{ memReplicator }

type errNoLease struct{}

func (errNoLease) Error() string                 { return "no read lease" }
func (errNoLease) RetryAfter() (d time.Duration) { return time.Second }

func (*unreadyReplicator) ReadReady() error { return errNoLease{} }

func (*unreadyReplicator) BeginRead() (int64, error) { return 0, errNoLease{} }
