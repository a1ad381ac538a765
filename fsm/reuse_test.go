package fsm

import (
	"fmt"
	"testing"
)

// Refresh-token reuse (RFC 9700 §4.14.2) and the grace window. The window
// exists for one thing: a client that lost the response to a refresh
// retries with the token it still has. It must never let two parties both
// refresh one chain.

// TestRotateGraceRetryByThiefThenClientRevokes is the takeover the grace
// window used to allow: the client rotates r0 to r1, a thief replays r0
// within the window and gets its own pair, then the client presents r1.
// Two parties have used one chain, so the grant dies: the thief's pair and
// the client's tokens alike.
func TestRotateGraceRetryByThiefThenClientRevokes(t *testing.T) {
	e := newEnv(t)
	p0, r0 := e.issue("g", "c1", "t", "alice", "read", t0)
	client, thief := tokensFor("client1"), tokensFor("thief1")
	t1 := t0 + minute
	c := e.rotate(p0.refresh, "c1", "", t1, 10*sec, client)
	e.ok(&c)
	steal := e.rotate(p0.refresh, "c1", "", t1+2*sec, 10*sec, thief)
	e.ok(&steal)
	e.wantValid(t1+2*sec, thief.access, thief.refresh)
	e.wantInvalid(t1+2*sec, client.access, client.refresh)

	// The client presents r1, superseded by the thief's retry: reuse.
	back := e.rotate(client.refresh, "c1", "", t1+30*sec, 10*sec, tokensFor("client2"))
	r := e.expect(&back, Reused)
	if r.GrantID != r0.GrantID {
		t.Errorf("reuse reported grant %d, want %d", r.GrantID, r0.GrantID)
	}
	now := t1 + 2*minute
	e.wantInvalid(now, p0.access, p0.refresh, client.access, client.refresh, thief.access, thief.refresh,
		tokensFor("client2").access, tokensFor("client2").refresh)
	// The thief's refresh token no longer refreshes.
	more := e.rotate(thief.refresh, "c1", "", now, 10*sec, tokensFor("thief2"))
	e.expectNoChange(&more, NotFound)
	if _, ok := grantsOf(e.f)[r0.GrantID]; ok {
		t.Error("revoked grant kept")
	}
	checkInvariants(t, e.f)
}

// TestRotateRetryAfterSuccessorUsedRevokes: a grace retry may only replace
// a successor nobody has used. Once the retry's successor has itself been
// rotated, presenting the original token again, even within the window,
// is reuse.
func TestRotateRetryAfterSuccessorUsedRevokes(t *testing.T) {
	e := newEnv(t)
	p0, _ := e.issue("g", "c1", "t", "alice", "read", t0)
	p1, p1b, p2 := tokensFor("g1"), tokensFor("g1b"), tokensFor("g2")
	grace := hour
	c1 := e.rotate(p0.refresh, "c1", "", t0+sec, grace, p1)
	e.ok(&c1)
	retry := e.rotate(p0.refresh, "c1", "", t0+2*sec, grace, p1b) // lost response
	e.ok(&retry)
	c2 := e.rotate(p1b.refresh, "c1", "", t0+3*sec, grace, p2) // the successor is used
	e.ok(&c2)
	again := e.rotate(p0.refresh, "c1", "", t0+4*sec, grace, tokensFor("x"))
	e.expect(&again, Reused)
	e.wantInvalid(t0+4*sec, p0.access, p1b.access, p2.access, p2.refresh)
	checkInvariants(t, e.f)
}

// TestRotateRetryOutsideGraceRevokes: the most recently rotated-out token
// presented once the window has passed is reuse, not a retry.
func TestRotateRetryOutsideGraceRevokes(t *testing.T) {
	e := newEnv(t)
	p0, _ := e.issue("g", "c1", "t", "alice", "read", t0)
	p1 := tokensFor("g1")
	c1 := e.rotate(p0.refresh, "c1", "", t0+sec, 5*sec, p1)
	e.ok(&c1)
	late := e.rotate(p0.refresh, "c1", "", t0+sec+5*sec+1, 5*sec, tokensFor("late"))
	e.expect(&late, Reused)
	e.wantInvalid(t0+7*sec, p0.access, p1.access, p1.refresh)
	checkInvariants(t, e.f)
}

