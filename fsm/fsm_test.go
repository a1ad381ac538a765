package fsm

import (
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

const (
	t0      = int64(1_700_000_000) * int64(time.Second)
	sec     = int64(time.Second)
	minute  = 60 * sec
	hour    = 60 * minute
	accessL = 30 * minute
	refresL = 12 * hour
	codeL   = 60 * sec
)

// env applies commands to one FSM at increasing log indexes.
type env struct {
	t   testing.TB
	f   *FSM
	idx uint64
}

func newEnv(t testing.TB) *env {
	e := &env{t: t, f: New()}
	for _, id := range []string{"c1", "c2"} {
		e.ok(&PutClient{Client: Client{ID: id, Name: id, SecretHash: HashOf(id + "-secret"),
			GrantTypes: []string{"authorization_code", "refresh_token", "password", "client_credentials"},
			CreatedAt:  t0, UpdatedAt: t0}, Create: true})
	}
	for _, u := range [][2]string{{"t", "alice"}, {"t", "bob"}, {"t2", "alice"}} {
		e.ok(&PutUser{User: User{Tenant: u[0], Username: u[1], PasswordHash: "$argon2id$x", CreatedAt: t0}, Create: true})
	}
	return e
}

func (e *env) apply(c Command) Result {
	e.t.Helper()
	e.idx++
	r := e.f.Apply(e.idx, Encode(c))
	if r.Index != e.idx {
		e.t.Fatalf("%T: result index %d, want %d", c, r.Index, e.idx)
	}
	return r
}

func (e *env) ok(c Command) Result { e.t.Helper(); return e.expect(c, OK) }

func (e *env) expect(c Command, want Outcome) Result {
	e.t.Helper()
	r := e.apply(c)
	if r.Outcome != want {
		e.t.Fatalf("%T %+v: outcome %d (%v), want %d (%v)", c, c, r.Outcome, r.Err(), want, want.Err())
	}
	return r
}

// expectNoChange applies c, wants outcome o and checks the state is as before.
func (e *env) expectNoChange(c Command, o Outcome) Result {
	e.t.Helper()
	before := digest(e.f)
	r := e.expect(c, o)
	if after := digest(e.f); after != before {
		e.t.Fatalf("%T with outcome %d changed the state:\n%s", c, o, diffLines(before, after))
	}
	return r
}

// tokens of one grant, by name.
type pair struct{ access, refresh Hash }

func tokensFor(name string) pair {
	return pair{HashOf(name + "/access"), HashOf(name + "/refresh")}
}

func spec(h Hash, exp int64) TokenSpec { return TokenSpec{Hash: h, ExpiresAt: exp} }

// issue creates a grant with an access and a refresh token named name.
func (e *env) issue(name, client, tenant, user, scope string, at int64) (pair, Result) {
	e.t.Helper()
	p := tokensFor(name)
	r := e.ok(&IssueGrant{ClientID: client, Tenant: tenant, Username: user, Scope: scope, IssuedAt: at,
		Access: spec(p.access, at+accessL), Refresh: spec(p.refresh, at+refresL)})
	return p, r
}

func (e *env) rotate(old Hash, client, scope string, now, grace int64, next pair) RotateRefresh {
	return RotateRefresh{Old: old, ClientID: client, Scope: scope, Now: now, Grace: grace,
		Access: spec(next.access, now+accessL), Refresh: spec(next.refresh, now+refresL)}
}

func (e *env) valid(h Hash, now int64) bool { _, ok := e.f.Lookup(h, now); return ok }

func (e *env) wantValid(now int64, hs ...Hash) {
	e.t.Helper()
	for _, h := range hs {
		if !e.valid(h, now) {
			e.t.Errorf("token %x… invalid at %d, want valid", h[:4], now)
		}
	}
}

func (e *env) wantInvalid(now int64, hs ...Hash) {
	e.t.Helper()
	for _, h := range hs {
		if e.valid(h, now) {
			e.t.Errorf("token %x… valid at %d, want invalid", h[:4], now)
		}
	}
}

func (e *env) present(h Hash) bool { _, ok := e.f.tokens.get(keyOf(h)); return ok }

// digest renders the whole state (except the applied index) canonically, so
// two states compare with ==.
func digest(f *FSM) string {
	var lines []string
	for i := range f.tokens.shards {
		s := &f.tokens.shards[i]
		s.mu.RLock()
		for h, r := range s.records() {
			lines = append(lines, fmt.Sprintf("token %x grant=%d kind=%d state=%d scope=%q iat=%d exp=%d revoked=%v",
				h, r.grant.id, r.kind, r.state, r.scopeOf(), r.issuedAt, r.expiresAt, r.grant.revoked.Load()))
		}
		s.mu.RUnlock()
	}
	for id, g := range grantsOf(f) {
		toks := make([]string, len(g.tokens))
		for i, h := range g.tokens {
			toks[i] = fmt.Sprintf("%x", h[:6])
		}
		sort.Strings(toks)
		var code codeBinding
		if g.code != nil {
			code = *g.code
		}
		var rot rotation
		if r := g.rot(); r != nil {
			rot = *r
		}
		var sp spent
		if g.spent() != nil {
			sp = *g.spent()
		}
		var si signIn
		if code.signIn != nil {
			si = *code.signIn
		}
		lines = append(lines, fmt.Sprintf("grant %d id=%d %q %q %q %q %q %q bound=%v signIn=%v/%q/%d iat=%d cur=%x/%x prev=%x rot=%d revoked=%v tokens=%v retired=%v orphans=%v",
			id, g.id, g.clientID(), g.tenant, g.username, *g.scope, code.redirectURI, code.challenge, g.code != nil,
			code.signIn != nil, si.nonce, si.authTime, g.issuedAt,
			rot.cur[:6], rot.curAccess[:6], rot.prev[:6], rot.rotatedAt, g.revoked.Load(), toks, spentKeys(sp.retired), spentKeys(sp.orphans)))
	}
	for k, head := range f.byClient {
		lines = append(lines, fmt.Sprintf("byClient %q %v", k, listIDs(head, clientList)))
	}
	for k, head := range f.bySubject {
		lines = append(lines, fmt.Sprintf("bySubject %q/%q %v", k.tenant, k.username, listIDs(head, userList)))
	}
	f.mu.RLock()
	for k, c := range f.clients {
		lines = append(lines, fmt.Sprintf("client %q %#v", k, *c))
	}
	for k, u := range f.users {
		lines = append(lines, fmt.Sprintf("user %q/%q %#v", k.tenant, k.username, *u))
	}
	for k, c := range f.counters {
		lines = append(lines, fmt.Sprintf("counter %q %d %d", k, c.count, c.last))
	}
	lines = append(lines, digestOIDC(f)...)
	f.mu.RUnlock()
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// spentKeys renders a spent list in its order.
func spentKeys(list []spentKey) []string {
	var out []string
	for _, s := range list {
		out = append(out, fmt.Sprintf("%x@%d", s.k[:6], s.issuedAt))
	}
	return out
}

// listIDs lists the ids of a grant list, sorted, flagging broken back links.
func listIDs(head *grant, l func(*grant) *link) []uint64 {
	var ids []uint64
	var prev *grant
	for g := head; g != nil; g = l(g).next {
		if l(g).prev != prev {
			ids = append(ids, 1<<63|g.id) // flag a broken back link
		}
		ids = append(ids, g.id)
		prev = g
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// inList reports whether g is on the list starting at head.
func inList(head, g *grant, l func(*grant) *link) bool {
	for x := head; x != nil; x = l(x).next {
		if x == g {
			return true
		}
	}
	return false
}

func diffLines(a, b string) string {
	as, bs := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(a, "\n") {
		as[l] = true
	}
	for _, l := range strings.Split(b, "\n") {
		bs[l] = true
	}
	var out []string
	for l := range as {
		if !bs[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range bs {
		if !as[l] {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	if len(out) > 40 {
		out = append(out[:40], "…")
	}
	return strings.Join(out, "\n")
}

// checkInvariants verifies the indexes agree with each other.
func checkInvariants(t testing.TB, f *FSM) {
	t.Helper()
	n := 0
	for i := range f.tokens.shards {
		for h, r := range f.tokens.shards[i].records() {
			n++
			if h[0] != byte(i) {
				t.Errorf("token %x in shard %d", h[:4], i)
			}
			g := r.grant
			if g == nil || grantsOf(f)[g.id] != g {
				t.Errorf("token %x… refers to grant not in the table", h[:4])
				continue
			}
			if g.revoked.Load() {
				t.Errorf("token %x… of a revoked grant still indexed", h[:4])
			}
			found := false
			for _, x := range g.tokens {
				found = found || x == h
			}
			if !found {
				t.Errorf("token %x… missing from its grant's list", h[:4])
			}
		}
	}
	m := 0
	all := grantsOf(f)
	if got := f.LiveGrants(); got != len(all) {
		t.Errorf("LiveGrants %d, lists hold %d", got, len(all))
	}
	for id, g := range all {
		checkSpent(t, f, g)
		m += len(g.tokens)
		if len(g.tokens) == 0 {
			t.Errorf("grant %d has no tokens but is kept", id)
		}
		if !inList(f.byClient[g.clientID()], g, clientList) {
			t.Errorf("grant %d missing from byClient", id)
		}
		if g.username != "" && !inList(f.bySubject[userKey{g.tenant, g.username}], g, userList) {
			t.Errorf("grant %d missing from bySubject", id)
		}
	}
	if m != n {
		t.Errorf("grants list %d tokens, index holds %d", m, n)
	}
	for k, head := range f.byClient {
		for _, id := range listIDs(head, clientList) {
			if g := all[id]; g == nil || g.clientID() != k {
				t.Errorf("byClient %q holds grant %d that is forgotten or not its own", k, id)
			}
		}
	}
	for k, head := range f.bySubject {
		for _, id := range listIDs(head, userList) {
			if g := all[id]; g == nil || g.tenant != k.tenant || g.username != k.username {
				t.Errorf("bySubject %v holds grant %d that is forgotten or not its own", k, id)
			}
		}
	}
}

// checkSpent verifies g's spent lists are exactly its superseded refresh
// tokens, in (issuedAt, key) order and within their bounds.
func checkSpent(t testing.TB, f *FSM, g *grant) {
	t.Helper()
	var retired, orphans []spentKey
	for _, k := range g.tokens {
		r, ok := f.tokens.get(k)
		if !ok || r.kind != KindRefresh {
			continue
		}
		switch r.state {
		case stateRotated:
			retired = append(retired, spentKey{k, r.issuedAt, r.expiresAt})
		case stateOrphaned:
			orphans = append(orphans, spentKey{k, r.issuedAt, r.expiresAt})
		}
	}
	slices.SortFunc(retired, spentKey.compare)
	slices.SortFunc(orphans, spentKey.compare)
	var sp spent
	if g.spent() != nil {
		sp = *g.spent()
	}
	if !slices.Equal(sp.retired, retired) || !slices.Equal(sp.orphans, orphans) {
		t.Errorf("grant %d spent lists %v / %v, records say %v / %v", g.id,
			spentKeys(sp.retired), spentKeys(sp.orphans), spentKeys(retired), spentKeys(orphans))
	}
	if len(sp.retired) > maxRetired || len(sp.orphans) > maxOrphans {
		t.Errorf("grant %d holds %d retired and %d orphans", g.id, len(sp.retired), len(sp.orphans))
	}
}

func TestIssueGrantNeedsClient(t *testing.T) {
	f := New()
	p := tokensFor("x")
	r := f.Apply(1, Encode(&IssueGrant{ClientID: "nobody", IssuedAt: t0, Access: spec(p.access, t0+accessL), Refresh: spec(p.refresh, t0+refresL)}))
	if r.Outcome != NotFound || r.Index != 1 || f.AppliedIndex() != 1 {
		t.Fatalf("got %+v, applied %d", r, f.AppliedIndex())
	}
	if f.LiveTokens() != 0 || len(grantsOf(f)) != 0 {
		t.Fatal("state changed")
	}
	if _, ok := f.Lookup(p.access, t0); ok {
		t.Fatal("token of unknown client is valid")
	}
	if n, _ := f.IssueCount("nobody"); n != 0 {
		t.Fatal("counter moved")
	}
}

func TestIssueAndLookup(t *testing.T) {
	e := newEnv(t)
	p, r := e.issue("g1", "c1", "t", "alice", "openid read", t0)
	if r.GrantID != e.idx || r.IssuedCount != 1 {
		t.Fatalf("result %+v", r)
	}
	tok, ok := e.f.Lookup(p.access, t0+1)
	want := Token{Kind: KindAccess, GrantID: r.GrantID, ClientID: "c1", Tenant: "t", Username: "alice",
		Scope: "openid read", IssuedAt: t0, ExpiresAt: t0 + accessL}
	if !ok || tok != want {
		t.Fatalf("access lookup %v %+v, want %+v", ok, tok, want)
	}
	if tok.Subject() != "t/alice" {
		t.Errorf("subject %q", tok.Subject())
	}
	tok, ok = e.f.Lookup(p.refresh, t0+1)
	want.Kind, want.ExpiresAt = KindRefresh, t0+refresL
	if !ok || tok != want {
		t.Fatalf("refresh lookup %v %+v, want %+v", ok, tok, want)
	}

	// Client credentials: subject is the client id.
	cc, r2 := e.issue("cc", "c2", "", "", "api", t0)
	if r2.GrantID == r.GrantID {
		t.Fatal("grant ids collide")
	}
	tok, ok = e.f.Lookup(cc.access, t0)
	if !ok || tok.Subject() != "c2" || tok.Username != "" || tok.ClientID != "c2" {
		t.Fatalf("cc lookup %v %+v", ok, tok)
	}

	// Authorization code: carries redirect URI and challenge; tokens don't.
	code := HashOf("code1")
	r3 := e.ok(&IssueGrant{ClientID: "c1", Tenant: "t", Username: "bob", Scope: "openid", IssuedAt: t0,
		Code: spec(code, t0+codeL), RedirectURI: "https://app/cb", CodeChallenge: "chal"})
	if r3.IssuedCount != 0 {
		t.Errorf("code-only grant counted an access token: %+v", r3)
	}
	tok, ok = e.f.Lookup(code, t0)
	want = Token{Kind: KindCode, GrantID: r3.GrantID, ClientID: "c1", Tenant: "t", Username: "bob", Scope: "openid",
		IssuedAt: t0, ExpiresAt: t0 + codeL}
	if !ok || tok != want {
		t.Fatalf("code lookup %v %+v, want %+v", ok, tok, want)
	}
	if rec, _ := e.f.tokens.get(keyOf(code)); rec.grant.code == nil ||
		*rec.grant.code != (codeBinding{redirectURI: "https://app/cb", challenge: "chal"}) {
		t.Fatalf("code binding not stored with the grant: %+v", rec.grant.code)
	}

	if _, ok := e.f.Lookup(HashOf("nope"), t0); ok {
		t.Fatal("unknown hash valid")
	}
	if got := e.f.LiveTokens(); got != 5 {
		t.Fatalf("LiveTokens %d, want 5", got)
	}
	checkInvariants(t, e.f)
}

// Expiry is judged only by the now argument and the command's timestamps.
func TestExpiryIgnoresWallClock(t *testing.T) {
	e := newEnv(t)
	// Tokens that expired in 1970 by the wall clock.
	old, _ := e.issue("old", "c1", "t", "alice", "", 0)
	e.wantValid(accessL-1, old.access)
	e.wantInvalid(accessL, old.access)
	e.wantValid(refresL-1, old.refresh)
	e.wantInvalid(refresL, old.refresh)
	// Tokens from the far future are valid at their own times and before.
	future := int64(4_000_000_000) * sec
	fut, _ := e.issue("fut", "c1", "t", "alice", "", future)
	e.wantValid(future+accessL-1, fut.access)
	e.wantValid(time.Now().UnixNano(), fut.access)
	e.wantInvalid(future+accessL, fut.access)

	// Conditional commands use their Now, not the clock. The 1970 refresh
	// token still rotates at a 1970 Now.
	next := tokensFor("old2")
	c := e.rotate(old.refresh, "c1", "", refresL-1, 0, next)
	e.ok(&c)
	e.wantValid(refresL-1, next.access, next.refresh)
	// …and is refused at its expiry.
	c2 := e.rotate(next.refresh, "c1", "", (refresL-1)+refresL, 0, tokensFor("old3"))
	e.expectNoChange(&c2, NotFound)

	// Codes expire by RedeemCode.Now.
	code := HashOf("code")
	e.ok(&IssueGrant{ClientID: "c1", IssuedAt: 10, Code: spec(code, 10+codeL)})
	e.expectNoChange(&RedeemCode{Code: code, ClientID: "c1", Now: 10 + codeL}, NotFound)
	e.ok(&RedeemCode{Code: code, ClientID: "c1", Now: 10 + codeL - 1, Access: spec(HashOf("ca"), 10+codeL+accessL)})
	e.wantValid(10+codeL, HashOf("ca"))
}

func TestIssuedCount(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 3; i++ {
		_, r := e.issue(fmt.Sprint("cc", i), "c1", "", "", "", t0+int64(i))
		if r.IssuedCount != uint64(i) {
			t.Fatalf("client credentials #%d: IssuedCount %d", i, r.IssuedCount)
		}
	}
	if n, last := e.f.IssueCount("c1"); n != 3 || last != t0+3 {
		t.Fatalf("IssueCount(c1) = %d, %d", n, last)
	}
	a1, r := e.issue("a1", "c1", "t", "alice", "", t0+10)
	if r.IssuedCount != 1 {
		t.Fatalf("alice #1: %d", r.IssuedCount)
	}
	_, r = e.issue("a2", "c2", "t", "alice", "", t0+11) // another client, same subject
	if r.IssuedCount != 2 {
		t.Fatalf("alice #2: %d", r.IssuedCount)
	}
	_, r = e.issue("b1", "c1", "t", "bob", "", t0+12)
	if r.IssuedCount != 1 {
		t.Fatalf("bob #1: %d", r.IssuedCount)
	}
	_, r = e.issue("t2a", "c1", "t2", "alice", "", t0+13)
	if r.IssuedCount != 1 {
		t.Fatalf("t2/alice #1: %d", r.IssuedCount)
	}
	// Rotation and redemption issue access tokens too.
	c := e.rotate(a1.refresh, "c1", "", t0+20, 0, tokensFor("a1b"))
	if r := e.ok(&c); r.IssuedCount != 3 {
		t.Fatalf("alice after rotate: %d", r.IssuedCount)
	}
	code := HashOf("alice-code")
	e.ok(&IssueGrant{ClientID: "c1", Tenant: "t", Username: "alice", IssuedAt: t0 + 30, Code: spec(code, t0+30+codeL)})
	if r := e.ok(&RedeemCode{Code: code, ClientID: "c1", Now: t0 + 31, Access: spec(HashOf("ra"), t0+accessL)}); r.IssuedCount != 4 {
		t.Fatalf("alice after redeem: %d", r.IssuedCount)
	}
	for subj, want := range map[string][2]int64{"t/alice": {4, t0 + 31}, "t/bob": {1, t0 + 12}, "t2/alice": {1, t0 + 13}, "c1": {3, t0 + 3}, "c2": {0, 0}} {
		if n, last := e.f.IssueCount(subj); n != uint64(want[0]) || last != want[1] {
			t.Errorf("IssueCount(%q) = %d, %d; want %v", subj, n, last, want)
		}
	}
}

func TestRotateRefresh(t *testing.T) {
	e := newEnv(t)
	p0, r0 := e.issue("g", "c1", "t", "alice", "read write", t0)
	p1 := tokensFor("g1")
	t1 := t0 + 10*minute
	c := e.rotate(p0.refresh, "c1", "", t1, 10*sec, p1)
	r := e.ok(&c)
	if r.GrantID != r0.GrantID || r.IssuedCount != 2 {
		t.Fatalf("rotate result %+v", r)
	}
	e.wantValid(t1, p1.access, p1.refresh)
	e.wantInvalid(t1, p0.refresh)
	tok, _ := e.f.Lookup(p1.refresh, t1)
	if tok.Scope != "read write" || tok.IssuedAt != t1 || tok.ExpiresAt != t1+refresL || tok.GrantID != r0.GrantID {
		t.Errorf("rotated refresh %+v", tok)
	}
	checkInvariants(t, e.f)

	// Reuse of the rotated-out token after the grace window revokes the grant.
	other, _ := e.issue("other", "c1", "t", "alice", "read", t0)
	late := e.rotate(p0.refresh, "c1", "", t1+10*sec+1, 10*sec, tokensFor("late"))
	r = e.expect(&late, Reused)
	if r.GrantID != r0.GrantID {
		t.Errorf("reused grant id %d", r.GrantID)
	}
	e.wantInvalid(t1+11*sec, p0.access, p0.refresh, p1.access, p1.refresh, tokensFor("late").access, tokensFor("late").refresh)
	for _, h := range []Hash{p0.access, p0.refresh, p1.access, p1.refresh} {
		if e.present(h) {
			t.Errorf("token of revoked grant still in the index")
		}
	}
	e.wantValid(t1, other.access, other.refresh)
	// The successor is dead too.
	again := e.rotate(p1.refresh, "c1", "", t1+12*sec, 10*sec, tokensFor("again"))
	e.expectNoChange(&again, NotFound)
	checkInvariants(t, e.f)
}

func TestRotateGraceRetry(t *testing.T) {
	e := newEnv(t)
	p0, _ := e.issue("g", "c1", "t", "alice", "read", t0)
	t1 := t0 + minute
	p1, p2, p3 := tokensFor("g1"), tokensFor("g2"), tokensFor("g3")
	c := e.rotate(p0.refresh, "c1", "", t1, 10*sec, p1)
	e.ok(&c)
	live := e.f.LiveTokens()
	// The response was lost; the client retries with p0 within grace.
	retry := e.rotate(p0.refresh, "c1", "", t1+10*sec, 10*sec, p2)
	r := e.ok(&retry)
	if r.IssuedCount != 3 {
		t.Errorf("IssuedCount %d", r.IssuedCount)
	}
	e.wantValid(t1+10*sec, p2.access, p2.refresh, p0.access)
	e.wantInvalid(t1+10*sec, p1.access, p1.refresh, p0.refresh)
	if e.present(p1.access) {
		t.Error("the unused successor's access token kept in the index")
	}
	if !e.present(p1.refresh) {
		t.Error("the superseded successor forgotten: presenting it could not revoke the grant")
	}
	if got := e.f.LiveTokens(); got != live+1 {
		t.Errorf("LiveTokens %d, want %d (one dropped, the successor kept superseded, two added)", got, live+1)
	}
	checkInvariants(t, e.f)
	// The chain goes on from the retry's pair.
	c3 := e.rotate(p2.refresh, "c1", "", t1+20*sec, 10*sec, p3)
	e.ok(&c3)
	e.wantValid(t1+20*sec, p3.access, p3.refresh)
	checkInvariants(t, e.f)
	// The superseded successor is reuse, even long after: the grant dies.
	bad := e.rotate(p1.refresh, "c1", "", t1+hour, 10*sec, tokensFor("x"))
	e.expect(&bad, Reused)
	e.wantInvalid(t1+hour, p0.access, p2.access, p3.access, p3.refresh)
	checkInvariants(t, e.f)
}

func TestRotateOlderTokenWithinGraceRevokes(t *testing.T) {
	e := newEnv(t)
	p0, _ := e.issue("g", "c1", "t", "alice", "read", t0)
	p1, p2 := tokensFor("g1"), tokensFor("g2")
	c1 := e.rotate(p0.refresh, "c1", "", t0+1*sec, time.Hour.Nanoseconds(), p1)
	e.ok(&c1)
	c2 := e.rotate(p1.refresh, "c1", "", t0+2*sec, time.Hour.Nanoseconds(), p2)
	e.ok(&c2)
	// p0 is rotated out but not the most recent one: reuse, even within grace.
	c3 := e.rotate(p0.refresh, "c1", "", t0+3*sec, time.Hour.Nanoseconds(), tokensFor("g3"))
	e.expect(&c3, Reused)
	e.wantInvalid(t0+3*sec, p0.access, p1.access, p1.refresh, p2.access, p2.refresh)
	checkInvariants(t, e.f)
}

func TestRotateMostRecentAfterSuccessorUsedWithinGrace(t *testing.T) {
	e := newEnv(t)
	p0, _ := e.issue("g", "c1", "t", "alice", "read", t0)
	p1, p2, p3 := tokensFor("g1"), tokensFor("g2"), tokensFor("g3")
	c1 := e.rotate(p0.refresh, "c1", "", t0+sec, 5*sec, p1)
	e.ok(&c1)
	c2 := e.rotate(p1.refresh, "c1", "", t0+2*sec, 5*sec, p2)
	e.ok(&c2)
	// p1 is now the most recent rotated-out token: a retry of it inside
	// grace drops p2 and issues p3.
	c3 := e.rotate(p1.refresh, "c1", "", t0+3*sec, 5*sec, p3)
	e.ok(&c3)
	e.wantValid(t0+3*sec, p3.access, p3.refresh)
	e.wantInvalid(t0+3*sec, p2.access, p2.refresh)
	checkInvariants(t, e.f)
}

func TestRotateScope(t *testing.T) {
	e := newEnv(t)
	p0, _ := e.issue("g", "c1", "t", "alice", "read write profile", t0)
	p1 := tokensFor("g1")
	c := e.rotate(p0.refresh, "c1", "profile read", t0+sec, 0, p1)
	e.ok(&c)
	if tok, ok := e.f.Lookup(p1.access, t0+sec); !ok || tok.Scope != "profile read" {
		t.Errorf("narrowed access %v %+v", ok, tok)
	}
	if tok, ok := e.f.Lookup(p1.refresh, t0+sec); !ok || tok.Scope != "read write profile" {
		t.Errorf("refresh keeps the grant's scope: %v %+v", ok, tok)
	}
	// Wider than the grant: Mismatch and nothing changes.
	wide := e.rotate(p1.refresh, "c1", "read admin", t0+2*sec, 0, tokensFor("w"))
	e.expectNoChange(&wide, Mismatch)
	e.wantValid(t0+2*sec, p1.refresh, p1.access)
	// Empty scope: the grant's full scope again.
	p2 := tokensFor("g2")
	c2 := e.rotate(p1.refresh, "c1", "", t0+3*sec, 0, p2)
	e.ok(&c2)
	if tok, ok := e.f.Lookup(p2.access, t0+3*sec); !ok || tok.Scope != "read write profile" {
		t.Errorf("full-scope access %v %+v", ok, tok)
	}
	checkInvariants(t, e.f)
}

func TestRotateWrongClientAndKind(t *testing.T) {
	e := newEnv(t)
	p0, _ := e.issue("g", "c1", "t", "alice", "read", t0)
	wc := e.rotate(p0.refresh, "c2", "", t0+sec, 0, tokensFor("x"))
	e.expectNoChange(&wc, WrongClient)
	empty := e.rotate(p0.refresh, "", "", t0+sec, 0, tokensFor("x"))
	e.expectNoChange(&empty, WrongClient)
	asAccess := e.rotate(p0.access, "c1", "", t0+sec, 0, tokensFor("x"))
	e.expectNoChange(&asAccess, NotFound)
	unknown := e.rotate(HashOf("nope"), "c1", "", t0+sec, 0, tokensFor("x"))
	e.expectNoChange(&unknown, NotFound)
	e.wantValid(t0+sec, p0.access, p0.refresh)
	// Wrong client presenting a rotated-out token changes nothing either.
	c := e.rotate(p0.refresh, "c1", "", t0+sec, 0, tokensFor("g1"))
	e.ok(&c)
	wc2 := e.rotate(p0.refresh, "c2", "", t0+2*minute, 0, tokensFor("y"))
	e.expectNoChange(&wc2, WrongClient)
}

func codeGrant(e *env, name, client, redirect, challenge string, at int64) (Hash, Result) {
	e.t.Helper()
	code := HashOf(name + "/code")
	r := e.ok(&IssueGrant{ClientID: client, Tenant: "t", Username: "alice", Scope: "openid read", IssuedAt: at,
		Code: spec(code, at+codeL), RedirectURI: redirect, CodeChallenge: challenge})
	return code, r
}

func redeem(code Hash, client, redirect, challenge string, now int64, p pair) *RedeemCode {
	return &RedeemCode{Code: code, ClientID: client, RedirectURI: redirect, Challenge: challenge, Now: now,
		Access: spec(p.access, now+accessL), Refresh: spec(p.refresh, now+refresL)}
}

func TestRedeemCode(t *testing.T) {
	e := newEnv(t)
	const cb, ch = "https://app/cb", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	code, ir := codeGrant(e, "g", "c1", cb, ch, t0)
	p1, p2 := tokensFor("r1"), tokensFor("r2")
	now := t0 + sec

	e.expectNoChange(redeem(code, "c1", cb+"/x", ch, now, p1), Mismatch)
	e.expectNoChange(redeem(code, "c1", cb, ch+"x", now, p1), Mismatch)
	e.expectNoChange(redeem(code, "c1", cb, "", now, p1), Mismatch)
	e.expectNoChange(redeem(code, "c2", cb, ch, now, p1), WrongClient)
	e.expectNoChange(redeem(HashOf("other"), "c1", cb, ch, now, p1), NotFound)
	e.wantValid(now, code)

	r := e.ok(redeem(code, "c1", cb, ch, now, p1))
	if r.GrantID != ir.GrantID || r.IssuedCount != 1 {
		t.Fatalf("redeem result %+v", r)
	}
	e.wantValid(now, p1.access, p1.refresh)
	e.wantInvalid(now, code)
	tok, _ := e.f.Lookup(p1.access, now)
	if tok.GrantID != ir.GrantID || tok.Scope != "openid read" || tok.Subject() != "t/alice" {
		t.Errorf("redeemed access %+v", tok)
	}
	checkInvariants(t, e.f)

	// A second redemption, even with correct parameters, revokes the first.
	r = e.expect(redeem(code, "c1", cb, ch, now+sec, p2), Reused)
	if r.GrantID != ir.GrantID {
		t.Errorf("reuse grant id %d", r.GrantID)
	}
	e.wantInvalid(now+sec, p1.access, p1.refresh, p2.access, p2.refresh, code)
	if e.f.LiveTokens() != 0 {
		t.Errorf("LiveTokens %d after reuse", e.f.LiveTokens())
	}
	e.expectNoChange(redeem(code, "c1", cb, ch, now+2*sec, p2), NotFound)
	checkInvariants(t, e.f)
}

func TestRedeemCodeExpired(t *testing.T) {
	e := newEnv(t)
	code, _ := codeGrant(e, "g", "c1", "https://app/cb", "", t0)
	e.expectNoChange(redeem(code, "c1", "https://app/cb", "", t0+codeL, tokensFor("x")), NotFound)
	e.expectNoChange(redeem(code, "c1", "https://app/cb", "", t0+hour, tokensFor("x")), NotFound)
	e.ok(redeem(code, "c1", "https://app/cb", "", t0+codeL-1, tokensFor("y")))
}

func TestRedeemCodeReusedAfterRotation(t *testing.T) {
	e := newEnv(t)
	code, _ := codeGrant(e, "g", "c1", "u", "", t0)
	p1, p2 := tokensFor("p1"), tokensFor("p2")
	e.ok(redeem(code, "c1", "u", "", t0+sec, p1))
	c := e.rotate(p1.refresh, "c1", "", t0+2*sec, 0, p2)
	e.ok(&c)
	e.expect(redeem(code, "c1", "u", "", t0+3*sec, tokensFor("p3")), Reused)
	e.wantInvalid(t0+3*sec, p1.access, p2.access, p2.refresh)
	checkInvariants(t, e.f)
}

func TestRevokeToken(t *testing.T) {
	e := newEnv(t)
	g1, r1 := e.issue("g1", "c1", "t", "alice", "", t0)
	g2, _ := e.issue("g2", "c1", "t", "alice", "", t0)
	g3, _ := e.issue("g3", "c2", "t", "bob", "", t0)
	g4, _ := e.issue("g4", "c1", "", "", "", t0)
	now := t0 + sec

	r := e.ok(&RevokeToken{Token: g1.access, ClientID: "c1"})
	if r.GrantID != r1.GrantID || r.Count != 1 {
		t.Errorf("revoke result %+v", r)
	}
	e.wantInvalid(now, g1.access, g1.refresh)
	e.wantValid(now, g2.access, g2.refresh, g3.access, g3.refresh, g4.access)

	e.ok(&RevokeToken{Token: g2.refresh, ClientID: "c1"})
	e.wantInvalid(now, g2.access, g2.refresh)
	e.wantValid(now, g3.access, g3.refresh, g4.access)

	// Another client's token: WrongClient, nothing revoked.
	e.expectNoChange(&RevokeToken{Token: g3.access, ClientID: "c1"}, WrongClient)
	e.expectNoChange(&RevokeToken{Token: g3.refresh, ClientID: "c1"}, WrongClient)
	e.wantValid(now, g3.access, g3.refresh)

	// Already revoked or unknown.
	e.expectNoChange(&RevokeToken{Token: g1.access, ClientID: "c1"}, NotFound)
	e.expectNoChange(&RevokeToken{Token: HashOf("nope")}, NotFound)

	// Admin (no client) revokes anything.
	e.ok(&RevokeToken{Token: g3.refresh})
	e.wantInvalid(now, g3.access, g3.refresh)
	e.wantValid(now, g4.access)

	// A rotated-out refresh token and an unredeemed code revoke their grant.
	g5, _ := e.issue("g5", "c1", "t", "alice", "", t0)
	p := tokensFor("g5b")
	c := e.rotate(g5.refresh, "c1", "", now, 0, p)
	e.ok(&c)
	e.ok(&RevokeToken{Token: g5.refresh, ClientID: "c1"})
	e.wantInvalid(now, g5.access, p.access, p.refresh)
	code, _ := codeGrant(e, "g6", "c1", "u", "", t0)
	e.ok(&RevokeToken{Token: code, ClientID: "c1"})
	e.expectNoChange(redeem(code, "c1", "u", "", now, tokensFor("g6t")), NotFound)
	checkInvariants(t, e.f)
}

// world issues a mix of grants across clients and subjects.
type world struct {
	e     *env
	grant map[string]pair
}

func newWorld(t *testing.T) *world {
	e := newEnv(t)
	w := &world{e: e, grant: map[string]pair{}}
	for _, g := range [][4]string{
		{"c1-alice", "c1", "t", "alice"}, {"c1-alice2", "c1", "t", "alice"}, {"c1-bob", "c1", "t", "bob"},
		{"c1-cc", "c1", "", ""}, {"c2-alice", "c2", "t", "alice"}, {"c2-t2alice", "c2", "t2", "alice"},
		{"c2-cc", "c2", "", ""},
	} {
		p, _ := e.issue(g[0], g[1], g[2], g[3], "read", t0)
		w.grant[g[0]] = p
	}
	return w
}

// check wants exactly the named grants revoked.
func (w *world) check(t *testing.T, revoked ...string) {
	t.Helper()
	dead := map[string]bool{}
	for _, n := range revoked {
		dead[n] = true
	}
	for n, p := range w.grant {
		if dead[n] {
			w.e.wantInvalid(t0+sec, p.access, p.refresh)
		} else {
			w.e.wantValid(t0+sec, p.access, p.refresh)
		}
	}
	checkInvariants(t, w.e.f)
}

func TestRevokeClient(t *testing.T) {
	w := newWorld(t)
	if r := w.e.ok(&RevokeClient{ClientID: "c1"}); r.Count != 4 {
		t.Errorf("count %d", r.Count)
	}
	w.check(t, "c1-alice", "c1-alice2", "c1-bob", "c1-cc")
	if _, ok := w.e.f.Client("c1"); !ok {
		t.Error("RevokeClient deleted the client")
	}
	if r := w.e.ok(&RevokeClient{ClientID: "c1"}); r.Count != 0 {
		t.Errorf("second count %d", r.Count)
	}
	if r := w.e.ok(&RevokeClient{ClientID: "nobody"}); r.Count != 0 {
		t.Errorf("unknown count %d", r.Count)
	}
	w.e.issue("new", "c1", "t", "alice", "", t0) // the client still works
}

func TestRevokeSubject(t *testing.T) {
	w := newWorld(t)
	if r := w.e.ok(&RevokeSubject{Tenant: "t", Username: "alice"}); r.Count != 3 {
		t.Errorf("count %d", r.Count)
	}
	w.check(t, "c1-alice", "c1-alice2", "c2-alice")
	if _, ok := w.e.f.User("t", "alice"); !ok {
		t.Error("RevokeSubject deleted the user")
	}
	// Client-credentials grants have no user subject.
	if r := w.e.ok(&RevokeSubject{Tenant: "", Username: ""}); r.Count != 0 {
		t.Errorf("empty subject count %d", r.Count)
	}
	w.check(t, "c1-alice", "c1-alice2", "c2-alice")
}

func TestDeleteClient(t *testing.T) {
	w := newWorld(t)
	if r := w.e.ok(&DeleteClient{ClientID: "c1"}); r.Count != 4 {
		t.Errorf("count %d", r.Count)
	}
	w.check(t, "c1-alice", "c1-alice2", "c1-bob", "c1-cc")
	if _, ok := w.e.f.Client("c1"); ok {
		t.Error("client still there")
	}
	if n, _ := w.e.f.IssueCount("c1"); n != 0 {
		t.Errorf("client counter kept: %d", n)
	}
	if n, _ := w.e.f.IssueCount("c2"); n != 1 {
		t.Errorf("other client's counter: %d", n)
	}
	if n, _ := w.e.f.IssueCount("t/alice"); n != 3 {
		t.Errorf("user counter: %d", n)
	}
	w.e.expectNoChange(&DeleteClient{ClientID: "c1"}, NotFound)
	p := tokensFor("late")
	w.e.expectNoChange(&IssueGrant{ClientID: "c1", IssuedAt: t0, Access: spec(p.access, t0+accessL)}, NotFound)
	if got := w.e.f.Clients(); len(got) != 1 || got[0].ID != "c2" {
		t.Errorf("Clients() %v", got)
	}
}

func TestDeleteUser(t *testing.T) {
	w := newWorld(t)
	if r := w.e.ok(&DeleteUser{Tenant: "t", Username: "alice"}); r.Count != 3 {
		t.Errorf("count %d", r.Count)
	}
	w.check(t, "c1-alice", "c1-alice2", "c2-alice")
	if _, ok := w.e.f.User("t", "alice"); ok {
		t.Error("user still there")
	}
	if _, ok := w.e.f.User("t2", "alice"); !ok {
		t.Error("same name in another tenant deleted")
	}
	if n, _ := w.e.f.IssueCount("t/alice"); n != 0 {
		t.Errorf("counter kept: %d", n)
	}
	if n, _ := w.e.f.IssueCount("t2/alice"); n != 1 {
		t.Errorf("other tenant's counter: %d", n)
	}
	w.e.expectNoChange(&DeleteUser{Tenant: "t", Username: "alice"}, NotFound)
	us := w.e.f.Users()
	if len(us) != 2 || us[0].Username != "bob" || us[1].Tenant != "t2" {
		t.Errorf("Users() %+v", us)
	}
}

func TestPutClient(t *testing.T) {
	e := newEnv(t)
	c1, _ := e.f.Client("c1")
	orig := *c1
	e.expectNoChange(&PutClient{Client: Client{ID: "c1", Name: "dup"}, Create: true}, Exists)
	e.expectNoChange(&PutClient{Client: Client{ID: "c9", Name: "x"}}, NotFound)

	upd := Client{ID: "c1", Name: "renamed", SecretHash: HashOf("new-secret"), RedirectURIs: []string{"https://x/cb"},
		GrantTypes: []string{"refresh_token"}, Scopes: []string{"read"}, CreatedAt: t0 + hour, UpdatedAt: t0 + hour}
	e.ok(&PutClient{Client: upd, KeepSecret: true})
	got, _ := e.f.Client("c1")
	want := upd
	want.CreatedAt, want.SecretHash = orig.CreatedAt, orig.SecretHash
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("KeepSecret update:\n got %+v\nwant %+v", *got, want)
	}
	if !reflect.DeepEqual(*c1, orig) {
		t.Error("a *Client handed out earlier was modified")
	}
	if !got.HasGrant("refresh_token") || got.HasGrant("password") || !got.HasRedirectURI("https://x/cb") || got.HasRedirectURI("https://x/cb/") {
		t.Error("HasGrant/HasRedirectURI")
	}

	upd.Name = "again"
	upd.UpdatedAt = t0 + 2*hour
	e.ok(&PutClient{Client: upd})
	got, _ = e.f.Client("c1")
	if got.SecretHash != HashOf("new-secret") || got.CreatedAt != orig.CreatedAt || got.UpdatedAt != t0+2*hour || got.Name != "again" {
		t.Errorf("secret update %+v", *got)
	}
	// Public client: zero secret.
	e.ok(&PutClient{Client: Client{ID: "a-public", Public: true, CreatedAt: 5}, Create: true})
	if cs := e.f.Clients(); len(cs) != 3 || cs[0].ID != "a-public" || cs[1].ID != "c1" || cs[2].ID != "c2" || !cs[0].SecretHash.IsZero() {
		t.Errorf("Clients() %+v", cs)
	}
}

func TestPutUser(t *testing.T) {
	e := newEnv(t)
	e.expectNoChange(&PutUser{User: User{Tenant: "t", Username: "alice", PasswordHash: "x"}, Create: true}, Exists)
	e.expectNoChange(&PutUser{User: User{Tenant: "t", Username: "zed"}}, NotFound)
	e.ok(&PutUser{User: User{Tenant: "t", Username: "alice", PasswordHash: "$argon2id$new", CreatedAt: t0 + hour}})
	u, ok := e.f.User("t", "alice")
	if !ok || u.PasswordHash != "$argon2id$new" || u.CreatedAt != t0 {
		t.Errorf("update %v %+v", ok, u)
	}
	e.ok(&PutUser{User: User{Tenant: "a", Username: "z"}, Create: true})
	us := e.f.Users()
	var names []string
	for _, u := range us {
		names = append(names, u.Tenant+"/"+u.Username)
	}
	if strings.Join(names, ",") != "a/z,t/alice,t/bob,t2/alice" {
		t.Errorf("Users() order %v", names)
	}
}

func TestPurge(t *testing.T) {
	e := newEnv(t)
	g1, _ := e.issue("g1", "c1", "t", "alice", "", t0) // access t0+30m, refresh t0+12h
	cc := tokensFor("cc")
	ccr := e.ok(&IssueGrant{ClientID: "c2", IssuedAt: t0, Access: spec(cc.access, t0+accessL)})
	g3, _ := e.issue("g3", "c1", "t", "bob", "", t0+hour)
	code, cr := codeGrant(e, "code", "c1", "u", "", t0)
	// A rotated-out refresh token is kept (for reuse detection) until it expires.
	g4, _ := e.issue("g4", "c2", "t", "bob", "", t0)
	g4b := tokensFor("g4b")
	c := e.rotate(g4.refresh, "c2", "", t0+minute, 0, g4b)
	e.ok(&c)

	live := e.f.LiveTokens()
	if live != 10 {
		t.Fatalf("LiveTokens %d", live)
	}
	// Nothing expired yet: nothing changes.
	if r := e.expectNoChange(&Purge{Now: t0 + codeL - 1}, OK); r.Count != 0 {
		t.Errorf("early purge count %d", r.Count)
	}
	// The code expires at t0+60s exactly.
	if r := e.ok(&Purge{Now: t0 + codeL}); r.Count != 1 {
		t.Errorf("code purge count %d", r.Count)
	}
	if e.present(code) {
		t.Error("expired code kept")
	}
	if _, ok := grantsOf(e.f)[cr.GrantID]; ok {
		t.Error("empty code grant kept")
	}
	// At t0+30m: g1's and g4's first access tokens and cc's.
	r := e.ok(&Purge{Now: t0 + accessL})
	if r.Count != 3 {
		t.Errorf("access purge count %d", r.Count)
	}
	if e.f.LiveTokens() != live-4 {
		t.Errorf("LiveTokens %d, want %d", e.f.LiveTokens(), live-4)
	}
	if e.present(g1.access) || e.present(cc.access) || e.present(g4.access) {
		t.Error("expired access kept")
	}
	if _, ok := grantsOf(e.f)[ccr.GrantID]; ok {
		t.Error("grant with no tokens left kept")
	}
	for _, id := range listIDs(e.f.byClient["c2"], clientList) {
		if id == ccr.GrantID {
			t.Error("purged grant kept in byClient")
		}
	}
	e.wantValid(t0+accessL, g1.refresh, g3.access, g3.refresh, g4b.access, g4b.refresh)
	if !e.present(g4.refresh) {
		t.Error("unexpired rotated-out refresh token purged")
	}
	checkInvariants(t, e.f)
	// The surviving refresh token still rotates.
	c2 := e.rotate(g1.refresh, "c1", "", t0+accessL, 0, tokensFor("g1b"))
	e.ok(&c2)
	// Way later everything is gone.
	r = e.ok(&Purge{Now: t0 + 100*hour})
	if e.f.LiveTokens() != 0 || len(grantsOf(e.f)) != 0 || len(e.f.byClient) != 0 || len(e.f.bySubject) != 0 {
		t.Errorf("after final purge (count %d): %d tokens, %d grants, %d/%d index sets",
			r.Count, e.f.LiveTokens(), len(grantsOf(e.f)), len(e.f.byClient), len(e.f.bySubject))
	}
	if len(e.f.clients) != 2 || len(e.f.users) != 3 {
		t.Error("purge touched clients or users")
	}
	checkInvariants(t, e.f)
}

func TestNoopAndBadCommand(t *testing.T) {
	e := newEnv(t)
	e.issue("g", "c1", "t", "alice", "", t0)
	e.expectNoChange(&Noop{}, OK)
	before := digest(e.f)
	for i, b := range [][]byte{nil, {0}, {encodingVersion}, {encodingVersion, 0xee}, {9, byte(opNoop)}, append(Encode(&Noop{}), 0)} {
		r := e.f.Apply(uint64(100+i), b)
		if r.Outcome != BadCommand || r.Index != uint64(100+i) || e.f.AppliedIndex() != uint64(100+i) || r.Err() != ErrBadCommand {
			t.Errorf("%x: %+v applied %d", b, r, e.f.AppliedIndex())
		}
	}
	if digest(e.f) != before {
		t.Error("bad command changed state")
	}
}

func TestScopeSubset(t *testing.T) {
	for _, c := range []struct {
		want, have string
		ok         bool
	}{
		{"", "", true},
		{"", "read", true},
		{"read", "read", true},
		{"read", "read write", true},
		{"write", "read write", true},
		{"read write", "write read", true},
		{"read  write", "write read", true},
		{" read ", "read", true},
		{"read read", "read", true},
		{"read", "", false},
		{"admin", "read write", false},
		{"read admin", "read write", false},
		{"rea", "read", false},
		{"read", "rea", false},
		{"read", "readwrite", false},
		{"Read", "read", false},
		{"a:b", "a:b c", true},
		{"read", "  read  ", true},
	} {
		if got := ScopeSubset(c.want, c.have); got != c.ok {
			t.Errorf("ScopeSubset(%q, %q) = %v", c.want, c.have, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { ScopeSubset("openid profile email", "email openid profile read") }); n != 0 {
		t.Errorf("ScopeSubset allocates %v", n)
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	e := newEnv(t)
	p, _ := e.issue("g", "c1", "t", "alice", "read", t0)
	if n := testing.AllocsPerRun(100, func() { e.f.Lookup(p.access, t0) }); n != 0 {
		t.Errorf("Lookup allocates %v", n)
	}
}

// workload generates a random but reproducible command stream against the
// clients and users newEnv creates, reaching every command and outcome.
type workload struct {
	rng    *rand.Rand
	now    int64
	n      int
	hashes []Hash // every token or code hash ever issued
	refr   []Hash
	codes  []Hash
	codeOf map[Hash][2]string // redirect, challenge
	owner  map[Hash]string    // client of a refresh token or code
}

func newWorkload(seed int64) *workload {
	return &workload{rng: rand.New(rand.NewSource(seed)), now: t0, codeOf: map[Hash][2]string{}, owner: map[Hash]string{}}
}

var (
	wlClients = []string{"c1", "c2", "c3"}
	wlUsers   = [][2]string{{"t", "alice"}, {"t", "bob"}, {"t2", "alice"}, {"", ""}}
	wlScopes  = []string{"", "read", "read write", "openid profile read"}
)

func (w *workload) newPair() pair {
	w.n++
	p := tokensFor(fmt.Sprintf("wl-%d-%d", w.rng.Int63(), w.n))
	w.hashes = append(w.hashes, p.access, p.refresh)
	return p
}

func (w *workload) pick(hs []Hash) Hash {
	if len(hs) == 0 || w.rng.Intn(20) == 0 {
		return HashOf(fmt.Sprint("unknown", w.rng.Intn(5)))
	}
	// Favour recent ones.
	i := len(hs) - 1 - int(w.rng.ExpFloat64()*4)
	if i < 0 {
		i = w.rng.Intn(len(hs))
	}
	return hs[i]
}

func (w *workload) next() Command {
	r := w.rng
	w.now += r.Int63n(5 * sec)
	client := wlClients[r.Intn(len(wlClients))]
	u := wlUsers[r.Intn(len(wlUsers))]
	switch k := r.Intn(1000); {
	case k < 300:
		p := w.newPair()
		ig := &IssueGrant{ClientID: client, Tenant: u[0], Username: u[1], Scope: wlScopes[r.Intn(len(wlScopes))],
			IssuedAt: w.now, Access: spec(p.access, w.now+accessL)}
		if r.Intn(2) == 0 {
			ig.Refresh = spec(p.refresh, w.now+refresL)
			w.refr = append(w.refr, p.refresh)
			w.owner[p.refresh] = client
		}
		return ig
	case k < 400:
		w.n++
		code := HashOf(fmt.Sprint("code", w.n, r.Int63()))
		w.hashes = append(w.hashes, code)
		w.codes = append(w.codes, code)
		rd := [2]string{"https://app/cb" + fmt.Sprint(r.Intn(2)), []string{"", "chal"}[r.Intn(2)]}
		w.codeOf[code] = rd
		w.owner[code] = client
		return &IssueGrant{ClientID: client, Tenant: u[0], Username: u[1], Scope: "openid", IssuedAt: w.now,
			Code: spec(code, w.now+codeL), RedirectURI: rd[0], CodeChallenge: rd[1]}
	case k < 500:
		code := w.pick(w.codes)
		rd := w.codeOf[code]
		if r.Intn(5) == 0 {
			rd[0] += "x"
		}
		now := w.now - r.Int63n(40*sec) // the code flow is fast; pull Now back so redemptions often succeed
		if o, ok := w.owner[code]; ok && r.Intn(5) != 0 {
			client = o
		}
		p := w.newPair()
		w.refr = append(w.refr, p.refresh)
		w.owner[p.refresh] = client
		return redeem(code, client, rd[0], rd[1], now, p)
	case k < 760:
		old := w.pick(w.refr)
		sc := []string{"", "", "read", "admin"}[r.Intn(4)]
		now := w.now - r.Int63n(10*minute)
		p := w.newPair()
		if o, ok := w.owner[old]; ok && r.Intn(5) != 0 {
			client = o
		}
		w.refr = append(w.refr, p.refresh)
		w.owner[p.refresh] = client
		return &RotateRefresh{Old: old, ClientID: client, Scope: sc, Now: now,
			Grace: r.Int63n(3 * minute), Access: spec(p.access, now+accessL), Refresh: spec(p.refresh, now+refresL)}
	case k < 820:
		return &RevokeToken{Token: w.pick(w.hashes), ClientID: []string{"", client, "c1"}[r.Intn(3)]}
	case k < 822:
		return &RevokeClient{ClientID: client}
	case k < 826:
		return &RevokeSubject{Tenant: u[0], Username: u[1]}
	case k < 866:
		return &PutClient{Client: Client{ID: client, Name: fmt.Sprint("n", r.Intn(9)), SecretHash: HashOf(fmt.Sprint(r.Intn(9))),
			RedirectURIs: []string{"https://app/cb0"}, Introspect: r.Intn(2) == 0, CreatedAt: w.now, UpdatedAt: w.now}, Create: r.Intn(2) == 0, KeepSecret: r.Intn(2) == 0}
	case k < 867:
		return &DeleteClient{ClientID: client}
	case k < 900:
		return &PutUser{User: User{Tenant: u[0], Username: u[1], PasswordHash: fmt.Sprint("h", r.Intn(9)), CreatedAt: w.now}, Create: r.Intn(2) == 0}
	case k < 902:
		return &DeleteUser{Tenant: u[0], Username: u[1]}
	case k < 960:
		return &Purge{Now: w.now - r.Int63n(hour)}
	default:
		return &Noop{}
	}
}

// entries returns n encoded commands: clients and users first, then random
// commands with an occasional undecodable entry.
func (w *workload) entries(n int) [][]byte {
	var out [][]byte
	if w.n == 0 {
		for _, c := range wlClients {
			out = append(out, Encode(&PutClient{Client: Client{ID: c, CreatedAt: t0}, Create: true}))
		}
		for _, u := range wlUsers[:3] {
			out = append(out, Encode(&PutUser{User: User{Tenant: u[0], Username: u[1], CreatedAt: t0}, Create: true}))
		}
	}
	for len(out) < n {
		b := Encode(w.next())
		if w.rng.Intn(100) == 0 {
			b = b[:w.rng.Intn(len(b))]
		}
		out = append(out, b)
	}
	return out
}

// sameLookups compares every known hash across FSMs at several times.
func sameLookups(t *testing.T, hs []Hash, nows []int64, fs ...*FSM) {
	t.Helper()
	bad := 0
	for _, h := range hs {
		for _, now := range nows {
			t0, ok0 := fs[0].Lookup(h, now)
			for i, f := range fs[1:] {
				t1, ok1 := f.Lookup(h, now)
				if ok0 != ok1 || t0 != t1 {
					bad++
					if bad < 5 {
						t.Errorf("hash %x… at %d: fsm 0 %v %+v, fsm %d %v %+v", h[:4], now, ok0, t0, i+1, ok1, t1)
					}
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d lookups differ", bad)
	}
}

func TestDeterminism(t *testing.T) {
	for seed := int64(1); seed <= 5; seed++ {
		w := newWorkload(seed)
		a, b := New(), New()
		outcomes := map[Outcome]int{}
		valid := 0
		for i, data := range w.entries(3000) {
			ra := a.Apply(uint64(i+1), data)
			rb := b.Apply(uint64(i+1), append([]byte(nil), data...))
			if ra != rb {
				t.Fatalf("seed %d entry %d: results differ %+v vs %+v", seed, i, ra, rb)
			}
			outcomes[ra.Outcome]++
			if i%500 == 0 {
				checkInvariants(t, a)
			}
		}
		checkInvariants(t, a)
		if digest(a) != digest(b) {
			t.Fatalf("seed %d: states differ:\n%s", seed, diffLines(digest(a), digest(b)))
		}
		nows := []int64{t0, w.now - refresL, w.now - hour, w.now - accessL, w.now - minute, w.now}
		for _, h := range w.hashes {
			if _, ok := a.Lookup(h, w.now-hour); ok {
				valid++
			}
		}
		// Snapshots of both, restored, behave the same as the originals.
		ra, rb := roundTrip(t, a), roundTrip(t, b)
		sameLookups(t, w.hashes, nows, a, b, ra, rb)
		if seed == 1 {
			t.Logf("outcomes %v, %d tokens in index, %d valid an hour before the end", outcomes, a.LiveTokens(), valid)
			for _, o := range []Outcome{OK, NotFound, WrongClient, Reused, Mismatch, Exists, BadCommand} {
				if outcomes[o] == 0 {
					t.Errorf("workload never produced outcome %d", o)
				}
			}
		}
	}
}

// TestResultScope: every command that issues an access token reports the
// token's effective scope in its Result, so the HTTP layer answers from
// the Result alone (a follower has no local read to fall back on).
func TestResultScope(t *testing.T) {
	e := newEnv(t)
	p0, r := e.issue("g", "c1", "t", "alice", "read write profile", t0)
	if r.Scope != "read write profile" {
		t.Errorf("issue: scope %q", r.Scope)
	}
	// A grant with only a code issued no access token: no scope yet.
	code, r := codeGrant(e, "cg", "c1", "https://app/cb", "", t0)
	if r.Scope != "" {
		t.Errorf("code-only issue: scope %q", r.Scope)
	}
	if r := e.ok(redeem(code, "c1", "https://app/cb", "", t0+sec, tokensFor("cg1"))); r.Scope != "openid read" {
		t.Errorf("redeem: scope %q", r.Scope)
	}
	p1 := tokensFor("g1")
	c := e.rotate(p0.refresh, "c1", "profile read", t0+sec, 0, p1)
	if r := e.ok(&c); r.Scope != "profile read" {
		t.Errorf("narrowing rotate: scope %q", r.Scope)
	}
	c2 := e.rotate(p1.refresh, "c1", "", t0+2*sec, 0, tokensFor("g2"))
	if r := e.ok(&c2); r.Scope != "read write profile" {
		t.Errorf("full rotate: scope %q", r.Scope)
	}
	// Refusals carry none.
	if r := e.expect(redeem(code, "c1", "https://app/cb", "", t0+2*sec, tokensFor("cg2")), Reused); r.Scope != "" {
		t.Errorf("reused redeem: scope %q", r.Scope)
	}
	// And it survives the forwarding channel.
	got, err := DecodeResult(EncodeResult(r))
	if err != nil || got != r {
		t.Errorf("forwarded %+v: %+v %v", r, got, err)
	}
}

// grantsOf maps every grant of f by id.
func grantsOf(f *FSM) map[uint64]*grant {
	m := map[uint64]*grant{}
	f.eachGrant(func(g *grant) { m[g.id] = g })
	return m
}
