package fsm

import (
	"sync"
	"sync/atomic"
)

const shardCount = 256

// record is one token in the index. It is a small value (no pointer to a
// per-token allocation) so a million tokens cost a million map slots and
// nothing else.
type record struct {
	grant     *grant
	scope     string // interned; may be narrower than the grant's
	issuedAt  int64
	expiresAt int64
	kind      Kind
	state     recState
}

type recState uint8

const (
	stateActive recState = iota
	// stateRotated: a refresh token that has been traded for a successor.
	stateRotated
	// stateRedeemed: an authorization code that has been exchanged.
	stateRedeemed
)

// grant is one authorization. Its identity fields never change after
// creation; revoked is atomic because readers check it without the apply
// goroutine's cooperation. The remaining fields belong to the apply
// goroutine (and Snapshot, which raft never runs concurrently with Apply).
type grant struct {
	id                         uint64
	clientID, tenant, username string
	scope                      string
	redirectURI, codeChallenge string
	issuedAt                   int64
	revoked                    atomic.Bool

	tokens []Hash // every token of the grant still in the index
	// The refresh chain: the live refresh token and access token issued
	// with it, and the most recently rotated-out refresh token.
	curRefresh, curAccess, prevRefresh Hash
	rotatedAt                          int64
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
