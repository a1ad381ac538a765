// Package fsm holds tokend's replicated state: the commands that change it,
// their binary encoding, the deterministic Apply that every replica runs in
// log order, point-in-time snapshots, and the in-memory indexes that the read
// path (token validation, introspection, client and user lookups) uses.
//
// The package knows nothing about Raft or HTTP. A consensus layer hands it
// committed entries in order through Apply and asks it for snapshots; the
// HTTP layer builds commands with the constructors here and reads through
// Lookup, Client and User.
//
// Invariants:
//
//   - Only SHA-256 hashes of tokens and client secrets are ever held here, so
//     they are all the log, snapshots and memory can leak. User passwords
//     arrive already hashed with a slow password hash.
//   - Apply is deterministic. Every decision that depends on time uses the
//     timestamp written into the command by the node that created it, never
//     the applying node's clock, so all replicas reach the same state.
//   - Apply never fails half way. Conditional commands (rotate a refresh
//     token, redeem a code) decide inside Apply and report their outcome in
//     the Result, so two concurrent requests resolve exactly once.
//   - A grant ties together everything one authorization produced: its code,
//     access tokens and refresh token chain. Revoking any token revokes the
//     grant, which removes all its tokens at once.
//
// Reads are the hot path. Tokens live in 256 shards keyed by the first byte
// of their hash, each a map of small value records behind its own RWMutex,
// so a lookup takes one uncontended read lock and allocates nothing. Strings
// that many records share (client id, subject, scope) are interned by Apply.
// A record points at its grant; the grant's revoked flag is atomic so a
// revocation is visible to readers the moment Apply sets it.
package fsm
