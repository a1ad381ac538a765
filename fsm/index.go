package fsm

import (
	"sync"
	"sync/atomic"
)

const shardCount = 256

// record is one token in the index. It is a small value (no per-token
// allocation) so a million tokens cost a million map slots and little else.
type record struct {
	grant *grant
	// scope is nil when the token carries its grant's scope; only access
	// tokens issued by a narrowing refresh point at their own.
	scope     *string
	issuedAt  int64
	expiresAt int64
	kind      Kind
	state     recState
}

// scopeOf is the token's effective scope.
func (r *record) scopeOf() string {
	if r.scope != nil {
		return *r.scope
	}
	return r.grant.scope
}

type recState uint8

const (
	stateActive recState = iota
	// stateRotated: a refresh token that has been traded for a successor.
	stateRotated
	// stateRedeemed: an authorization code that has been exchanged.
	stateRedeemed
)

// grant is one authorization. Everything a reader or a snapshot touches is
// either immutable after creation or atomic: revoked is a flag readers
// check, and rot is replaced (never modified) on each rotation, so a
// snapshot can hold the pointer it saw. tokens belongs to the apply
// goroutine alone. State that only some grants need (a code binding, a
// refresh chain) hangs off pointers so the common grant stays small.
type grant struct {
	id                                uint64
	clientID, tenant, username, scope string
	issuedAt                          int64
	code                              *codeBinding // nil unless issued with a code
	revoked                           atomic.Bool
	rot                               atomic.Pointer[rotation] // nil until the first refresh
	tokens                            []Hash                   // every token of the grant still in the index
}

// codeBinding is what redeeming a grant's authorization code must match.
type codeBinding struct{ redirectURI, challenge string }

// rotation is a grant's refresh chain after its first refresh: the live
// refresh token and the access token issued with it, and the most recently
// rotated-out refresh token with the time it was rotated.
type rotation struct {
	cur, curAccess, prev Hash
	rotatedAt            int64
}

type shard struct {
	mu sync.RWMutex
	m  map[Hash]record
}

type index struct {
	shards [shardCount]shard
}

func newIndex() *index {
	ix := &index{}
	for i := range ix.shards {
		ix.shards[i].m = make(map[Hash]record)
	}
	return ix
}

func (ix *index) shard(h Hash) *shard { return &ix.shards[h[0]] }

func (ix *index) get(h Hash) (record, bool) {
	s := ix.shard(h)
	s.mu.RLock()
	r, ok := s.m[h]
	s.mu.RUnlock()
	return r, ok
}

func (ix *index) put(h Hash, r record) {
	s := ix.shard(h)
	s.mu.Lock()
	s.m[h] = r
	s.mu.Unlock()
}

// del removes h and reports whether it was there.
func (ix *index) del(h Hash) bool {
	s := ix.shard(h)
	s.mu.Lock()
	_, ok := s.m[h]
	delete(s.m, h)
	s.mu.Unlock()
	return ok
}

func (ix *index) len() int {
	n := 0
	for i := range ix.shards {
		s := &ix.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
