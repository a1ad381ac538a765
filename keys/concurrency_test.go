package keys

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// TestSignVerifyDuringRotations: signatures and verifications while the
// set rotates (run with -race): every token verifies, signed with a key
// that was current at some point, and the caches follow the generations.
func TestSignVerifyDuringRotations(t *testing.T) {
	r, c := newReplica(), newClock()
	m := newTestManager(t, r, c, nil, ES256, EdDSA)
	ctx := context.Background()
	if _, err := m.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	var (
		wg      sync.WaitGroup
		stop    atomic.Bool
		signed  atomic.Int64
		mu      sync.Mutex
		errs    []error
		fail    = func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
		signers = 4
	)
	for i := range signers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			alg := []string{ES256, EdDSA}[i%2]
			for !stop.Load() {
				tok, err := m.SignWith(ctx, alg, "JWT", idClaims{N: i})
				if err != nil {
					fail(err)
					return
				}
				if _, err := m.Verify(tok, "JWT"); err != nil {
					fail(err)
					return
				}
				signed.Add(1)
			}
		}()
	}
	for range 20 {
		c.advance(1e9)
		if _, err := m.Rotate(ctx); err != nil {
			fail(err)
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if signed.Load() == 0 {
		t.Fatal("no signature made during the rotations")
	}
	if _, err := m.load(); err != nil { // the last generation's view
		t.Fatal(err)
	}
	m.mu.Lock()
	cached := len(m.private)
	m.mu.Unlock()
	if cached > 4 { // at most a current and a next key per algorithm
		t.Fatalf("%d opened private keys cached after 20 rotations, want at most 4", cached)
	}
}
