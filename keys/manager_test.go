package keys

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tokend/tokend/fsm"
)

type idClaims struct {
	Sub string `json:"sub"`
	N   int    `json:"n"`
}

// TestFirstSignCreatesKeysOnce: concurrent first Signs on one node propose
// one set, with a current and a next key, and sign with the current key
// (headers alg, kid, typ).
func TestFirstSignCreatesKeysOnce(t *testing.T) {
	r, c := newReplica(), newClock()
	m := newTestManager(t, r, c, nil)
	var wg sync.WaitGroup
	tokens := make([]string, 8)
	errs := make([]error, len(tokens))
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tokens[i], errs[i] = m.Sign(context.Background(), "JWT", idClaims{Sub: "alice", N: i})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := r.applies.Load(); n != 1 {
		t.Fatalf("%d proposals reached the log, want 1", n)
	}
	keys, gen := r.f.SigningKeys()
	cur, next := byState(keys, fsm.KeyCurrent), byState(keys, fsm.KeyNext)
	if gen != 1 || len(keys) != 2 || len(cur) != 1 || len(next) != 1 {
		t.Fatalf("generation %d, set %d keys (current %v, next %v), want 1 and one of each", gen, len(keys), cur, next)
	}
	for i, tok := range tokens {
		h := header(t, tok)
		if h["alg"] != "ES256" || h["kid"] != cur[0] || h["typ"] != "JWT" {
			t.Fatalf("header %v, want alg ES256, kid %s, typ JWT", h, cur[0])
		}
		payload, err := m.Verify(tok, "JWT")
		if err != nil {
			t.Fatal(err)
		}
		var got idClaims
		if err := json.Unmarshal(payload, &got); err != nil || got.N != i || got.Sub != "alice" {
			t.Fatalf("payload %s (%v)", payload, err)
		}
	}
}

