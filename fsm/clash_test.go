package fsm

import "testing"

// A command that would create a token whose hash is already in the index is
// refused whole: one hash must never belong to two grants.
func TestDuplicateHashRefused(t *testing.T) {
	e := newEnv(t)
	p, _ := e.issue("g1", "c1", "t", "alice", "read", t0)
	e.expectNoChange(&IssueGrant{ClientID: "c2", Scope: "read", IssuedAt: t0,
		Access: spec(p.access, t0+accessL)}, Exists)
	other := tokensFor("g2")
	e.expectNoChange(&IssueGrant{ClientID: "c2", Scope: "read", IssuedAt: t0,
		Access: spec(other.access, t0+accessL), Refresh: spec(other.access, t0+refresL)}, Exists)
	clash := e.rotate(p.refresh, "c1", "", t0+1, 0, pair{access: HashOf("fresh"), refresh: p.access})
	e.expectNoChange(&clash, Exists)
	e.wantValid(t0+2, p.access, p.refresh)
}

// Reuse of a rotated-out refresh token revokes the grant even when the
// replay also asks for a scope the grant never had.
func TestReuseJudgedBeforeScope(t *testing.T) {
	e := newEnv(t)
	p, _ := e.issue("g1", "c1", "t", "alice", "read", t0)
	next := tokensFor("g1-next")
	r := e.rotate(p.refresh, "c1", "", t0+1, 0, next)
	e.ok(&r)
	replay := e.rotate(p.refresh, "c1", "read admin", t0+2, 0, tokensFor("g1-replay"))
	e.expect(&replay, Reused)
	e.wantInvalid(t0+3, p.access, next.access, next.refresh)
}
