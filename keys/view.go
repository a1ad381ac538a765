package keys

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokend/tokend/fsm"
)

// view is one generation of the key set, parsed once: the public keys by
// ID, the algorithms verification allows, the current key of each
// algorithm, and the JWKS document, marshalled once per generation.
type view struct {
	gen  uint64
	keys []fsm.SigningKey
	// public is every key's public JWK by key ID.
	public map[string]jose.JSONWebKey
	// algs are the algorithms of the keys in the set: the only ones
	// Verify parses.
	algs []jose.SignatureAlgorithm
	// current is the signing key ID per algorithm.
	current map[string]string
	jwks    []byte
	// signers caches a jose.Signer per (key ID, typ).
	signers sync.Map
}

type signerKey struct{ kid, typ string }

// same reports whether keys at generation gen is the set v was built
// from. The generation alone is not enough: a restored snapshot may hold
// another set under the same generation number.
func (v *view) same(gen uint64, keys []fsm.SigningKey) bool {
	if v.gen != gen || len(v.keys) != len(keys) {
		return false
	}
	for i := range keys {
		if keys[i].ID != v.keys[i].ID || keys[i].State != v.keys[i].State || keys[i].RemoveAt != v.keys[i].RemoveAt {
			return false
		}
	}
	return true
}

// jwksOrder is the order keys appear in the JWKS: next, current, retired,
// newest first within a state.
func jwksOrder(a, b fsm.SigningKey) int {
	rank := func(s fsm.KeyState) int {
		switch s {
		case fsm.KeyNext:
			return 0
		case fsm.KeyCurrent:
			return 1
		}
		return 2
	}
	return cmp.Or(cmp.Compare(rank(a.State), rank(b.State)), cmp.Compare(b.CreatedAt, a.CreatedAt), cmp.Compare(a.ID, b.ID))
}

func buildView(gen uint64, keys []fsm.SigningKey) (*view, error) {
	v := &view{gen: gen, keys: keys, public: make(map[string]jose.JSONWebKey, len(keys)), current: map[string]string{}}
	ordered := slices.SortedFunc(slices.Values(keys), jwksOrder)
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range ordered {
		jwk, err := parsePublic(k.ID, k.Alg, k.Public)
		if err != nil {
			return nil, err
		}
		v.public[k.ID] = jwk
		set.Keys = append(set.Keys, jwk)
		if alg := jose.SignatureAlgorithm(k.Alg); !slices.Contains(v.algs, alg) {
			v.algs = append(v.algs, alg)
		}
		if k.State == fsm.KeyCurrent {
			v.current[k.Alg] = k.ID
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("keys: marshal JWKS: %w", err)
	}
	v.jwks = b
	return v, nil
}

// load returns the view of the set as it is now, building a new one when
// the set changed since the last call.
func (m *Manager) load() (*view, error) {
	keys, gen := m.cfg.FSM.SigningKeys()
	if v := m.view.Load(); v != nil && v.same(gen, keys) {
		return v, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.view.Load(); v != nil && v.same(gen, keys) {
		return v, nil
	}
	v, err := buildView(gen, keys)
	if err != nil {
		return nil, err
	}
	// Opened private keys of keys that left the set, or no longer sign,
	// are dropped with the old view.
	for kid := range m.private {
		if i := slices.IndexFunc(keys, func(k fsm.SigningKey) bool { return k.ID == kid }); i < 0 || keys[i].State == fsm.KeyRetired {
			delete(m.private, kid)
		}
	}
	m.view.Store(v)
	return v, nil
}
