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
// # Refresh rotation, reuse and the grace window
//
// Every refresh trades the presented refresh token for a new pair; the old
// token is superseded, not forgotten. Presenting a superseded token means
// two parties hold one chain (RFC 9700 §4.14.2), and the server cannot tell
// which is the legitimate client, so it revokes the whole grant: every
// access and refresh token it issued.
//
// The grace window (RotateRefresh.Grace, --refresh-grace) exists for one
// case only: a lost response. The client presented r0, the server rotated it
// to r1, and the response carrying r1 never arrived, so the client retries
// with r0. Within the window, while r1 has never been used, that retry gets
// a fresh pair r1'; the access token issued with r1 is dropped and r1
// becomes an orphan, superseded like any other. The window never allows:
//
//   - two parties both refreshing: presenting r1 after the retry replaced
//     it is reuse, so if the "retry" was a thief replaying a copied r0, the
//     client coming back with r1 revokes the grant and the thief's r1' dies
//     with it;
//   - a superseded token outside the window, or any but the most recently
//     rotated-out one (r0 after r1 was used to refresh);
//   - a retry after the successor was used: once r1 has been rotated, r0 is
//     no longer the most recent, so presenting it is reuse;
//   - unbounded retries: a grant holds at most maxOrphans (8) unexpired
//     orphans, and a retry that would make one more is reuse.
//
// A client that sends two refreshes with the same token at once looks to
// the server exactly like a client and a thief: whichever response it keeps
// last decides, and if that is the orphan, using it revokes the grant.
//
// Superseded refresh tokens stay in the index (state rotated or orphaned,
// pointing at their grant) until they expire, so presenting one finds its
// grant. The grant lists them (spent, ordered by issue time and key so a
// restored replica rebuilds the same lists from the records); it keeps at
// most maxRetired (32) tokens rotated out by their own use, forgetting the
// oldest first (presenting a forgotten one finds nothing and issues
// nothing, it just no longer revokes). Orphans are never forgotten early.
//
// # Authorization codes
//
// A code is redeemed once. Presenting a redeemed code again, at any time,
// revokes everything its grant issued (RFC 6749 §4.1.2): the redeemed code
// is kept, past its own expiry, for as long as its grant holds any other
// token, and the redeemed check runs before the expiry check.
//
// # OpenID Connect state
//
// A grant that came from an OpenID sign-in keeps its nonce and auth_time
// behind the code-binding pointer every grant already has (nil for plain
// grants), so its code redemption and refreshes mint ID tokens with them
// and client_credentials grants pay nothing. Beside the users and clients,
// under the same lock, live the consents a user gave a client
// (consent.go), the sign-in sessions by the hash of their cookie
// (session.go) and the signing-key set (keys.go). Deleting a user ends
// their sessions and forgets their consents; deleting a client forgets the
// consents given to it. The key set is replaced whole, conditional on its
// generation: two nodes rotating at once cannot both win, and the loser
// reads the winner's set. Private keys enter the state only sealed. Purge
// drops expired sessions and retired keys past their RemoveAt.
//
// Reads are the hot path. Tokens live in 256 shards keyed by the first byte
// of their hash, each a flat table of small value records behind its own
// RWMutex, so a lookup takes one uncontended read lock and allocates
// nothing. Strings that many records share (client id, tenant, user,
// scope) are interned by Apply. A record points at its grant; the grant's revoked flag
// is atomic so a revocation is visible to readers the moment Apply sets it.
//
// # Memory layout
//
// Every node holds every token, so bytes per token decide how many tokens a
// node can hold. Three costs dominated: Go maps of records run about half
// full after they grow, a snapshot cloned them while it streamed, and the
// GC lets the heap reach twice the live state. Hence:
//
//   - A shard's records are one []slot of 40 bytes (table.go): the 16-byte
//     key, the grant pointer, issuedAt, and one word packing the lifetime
//     (expiresAt-issuedAt, 56 bits) with kind and state. The rare record
//     that does not fit (a narrowed scope, a lifetime past 2^56 ns or
//     negative) sets a flag and keeps those fields in the table's side
//     map, so packing loses nothing and images round-trip exactly.
//     Open addressing with Robin Hood linear probing: a lookup reads a run
//     of adjacent slots, and a miss stops as soon as it meets an entry
//     nearer its home than the key would be, so misses cost about what
//     hits do. Deletion shifts the run back (no tombstones to accumulate).
//     Keys are uniformly random, so the home slot is fastrange of key
//     bytes 1..8 (byte 0 chose the shard) and the size need not be a power
//     of two: a table grows by half at 80 % full and runs 53-80 % full,
//     and shrinks when a purge leaves it a quarter full. Growth rehashes
//     one shard under its write lock: 1/256 of the index, a millisecond at
//     10 M tokens, and only readers of that shard wait.
//   - A grant fits Go's 144-byte size class: client id and scope are
//     interned pointers (a few hundred distinct values, always in cache),
//     rotation and spent lists hang off one pointer that most grants never
//     set, and the token list is allocated at its exact size. Tenant and
//     user name stay inline string headers: moving them to a shared entry
//     saved 8 bytes per token but cost every lookup a cache miss (about
//     15 % of a prehashed lookup at 1 M tokens). There is no map of
//     grants by id: the client lists reach every grant, and only a restore
//     needs ids, in a map it drops when done.
//   - A snapshot copies no table. It takes a reference on each shard's
//     table (table.shared); while one is held the table is immutable, and
//     Apply records its changes to that shard in an overlay map, which
//     readers consult first. After Release the shard's next change folds
//     the overlay back. The overlay costs what was changed during the
//     stream (a token issued and revoked meanwhile leaves nothing), not
//     the size of the state. A snapshot taken while an overlay exists
//     folds it in first (into a copy, if an earlier snapshot still reads
//     the table), so every image is one immutable table per shard. A snapshot that is never released must not make overlays
//     grow without bound: past a quarter of the table's slots the shard
//     copies its table instead (plain copy-on-write), which costs at most
//     one copy of the index per unreleased snapshot.
//   - The grant pointer keeps the GC in charge of grant lifetime: a grant
//     revoked after a snapshot was taken stays valid for that snapshot's
//     writer as long as its table references it. A pointer-free slot (a
//     grant index into a slab) would hide the tables from the GC's scan
//     but need its own reclamation protocol against readers and writers;
//     the GC scans one word in five per slot, and what remains is the
//     collector's headroom, which tokend serve --memory-limit
//     (GOMEMLIMIT) trades for GC work.
//
// Invariant: the apply goroutine is the only writer of a shard's table,
// overlay and count, always under the shard's write lock; a table whose
// shared count is above zero is never written.
package fsm
