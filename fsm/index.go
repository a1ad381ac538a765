package fsm

import (
	"bytes"
	"cmp"
	"sync/atomic"
)

const shardCount = 256

// record is one token in the index, as get hands it out; a table packs it
// into a 40-byte slot (table.go).
type record struct {
	grant *grant
	// scope is nil when the token carries its grant's scope; only access
	// tokens issued by a narrowing refresh point at their own.
	scope    *string
	issuedAt int64
	// expiresAt is when the token stops being valid and the purge drops
	// it; a redeemed code that issued tokens has keepRedeemed instead.
	expiresAt int64
	kind      Kind
	state     recState
}

// scopeOf is the token's effective scope.
func (r *record) scopeOf() string {
	if r.scope != nil {
		return *r.scope
	}
	return *r.grant.scope
}

type recState uint8

const (
	stateActive recState = iota
	// stateRotated: a refresh token that has been traded for a successor.
	stateRotated
	// stateRedeemed: an authorization code that has been exchanged; kept
	// while its grant holds other tokens, so a replay can revoke them.
	stateRedeemed
	// stateOrphaned: a refresh token that a grace retry of its
	// predecessor superseded before it was ever used.
	stateOrphaned
)

// grant is one authorization. Everything a reader touches is immutable
// after creation or atomic: revoked is a flag readers check. A snapshot
// reads the immutable fields, and copies the rotation pointer (replaced,
// never modified, on each rotation) when it is taken. The rest belongs to
// the apply goroutine alone. State that only some grants need (a code
// binding, a refresh chain) hangs off pointers, and strings shared by all
// grants of a client or a scope are shared pointers, so the common grant
// fits Go's 144-byte size class (doc.go, "Memory layout"). Tenant and user
// name stay inline: a lookup copies them, and one more pointer to follow
// would be one more cache miss on the hot path.
type grant struct {
	id               uint64
	client           *string // interned (FSM.internPtr)
	tenant, username string  // interned
	scope            *string // interned
	issuedAt         int64
	code             *codeBinding // nil unless issued with a code
	revoked          atomic.Bool
	snapMark         atomic.Uint32 // snapshot.go: WriteTo's marks

	// Apply goroutine only:
	chain  *chain // nil until the first refresh
	tokens []key  // every token of the grant still in the index
	// Links in the lists of the client's and the user's grants (bulk
	// revocation). Intrusive lists cost two pointers per grant where a
	// set per user cost a whole small map.
	clientLink, userLink link
}

func (g *grant) clientID() string { return *g.client }

// chain is a grant's refresh state after its first refresh.
type chain struct {
	rot   *rotation // replaced, never modified: a snapshot keeps the one it saw
	spent spent
}

// rot is the grant's current rotation, nil before the first refresh.
func (g *grant) rot() *rotation {
	if g.chain == nil {
		return nil
	}
	return g.chain.rot
}

// spent is the grant's superseded refresh tokens, nil before the first
// refresh.
func (g *grant) spent() *spent {
	if g.chain == nil {
		return nil
	}
	return &g.chain.spent
}

// setRot records the grant's new rotation.
func (g *grant) setRot(r *rotation) {
	if g.chain == nil {
		g.chain = &chain{}
	}
	g.chain.rot = r
}

type link struct{ prev, next *grant }

// codeBinding is what the grant was bound to when it was authorized: what
// redeeming its authorization code must match, and the OpenID sign-in it
// came from (nil for any other grant). A grant has one when it was issued
// with a code or for a sign-in; an implicit OpenID grant has empty
// redirect URI and challenge and no code to redeem. Both are immutable.
// The sign-in hangs off its own pointer so the binding of a plain code
// grant stays in a small size class.
type codeBinding struct {
	redirectURI, challenge string
	signIn                 *signIn
}

// signIn is the OpenID Connect part of a grant: the request's nonce and
// when the user authenticated (unix seconds), for its ID tokens.
type signIn struct {
	nonce    string
	authTime int64
}

// rotation is a grant's refresh chain after its first refresh: the live
// refresh token and the access token issued with it, and the most recently
// rotated-out refresh token with the time it was rotated.
type rotation struct {
	cur, curAccess, prev key
	rotatedAt            int64
}

// spent lists a grant's superseded refresh tokens that are still in the
// index, so that presenting one can revoke the grant: retired ones were
// traded for a successor by their own use (stateRotated), orphans were
// superseded by a grace retry before anyone used them (stateOrphaned).
// Both lists are ordered by (issuedAt, key), which the records themselves
// hold, so a replica that restored a snapshot rebuilds exactly the lists of
// one that applied the log, and evicts the same tokens.
type spent struct {
	retired, orphans []spentKey
}

type spentKey struct {
	k                   key
	issuedAt, expiresAt int64
}

func (a spentKey) compare(b spentKey) int {
	if c := cmp.Compare(a.issuedAt, b.issuedAt); c != 0 {
		return c
	}
	return bytes.Compare(a.k[:], b.k[:])
}

// insertSpent adds s to list in order and returns the list.
func insertSpent(list []spentKey, s spentKey) []spentKey {
	i := len(list)
	for i > 0 && s.compare(list[i-1]) < 0 {
		i--
	}
	list = append(list, spentKey{})
	copy(list[i+1:], list[i:])
	list[i] = s
	return list
}

// removeSpent takes k out of list, keeping the order.
func removeSpent(list []spentKey, k key) []spentKey {
	for i := range list {
		if list[i].k == k {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// key names a token in the index: the first 128 bits of its SHA-256. Tokens
// are minted by the servers from crypto/rand, so nobody can aim for a
// collision, and guessing a key that matches one of n live tokens takes
// 2^128/n tries; halving the key saves 16 bytes in every map slot and grant
// token list. A command whose new key already exists is refused (fresh),
// so two tokens never share one.
type key [16]byte

func keyOf(h Hash) (k key) {
	copy(k[:], h[:len(k)])
	return k
}
