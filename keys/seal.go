package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sealing: every private signing key is stored in the replicated state only
// as PKCS#8 DER sealed with AES-256-GCM. The AES key is derived from the
// cluster key with HKDF-SHA256 under a salt and info of its own, so it is
// independent of every other key tokend derives from the cluster key (the
// internal CA, gossip), and the additional data binds the sealed bytes to
// the key ID and algorithm: a sealed key copied onto another entry of the
// set does not open.

const (
	sealVersion = 1
	sealSalt    = "tokend signing-key sealing salt v1"
	sealInfo    = "tokend: AES-256-GCM key sealing JWT signing keys (PKCS#8)"
	sealAAD     = "tokend signing key v1"
	nonceSize   = 12
)

// ErrUnsealable is returned when no key this node holds opens a sealed
// private key: it was sealed under a cluster key that is no longer
// accepted, or the bytes were changed.
var ErrUnsealable = errors.New("keys: sealed signing key does not open with any cluster key this node accepts")

// Sealer seals and opens private signing keys. The first secret seals;
// every secret is tried when opening, so keys sealed under a cluster key
// that is being rotated out keep opening while it is still accepted.
type Sealer struct {
	aeads []cipher.AEAD
}

// NewSealer derives the sealing keys from primary (the cluster key, or a
// dev node's key file) and the further accepted keys.
func NewSealer(primary []byte, accept ...[]byte) (*Sealer, error) {
	if len(primary) < 16 {
		return nil, fmt.Errorf("keys: sealing secret must be at least 16 bytes, got %d", len(primary))
	}
	s := &Sealer{}
	for i, secret := range append([][]byte{primary}, accept...) {
		if len(secret) < 16 {
			return nil, fmt.Errorf("keys: accepted sealing secret %d must be at least 16 bytes, got %d", i, len(secret))
		}
		key, err := hkdf.Key(sha256.New, secret, []byte(sealSalt), sealInfo, 32)
		if err != nil {
			return nil, fmt.Errorf("keys: derive sealing key: %w", err)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("keys: sealing cipher: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("keys: sealing cipher: %w", err)
		}
		s.aeads = append(s.aeads, aead)
	}
	return s, nil
}

// additionalData binds a sealed key to its ID and algorithm, each length
// prefixed so no two (kid, alg) pairs give the same bytes.
func additionalData(kid, alg string) []byte {
	b := append([]byte(sealAAD), 0)
	b = binary.AppendUvarint(b, uint64(len(alg)))
	b = append(b, alg...)
	b = binary.AppendUvarint(b, uint64(len(kid)))
	return append(b, kid...)
}

// Seal encrypts pkcs8 under the primary secret: version byte, random
// 96-bit nonce, ciphertext and tag.
func (s *Sealer) Seal(kid, alg string, pkcs8 []byte) ([]byte, error) {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(pkcs8)+s.aeads[0].Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("keys: sealing nonce: %w", err)
	}
	return s.aeads[0].Seal(out, out[1:1+nonceSize], pkcs8, additionalData(kid, alg)), nil
}

// Open decrypts what Seal wrote for the same kid and alg, trying the
// primary secret first and then the accepted ones.
func (s *Sealer) Open(kid, alg string, sealed []byte) ([]byte, error) {
	if len(sealed) < 1+nonceSize || sealed[0] != sealVersion {
		return nil, fmt.Errorf("keys: key %s: %w", kid, ErrUnsealable)
	}
	nonce, ct := sealed[1:1+nonceSize], sealed[1+nonceSize:]
	ad := additionalData(kid, alg)
	for _, aead := range s.aeads {
		if pt, err := aead.Open(nil, nonce, ct, ad); err == nil {
			return pt, nil
		}
	}
	return nil, fmt.Errorf("keys: key %s: %w", kid, ErrUnsealable)
}
