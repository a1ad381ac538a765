package fsm

import (
	"math"
	"sync"
	"sync/atomic"
)

// FSM is the replicated state. Apply and Snapshot must be called from one
// goroutine at a time (the consensus layer's apply loop); every read method
// is safe to call concurrently with them.
type FSM struct {
	tokens *index

	// mu guards the small, rarely written tables that readers also use.
	mu       sync.RWMutex
	clients  map[string]*Client
	users    map[userKey]*User
	counters map[string]counter
	// OpenID Connect state, also under mu: consents (consent.go),
	// sign-in sessions (session.go), the signing-key set (keys.go).
	consents     map[userKey]map[string]string // client id -> scope
	sessions     map[Hash]Session
	userSessions map[userKey]map[Hash]struct{}
	keys         []SigningKey // replaced, never modified
	keyGen       uint64

	// Owned by the apply goroutine.
	byClient  map[string]*grant  // head of each client's grant list
	bySubject map[userKey]*grant // head of each user's grant list
	interned  map[string]string
	ptrs      map[string]*string // internPtr: shared string pointers

	writers *snapWriters // snapshot.go

	applied atomic.Uint64
	// recent remembers tokens changed by entries not yet visible on every
	// node serving reads (recent.go).
	recent recent
	// For metrics, readable at any time: the number of grants,
	// and tokens dropped by purges since the process started.
	nGrants atomic.Int64
	purged  atomic.Uint64
}

type userKey struct{ tenant, username string }

// counter backs Martini's token_issued_counter for one subject.
type counter struct {
	count uint64
	last  int64
}

// New returns an empty state machine.
func New() *FSM {
	f := &FSM{writers: &snapWriters{}}
	f.reset()
	return f
}

func (f *FSM) reset() {
	f.tokens = newIndex()
	f.tokens.rec = &f.recent
	f.clients = make(map[string]*Client)
	f.users = make(map[userKey]*User)
	f.counters = make(map[string]counter)
	f.consents = make(map[userKey]map[string]string)
	f.sessions = make(map[Hash]Session)
	f.userSessions = make(map[userKey]map[Hash]struct{})
	f.keys, f.keyGen = nil, 0
	f.byClient = make(map[string]*grant)
	f.bySubject = make(map[userKey]*grant)
	f.interned = make(map[string]string)
	f.ptrs = make(map[string]*string)
}

// AppliedIndex is the log index of the last command applied.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// Apply decodes and applies one committed command. A command that does not
// decode changes nothing and reports BadCommand, so a corrupt or
// newer-version entry cannot split replicas half way through a change.
func (f *FSM) Apply(index uint64, data []byte) Result {
	defer f.applied.Store(index)
	f.recent.at = index
	c, err := Decode(data)
	if err != nil {
		return Result{Outcome: BadCommand, Index: index}
	}
	r := f.apply(index, c)
	r.Index = index
	return r
}

func (f *FSM) apply(index uint64, c Command) Result {
	switch c := c.(type) {
	case *IssueGrant:
		return f.issueGrant(index, c)
	case *RedeemCode:
		return f.redeemCode(c)
	case *RotateRefresh:
		return f.rotateRefresh(c)
	case *RevokeToken:
		return f.revokeToken(c)
	case *RevokeClient:
		return Result{Count: f.revokeAll(f.byClient[c.ClientID], clientList)}
	case *RevokeSubject:
		return Result{Count: f.revokeAll(f.bySubject[userKey{c.Tenant, c.Username}], userList)}
	case *PutClient:
		return f.putClient(c)
	case *DeleteClient:
		return f.deleteClient(c)
	case *PutUser:
		return f.putUser(c)
	case *DeleteUser:
		return f.deleteUser(c)
	case *Purge:
		f.purgeSessions(c.Now)
		f.purgeSigningKeys(c.Now)
		return Result{Count: f.purge(c.Now)}
	case *Noop:
		return Result{}
	case *RememberConsent:
		return f.rememberConsent(c)
	case *ForgetConsent:
		return f.forgetConsent(c)
	case *StartSession:
		return f.startSession(c)
	case *EndSession:
		return f.endSession(c)
	case *PutSigningKeys:
		return f.putSigningKeys(c)
	}
	return Result{Outcome: BadCommand}
}

