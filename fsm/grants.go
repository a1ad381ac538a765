package fsm

// A grant is indexed by id, and linked into its client's and its user's
// list (doubly linked through the grant's own links, so unlinking is O(1))
// for bulk revocation.

// indexGrant records g under its id, its client and its user.
func (f *FSM) indexGrant(g *grant) {
	f.grants[g.id] = g
	f.nGrants.Store(int64(len(f.grants)))
	pushGrant(f.byClient, g.clientID, g, clientList)
	if g.username != "" {
		pushGrant(f.bySubject, userKey{g.tenant, g.username}, g, userList)
	}
}

// clientList and userList pick which of a grant's links a list uses.
func clientList(g *grant) *link { return &g.clientLink }
func userList(g *grant) *link   { return &g.userLink }

// pushGrant puts g at the head of the list heads[k].
func pushGrant[K comparable](heads map[K]*grant, k K, g *grant, l func(*grant) *link) {
	head := heads[k]
	*l(g) = link{next: head}
	if head != nil {
		l(head).prev = g
	}
	heads[k] = g
}

// unlinkGrant takes g out of the list heads[k].
func unlinkGrant[K comparable](heads map[K]*grant, k K, g *grant, l func(*grant) *link) {
	gl := l(g)
	switch {
	case gl.prev != nil:
		l(gl.prev).next = gl.next
	case gl.next != nil:
		heads[k] = gl.next
	default:
		delete(heads, k)
	}
	if gl.next != nil {
		l(gl.next).prev = gl.prev
	}
	*gl = link{}
}

func (f *FSM) forgetGrant(g *grant) {
	delete(f.grants, g.id)
	f.nGrants.Store(int64(len(f.grants)))
	unlinkGrant(f.byClient, g.clientID, g, clientList)
	if g.username != "" {
		unlinkGrant(f.bySubject, userKey{g.tenant, g.username}, g, userList)
	}
}

// revokeAll revokes every grant of the list starting at head.
func (f *FSM) revokeAll(head *grant, l func(*grant) *link) uint64 {
	var n uint64
	for g := head; g != nil; {
		next := l(g).next // revokeGrant unlinks g
		f.revokeGrant(g)
		g = next
		n++
	}
	return n
}
