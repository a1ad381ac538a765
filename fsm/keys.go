package fsm

import (
	"fmt"
	"slices"
)

// The signing-key set: the keys every node signs ID tokens and JWT access
// tokens with, replicated so all nodes use the same ones. The state holds
// each private key only sealed (encrypted by package keys with a key the
// log never sees), and never logs or counts its bytes. The set is written
// whole by PutSigningKeys, conditional on its generation, so two nodes
// rotating at once cannot both win: the loser sees Conflict, reads the new
// set and decides again. A key's lifecycle is next (published in the JWKS,
// not yet signing), current (signing; at most one per algorithm), retired
// (published until every token it signed has expired, then dropped by a
// purge once RemoveAt has passed).

// KeyState is where a signing key is in its lifecycle.
type KeyState uint8

const (
	// KeyNext is published but does not sign yet.
	KeyNext KeyState = iota + 1
	// KeyCurrent signs; at most one per algorithm.
	KeyCurrent
	// KeyRetired no longer signs but is published until RemoveAt.
	KeyRetired
)

func (s KeyState) String() string {
	switch s {
	case KeyNext:
		return "next"
	case KeyCurrent:
		return "current"
	case KeyRetired:
		return "retired"
	}
	return fmt.Sprintf("KeyState(%d)", uint8(s))
}

// SigningKey is one key of the set. Its byte slices are never modified
// once in the state; callers must not modify them either.
type SigningKey struct {
	ID, Alg string // kid, JOSE algorithm (ES256, RS256, EdDSA)
	Public  []byte // the public JWK, JSON
	Sealed  []byte // the private key (PKCS#8) sealed with AES-256-GCM; never in the clear
	State   KeyState
	// CreatedAt, RetiredAt and RemoveAt are unix nanoseconds; RetiredAt
	// and RemoveAt are 0 until the key is retired. A purge at or after
	// RemoveAt drops a retired key (0: never).
	CreatedAt, RetiredAt, RemoveAt int64
}

// maxSigningKeys bounds the set (and so the JWKS document); a longer set
// is Invalid. maxDecodedKeys bounds what the decoder allocates for: a
// command with more keys does not decode at all.
const (
	maxSigningKeys = 64
	maxDecodedKeys = 1024
)

// String and GoString print a key without its sealed bytes, so a key or a
// command holding one can be logged or printed in a test failure.
func (k SigningKey) String() string {
	return fmt.Sprintf("{ID:%q Alg:%q State:%v Public:%d bytes Sealed:%d bytes CreatedAt:%d RetiredAt:%d RemoveAt:%d}",
		k.ID, k.Alg, k.State, len(k.Public), len(k.Sealed), k.CreatedAt, k.RetiredAt, k.RemoveAt)
}

func (k SigningKey) GoString() string { return "fsm.SigningKey" + k.String() }

// PutSigningKeys replaces the whole set if its generation is still
// IfGeneration; the generation then goes up by one. Otherwise the outcome
// is Conflict and nothing changes. A set ValidateSigningKeys refuses is
// Invalid. Result.Count is the generation after the command.
type PutSigningKeys struct {
	Keys         []SigningKey
	IfGeneration uint64
}

func (*PutSigningKeys) op() op { return opPutSigningKeys }

func (c *PutSigningKeys) encode(e *encoder) {
	e.uvarint(c.IfGeneration)
	e.uvarint(uint64(len(c.Keys)))
	for i := range c.Keys {
		encodeSigningKey(e, &c.Keys[i])
	}
}

func (c *PutSigningKeys) decode(d *decoder) {
	c.IfGeneration = d.uvarint()
	c.Keys = decodeSigningKeys(d)
}

func encodeSigningKey(e *encoder, k *SigningKey) {
	e.string(k.ID)
	e.string(k.Alg)
	e.bytes(k.Public)
	e.bytes(k.Sealed)
	e.byte(byte(k.State))
	e.varint(k.CreatedAt)
	e.varint(k.RetiredAt)
	e.varint(k.RemoveAt)
}