func (f *FSM) intern(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := f.interned[s]; ok {
		return v
	}
	f.interned[s] = s
	return s
}

// internPtr returns the shared pointer to s: narrowed scopes, and the
// client and scope of every grant.
func (f *FSM) internPtr(s string) *string {
	if p, ok := f.ptrs[s]; ok {
		return p
	}
	// Not &s: taking the parameter's address would move it to the heap
	// on every call, hits included.
	p := new(string)
	*p = s
	f.ptrs[s] = p
	return p
}

// fresh reports whether none of the tokens to be created is already in the
// index. Honest nodes mint 256-bit random tokens, so a clash means a buggy
// or hostile proposer; refusing it keeps one hash from belonging to two
// grants, which would let replicas that replayed the log and replicas that
// restored a snapshot disagree.
func (f *FSM) fresh(specs ...TokenSpec) bool {
	for i, t := range specs {
		if t.Hash.IsZero() {
			continue
		}
		if _, ok := f.tokens.get(keyOf(t.Hash)); ok {
			return false
		}
		for _, u := range specs[:i] {
			if keyOf(u.Hash) == keyOf(t.Hash) {
				return false
			}
		}
	}
	return true
}

func (f *FSM) issueGrant(index uint64, c *IssueGrant) Result {
	f.mu.RLock()
	_, known := f.clients[c.ClientID]
	f.mu.RUnlock()
	if !known {
		return Result{Outcome: NotFound}
	}
	if !f.fresh(c.Code, c.Access, c.Refresh) {
		return Result{Outcome: Exists}
	}
	g := &grant{
		id:       index,
		client:   f.internPtr(c.ClientID),
		tenant:   f.intern(c.Tenant),
		username: f.intern(c.Username),
		scope:    f.internPtr(c.Scope),
		issuedAt: c.IssuedAt,
	}
	n := 0
	for _, t := range []*TokenSpec{&c.Code, &c.Access, &c.Refresh} {
		if !t.Hash.IsZero() {
			n++
		}
	}
	g.tokens = make([]key, 0, n) // exactly: most grants never hold more
	if !c.Code.Hash.IsZero() || c.Nonce != "" || c.AuthTime != 0 {
		g.code = &codeBinding{redirectURI: c.RedirectURI, challenge: c.CodeChallenge}
		if c.Nonce != "" || c.AuthTime != 0 {
			g.code.signIn = &signIn{nonce: c.Nonce, authTime: c.AuthTime}
		}
	}
	f.indexGrant(g)
	if !c.Code.Hash.IsZero() {
		f.addToken(g, c.Code, KindCode, nil, c.IssuedAt)
	}
	r := Result{GrantID: g.id}
	if !c.Access.Hash.IsZero() {
		f.addToken(g, c.Access, KindAccess, nil, c.IssuedAt)
		r.IssuedCount = f.countIssue(g, c.IssuedAt)
		r.Scope = *g.scope
	}
	if !c.Refresh.Hash.IsZero() {
		f.addToken(g, c.Refresh, KindRefresh, nil, c.IssuedAt)
	}
	return r
}

func (f *FSM) addToken(g *grant, t TokenSpec, kind Kind, scope *string, now int64) {
	k := keyOf(t.Hash)
	f.tokens.put(k, record{grant: g, scope: scope, issuedAt: now, expiresAt: t.ExpiresAt, kind: kind})
	g.tokens = append(g.tokens, k)
}

func (f *FSM) countIssue(g *grant, now int64) uint64 {
	subject := subjectOf(g.clientID(), g.tenant, g.username)
	f.mu.Lock()
	c := f.counters[subject]
	c.count++
	c.last = now
	f.counters[subject] = c
	f.mu.Unlock()
	return c.count
}

// live returns the record for h if it exists, is of kind k, belongs to a
// grant that is not revoked and has not expired at now.
func (f *FSM) live(h Hash, k Kind, now int64) (record, bool) {
	r, ok := f.tokens.get(keyOf(h))
	if !ok || r.kind != k || r.grant.revoked.Load() || now >= r.expiresAt {
		return record{}, false
	}
	return r, true
}

