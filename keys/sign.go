package keys

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokend/tokend/fsm"
)

// Sign returns a compact JWS of claims signed with the current key of the
// default algorithm, with headers alg, kid and typ. The first call on an
// empty set creates the keys through Raft.
func (m *Manager) Sign(ctx context.Context, typ string, claims any) (string, error) {
	return m.SignWith(ctx, m.cfg.Alg, typ, claims)
}

// SignWith is Sign with the current key of alg, one of Algs (a client
// registered for RS256 ID tokens, say).
func (m *Manager) SignWith(ctx context.Context, alg, typ string, claims any) (string, error) {
	if !slices.Contains(m.cfg.Algs, alg) {
		return "", fmt.Errorf("keys: sign: %q is not one of the configured algorithms %v", alg, m.cfg.Algs)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("keys: sign: marshal claims: %w", err)
	}
	v, err := m.ready(ctx)
	if err != nil {
		return "", err
	}
	kid := v.current[alg]
	if kid == "" { // another node's rotation retired it in between
		return "", fmt.Errorf("keys: sign: the key set has no current %s key", alg)
	}
	s, err := m.signer(v, kid, alg, typ)
	if err != nil {
		return "", err
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("keys: sign with key %s: %w", kid, err)
	}
	return jws.CompactSerialize()
}

// JWKS returns the JSON Web Key Set: the public keys of the next, current
// and retired keys, each with kid, alg and use "sig". The first call on
// an empty set creates the keys, so the document is never empty.
func (m *Manager) JWKS(ctx context.Context) ([]byte, error) {
	v, err := m.ready(ctx)
	if err != nil {
		return nil, err
	}
	return v.jwks, nil
}

// ready returns the current view, creating the keys first when the set
// has no current key of a configured algorithm (the first use, or an
// algorithm added to Algs since).
func (m *Manager) ready(ctx context.Context) (*view, error) {
	v, err := m.load()
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(m.cfg.Algs, func(alg string) bool { return v.current[alg] == "" }) {
		return v, nil
	}
	if err := m.ensure(ctx); err != nil {
		return nil, err
	}
	return m.load()
}

// signer returns the cached jose.Signer of kid for typ, opening the
// private key on first use.
func (m *Manager) signer(v *view, kid, alg, typ string) (jose.Signer, error) {
	sk := signerKey{kid: kid, typ: typ}
	if s, ok := v.signers.Load(sk); ok {
		return s.(jose.Signer), nil
	}
	priv, err := m.privateKey(v, kid)
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader(jose.HeaderKey("kid"), kid)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: priv}, opts)
	if err != nil {
		return nil, fmt.Errorf("keys: signer for key %s: %w", kid, err)
	}
	v.signers.Store(sk, s)
	return s, nil
}

// privateKey returns kid's opened private key from the cache, or opens
// it from the set.
func (m *Manager) privateKey(v *view, kid string) (crypto.Signer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.private[kid]; ok {
		return k, nil
	}
	i := slices.IndexFunc(v.keys, func(k fsm.SigningKey) bool { return k.ID == kid })
	if i < 0 {
		return nil, fmt.Errorf("keys: key %s is not in the set", kid)
	}
	k, err := m.open(v.keys[i])
	if err != nil {
		return nil, err
	}
	m.private[kid] = k
	return k, nil
}

// open unseals and parses k's private key.
func (m *Manager) open(k fsm.SigningKey) (crypto.Signer, error) {
	pkcs8, err := m.cfg.Sealer.Open(k.ID, k.Alg, k.Sealed)
	if err != nil {
		if errors.Is(err, ErrUnsealable) {
			return nil, fmt.Errorf("%w (rotate the signing keys on a node that holds the current cluster key: tokend keys rotate)", err)
		}
		return nil, err
	}
	defer clear(pkcs8)
	return parsePrivate(k.ID, k.Alg, pkcs8)
}