// TestFirstSignConflictUsesTheWinnersKeys: two nodes find the set empty
// at once; the second proposal conflicts and that node signs with the
// first one's keys instead of making its own.
func TestFirstSignConflictUsesTheWinnersKeys(t *testing.T) {
	r, c := newReplica(), newClock()
	sealer, _ := NewSealer(randomSecret(t))
	a := newTestManager(t, r, c, sealer)
	var raced bool
	b, err := New(Config{FSM: r.f, Sealer: sealer, Now: c.now, Algs: []string{ES256},
		Apply: func(ctx context.Context, cmd []byte) (fsm.Result, error) {
			if !raced { // a's proposal lands between b's read and b's write
				raced = true
				if _, err := a.Sign(ctx, "JWT", idClaims{}); err != nil {
					t.Error(err)
				}
			}
			return r.apply(ctx, cmd)
		}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := b.Sign(context.Background(), "JWT", idClaims{Sub: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	keys, gen := r.f.SigningKeys()
	if gen != 1 || len(keys) != 2 {
		t.Fatalf("generation %d with %d keys: the losing proposal changed the set", gen, len(keys))
	}
	if kid := header(t, tok)["kid"]; kid != byState(keys, fsm.KeyCurrent)[0] {
		t.Fatalf("b signed with %v, not the winner's current key", kid)
	}
	if _, err := a.Verify(tok, "JWT"); err != nil {
		t.Fatalf("a does not verify b's token: %v", err)
	}
}

// TestRotationStateMachine: next becomes current, current retires until
// now+RetireAfter, a fresh next appears; old tokens verify until a purge
// after RemoveAt drops their key.
func TestRotationStateMachine(t *testing.T) {
	r, c := newReplica(), newClock()
	m := newTestManager(t, r, c, nil, ES256, EdDSA)
	ctx := context.Background()
	old, err := m.Sign(ctx, "JWT", idClaims{Sub: "a"})
	if err != nil {
		t.Fatal(err)
	}
	before, gen := r.f.SigningKeys()
	c.advance(10 * 60e9)
	rotatedAt := c.now().UnixNano()
	after, err := m.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, g := r.f.SigningKeys(); g != gen+1 {
		t.Fatalf("generation %d after rotation, want %d", g, gen+1)
	}
	if len(after) != 6 {
		t.Fatalf("%d keys after one rotation of two algorithms, want 6", len(after))
	}
	for _, k := range after {
		if k.Sealed != nil {
			t.Fatalf("Rotate returned sealed private material of %s", k.ID)
		}
	}
	for _, alg := range []string{ES256, EdDSA} {
		checkRotated(t, m, alg, before, after, rotatedAt)
	}
	if _, err := m.Verify(old, "JWT"); err != nil {
		t.Fatalf("token of the retired key refused before RemoveAt: %v", err)
	}

	c.advance(60*60e9 - 1)
	r.apply(ctx, fsm.Encode(&fsm.Purge{Now: c.now().UnixNano()}))
	if keys, _ := r.f.SigningKeys(); len(keys) != 6 {
		t.Fatalf("purge before RemoveAt dropped keys: %d left", len(keys))
	}
	c.advance(1)
	r.apply(ctx, fsm.Encode(&fsm.Purge{Now: c.now().UnixNano()}))
	keys, _ := r.f.SigningKeys()
	if len(keys) != 4 || len(byState(keys, fsm.KeyRetired)) != 0 {
		t.Fatalf("after RemoveAt: %d keys, %d retired; want 4 and 0", len(keys), len(byState(keys, fsm.KeyRetired)))
	}
	if _, err := m.Verify(old, "JWT"); !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "unknown key id") {
		t.Fatalf("token of a removed key: err = %v, want unknown key id", err)
	}
}

// checkRotated checks one algorithm's keys after a rotation at rotatedAt
// (RetireAfter one hour): the old current retired, the old next current
// and signing, one fresh next.
func checkRotated(t *testing.T, m *Manager, alg string, before, after []fsm.SigningKey, rotatedAt int64) {
	t.Helper()
	state := func(id string) fsm.SigningKey {
		i := slices.IndexFunc(after, func(k fsm.SigningKey) bool { return k.ID == id })
		if i < 0 {
			t.Fatalf("key %s not in the set", id)
		}
		return after[i]
	}
	var oldCur, oldNext string
	for _, k := range before {
		if k.Alg == alg && k.State == fsm.KeyCurrent {
			oldCur = k.ID
		} else if k.Alg == alg {
			oldNext = k.ID
		}
	}
	if k := state(oldCur); k.State != fsm.KeyRetired || k.RetiredAt != rotatedAt || k.RemoveAt != rotatedAt+int64(60*60e9) {
		t.Fatalf("%s old current: %+v, want retired at %d, removed an hour later", alg, k, rotatedAt)
	}
	if k := state(oldNext); k.State != fsm.KeyCurrent {
		t.Fatalf("%s old next is %v, want current", alg, k.State)
	}
	var nexts int
	for _, k := range after {
		if k.Alg == alg && k.State == fsm.KeyNext {
			nexts++
			if k.ID == oldNext || k.CreatedAt != rotatedAt {
				t.Fatalf("%s next key %+v is not fresh", alg, k)
			}
		}
	}
	if nexts != 1 {
		t.Fatalf("%s: %d next keys, want 1", alg, nexts)
	}
	tok, err := m.SignWith(context.Background(), alg, "JWT", idClaims{})
	if err != nil {
		t.Fatal(err)
	}
	if kid := header(t, tok)["kid"]; kid != oldNext {
		t.Fatalf("%s signs with %v after rotation, want the old next %s", alg, kid, oldNext)
	}
}

// TestRotateRetriesOnConflict: another node's change between this node's
// read and write makes the rotation read again and apply once on top.
func TestRotateRetriesOnConflict(t *testing.T) {
	r, c := newReplica(), newClock()
	sealer, _ := NewSealer(randomSecret(t))
	a := newTestManager(t, r, c, sealer)
	if _, err := a.Rotate(context.Background()); err != nil { // first keys
		t.Fatal(err)
	}
	conflicts := 0
	b, _ := New(Config{FSM: r.f, Sealer: sealer, Now: c.now, Algs: []string{ES256}, RetireAfter: 1e9,
		Apply: func(ctx context.Context, cmd []byte) (fsm.Result, error) {
			if conflicts < 2 {
				conflicts++
				if _, err := a.Rotate(ctx); err != nil {
					t.Error(err)
				}
			}
			res, err := r.apply(ctx, cmd)
			return res, err
		}})
	if _, err := b.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	keys, gen := r.f.SigningKeys()
	// first keys, two rotations by a, one by b: 1+3 generations, three
	// retired keys.
	if gen != 4 || len(byState(keys, fsm.KeyRetired)) != 3 || len(byState(keys, fsm.KeyCurrent)) != 1 || len(byState(keys, fsm.KeyNext)) != 1 {
		t.Fatalf("generation %d, %d retired, %d current, %d next; want 4, 3, 1, 1", gen,
			len(byState(keys, fsm.KeyRetired)), len(byState(keys, fsm.KeyCurrent)), len(byState(keys, fsm.KeyNext)))
	}
}

// TestSignWithUnconfiguredAlgRefused: SignWith only signs with the
// configured algorithms.
func TestSignWithUnconfiguredAlgRefused(t *testing.T) {
	m := newTestManager(t, newReplica(), newClock(), nil)
	if _, err := m.SignWith(context.Background(), RS256, "JWT", idClaims{}); err == nil {
		t.Fatal("RS256 signature from a manager configured for ES256 alone")
	}
	if _, err := New(Config{FSM: fsm.New(), Apply: newReplica().apply, Sealer: m.cfg.Sealer, Alg: "HS256"}); err == nil {
		t.Fatal("HS256 configured")
	}
}

// TestAlgorithmAddedLater: a node configured with one more algorithm than
// the set holds adds its keys on first use, keeping the others.
func TestAlgorithmAddedLater(t *testing.T) {
	r, c := newReplica(), newClock()
	sealer, _ := NewSealer(randomSecret(t))
	ctx := context.Background()
	if _, err := newTestManager(t, r, c, sealer, ES256).Sign(ctx, "JWT", idClaims{}); err != nil {
		t.Fatal(err)
	}
	before, _ := r.f.SigningKeys()
	m := newTestManager(t, r, c, sealer, ES256, EdDSA)
	doc, err := m.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := r.f.SigningKeys()
	if len(after) != 4 || len(byState(after, fsm.KeyCurrent)) != 2 || !strings.Contains(string(doc), `"alg":"EdDSA"`) {
		t.Fatalf("set after adding EdDSA: %d keys, current %v; JWKS %s", len(after), byState(after, fsm.KeyCurrent), doc)
	}
	for _, k := range before {
		if !slices.ContainsFunc(after, func(a fsm.SigningKey) bool { return a.ID == k.ID && a.State == k.State }) {
			t.Fatalf("key %s (%v) changed when EdDSA was added", k.ID, k.State)
		}
	}
	tok, err := m.SignWith(ctx, EdDSA, "JWT", idClaims{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Verify(tok, "JWT"); err != nil {
		t.Fatal(err)
	}
}