func (f *FSM) redeemCode(c *RedeemCode) Result {
	// Not live(): a redeemed code outlives its own expiry, and replaying
	// it at any time revokes what it issued (RFC 6749 §4.1.2). Expiry
	// only refuses a code that was never redeemed.
	r, ok := f.tokens.get(keyOf(c.Code))
	if !ok || r.kind != KindCode || r.grant.revoked.Load() || (r.state != stateRedeemed && c.Now >= r.expiresAt) {
		return Result{Outcome: NotFound}
	}
	g := r.grant
	if g.clientID() != c.ClientID {
		return Result{Outcome: WrongClient}
	}
	if r.state == stateRedeemed {
		f.revokeGrant(g)
		return Result{Outcome: Reused, GrantID: g.id}
	}
	var want codeBinding
	if g.code != nil {
		want = *g.code
	}
	if c.RedirectURI != want.redirectURI || c.Challenge != want.challenge {
		return Result{Outcome: Mismatch}
	}
	if !f.fresh(c.Access, c.Refresh) {
		return Result{Outcome: Exists}
	}
	r.state = stateRedeemed
	if !c.Access.Hash.IsZero() || !c.Refresh.Hash.IsZero() {
		// Kept while the grant holds anything else (see purge).
		r.expiresAt = keepRedeemed
	}
	f.tokens.put(keyOf(c.Code), r)
	res := Result{GrantID: g.id}
	if !c.Access.Hash.IsZero() {
		f.addToken(g, c.Access, KindAccess, nil, c.Now)
		res.IssuedCount = f.countIssue(g, c.Now)
		res.Scope = *g.scope
	}
	if !c.Refresh.Hash.IsZero() {
		f.addToken(g, c.Refresh, KindRefresh, nil, c.Now)
	}
	return res
}

// What a grant keeps for reuse detection is bounded.
const (
	// maxRetired is how many refresh tokens rotated out by their own use a
	// grant keeps in the index; beyond that the oldest is forgotten, and
	// presenting it then finds nothing (it issues nothing, but no longer
	// revokes). A chain refreshed once per access-token lifetime holds
	// far fewer within a refresh-token lifetime.
	maxRetired = 32
	// maxOrphans is how many unexpired orphans (successors a grace retry
	// superseded before they were used) a grant may hold. Orphans are
	// never forgotten before they expire, because one may be in the
	// legitimate client's hands and presenting it is how a takeover is
	// caught; a grace retry that would make one more is reuse instead.
	maxOrphans = 8
)

func (f *FSM) rotateRefresh(c *RotateRefresh) Result {
	r, ok := f.live(c.Old, KindRefresh, c.Now)
	if !ok || c.Access.Hash.IsZero() || c.Refresh.Hash.IsZero() {
		return Result{Outcome: NotFound}
	}
	g := r.grant
	if g.clientID() != c.ClientID {
		return Result{Outcome: WrongClient}
	}
	// Reuse is judged before anything else about the request: a replayed
	// token must cost the grant whatever scope it asks for.
	old := g.rot()
	retry := false
	if r.state != stateActive {
		if !graceRetry(g, old, c, r) {
			f.revokeGrant(g)
			return Result{Outcome: Reused, GrantID: g.id}
		}
		retry = true
	}
	var scope *string
	if c.Scope != "" && c.Scope != *g.scope {
		if !ScopeSubset(c.Scope, *g.scope) {
			return Result{Outcome: Mismatch}
		}
		scope = f.internPtr(c.Scope)
	}
	if !f.fresh(c.Access, c.Refresh) {
		return Result{Outcome: Exists}
	}
	next := &rotation{cur: keyOf(c.Refresh.Hash), curAccess: keyOf(c.Access.Hash), prev: keyOf(c.Old), rotatedAt: c.Now}
	if g.chain == nil {
		g.chain = &chain{}
	}
	sp := &g.chain.spent
	if retry {
		// A retry within the grace window: the successor was never used
		// (it would have become prev otherwise), so the response carrying
		// it was presumably lost. It is superseded, not forgotten: if it
		// was not lost but is in a second party's hands, presenting it is
		// reuse and revokes the grant. The access token issued with it is
		// dropped. The window keeps counting from the first rotation.
		if cr, ok := f.tokens.get(old.cur); ok && cr.grant == g && cr.state == stateActive {
			cr.state = stateOrphaned
			f.tokens.put(old.cur, cr)
			sp.orphans = insertSpent(sp.orphans, spentKey{old.cur, cr.issuedAt, cr.expiresAt})
		}
		f.dropToken(g, old.curAccess)
		next.rotatedAt = old.rotatedAt
	} else {
		r.state = stateRotated
		f.tokens.put(next.prev, r)
		sp.retired = insertSpent(sp.retired, spentKey{next.prev, r.issuedAt, r.expiresAt})
		f.evictRetired(g, next.prev)
	}
	g.setRot(next)
	f.addToken(g, c.Access, KindAccess, scope, c.Now)
	f.addToken(g, c.Refresh, KindRefresh, nil, c.Now)
	eff := *g.scope
	if scope != nil {
		eff = *scope
	}
	return Result{GrantID: g.id, IssuedCount: f.countIssue(g, c.Now), Scope: eff}
}

