// Package keys holds tokend's JWT signing keys: it generates them, keeps
// them in the replicated state sealed, signs ID tokens and JWT access
// tokens with them, publishes their public halves as a JSON Web Key Set and
// verifies tokens against that set. *Manager implements httpapi.Signer and
// httpapi.KeyAdmin.
//
// # The key set
//
// The whole set is one fsm value (fsm.SigningKeys), replaced atomically
// by fsm.PutSigningKeys when its generation still equals the one the
// proposer read (compare and swap through the Raft log), so every node
// signs with the same keys and two nodes that change the set at once
// resolve exactly once: the loser reads the winner's set and retries or
// uses it. Per configured algorithm the set holds one current key, which
// signs, and one next key, which is already published in the JWKS but does
// not sign yet, plus retired keys, which only verify. The first Sign on an
// empty set proposes it (IfGeneration 0).
//
// Rotation (Manager.Rotate, POST /admin/keys/rotate, tokend keys rotate)
// turns next into current, current into retired and adds a fresh next.
// Relying parties that cached the JWKS since the previous rotation
// already hold the new current key. A retired key stays in the JWKS until
// RemoveAt = retirement + RetireAfter, the longest lifetime of anything it
// signed, so every token it signed has expired by the time fsm.Purge drops
// it. A retired key never signs again: its opened private key leaves this
// process's cache at retirement (the sealed copy stays with the entry
// until the purge).
//
// # Private keys
//
// Private keys exist in the clear only in this process's memory (cached by
// key ID after the first use). In the replicated state, and so in the Raft
// log and snapshots, each is PKCS#8 DER sealed with AES-256-GCM
// (seal.go) under a key derived with HKDF-SHA256 from the cluster key; a
// node without a cluster key uses a 32-byte key file of its own in its data
// directory (keyfile.go). Opening tries the accepted keys of a cluster-key
// rotation too, and a rotation of the signing keys seals every key it keeps
// under the primary cluster key, so rotating signing keys after every node
// has the new cluster key leaves nothing that needs the old one. Private
// keys, sealed or not, never appear in errors or logs, and the admin API
// lists only IDs, algorithms, states and times.
//
// # Verification
//
// Verify accepts only the algorithms of keys in the set (never "none" or
// an HMAC: a token "signed" with the public key as an HMAC secret does
// not parse), requires a kid naming a key of the set whose algorithm is
// the header's, and checks the typ header, so an ID token ("JWT") is never
// taken for an access token ("at+jwt").
package keys
