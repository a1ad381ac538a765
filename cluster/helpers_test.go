package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/internal/loopaddr"
)

func testLogger(name string) *slog.Logger {
	if os.Getenv("TOKEND_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	lv := slog.LevelInfo
	if os.Getenv("TOKEND_TEST_LOG") == "debug" {
		lv = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv})).With("t", name)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testNode is a Node under test.
type testNode struct {
	*Node
	cfg  Config
	down bool
}

// newTestCfg builds a config for node id under dir with fresh ports.
func newTestCfg(t *testing.T, id, dir string, key []byte) Config {
	return Config{
		NodeID:     id,
		DataDir:    dir,
		RaftAddr:   loopaddr.ForTest(t),
		GossipAddr: loopaddr.ForTest(t),
		HTTPAddr:   loopaddr.ForTest(t),
		ClusterKey: key,
		Version:    "test",
		FSM:        fsm.New(),
		Logger:     testLogger(id),
	}
}

func startTestNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	if cfg.FSM == nil {
		cfg.FSM = fsm.New()
	}
	n, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{Node: n, cfg: cfg}
	t.Cleanup(func() { tn.stop(t) })
	return tn
}

func (tn *testNode) stop(t *testing.T) {
	if tn.down {
		return
	}
	tn.down = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tn.Node.Shutdown(ctx); err != nil {
		t.Errorf("shutdown %s: %v", tn.cfg.NodeID, err)
	}
}

var tokenSeq int

// token returns a fresh raw token string.
func token() string {
	tokenSeq++
	return "at_test_" + strconv.Itoa(tokenSeq) + fmt.Sprint(time.Now().UnixNano())
}

func putClientCmd(id string) []byte {
	return fsm.Encode(&fsm.PutClient{Create: true, Client: fsm.Client{
		ID: id, Name: id, GrantTypes: []string{"client_credentials"}, Scopes: []string{"read"},
	}})
}

func issueCmd(client, tok string) []byte {
	now := time.Now()
	return fsm.Encode(&fsm.IssueGrant{
		ClientID: client, Scope: "read", IssuedAt: now.UnixNano(),
		Access: fsm.TokenSpec{Hash: fsm.HashOf(tok), ExpiresAt: now.Add(time.Hour).UnixNano()},
	})
}

func revokeCmd(tok string) []byte {
	return fsm.Encode(&fsm.RevokeToken{Token: fsm.HashOf(tok)})
}

func valid(f *fsm.FSM, tok string) bool {
	_, ok := f.Lookup(fsm.HashOf(tok), time.Now().UnixNano())
	return ok
}

func mustApply(t *testing.T, n *Node, cmd []byte) fsm.Result {
	t.Helper()
	res, err := n.Apply(ctxT(t, 10*time.Second), cmd)
	if err != nil {
		t.Fatalf("apply on %s: %v", n.cfg.NodeID, err)
	}
	if res.Outcome != fsm.OK {
		t.Fatalf("apply on %s: outcome %v", n.cfg.NodeID, res.Err())
	}
	return res
}
