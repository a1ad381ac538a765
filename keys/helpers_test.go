package keys

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokend/tokend/fsm"
)

// replica is an fsm applied in-process in log order: what a cluster node
// gives a Manager, minus Raft. Managers sharing one replica are nodes of
// one cluster.
type replica struct {
	mu      sync.Mutex
	f       *fsm.FSM
	index   uint64
	applies atomic.Int64 // PutSigningKeys proposals that reached the log
}

func newReplica() *replica { return &replica{f: fsm.New()} }

func (r *replica) apply(_ context.Context, cmd []byte) (fsm.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.index++
	r.applies.Add(1)
	return r.f.Apply(r.index, cmd), nil
}

// clock is a settable time source.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func newTestManager(t *testing.T, r *replica, c *clock, s *Sealer, algs ...string) *Manager {
	t.Helper()
	if s == nil {
		var err error
		if s, err = NewSealer(randomSecret(t)); err != nil {
			t.Fatal(err)
		}
	}
	if len(algs) == 0 {
		algs = []string{ES256}
	}
	m, err := New(Config{FSM: r.f, Apply: r.apply, Sealer: s, Now: c.now, Alg: algs[0], Algs: algs, RetireAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// header decodes a compact JWS's protected header.
func header(t *testing.T, token string) map[string]any {
	t.Helper()
	h, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("header of %q: %v", token, err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// byState returns the IDs of the set's keys in state st.
func byState(keys []fsm.SigningKey, st fsm.KeyState) []string {
	var ids []string
	for _, k := range keys {
		if k.State == st {
			ids = append(ids, k.ID)
		}
	}
	return ids
}
