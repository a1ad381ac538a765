package fsm

import (
	"cmp"
	"maps"
	"slices"
	"strings"
)

// The read path: lookups and listings that run concurrently with Apply.

// Lookup returns the token with hash h if it is usable at now (unix
// nanoseconds): present, of a grant that is not revoked, not expired, and
// not a rotated-out refresh token or redeemed code. It takes one shard read
// lock and allocates nothing.
func (f *FSM) Lookup(h Hash, now int64) (Token, bool) { return f.lookupKey(keyOf(h), now) }

func (f *FSM) lookupKey(k key, now int64) (Token, bool) {
	r, ok := f.tokens.get(k)
	if !ok || r.state != stateActive || now >= r.expiresAt || r.grant.revoked.Load() {
		return Token{}, false
	}
	return tokenOf(&r), true
}

// Holder returns the token with hash h whatever its state or expiry, as
// long as its grant is not revoked: a rotated-out refresh token or a
// redeemed code is found too. It tells a node who holds what a client
// presents before the command that judges it (redeem, rotate) is written,
// e.g. to sign a JWT access token for that subject; it decides nothing.
func (f *FSM) Holder(h Hash) (Token, bool) {
	r, ok := f.tokens.get(keyOf(h))
	if !ok || r.grant.revoked.Load() {
		return Token{}, false
	}
	return tokenOf(&r), true
}

// tokenOf is what a read hands out for the record r.
func tokenOf(r *record) Token {
	g := r.grant
	t := Token{
		Kind:      r.kind,
		GrantID:   g.id,
		ClientID:  g.clientID(),
		Tenant:    g.tenant,
		Username:  g.username,
		Scope:     r.scopeOf(),
		IssuedAt:  r.issuedAt,
		ExpiresAt: r.expiresAt,
	}
	if g.code != nil && g.code.signIn != nil {
		t.Nonce, t.AuthTime = g.code.signIn.nonce, g.code.signIn.authTime
	}
	return t
}

// Client returns the client with the given id. The result must not be
// modified.
func (f *FSM) Client(id string) (*Client, bool) {
	f.mu.RLock()
	c, ok := f.clients[id]
	f.mu.RUnlock()
	return c, ok
}

// User returns a user. The result must not be modified.
func (f *FSM) User(tenant, username string) (*User, bool) {
	f.mu.RLock()
	u, ok := f.users[userKey{tenant, username}]
	f.mu.RUnlock()
	return u, ok
}

// Clients returns every client, ordered by id.
func (f *FSM) Clients() []*Client {
	f.mu.RLock()
	out := slices.AppendSeq(make([]*Client, 0, len(f.clients)), maps.Values(f.clients))
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Client) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Users returns every user, ordered by tenant and name.
func (f *FSM) Users() []*User {
	f.mu.RLock()
	out := slices.AppendSeq(make([]*User, 0, len(f.users)), maps.Values(f.users))
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b *User) int {
		return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Username, b.Username))
	})
	return out
}

// IssueCount returns how many access tokens the subject (tenant/username,
// or a client id) has been issued and when the last one was.
func (f *FSM) IssueCount(subject string) (count uint64, last int64) {
	f.mu.RLock()
	c := f.counters[subject]
	f.mu.RUnlock()
	return c.count, c.last
}

// LiveTokens is the number of tokens and codes held in memory (including
// superseded refresh tokens and redeemed codes kept for reuse detection).
func (f *FSM) LiveTokens() int { return f.tokens.len() }

// LiveGrants is the number of grants held in memory: those with a token or
// code left that neither expired (and was purged) nor was revoked.
func (f *FSM) LiveGrants() int { return int(f.nGrants.Load()) }

// ClientCount and UserCount are the numbers of registered clients and
// users.
func (f *FSM) ClientCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.clients)
}

func (f *FSM) UserCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.users)
}

// PurgedTokens is the number of tokens and codes this process dropped in
// purges (expired ones, and redeemed codes whose grant held nothing else),
// counting purges replayed from the log at start-up.
func (f *FSM) PurgedTokens() uint64 { return f.purged.Load() }

// ScopeSubset reports whether every space-separated scope in want is in
// have. It allocates nothing, since /validate calls it per request.
func ScopeSubset(want, have string) bool {
	for want != "" {
		var s string
		s, want, _ = strings.Cut(want, " ")
		if s != "" && !hasScope(have, s) {
			return false
		}
	}
	return true
}

func hasScope(have, s string) bool {
	for have != "" {
		var h string
		h, have, _ = strings.Cut(have, " ")
		if h == s {
			return true
		}
	}
	return false
}