// decodeSigningKeys reads a count and that many keys. Their values are
// checked by ValidateSigningKeys, not here: a command with a bad set
// decodes and is refused as Invalid by Apply.
func decodeSigningKeys(d *decoder) []SigningKey {
	n := d.uvarint()
	if d.err != nil || n > maxDecodedKeys {
		d.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	keys := make([]SigningKey, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := SigningKey{ID: d.string(), Alg: d.string(), Public: d.bytes(), Sealed: d.bytes()}
		k.State = KeyState(d.byte())
		k.CreatedAt, k.RetiredAt, k.RemoveAt = d.varint(), d.varint(), d.varint()
		keys = append(keys, k)
	}
	return keys
}

// ValidateSigningKeys reports what is wrong with a key set, nil if
// nothing: every key needs an ID, an algorithm, a public and a sealed key
// and a known state; IDs are unique; at most one key per algorithm is
// current; the set holds at most 64 keys. The error never quotes key
// bytes.
func ValidateSigningKeys(keys []SigningKey) error {
	if len(keys) > maxSigningKeys {
		return fmt.Errorf("fsm: %d signing keys, at most %d", len(keys), maxSigningKeys)
	}
	ids := make(map[string]bool, len(keys))
	current := make(map[string]bool)
	for i := range keys {
		k := &keys[i]
		switch {
		case k.ID == "" || k.Alg == "" || len(k.Public) == 0 || len(k.Sealed) == 0:
			return fmt.Errorf("fsm: signing key %d (%q): empty id, algorithm, public or sealed key", i, k.ID)
		case k.State < KeyNext || k.State > KeyRetired:
			return fmt.Errorf("fsm: signing key %q: unknown state %d", k.ID, k.State)
		case ids[k.ID]:
			return fmt.Errorf("fsm: signing key id %q appears twice", k.ID)
		case k.State == KeyCurrent && current[k.Alg]:
			return fmt.Errorf("fsm: two current %s signing keys", k.Alg)
		}
		ids[k.ID] = true
		if k.State == KeyCurrent {
			current[k.Alg] = true
		}
	}
	return nil
}

// SigningKeys returns the key set and its generation (0 before the first
// PutSigningKeys). The slice is the caller's; the keys' bytes are shared
// and must not be modified.
func (f *FSM) SigningKeys() (keys []SigningKey, generation uint64) {
	f.mu.RLock()
	keys, generation = slices.Clone(f.keys), f.keyGen
	f.mu.RUnlock()
	return keys, generation
}

func (f *FSM) putSigningKeys(c *PutSigningKeys) Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.IfGeneration != f.keyGen {
		return Result{Outcome: Conflict, Count: f.keyGen}
	}
	if ValidateSigningKeys(c.Keys) != nil {
		return Result{Outcome: Invalid, Count: f.keyGen}
	}
	f.keys = cloneSigningKeys(c.Keys)
	f.keyGen++
	return Result{Count: f.keyGen}
}

// cloneSigningKeys copies keys and their bytes, so the state shares
// nothing with the command it came from.
func cloneSigningKeys(keys []SigningKey) []SigningKey {
	if len(keys) == 0 {
		return nil
	}
	out := make([]SigningKey, len(keys))
	for i, k := range keys {
		k.Public, k.Sealed = slices.Clone(k.Public), slices.Clone(k.Sealed)
		out[i] = k
	}
	return out
}

// purgeSigningKeys drops retired keys whose RemoveAt is at or before now;
// the set gets a new generation if any went. It returns how many.
func (f *FSM) purgeSigningKeys(now int64) uint64 {
	f.mu.RLock()
	expired := slices.ContainsFunc(f.keys, func(k SigningKey) bool { return keyRemovable(&k, now) })
	f.mu.RUnlock()
	if !expired {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	kept := make([]SigningKey, 0, len(f.keys))
	for _, k := range f.keys {
		if !keyRemovable(&k, now) {
			kept = append(kept, k)
		}
	}
	n := uint64(len(f.keys) - len(kept))
	if len(kept) == 0 {
		kept = nil
	}
	f.keys = kept // a new slice: readers' clones are unaffected either way
	f.keyGen++
	return n
}

func keyRemovable(k *SigningKey, now int64) bool {
	return k.State == KeyRetired && k.RemoveAt != 0 && now >= k.RemoveAt
}