// TestRotateOrphanIsReuseEvenWithinGrace: the successor a retry superseded
// is never itself a retry, not even inside the window.
func TestRotateOrphanIsReuseEvenWithinGrace(t *testing.T) {
	e := newEnv(t)
	p0, _ := e.issue("g", "c1", "t", "alice", "read", t0)
	p1, p1b := tokensFor("g1"), tokensFor("g1b")
	c1 := e.rotate(p0.refresh, "c1", "", t0+sec, hour, p1)
	e.ok(&c1)
	retry := e.rotate(p0.refresh, "c1", "", t0+2*sec, hour, p1b)
	e.ok(&retry)
	orphan := e.rotate(p1.refresh, "c1", "", t0+3*sec, hour, tokensFor("x"))
	e.expect(&orphan, Reused)
	e.wantInvalid(t0+3*sec, p0.access, p1b.access, p1b.refresh)
	checkInvariants(t, e.f)
}

// retryWith rotates old at now with a successor that expires at exp.
func retryWith(old Hash, now, grace, exp int64, next pair) *RotateRefresh {
	return &RotateRefresh{Old: old, ClientID: "c1", Now: now, Grace: grace,
		Access: spec(next.access, now+accessL), Refresh: spec(next.refresh, exp)}
}

// TestRotateGraceRetriesBounded: a grant holds at most maxOrphans unexpired
// orphans; the retry that would make one more is reuse. Expired orphans no
// longer count, and the purge forgets them.
func TestRotateGraceRetriesBounded(t *testing.T) {
	e := newEnv(t)
	p0, _ := e.issue("g", "c1", "t", "alice", "read", t0)
	grace := hour
	// Successors that expire a minute after they are issued.
	e.ok(retryWith(p0.refresh, t0+sec, grace, t0+sec+minute, tokensFor("s0")))
	for i := 1; i <= maxOrphans; i++ {
		exp := t0 + sec + minute
		if i == maxOrphans { // the successor that stays
			exp = t0 + refresL
		}
		e.ok(retryWith(p0.refresh, t0+sec+int64(i), grace, exp, tokensFor(fmt.Sprint("s", i))))
	}
	if n := len(grantsOf(e.f)[e.grantOf(p0.access)].spent().orphans); n != maxOrphans {
		t.Fatalf("%d orphans, want %d", n, maxOrphans)
	}
	checkInvariants(t, e.f)
	// Once they expire they no longer count: use the last successor for a
	// long-lived pair, then retry that rotation.
	last := tokensFor(fmt.Sprint("s", maxOrphans))
	q := tokensFor("q")
	e.ok(retryWith(last.refresh, t0+sec+minute-1, grace, t0+refresL, q))
	later := t0 + 2*minute
	e.ok(retryWith(last.refresh, later, grace, later+refresL, tokensFor("q2")))
	e.wantValid(later, tokensFor("q2").refresh)
	e.ok(&Purge{Now: later})
	g := grantsOf(e.f)[e.grantOf(tokensFor("q2").access)]
	if n := len(g.spent().orphans); n != 1 {
		t.Errorf("after the purge the grant holds %d orphans, want 1 (q)", n)
	}
	checkInvariants(t, e.f)

	// A fresh grant: maxOrphans retries pass, the next one is reuse.
	e2 := newEnv(t)
	r0, _ := e2.issue("h", "c1", "t", "alice", "read", t0)
	e2.ok(retryWith(r0.refresh, t0+sec, grace, t0+refresL, tokensFor("h0")))
	for i := 1; i <= maxOrphans; i++ {
		e2.ok(retryWith(r0.refresh, t0+sec+int64(i), grace, t0+refresL, tokensFor(fmt.Sprint("h", i))))
	}
	e2.expect(retryWith(r0.refresh, t0+2*sec, grace, t0+refresL, tokensFor("h-extra")), Reused)
	e2.wantInvalid(t0+2*sec, r0.access, tokensFor(fmt.Sprint("h", maxOrphans)).refresh)
	checkInvariants(t, e2.f)
}

// TestRotateRetiredBounded: a long chain keeps at most maxRetired tokens
// rotated out by their own use. A retired token still kept revokes the
// grant when presented; a forgotten one finds nothing (and issues nothing).
func TestRotateRetiredBounded(t *testing.T) {
	e := newEnv(t)
	p, _ := e.issue("g", "c1", "t", "alice", "read", t0)
	chain := []pair{p}
	const n = maxRetired + 10
	for i := 1; i <= n; i++ {
		next := tokensFor(fmt.Sprint("chain", i))
		c := e.rotate(chain[i-1].refresh, "c1", "", t0+int64(i)*sec, 0, next)
		e.ok(&c)
		chain = append(chain, next)
		checkInvariants(t, e.f)
	}
	g := grantsOf(e.f)[e.grantOf(p.access)]
	if len(g.spent().retired) != maxRetired {
		t.Fatalf("%d retired kept, want %d", len(g.spent().retired), maxRetired)
	}
	now := t0 + (n+1)*sec
	for i := 0; i < n-maxRetired; i++ {
		if e.present(chain[i].refresh) {
			t.Errorf("retired token %d of %d still in the index", i, n)
		}
	}
	forgotten := e.rotate(chain[0].refresh, "c1", "", now, 0, tokensFor("x"))
	e.expectNoChange(&forgotten, NotFound)
	kept := e.rotate(chain[n-maxRetired].refresh, "c1", "", now, 0, tokensFor("y"))
	e.expect(&kept, Reused)
	e.wantInvalid(now, chain[n].access, chain[n].refresh)
	checkInvariants(t, e.f)
}