// graceRetry reports whether presenting r, a superseded refresh token of g,
// is a client retrying after a lost response rather than reuse: r was
// rotated out by its own use and is the grant's most recent such token (so
// its successor has not been used), the rotation was at most c.Grace ago,
// and the grant holds fewer than maxOrphans unexpired orphans. An orphan,
// an older token, a retry after the successor was used or one outside the
// window is reuse.
func graceRetry(g *grant, old *rotation, c *RotateRefresh, r record) bool {
	if r.state != stateRotated || old == nil || keyOf(c.Old) != old.prev || c.Now-old.rotatedAt > c.Grace {
		return false
	}
	n := 0
	if sp := g.spent(); sp != nil {
		for _, o := range sp.orphans {
			if c.Now < o.expiresAt {
				n++
			}
		}
	}
	return n < maxOrphans
}

// evictRetired forgets g's oldest retired refresh tokens beyond maxRetired,
// never keep (the token a grace retry may still present).
func (f *FSM) evictRetired(g *grant, keep key) {
	sp := g.spent()
	for len(sp.retired) > maxRetired {
		victim := sp.retired[0].k
		if victim == keep {
			victim = sp.retired[1].k
		}
		f.dropToken(g, victim)
	}
}

// dropToken removes one token of g from the index, the grant's token list
// and its spent lists. A key that is not g's is left alone.
func (f *FSM) dropToken(g *grant, k key) {
	if sp := g.spent(); sp != nil {
		sp.retired = removeSpent(sp.retired, k)
		sp.orphans = removeSpent(sp.orphans, k)
	}
	if r, ok := f.tokens.get(k); !ok || r.grant != g {
		return
	}
	f.tokens.del(k)
	for i, t := range g.tokens {
		if t == k {
			g.tokens[i] = g.tokens[len(g.tokens)-1]
			g.tokens = g.tokens[:len(g.tokens)-1]
			break
		}
	}
}

func (f *FSM) revokeToken(c *RevokeToken) Result {
	r, ok := f.tokens.get(keyOf(c.Token))
	if !ok || r.grant.revoked.Load() {
		return Result{Outcome: NotFound}
	}
	if c.ClientID != "" && r.grant.clientID() != c.ClientID {
		return Result{Outcome: WrongClient}
	}
	f.revokeGrant(r.grant)
	return Result{GrantID: r.grant.id, Count: 1}
}

// revokeGrant makes every token of g invalid at once (readers check the
// flag) and then frees them.
func (f *FSM) revokeGrant(g *grant) {
	for _, k := range g.tokens {
		f.recent.touch(k) // before the flag: readers check it first
	}
	g.revoked.Store(true)
	for _, k := range g.tokens {
		f.tokens.del(k)
	}
	g.tokens = nil
	g.chain = nil
	f.forgetGrant(g)
}

