package keys

import (
	"context"
	"errors"
	"testing"

	"github.com/tokend/tokend/fsm"
)

// TestClusterKeyRotation: keys sealed under the old cluster key open
// while it is accepted; a signing-key rotation then seals everything under
// the new key, after which the old key can go.
func TestClusterKeyRotation(t *testing.T) {
	r, c := newReplica(), newClock()
	oldKey, newKey := randomSecret(t), randomSecret(t)
	ctx := context.Background()
	sealer := func(primary []byte, accept ...[]byte) *Sealer {
		s, err := NewSealer(primary, accept...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := newTestManager(t, r, c, sealer(oldKey))
	tok, err := before.Sign(ctx, "JWT", idClaims{Sub: "a"})
	if err != nil {
		t.Fatal(err)
	}

	// Without the old key the current key does not open: signing fails,
	// saying what to do, verifying (public keys only) still works.
	newOnly := newTestManager(t, r, c, sealer(newKey))
	if _, err := newOnly.Sign(ctx, "JWT", idClaims{}); !errors.Is(err, ErrUnsealable) {
		t.Fatalf("sign with only the new cluster key: err = %v, want ErrUnsealable", err)
	}
	if _, err := newOnly.Verify(tok, "JWT"); err != nil {
		t.Fatalf("verify needs no private key: %v", err)
	}

	rotating := newTestManager(t, r, c, sealer(newKey, oldKey))
	if _, err := rotating.Sign(ctx, "JWT", idClaims{}); err != nil {
		t.Fatalf("old key accepted: sign: %v", err)
	}
	keysBefore, _ := r.f.SigningKeys()
	if _, err := rotating.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	keys, _ := r.f.SigningKeys()
	for _, k := range keys {
		if _, err := sealer(newKey).Open(k.ID, k.Alg, k.Sealed); err != nil {
			t.Fatalf("%s key %s still needs the old cluster key after the rotation", k.State, k.ID)
		}
	}
	// A fresh manager, as after a restart with the old key removed.
	after := newTestManager(t, r, c, sealer(newKey))
	tok2, err := after.Sign(ctx, "JWT", idClaims{})
	if err != nil {
		t.Fatalf("sign after the rotation with only the new key: %v", err)
	}
	if kid := header(t, tok2)["kid"]; kid != byState(keysBefore, fsm.KeyNext)[0] {
		t.Fatalf("signs with %v, want the published next key %s", kid, byState(keysBefore, fsm.KeyNext)[0])
	}
}

// TestRotateReplacesKeysNobodyCanOpen: when the old cluster key is gone
// before the signing keys were rotated, a rotation replaces the next key
// it cannot open with a fresh current one, so signing works again.
func TestRotateReplacesKeysNobodyCanOpen(t *testing.T) {
	r, c := newReplica(), newClock()
	ctx := context.Background()
	lost := newTestManager(t, r, c, nil)
	if _, err := lost.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	old, _ := r.f.SigningKeys()
	m := newTestManager(t, r, c, nil) // another, unrelated sealing key
	if _, err := m.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	keys, _ := r.f.SigningKeys()
	cur := byState(keys, fsm.KeyCurrent)
	if len(cur) != 1 || cur[0] == byState(old, fsm.KeyNext)[0] {
		t.Fatalf("current keys %v: the unopenable next key was promoted", cur)
	}
	if len(byState(keys, fsm.KeyRetired)) != 1 {
		t.Fatalf("retired keys %v, want the old current one", byState(keys, fsm.KeyRetired))
	}
	if _, err := m.Sign(ctx, "JWT", idClaims{}); err != nil {
		t.Fatalf("sign after the repair: %v", err)
	}
}