// TestRotateEvictionNeverDropsPrev: with skewed clocks the most recently
// rotated-out token need not be the one issued last; eviction, which goes
// by issue time, must still keep it, since a grace retry presents it.
func TestRotateEvictionNeverDropsPrev(t *testing.T) {
	e := newEnv(t)
	p, _ := e.issue("g", "c1", "t", "alice", "read", t0)
	cur := p
	for i := 1; i <= maxRetired; i++ {
		next := tokensFor(fmt.Sprint("chain", i))
		c := e.rotate(cur.refresh, "c1", "", t0+hour+int64(i)*sec, 0, next)
		e.ok(&c)
		cur = next
	}
	// The next rotation is proposed by a node whose clock is an hour
	// behind: the token it issues is the oldest by issue time.
	back := tokensFor("back")
	c := e.rotate(cur.refresh, "c1", "", t0+sec, 0, back)
	e.ok(&c)
	skewed := tokensFor("skewed")
	c = e.rotate(back.refresh, "c1", "", t0+2*sec, minute, skewed)
	e.ok(&c)
	if !e.present(back.refresh) {
		t.Fatal("eviction dropped the most recently rotated-out token")
	}
	retry := e.rotate(back.refresh, "c1", "", t0+3*sec, minute, tokensFor("retry"))
	e.ok(&retry)
	checkInvariants(t, e.f)
}

// TestRotateSpentSurvivesSnapshot: a replica that restored a snapshot holds
// the same superseded tokens and lists as one that applied the log, and
// keeps deciding the same way, eviction included.
func TestRotateSpentSurvivesSnapshot(t *testing.T) {
	e := newEnv(t)
	p, _ := e.issue("g", "c1", "t", "alice", "read", t0)
	cur := p
	step := func(f *FSM, idx uint64, i int, now int64) Result {
		next := tokensFor(fmt.Sprint("s", i))
		c := e.rotate(cur.refresh, "c1", "", now, 3*minute, next)
		if i%10 == 0 { // a lost response: retry the previous token
			c = e.rotate(tokensFor(fmt.Sprint("s", i-2)).refresh, "c1", "", now, 3*minute, next)
		}
		return f.Apply(idx, Encode(&c))
	}
	// Clocks jitter: issue times are not in rotation order.
	nowOf := func(i int) int64 { return t0 + int64(i)*minute + int64((i*7)%5)*20*sec }
	for i := 1; i <= 25; i++ {
		e.idx++
		if r := step(e.f, e.idx, i, nowOf(i)); r.Outcome != OK {
			t.Fatalf("step %d: %v", i, r.Err())
		}
		cur = tokensFor(fmt.Sprint("s", i))
	}
	b := roundTrip(t, e.f)
	for i := 26; i <= 60; i++ {
		e.idx++
		ra, rb := step(e.f, e.idx, i, nowOf(i)), step(b, e.idx, i, nowOf(i))
		if ra != rb || ra.Outcome != OK {
			t.Fatalf("step %d: %+v vs restored %+v", i, ra, rb)
		}
		cur = tokensFor(fmt.Sprint("s", i))
	}
	sameState(t, e.f, b)
	checkInvariants(t, e.f)
	// An orphan from before the snapshot revokes on both.
	orphan := e.rotate(tokensFor("s19").refresh, "c1", "", nowOf(61), 3*minute, tokensFor("z"))
	e.idx++
	ra, rb := e.f.Apply(e.idx, Encode(&orphan)), b.Apply(e.idx, Encode(&orphan))
	if ra.Outcome != Reused || ra != rb {
		t.Fatalf("orphan: %+v vs restored %+v", ra, rb)
	}
	sameState(t, e.f, b)
}

// grantOf returns the id of the grant holding token h.
func (e *env) grantOf(h Hash) uint64 {
	e.t.Helper()
	r, ok := e.f.tokens.get(keyOf(h))
	if !ok {
		e.t.Fatalf("token %x… not in the index", h[:4])
	}
	return r.grant.id
}