func (f *FSM) putClient(c *PutClient) Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	old, exists := f.clients[c.Client.ID]
	if c.Create && exists {
		return Result{Outcome: Exists}
	}
	if !c.Create && !exists {
		return Result{Outcome: NotFound}
	}
	nc := cloneClient(&c.Client)
	if exists {
		nc.CreatedAt = old.CreatedAt
		if c.KeepSecret {
			nc.SecretHash = old.SecretHash
		}
	}
	f.clients[nc.ID] = nc
	return Result{}
}

func cloneClient(c *Client) *Client {
	nc := *c
	nc.RedirectURIs = append([]string(nil), c.RedirectURIs...)
	nc.GrantTypes = append([]string(nil), c.GrantTypes...)
	nc.Scopes = append([]string(nil), c.Scopes...)
	nc.PostLogoutRedirectURIs = append([]string(nil), c.PostLogoutRedirectURIs...)
	return &nc
}

func (f *FSM) deleteClient(c *DeleteClient) Result {
	f.mu.Lock()
	_, ok := f.clients[c.ClientID]
	if ok {
		delete(f.clients, c.ClientID)
		delete(f.counters, c.ClientID)
		f.forgetClientConsents(c.ClientID)
	}
	f.mu.Unlock()
	if !ok {
		return Result{Outcome: NotFound}
	}
	return Result{Count: f.revokeAll(f.byClient[c.ClientID], clientList)}
}

func (f *FSM) putUser(c *PutUser) Result {
	k := userKey{c.User.Tenant, c.User.Username}
	f.mu.Lock()
	defer f.mu.Unlock()
	old, exists := f.users[k]
	if c.Create && exists {
		return Result{Outcome: Exists}
	}
	if !c.Create && !exists {
		return Result{Outcome: NotFound}
	}
	u := c.User
	if exists {
		u.CreatedAt = old.CreatedAt
	}
	f.users[k] = &u
	return Result{}
}

func (f *FSM) deleteUser(c *DeleteUser) Result {
	k := userKey{c.Tenant, c.Username}
	f.mu.Lock()
	_, ok := f.users[k]
	if ok {
		delete(f.users, k)
		delete(f.counters, subjectOf("", c.Tenant, c.Username))
		delete(f.consents, k)
		f.dropUserSessions(k)
	}
	f.mu.Unlock()
	if !ok {
		return Result{Outcome: NotFound}
	}
	return Result{Count: f.revokeAll(f.bySubject[k], userList)}
}

// keepRedeemed is the expiry of a redeemed code that issued tokens: it
// never expires by itself, and the purge drops it together with the last
// other token of its grant, so a replay finds it for as long as anything it
// led to may still be alive.
const keepRedeemed = math.MaxInt64

// purge drops tokens that expired before now, redeemed codes whose grant
// holds nothing else, and grants left with none.
func (f *FSM) purge(now int64) uint64 {
	var n uint64
	touched := make(map[*grant]struct{})
	f.tokens.deleteIf(func(r record) bool { return now >= r.expiresAt }, func(r record) {
		touched[r.grant] = struct{}{}
		n++
	})
	for g := range touched {
		kept := g.tokens[:0]
		onlyRedeemed := true
		for _, k := range g.tokens {
			if r, ok := f.tokens.get(k); ok {
				kept = append(kept, k)
				onlyRedeemed = onlyRedeemed && r.kind == KindCode && r.state == stateRedeemed
			}
		}
		if onlyRedeemed {
			for _, k := range kept {
				f.tokens.del(k)
				n++
			}
			kept = kept[:0]
		}
		g.tokens = kept
		if len(kept) == 0 {
			g.chain = nil
			f.forgetGrant(g)
			continue
		}
		if sp := g.spent(); sp != nil {
			sp.retired = f.keepIndexed(sp.retired)
			sp.orphans = f.keepIndexed(sp.orphans)
		}
	}
	f.purged.Add(n)
	return n
}

// keepIndexed filters list down to the keys still in the index.
func (f *FSM) keepIndexed(list []spentKey) []spentKey {
	kept := list[:0]
	for _, s := range list {
		if _, ok := f.tokens.get(s.k); ok {
			kept = append(kept, s)
		}
	}
	return kept
}
