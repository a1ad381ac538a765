package keys

import (
	"context"
	"slices"

	"github.com/tokend/tokend/fsm"
)

// Rotate advances the key set one step for every configured algorithm:
// next becomes current, current becomes retired (published until
// RemoveAt = now + RetireAfter) and a fresh next key is made. It writes
// through Raft conditional on the set's generation, retrying when another
// node changed the set first, and returns the new set without private
// material. An empty set just gets its first keys.
func (m *Manager) Rotate(ctx context.Context) ([]fsm.SigningKey, error) {
	m.proposeMu.Lock()
	defer m.proposeMu.Unlock()
	err := m.propose(ctx, "rotate signing keys", func(keys []fsm.SigningKey, now int64) ([]fsm.SigningKey, bool, error) {
		if len(keys) == 0 {
			return m.fillMissing(nil, now)
		}
		out, err := m.rotated(keys, now)
		return out, err == nil, err
	})
	if err != nil {
		return nil, err
	}
	return m.List(), nil
}

// rotated is the set after one rotation at now. Every key it keeps and
// can open is sealed again under the primary sealing key, so one rotation
// after a cluster-key change leaves nothing sealed under the old key but
// keys this node cannot open. Those are kept if retired (they only
// verify) and replaced if next: a next key nobody can open would become a
// current key nobody can sign with. Keys of algorithms no longer
// configured retire and get no successor.
func (m *Manager) rotated(keys []fsm.SigningKey, now int64) ([]fsm.SigningKey, error) {
	retireAt := now + m.cfg.RetireAfter.Nanoseconds()
	out := make([]fsm.SigningKey, 0, len(keys)+len(m.cfg.Algs))
	for _, k := range keys {
		switch k.State {
		case fsm.KeyCurrent:
			k.State, k.RetiredAt, k.RemoveAt = fsm.KeyRetired, now, retireAt
		case fsm.KeyNext:
			if !slices.Contains(m.cfg.Algs, k.Alg) {
				continue // never signed: nothing to keep it published for
			}
			k.State = fsm.KeyCurrent
		}
		resealed, ok, err := m.reseal(k)
		if err != nil {
			return nil, err
		}
		if !ok && k.State == fsm.KeyCurrent {
			continue // fillMissing makes a fresh current key instead
		}
		out = append(out, resealed)
	}
	for _, alg := range m.cfg.Algs {
		k, err := m.fresh(alg, fsm.KeyNext, now)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	out, _, err := m.fillMissing(out, now)
	return out, err
}

// reseal seals k's private key again under the primary sealing key; ok is
// false (and k unchanged) when this node cannot open it.
func (m *Manager) reseal(k fsm.SigningKey) (_ fsm.SigningKey, ok bool, err error) {
	pkcs8, err := m.cfg.Sealer.Open(k.ID, k.Alg, k.Sealed)
	if err != nil {
		return k, false, nil
	}
	defer clear(pkcs8)
	if k.Sealed, err = m.cfg.Sealer.Seal(k.ID, k.Alg, pkcs8); err != nil {
		return k, false, err
	}
	return k, true, nil
}
