package keys

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokend/tokend/fsm"
)

// Config configures a Manager. FSM, Apply and Sealer are required.
type Config struct {
	FSM *fsm.FSM
	// Apply replicates an encoded fsm command and returns once it is
	// applied wherever reads are served (cluster.Node.Apply).
	Apply  func(ctx context.Context, cmd []byte) (fsm.Result, error)
	Sealer *Sealer
	Now    func() time.Time // default time.Now
	// Alg is the algorithm Sign uses (default ES256).
	Alg string
	// Algs are the algorithms the set holds keys for (default Alg and
	// RS256, which OpenID Connect requires a provider to offer); Alg is
	// always among them.
	Algs []string
	// RetireAfter is how long a retired key stays published: at least
	// the longest lifetime of anything signed (ID tokens, JWT access
	// tokens), plus the clock skew relying parties allow. Default 24h.
	RetireAfter time.Duration
}

// Manager signs and verifies with the replicated key set and changes it
// through Raft. It is safe for concurrent use.
type Manager struct {
	cfg Config
	// view is the parsed key set of the last generation seen (view.go).
	view atomic.Pointer[view]
	// mu guards building views and the private key cache.
	mu sync.Mutex
	// private holds opened private keys by key ID: opening costs an
	// AES-GCM pass and a PKCS#8 parse, signing happens per token.
	private map[string]crypto.Signer
	// proposeMu makes this node's proposals (first keys, rotations) one
	// at a time, so concurrent first Signs propose one set, not many.
	proposeMu sync.Mutex
}

// maxAttempts bounds compare-and-swap retries against other nodes'
// concurrent proposals.
const maxAttempts = 8

// New checks cfg and returns a Manager. It touches no state: the first
// Sign or JWKS creates the keys.
func New(cfg Config) (*Manager, error) {
	if cfg.FSM == nil || cfg.Apply == nil || cfg.Sealer == nil {
		return nil, errors.New("keys: FSM, Apply and Sealer are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Alg == "" {
		cfg.Alg = ES256
	}
	if len(cfg.Algs) == 0 {
		cfg.Algs = []string{cfg.Alg, RS256}
	}
	if !slices.Contains(cfg.Algs, cfg.Alg) {
		cfg.Algs = append([]string{cfg.Alg}, cfg.Algs...)
	}
	cfg.Algs = slices.Compact(slices.Clone(cfg.Algs))
	for _, a := range cfg.Algs {
		if !supported(a) {
			return nil, fmt.Errorf("keys: unsupported algorithm %q (want one of %v)", a, Algorithms)
		}
	}
	if cfg.RetireAfter <= 0 {
		cfg.RetireAfter = 24 * time.Hour
	}
	return &Manager{cfg: cfg, private: map[string]crypto.Signer{}}, nil
}

// Alg is the algorithm Sign uses.
func (m *Manager) Alg() string { return m.cfg.Alg }

// Algs are the algorithms the key set holds current keys for.
func (m *Manager) Algs() []string { return slices.Clone(m.cfg.Algs) }

// List returns the key set without its sealed private keys, for the admin
// API.
func (m *Manager) List() []fsm.SigningKey {
	keys, _ := m.cfg.FSM.SigningKeys()
	for i := range keys {
		keys[i].Sealed = nil
	}
	return keys
}

// ensure makes sure the set holds a current and a next key for every
// configured algorithm, proposing the missing ones. A conflict means
// another node changed the set first: read it again and fill in only what
// is still missing, which usually is nothing.
func (m *Manager) ensure(ctx context.Context) error {
	m.proposeMu.Lock()
	defer m.proposeMu.Unlock()
	return m.propose(ctx, "create signing keys", func(keys []fsm.SigningKey, now int64) ([]fsm.SigningKey, bool, error) {
		return m.fillMissing(keys, now)
	})
}

// fillMissing adds a fresh current and next key for every configured
// algorithm that lacks one; changed is false when nothing was missing.
func (m *Manager) fillMissing(keys []fsm.SigningKey, now int64) (out []fsm.SigningKey, changed bool, err error) {
	out = slices.Clone(keys)
	for _, alg := range m.cfg.Algs {
		for _, st := range []fsm.KeyState{fsm.KeyCurrent, fsm.KeyNext} {
			if slices.ContainsFunc(out, func(k fsm.SigningKey) bool { return k.Alg == alg && k.State == st }) {
				continue
			}
			k, err := m.fresh(alg, st, now)
			if err != nil {
				return nil, false, err
			}
			out, changed = append(out, k), true
		}
	}
	return out, changed, nil
}

// fresh generates a key for alg in state st and seals its private half.
// The opened key goes into the cache: this node will likely sign with it.
func (m *Manager) fresh(alg string, st fsm.KeyState, now int64) (fsm.SigningKey, error) {
	g, err := generate(alg)
	if err != nil {
		return fsm.SigningKey{}, err
	}
	sealed, err := m.cfg.Sealer.Seal(g.kid, alg, g.pkcs8)
	clear(g.pkcs8)
	if err != nil {
		return fsm.SigningKey{}, err
	}
	m.mu.Lock()
	m.private[g.kid] = g.signer
	m.mu.Unlock()
	return fsm.SigningKey{ID: g.kid, Alg: alg, Public: g.public, Sealed: sealed, State: st, CreatedAt: now}, nil
}

// propose reads the set, lets change compute the new one and writes it
// conditional on the generation read, retrying on conflict. change
// reporting no change ends it without a write.
func (m *Manager) propose(ctx context.Context, what string, change func([]fsm.SigningKey, int64) ([]fsm.SigningKey, bool, error)) error {
	for range maxAttempts {
		keys, gen := m.cfg.FSM.SigningKeys()
		next, changed, err := change(keys, m.cfg.Now().UnixNano())
		if err != nil || !changed {
			return err
		}
		res, err := m.cfg.Apply(ctx, fsm.Encode(&fsm.PutSigningKeys{Keys: next, IfGeneration: gen}))
		if err != nil {
			return fmt.Errorf("keys: %s: %w", what, err)
		}
		switch res.Outcome {
		case fsm.OK:
			return nil
		case fsm.Conflict:
			continue // another node changed the set: read it again
		default:
			return fmt.Errorf("keys: %s: %w", what, res.Err())
		}
	}
	return fmt.Errorf("keys: %s: the key set kept changing under %d attempts", what, maxAttempts)
}