// TestRedeemCodeReplayAfterExpiryRevokes: a redeemed code replayed after
// the code itself expired still revokes what its first redemption issued
// (RFC 6749 §4.1.2); only the expiry check used to run first.
func TestRedeemCodeReplayAfterExpiryRevokes(t *testing.T) {
	e := newEnv(t)
	code, ir := codeGrant(e, "g", "c1", "https://app/cb", "", t0)
	p1 := tokensFor("p1")
	e.ok(redeem(code, "c1", "https://app/cb", "", t0+sec, p1))
	late := t0 + codeL + 10*minute
	e.wantValid(late, p1.access, p1.refresh)
	r := e.expect(redeem(code, "c1", "https://app/cb", "", late, tokensFor("p2")), Reused)
	if r.GrantID != ir.GrantID {
		t.Errorf("reuse reported grant %d, want %d", r.GrantID, ir.GrantID)
	}
	e.wantInvalid(late, p1.access, p1.refresh, tokensFor("p2").access, tokensFor("p2").refresh)
	checkInvariants(t, e.f)
}

// TestRedeemedCodeKeptWhileGrantLives: a redeemed code stays in the index
// past its own expiry for as long as its grant holds any other token, so a
// replay long after (even once the chain has rotated past the first
// refresh token's lifetime) still revokes; the purge drops it with the
// grant's last other token.
func TestRedeemedCodeKeptWhileGrantLives(t *testing.T) {
	e := newEnv(t)
	code, ir := codeGrant(e, "g", "c1", "u", "", t0)
	p1 := tokensFor("p1")
	e.ok(redeem(code, "c1", "u", "", t0+sec, p1))
	e.ok(&Purge{Now: t0 + codeL + minute})
	if !e.present(code) {
		t.Fatal("redeemed code purged at its own expiry")
	}
	e.wantInvalid(t0+2*sec, code) // never valid again as a token
	// Rotate just before the first refresh token expires; purge after.
	p2 := tokensFor("p2")
	rot := t0 + refresL - minute
	c := e.rotate(p1.refresh, "c1", "", rot, 0, p2)
	e.ok(&c)
	e.ok(&Purge{Now: t0 + refresL + minute})
	if !e.present(code) || e.present(p1.refresh) || e.present(p1.access) {
		t.Fatal("purge kept the wrong tokens")
	}
	checkInvariants(t, e.f)
	late := t0 + refresL + 2*minute
	e.wantValid(late, p2.refresh)
	r := e.expect(redeem(code, "c1", "u", "", late, tokensFor("p3")), Reused)
	if r.GrantID != ir.GrantID {
		t.Errorf("reuse reported grant %d", r.GrantID)
	}
	e.wantInvalid(late, p2.access, p2.refresh)
	checkInvariants(t, e.f)

	// Another grant: once everything it issued has expired, the purge
	// drops the redeemed code and the grant with it.
	code2, ir2 := codeGrant(e, "h", "c1", "u", "", t0)
	q := tokensFor("q1")
	e.ok(redeem(code2, "c1", "u", "", t0+sec, q))
	e.ok(&Purge{Now: t0 + sec + accessL})
	if !e.present(code2) || !e.present(q.refresh) {
		t.Fatal("purged too early")
	}
	r = e.ok(&Purge{Now: t0 + sec + refresL})
	if e.present(code2) || e.present(q.refresh) {
		t.Error("redeemed code or refresh token kept after the grant's last token expired")
	}
	if _, ok := grantsOf(e.f)[ir2.GrantID]; ok {
		t.Error("grant with only a redeemed code left kept")
	}
	if r.Count != 2 {
		t.Errorf("purge count %d, want 2 (the refresh token and the code)", r.Count)
	}
	e.expectNoChange(redeem(code2, "c1", "u", "", t0+sec+refresL, tokensFor("q2")), NotFound)
	checkInvariants(t, e.f)
}

// TestRedeemCodeExpiredBeforeRedemption: expiry still refuses a code that
// was never redeemed, whoever presents it, and changes nothing.
func TestRedeemCodeExpiredBeforeRedemption(t *testing.T) {
	e := newEnv(t)
	code, _ := codeGrant(e, "g", "c1", "u", "", t0)
	e.expectNoChange(redeem(code, "c1", "u", "", t0+codeL, tokensFor("x")), NotFound)
	e.expectNoChange(redeem(code, "c2", "u", "", t0+codeL, tokensFor("x")), NotFound)
	// A redemption that issues nothing keeps the code's own expiry.
	code2, _ := codeGrant(e, "h", "c1", "u", "", t0)
	e.ok(&RedeemCode{Code: code2, ClientID: "c1", RedirectURI: "u", Now: t0 + sec})
	e.ok(&Purge{Now: t0 + codeL})
	if e.present(code2) {
		t.Error("a redeemed code that issued nothing outlived its expiry")
	}
	checkInvariants(t, e.f)
}
